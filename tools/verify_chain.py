#!/usr/bin/env python3
"""Independent verifier of a reasonkit-audit database's tamper-evident chain.

Written from the specification in docs/chain.md alone, with Python's standard library
only, so that an auditor can check an audit database without trusting the reasonkit-audit
binary (or any Rust code). It recomputes every leaf from the stored rows and every link from
its predecessor, checks that seq is dense, that every chained row exists in its latest
chained version and that every row is covered, and checks checkpoints (C2SP signed notes),
including Ed25519 signatures when a verifier key is given. Rows removed by a chained
pruning, and rows whose content a chained erasure replaced, are accepted exactly as
docs/chain.md ("Pruning", "Erasure") says, and counted.

It also checks evidence bundles (`reasonkit-audit evidence`) offline: every row against
its committed leaf, every chain entry against the checkpoint's Merkle tree, and that no
entry of a session was left out ("Evidence bundles").

Usage:
    python3 tools/verify_chain.py AUDIT.db [--checkpoint FILE]... [--key FILE]... [--json]
    python3 tools/verify_chain.py --evidence BUNDLE.json [--checkpoint FILE]... [--key FILE]...
    python3 tools/verify_chain.py --self-test [docs/chain-vectors.json]

Exit status: 0 intact (a bundle: intact and complete), 1 evidence of tampering (or of
omission), 2 the file (or a checkpoint or key) cannot be used.
"""

import base64
import hashlib
import json
import os
import sqlite3
import struct
import sys

FORMAT = 1

# docs/chain.md, "Tables and ordinals": each chained table's columns in ordinal order.
TABLES = {
    "sessions": ["id", "started_at", "ended_at", "profile", "input_hash", "status",
                 "input", "attributes", "pid", "host"],
    "steps": ["id", "session_id", "module", "started_at", "ended_at", "input_summary",
              "output_summary", "confidence", "tokens_used", "error", "parent_step_id",
              "attributes"],
    "decisions": ["id", "step_id", "decision_type", "options_considered", "chosen_option",
                  "rationale", "decided_at", "attributes"],
    "audit_health": ["id", "recorded_at", "pid", "host", "kind", "count", "detail"],
    "audit_events": ["id", "recorded_at", "kind", "detail"],
}

# docs/chain.md, "Split leaf": the ordinals of each table's content columns.
CONTENT = {"sessions": [4, 6, 7], "steps": [5, 6, 9, 11], "decisions": [3, 4, 5, 7],
           "audit_health": [], "audit_events": []}

# docs/chain.md, "Erasure": what an erased content column holds.
TOMBSTONE = {"input_hash": b"erased", "attributes": b"{}"}

ORIGIN_PREFIX = "reasonkit-audit/"


def sha256(data):
    return hashlib.sha256(data).digest()


def length_prefixed(data):
    return struct.pack(">I", len(data)) + data


def encode_value(value):
    """(type tag, bytes) of one non-NULL value as SQLite returns it."""
    if isinstance(value, bool):
        raise TypeError("SQLite has no boolean storage class")
    if isinstance(value, int):
        return 1, struct.pack(">q", value)
    if isinstance(value, float):
        if value == 0.0:
            value = 0.0  # -0.0 is encoded as +0.0
        return 2, struct.pack(">d", value)
    if isinstance(value, str):
        return 3, value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("text and blobs must be passed as Text/Blob")
    raise TypeError("unsupported value %r" % (value,))


class Text(bytes):
    """Text as its stored bytes."""


class Blob(bytes):
    """A blob."""


def encode_columns(pairs):
    """ordinal:u16 ‖ tag ‖ len:u32 ‖ bytes for each non-NULL (ordinal, value)."""
    out = bytearray()
    for ordinal, value in pairs:
        if value is None:
            continue
        if isinstance(value, Text):
            tag, data = 3, bytes(value)
        elif isinstance(value, Blob):
            tag, data = 4, bytes(value)
        else:
            tag, data = encode_value(value)
        out += struct.pack(">H", ordinal) + bytes([tag]) + length_prefixed(data)
    return bytes(out)


def leaf_hash(table, values):
    """The whole leaf: SHA-256 of 0x00 ‖ format ‖ len:u32 ‖ table ‖ each non-NULL column."""
    message = bytes([0x00, FORMAT]) + length_prefixed(table.encode("utf-8"))
    return sha256(message + encode_columns(enumerate(values)))


def content_digest(table, values):
    """SHA-256 of 0x04 ‖ each non-NULL content column."""
    content = CONTENT.get(table, [])
    return sha256(b"\x04" + encode_columns((i, v) for i, v in enumerate(values) if i in content))


def split_leaf_hash(table, values, content=None):
    """The split leaf: SHA-256 of 0x03 ‖ format ‖ len:u32 ‖ table ‖ each non-NULL
    non-content column ‖ the content digest (the row's own, or one an erasure recorded)."""
    if content is None:
        content = content_digest(table, values)
    kept = CONTENT.get(table, [])
    message = bytes([0x03, FORMAT]) + length_prefixed(table.encode("utf-8"))
    message += encode_columns((i, v) for i, v in enumerate(values) if i not in kept)
    return sha256(message + content)


def is_tombstoned(table, values):
    for i in CONTENT.get(table, []):
        want = TOMBSTONE.get(TABLES[table][i])
        value = values[i]
        if want is None:
            if value is not None:
                return False
        elif not isinstance(value, Text) or bytes(value) != want:
            return False
    return True


def pruned_digest(rows):
    """SHA-256 of 0x05 ‖ len:u32 ‖ table ‖ len:u32 ‖ row id, for each pruned row, sorted."""
    message = bytearray(b"\x05")
    for table, row_id in sorted((t.encode("utf-8"), r.encode("utf-8")) for t, r in rows):
        message += length_prefixed(table) + length_prefixed(row_id)
    return sha256(bytes(message))


def link_hash(previous, seq, leaf):
    """SHA-256 of 0x01 ‖ previous link ‖ seq:u64 ‖ leaf."""
    return sha256(b"\x01" + bytes(previous) + struct.pack(">Q", seq) + bytes(leaf))


def genesis_hash(database_id):
    """SHA-256 of 0x02 ‖ format ‖ len:u32 ‖ database id."""
    return sha256(bytes([0x02, FORMAT]) + length_prefixed(database_id.encode("utf-8")))


# RFC 6962 Merkle trees (RFC 9162 §2.1): tree heads, and the verification of inclusion and
# consistency proofs, step by step as RFC 9162 §2.1.3.2 and §2.1.4.2 give them.

def merkle_leaf(data):
    """SHA-256 of 0x00 ‖ data: a leaf of a Merkle tree."""
    return sha256(b"\x00" + bytes(data))


def merkle_node(left, right):
    """SHA-256 of 0x01 ‖ left ‖ right: a node of a Merkle tree."""
    return sha256(b"\x01" + bytes(left) + bytes(right))


def merkle_root(leaves):
    """MTH of a list of leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return bytes(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle_node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def _climb_right_edge(fn, sn):
    """A node that is its level's last was carried up unchanged: climb while fn is even."""
    while not fn & 1 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def merkle_verify_inclusion(index, size, leaf, proof, root):
    """True when `leaf` is leaf `index` of the tree of `size` leaves whose head is `root`."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = merkle_node(p, r)
            fn, sn = _climb_right_edge(fn, sn)
        else:
            r = merkle_node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == bytes(root)


def merkle_verify_consistency(old_size, new_size, old_root, new_root, proof):
    """True when the tree of `old_size` leaves, head `old_root`, is a prefix of the tree of
    `new_size` leaves, head `new_root`."""
    if old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and bytes(old_root) == bytes(new_root)
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = merkle_node(c, fr)
            sr = merkle_node(c, sr)
            fn, sn = _climb_right_edge(fn, sn)
        else:
            sr = merkle_node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == bytes(old_root) and sr == bytes(new_root)


def row_id_text(value):
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if value is None:
        return ""
    return str(value)


# --- Ed25519 verification (RFC 8032, section 5.1.7), for signed checkpoints ----------

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _point_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _point_mul(s, point):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _point_add(q, point)
        point = _point_add(point, point)
        s >>= 1
    return q


def _point_equal(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


_G_Y = 4 * pow(5, P - 2, P) % P
G = (_recover_x(_G_Y, 0), _G_Y, 1, _recover_x(_G_Y, 0) * _G_Y % P)


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _point_equal(_point_mul(s, G), _point_add(r, _point_mul(h, a)))


# --- Checkpoints (C2SP signed notes) and keys ----------------------------------------

class Unusable(Exception):
    """The input cannot be verified at all (exit 2)."""


def parse_checkpoints(text):
    lines = text.split("\n")
    notes, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if i + 2 >= len(lines):
            raise Unusable("line %d: a checkpoint needs origin, size and hash lines" % (i + 1))
        origin, size_line, hash_line = lines[i], lines[i + 1], lines[i + 2]
        try:
            size = int(size_line)
            root = base64.b64decode(hash_line, validate=True)
        except ValueError:
            raise Unusable("line %d: malformed checkpoint" % (i + 2))
        if len(root) != 32:
            raise Unusable("line %d: the hash is not 32 bytes" % (i + 3))
        body_lines = [origin, size_line, hash_line]
        i += 3
        while i < len(lines) and lines[i]:
            body_lines.append(lines[i])
            i += 1
        signatures = []
        if i + 1 < len(lines) and lines[i + 1].startswith("\u2014 "):
            i += 1
            while i < len(lines) and lines[i].startswith("\u2014 "):
                name, _, encoded = lines[i][2:].rpartition(" ")
                raw = base64.b64decode(encoded)
                signatures.append((name, raw[:4], raw[4:]))
                i += 1
        body = "".join(line + "\n" for line in body_lines)
        time = next((l[5:] for l in body_lines[3:] if l.startswith("time ")), None)
        notes.append({"origin": origin, "size": size, "hash": root, "body": body,
                      "signatures": signatures, "time": time})
    return notes


def parse_verifier_key(text):
    # Split from the left: names hold no '+', base64 may.
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Unusable("not a verifier key (expected <name>+<id>+<base64>)")
    name, key_id, encoded = parts
    raw = base64.b64decode(encoded)
    if len(key_id) != 8 or len(raw) != 33 or raw[0] != 1:
        raise Unusable("not an Ed25519 verifier key")
    public = raw[1:]
    expected = sha256(name.encode("utf-8") + b"\n" + b"\x01" + public)[:4]
    if expected != bytes.fromhex(key_id):
        raise Unusable("verifier key %s: its key id does not match the key" % name)
    return name, expected, public


# --- Evidence bundles (docs/chain.md, "Evidence bundles") -------------------------------

EVIDENCE_FORMAT = "reasonkit-audit evidence bundle"
EVIDENCE_SPEC = 2


def as_bytes(text):
    """Text as its UTF-8 bytes; bytes (text as SQLite stored it) as they are."""
    return bytes(text) if isinstance(text, (bytes, bytearray)) else text.encode("utf-8")


def entry_data(seq, table, row_id, session_id, committed_at, leaf):
    """0x06 ‖ seq:u64 ‖ len32(table) ‖ len32(row id) ‖ session ‖ len32(committed_at) ‖
    len32(leaf), where session is 0x00 for none or 0x01 ‖ len32(session id)."""
    out = b"\x06" + struct.pack(">Q", seq)
    out += length_prefixed(as_bytes(table)) + length_prefixed(as_bytes(row_id))
    if session_id is None:
        out += b"\x00"
    else:
        out += b"\x01" + length_prefixed(as_bytes(session_id))
    return out + length_prefixed(as_bytes(committed_at)) + length_prefixed(bytes(leaf))


def head_data(first, session_id, count, last):
    """0x07 ‖ len32(first committed_at) ‖ len32(session id) ‖ count:u64 ‖ last:u64."""
    return (b"\x07" + length_prefixed(as_bytes(first)) + length_prefixed(as_bytes(session_id))
            + struct.pack(">QQ", count, last))


def chain_tree_heads(conn, sizes):
    """{size: (entries root, sessions, heads root)} of the chain in `conn` at each size it
    reaches: both trees of "Evidence bundles", computed from audit_chain."""
    wanted = sorted(set(sizes))
    leaves, heads, out = [], {}, {}

    def snapshot(size):
        # By the first entry's committed_at, then id, both as stored bytes.
        ordered = sorted(heads, key=lambda s: (heads[s][0], s))
        out[size] = (merkle_root(leaves[:size]), len(ordered),
                     merkle_root([merkle_leaf(head_data(heads[s][0], s, heads[s][1], heads[s][2]))
                                  for s in ordered]))
    if 0 in wanted:
        snapshot(0)
    rows = conn.execute("SELECT seq, table_name, row_id, session_id, committed_at, leaf_hash "
                        "FROM audit_chain ORDER BY seq")
    for seq, table, row_id, session, committed_at, leaf in rows:
        if not wanted or len(leaves) >= wanted[-1]:
            break
        leaves.append(merkle_leaf(entry_data(seq, table, row_id, session, committed_at, leaf)))
        if session is not None:
            first, count, _ = heads.get(bytes(session), (bytes(committed_at), 0, 0))
            heads[bytes(session)] = (first, count + 1, seq)
        if len(leaves) in wanted:
            snapshot(len(leaves))
    return out


MISLABELLED = (
    "WITH latest AS (SELECT table_name, row_id, session_id, max(seq) AS seq FROM audit_chain "
    "                WHERE table_name IN ('sessions', 'steps') GROUP BY table_name, row_id), "
    "     held AS (SELECT l.*, CASE l.table_name WHEN 'sessions' THEN "
    "                (SELECT id FROM sessions WHERE id = l.row_id) "
    "                ELSE (SELECT session_id FROM steps WHERE id = l.row_id) END AS actual "
    "              FROM latest l) "
    "SELECT seq, table_name, row_id, session_id, actual FROM held "
    "WHERE actual IS NOT NULL AND session_id IS NOT actual ORDER BY seq")


def tree_heads(note):
    """The `tree` and `sessions` lines of a checkpoint: (entries root, sessions, heads root)."""
    lines = note["body"].split("\n")[3:]
    tree = next((l[5:] for l in lines if l.startswith("tree ")), None)
    sessions = next((l[9:] for l in lines if l.startswith("sessions ")), None)
    if tree is None or sessions is None or " " not in sessions:
        return None
    count, _, heads = sessions.partition(" ")
    try:
        entries, heads = base64.b64decode(tree, validate=True), base64.b64decode(heads, validate=True)
        count = int(count)
    except ValueError:
        return None
    if len(entries) != 32 or len(heads) != 32:
        return None
    return entries, count, heads


def bundle_value(value):
    """A bundled column value as encode_columns takes it (docs/chain.md, "The bundle")."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean, which SQLite does not store")
    if isinstance(value, str):
        return Text(value.encode("utf-8"))
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (kind, text), = value.items()
        if kind == "blob":
            return Blob(bytes.fromhex(text))
        if kind == "text_hex":
            return Text(bytes.fromhex(text))
        if kind == "real" and text in ("inf", "-inf"):
            return float(text)
    raise ValueError("a value %r of no known form" % (value,))


def signed_by(note, keys):
    names = []
    for name, key_id, public in keys:
        for sig_name, sig_id, signature in note["signatures"]:
            if sig_name == name and sig_id == key_id and ed25519_verify(
                    public, note["body"].encode("utf-8"), signature):
                names.append(name)
                break
    return names


def one_note(text):
    notes = parse_checkpoints(text)
    if len(notes) != 1:
        raise Unusable("a bundle's checkpoint must be one note; it holds %d" % len(notes))
    return notes[0]


def check_evidence(bundle, checkpoints=(), keys=()):
    """Checks an evidence bundle; returns (findings, notes), each finding (class, message)
    with class TAMPERED, OMITTED or UNUSABLE."""
    findings, notes = [], []

    def find(kind, message):
        findings.append((kind, message))

    if bundle.get("evidence") != EVIDENCE_FORMAT or bundle.get("spec") != EVIDENCE_SPEC:
        raise Unusable("not a bundle this verifier reads (%r, spec %r)" % (
            bundle.get("evidence"), bundle.get("spec")))
    manifest = bundle["manifest"]
    database = manifest["database_id"]
    note = one_note(bundle["checkpoint"])
    size = note["size"]
    if note["origin"] != ORIGIN_PREFIX + database:
        find("TAMPERED", "the bundle's checkpoint is of %s, its manifest names %s" % (
            note["origin"], database))
    trees = tree_heads(note)
    if trees is None:
        raise Unusable("the bundle's checkpoint carries no tree and sessions lines")
    entries_root, session_count, heads_root = trees
    if keys:
        if not signed_by(note, keys):
            find("TAMPERED", "the bundle's checkpoint is not signed by a key you gave")
    else:
        notes.append("no key given: the checkpoint's signatures were not checked")

    extended = []
    for extension in bundle.get("extends", []):
        earlier = one_note(extension["checkpoint"])
        if earlier["origin"] != note["origin"]:
            find("TAMPERED", "the earlier checkpoint at size %d is of %s" % (
                earlier["size"], earlier["origin"]))
            continue
        old = tree_heads(earlier)
        if old is None:
            find("UNUSABLE", "the earlier checkpoint at size %d has no tree line" % earlier["size"])
            continue
        proof = [bytes.fromhex(h) for h in extension["consistency"]]
        if merkle_verify_consistency(earlier["size"], size, old[0], entries_root, proof):
            extended.append(earlier)
        else:
            find("TAMPERED", "the chain at the bundle's checkpoint does not extend the checkpoint "
                 "at size %d: the store was rewritten after it was taken" % earlier["size"])

    for mine in checkpoints:
        if mine["origin"] != note["origin"]:
            find("TAMPERED", "your checkpoint at size %d is of another database (%s), not of "
                 "the bundle's (%s)" % (mine["size"], mine["origin"], database))
            continue
        if keys and not signed_by(mine, keys):
            find("TAMPERED", "your checkpoint at size %d is not signed by a key you gave"
                 % mine["size"])
            continue
        if mine["size"] > size:
            find("UNUSABLE", "the bundle was made at size %d, before your checkpoint at size %d"
                 % (size, mine["size"]))
            continue
        mine_tree = tree_heads(mine)

        def same(other):
            return (other["size"] == mine["size"] and other["hash"] == mine["hash"]
                    and (mine_tree is None or (tree_heads(other) or (None,))[0] == mine_tree[0]))
        if mine["size"] == size:
            if not same(note):
                find("TAMPERED", "your checkpoint and the bundle's are both at size %d but "
                     "name different heads" % size)
        elif not any(same(e) for e in extended):
            find("TAMPERED", "the bundle does not prove that it extends your checkpoint at "
                 "size %d" % mine["size"])

    scope = manifest["scope"]
    asked = sorted(scope["sessions"])
    proven = [s["id"] for s in bundle["sessions"]]
    if asked != sorted(set(proven)) or len(proven) != len(set(proven)):
        find("TAMPERED", "the manifest's scope is %s, the bundle proves %s" % (asked, proven))

    def prove(entry):
        seq = entry["seq"]
        if not 1 <= seq <= size:
            return "entry seq %d is outside the checkpoint's %d entries" % (seq, size)
        try:
            data = entry_data(seq, entry["table"], entry["row_id"], entry["session_id"],
                              entry["committed_at"], bytes.fromhex(entry["leaf"]))
            proof = [bytes.fromhex(h) for h in entry["proof"]]
        except ValueError:
            return "entry seq %d: its leaf or proof is not hex" % seq
        if not merkle_verify_inclusion(seq - 1, size, merkle_leaf(data), proof, entries_root):
            return "entry seq %d (%s %s) is not what the chain holds at that seq" % (
                seq, entry["table"], entry["row_id"])
        return None

    def head_proven(sid, head):
        try:
            leaf = merkle_leaf(head_data(head["first_committed_at"], sid, head["count"],
                                         head["last"]))
            proof = [bytes.fromhex(h) for h in head["proof"]]
        except (ValueError, struct.error):
            return False
        return merkle_verify_inclusion(head["index"], session_count, leaf, proof, heads_root)

    since, until = scope.get("since"), scope.get("until")
    bounds = bundle.get("bounds") or {}
    if since is None:
        if bounds or until is not None:
            find("TAMPERED", "the bundle has period bounds but no period")
    else:
        def inside(at):
            return at >= since and (until is None or at < until)
        for session in bundle["sessions"]:
            if not inside(session["head"]["first_committed_at"]):
                find("TAMPERED", "session %s was first committed at %s, outside the period" % (
                    session["id"], session["head"]["first_committed_at"]))
        before, after = bounds.get("before"), bounds.get("after")
        if before is not None:
            if not head_proven(before["session_id"], before["head"]):
                find("TAMPERED", "the head before the period is not in the sessions tree")
            elif before["head"]["first_committed_at"] >= since:
                find("TAMPERED", "the head given as before the period is inside it")
        if after is not None:
            if not head_proven(after["session_id"], after["head"]):
                find("TAMPERED", "the head after the period is not in the sessions tree")
            elif until is None or after["head"]["first_committed_at"] < until:
                find("TAMPERED", "the head given as after the period is inside it")
        start = before["head"]["index"] + 1 if before else 0
        end = after["head"]["index"] if after else session_count
        proven_indexes = sorted(s["head"]["index"] for s in bundle["sessions"])
        # Compared without building the range: a forged checkpoint could make `end` huge.
        exact = (end - start == len(proven_indexes)
                 and all(index == start + i for i, index in enumerate(proven_indexes)))
        if not exact:
            find("OMITTED", "the period holds %d sessions of the sessions tree; the bundle proves "
                 "%d: sessions were left out" % (max(end - start, 0), len(proven_indexes)))

    def erased_by(session, table, row_id, seq, values, committed):
        """docs/chain.md, "Erasure": a proven `erased` event chained after the row's entry
        lists it with a content digest; its content columns hold the tombstones; and the
        split leaf of its other columns with that digest is the entry's leaf."""
        if not is_tombstoned(table, values):
            return False
        for event in session.get("erasures", []):
            entry, row = event["entry"], event["row"]
            columns = row["columns"]
            if (entry["table"] != "audit_events" or row["table"] != "audit_events"
                    or entry["seq"] <= seq or str(columns.get("id")) != entry["row_id"]
                    or columns.get("kind") != "erased" or prove(entry)):
                continue
            try:
                event_values = [bundle_value(columns.get(c)) for c in TABLES["audit_events"]]
                detail = json.loads(columns.get("detail") or "{}")
            except ValueError:
                continue
            if bytes.fromhex(entry["leaf"]) not in (split_leaf_hash("audit_events", event_values),
                                                    leaf_hash("audit_events", event_values)):
                continue
            for listed in detail.get("rows", []):
                if (listed[0] == table and listed[1] == row_id
                        and split_leaf_hash(table, values, bytes.fromhex(listed[2])) == committed):
                    return True
        return False

    def other_profile(sid, sealed, wanted, entry):
        """A session of a profile's period shown as of another profile: its session row
        with the content withheld must be its latest entry's split leaf, of another profile."""
        if wanted is None:
            return "withheld as of another profile, but the bundle is not of a profile"
        row, columns = sealed["row"], sealed["row"]["columns"]
        if row["table"] != "sessions" or columns.get("id") != sid:
            return "its withheld row is not its session row"
        if columns.get("profile") == wanted:
            return "it is of profile %s, yet its rows were withheld" % wanted
        content = [TABLES["sessions"][i] for i in CONTENT["sessions"]]
        if any(c not in TABLES["sessions"] or c in content for c in columns):
            return "its withheld row shows a content column"
        try:
            values = [bundle_value(columns.get(c)) for c in TABLES["sessions"]]
            digest = bytes.fromhex(sealed["content"])
        except ValueError:
            return "its withheld row is of no known form"
        if entry is None or split_leaf_hash("sessions", values, digest) != bytes.fromhex(entry["leaf"]):
            return "its session row, shown as of profile %s, is not what was committed" % (
                columns.get("profile"),)
        return None

    erased_rows = [0]
    counts = {"sessions": 0, "steps": 0, "decisions": 0, "entries": 0}
    for session in bundle["sessions"]:
        sid, head = session["id"], session["head"]
        if not head_proven(sid, head):
            find("TAMPERED", "session %s: its head (%d entries, last %d) is not in the "
                 "checkpoint's sessions tree" % (sid, head["count"], head["last"]))
        latest, seqs, by_seq = {}, set(), {}
        for entry in session["entries"]:
            if entry["session_id"] != sid:
                find("TAMPERED", "session %s: entry seq %d belongs to session %r" % (
                    sid, entry["seq"], entry["session_id"]))
                continue
            if entry["seq"] in seqs:
                find("TAMPERED", "session %s: entry seq %d appears twice" % (sid, entry["seq"]))
                continue
            seqs.add(entry["seq"])
            why = prove(entry)
            if why:
                find("TAMPERED", "session %s: %s" % (sid, why))
                continue
            key = (entry["table"], entry["row_id"])
            latest[key] = max(latest.get(key, 0), entry["seq"])
            by_seq[entry["seq"]] = entry
        if len(seqs) != head["count"] or max(seqs, default=0) != head["last"]:
            find("OMITTED", "session %s: the bundle proves %d of its %d entries: entries were "
                 "left out" % (sid, len(seqs), head["count"]))
        sealed = session.get("other_profile")
        if sealed is not None:
            why = other_profile(sid, sealed, scope.get("profile"),
                                by_seq.get(latest.get(("sessions", sid))))
            if why:
                find("TAMPERED", "session %s: %s" % (sid, why))
            counts["entries"] += len(session["entries"])
            continue
        shown = set()
        for row in session["rows"]:
            table, columns = row["table"], row["columns"]
            if table not in ("sessions", "steps", "decisions"):
                find("TAMPERED", "session %s: a row of table %r, which is not chained" % (sid, table))
                continue
            counts[table] += 1
            row_id = columns.get("id")
            key = (table, row_id)
            if key not in latest:
                find("TAMPERED", "session %s: %s row %s has no entry in the session (a forged "
                     "row)" % (sid, table, row_id))
                continue
            if key in shown:
                find("TAMPERED", "session %s: %s row %s appears twice" % (sid, table, row_id))
                continue
            shown.add(key)
            unknown = [c for c in columns if c not in TABLES[table]]
            try:
                if unknown:
                    raise ValueError("columns %s the table does not have" % unknown)
                values = [bundle_value(columns.get(c)) for c in TABLES[table]]
            except ValueError as error:
                find("TAMPERED", "session %s: %s row %s: %s" % (sid, table, row_id, error))
                continue
            committed = bytes.fromhex(by_seq[latest[key]]["leaf"])
            if committed in (split_leaf_hash(table, values), leaf_hash(table, values)):
                pass
            elif erased_by(session, table, row_id, latest[key], values, committed):
                erased_rows[0] += 1
            else:
                find("TAMPERED", "session %s: %s row %s is not what was committed at seq %d: a "
                     "value was changed" % (sid, table, row_id, latest[key]))
            if (table == "sessions" and scope.get("profile") is not None
                    and columns.get("profile") != scope["profile"]):
                find("TAMPERED", "session %s is taken whole but is not of profile %s" % (
                    sid, scope["profile"]))
            belongs = {"sessions": row_id == sid,
                       "steps": columns.get("session_id") == sid}.get(table, True)
            if not belongs:
                find("TAMPERED", "session %s: %s row %s names another session" % (
                    sid, table, row_id))
        for key, seq in sorted(latest.items()):
            if key in shown:
                continue
            moved = [m for m in session.get("moved", []) if (m["table"], m["row_id"]) == key
                     and m["seq"] > seq and m["session_id"] != sid]
            if not moved:
                find("OMITTED", "session %s: %s row %s (chained at seq %d) is left out of the "
                     "bundle" % (sid, key[0], key[1], seq))
            else:
                why = prove(moved[0])
                if why:
                    find("TAMPERED", "session %s: moved %s" % (sid, why))
        counts["entries"] += (len(session["entries"]) + len(session.get("moved", []))
                              + len(session.get("erasures", [])))
    if counts != manifest["counts"]:
        find("TAMPERED", "the manifest counts %s, the bundle holds %s" % (
            manifest["counts"], counts))
    return findings, notes, {"size": size, "extends": [e["size"] for e in extended],
                             "erased_rows": erased_rows[0]}


def main_evidence(path, checkpoints, keys, as_json):
    try:
        with open(path, encoding="utf-8") as handle:
            bundle = json.load(handle)
        findings, notes, facts = check_evidence(bundle, checkpoints, keys)
    except (Unusable, OSError, ValueError, KeyError, TypeError) as error:
        print("verify_chain: %s is not a usable evidence bundle: %s" % (path, error),
              file=sys.stderr)
        return 2
    bad = [f for f in findings if f[0] in ("TAMPERED", "OMITTED")]
    code = 1 if bad else (2 if findings else 0)
    if as_json:
        print(json.dumps({"intact_and_complete": code == 0, "exit": code,
                          "findings": [{"class": c, "message": m} for c, m in findings],
                          "notes": notes, **facts}, indent=2))
    else:
        print("bundle    %s, against a checkpoint at %d entries" % (path, facts["size"]))
        scope = bundle["manifest"]["scope"]
        if scope.get("since") is not None:
            whole = [s for s in bundle["sessions"] if s.get("other_profile") is None]
            print("scope     every session%s first committed from %s to %s: %d session(s)" % (
                " of profile %s" % scope["profile"] if scope.get("profile") else "",
                scope["since"] or "the start", scope.get("until") or "the checkpoint",
                len(whole)))
        else:
            print("scope     sessions %s" % ", ".join(scope["sessions"]))
        if facts["erased_rows"]:
            print("erased    %d row(s) whose content a chained erasure replaced" % facts["erased_rows"])
        for note in notes:
            print("note      %s" % note)
        for kind, message in findings:
            print("  %-9s %s" % (kind, message))
        print("result    %s" % {0: "intact and complete", 1: "NOT INTACT: evidence of tampering "
                                  "or omission", 2: "UNUSABLE"}[code])
    return code


# --- The verifier ----------------------------------------------------------------------

def verify(path, checkpoints=(), keys=()):
    if not os.path.isfile(path):
        raise Unusable("no database at %s" % path)
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        conn.text_factory = bytes
        names = {r[0].decode() for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise Unusable("%s is not a usable SQLite database: %s" % (path, error))
    findings = []

    def find(kind, seq, table, row_id, detail):
        findings.append({"kind": kind, "seq": seq, "table": table, "row_id": row_id,
                         "detail": detail})

    if "audit_chain" not in names and "audit_meta" not in names:
        raise Unusable("%s has no chain (an older schema: run `reasonkit-audit migrate`)" % path)
    for name in ["audit_chain", "audit_meta"] + list(TABLES):
        if name not in names:
            find("chain_missing", None, None, None, "table %s is gone" % name)
    if findings:
        return {"intact": False, "findings": findings}

    row = conn.execute("SELECT value FROM audit_meta WHERE key = 'database_id'").fetchone()
    database_id = row[0].decode("utf-8", "replace") if row else None
    if database_id is None:
        find("chain_missing", None, None, None, "audit_meta has no database_id")
    genesis = genesis_hash(database_id or "")

    # The trail's lifecycle: chained 'pruned' and 'erased' events (docs/chain.md).
    erased, pruned = {}, {}
    by_event = {}
    if "audit_pruned" in names:
        for table, row_id, event_id in conn.execute(
                "SELECT table_name, row_id, event_id FROM audit_pruned"):
            by_event.setdefault(event_id, []).append((row_id_text(table), row_id_text(row_id)))
    for seq, event_id, kind, detail in conn.execute(
            "SELECT max(c.seq), e.id, e.kind, coalesce(e.detail, '') FROM audit_events e "
            "JOIN audit_chain c ON c.table_name = 'audit_events' "
            "AND c.row_id = CAST(e.id AS TEXT) WHERE e.kind IN ('pruned', 'erased') "
            "GROUP BY e.id ORDER BY 1"):
        try:
            detail = json.loads(row_id_text(detail))
        except ValueError:
            continue
        kind = row_id_text(kind)
        if kind == "erased":
            for entry in detail.get("rows", []):
                try:
                    erased[(entry[0], entry[1])] = (seq, bytes.fromhex(entry[2]))
                except (TypeError, ValueError, IndexError):
                    continue
        elif kind == "pruned":
            rows = by_event.pop(event_id, [])
            if (detail.get("rows") != len(rows)
                    or detail.get("rows_digest") != pruned_digest(rows).hex()):
                find("prune_altered", seq, "audit_events", str(event_id),
                     "the rows audit_pruned lists for the pruning at entry %d (%d) are not "
                     "the %s it committed to" % (seq, len(rows), detail.get("rows")))
                continue
            for key in rows:
                pruned[key] = seq

    latest, links, failed = {}, {}, set()
    expected, previous, head, entries = 1, genesis, genesis, 0
    for seq, table, row_id, leaf, link in conn.execute(
            "SELECT seq, table_name, row_id, leaf_hash, chain_hash FROM audit_chain ORDER BY seq"):
        entries += 1
        table = row_id_text(table)
        row_id = row_id_text(row_id)
        leaf = bytes(leaf) if isinstance(leaf, (bytes, bytearray)) else b""
        link = bytes(link) if isinstance(link, (bytes, bytearray)) else b""
        gap = seq != expected
        if gap:
            find("entry_missing", expected, None, None,
                 "entries %d..%d are missing" % (expected, seq - 1))
        head = link_hash(previous, seq, leaf)
        if head != link and not gap:
            failed.add(seq)
            find("entry_edited", seq, None, None,
                 "the link of entry %d does not follow from its predecessor and leaf" % seq)
        if table in TABLES:
            latest[(table, row_id)] = (seq, leaf)
        else:
            find("entry_edited", seq, None, None, "entry %d names table %r" % (seq, table))
        links[seq] = link
        previous, expected = link, seq + 1

    seen, unknown, open_rows, erased_rows = set(), [], 0, 0
    counts = {}
    for table, columns in TABLES.items():
        counts[table] = 0
        select = ", ".join("typeof(%s), %s" % (c, c) for c in columns)
        for pairs in conn.execute("SELECT %s FROM %s" % (select, table)):
            counts[table] += 1
            values = []
            for storage, value in zip(pairs[0::2], pairs[1::2]):
                if storage == b"text":
                    value = Text(value)
                elif storage == b"blob":
                    value = Blob(value)
                values.append(value)
            leaves = (split_leaf_hash(table, values), leaf_hash(table, values))
            key = (table, row_id_text(values[0]))
            if key not in latest:
                unknown.append((key, leaves))
                continue
            seen.add(key)
            seq, stored = latest[key]
            by, content = erased.get(key, (0, None))
            if by > seq:
                # Erased after its latest entry: content tombstoned, the rest as chained.
                if is_tombstoned(table, values) and stored == split_leaf_hash(
                        table, values, content):
                    erased_rows += 1
                    continue
            elif stored in leaves:
                continue
            if seq not in failed:
                find("modified", seq, table, key[1],
                     "%s row %s differs from its version chained at entry %d" % (table, key[1], seq))
    missing = {leaf: (seq, key) for key, (seq, leaf) in latest.items() if key not in seen}
    explained = set()
    for key, leaves in unknown:
        match = next((leaf for leaf in leaves if leaf in missing), None)
        if match is not None:
            seq, filed = missing[match]
            explained.add(seq)
            find("entry_edited", seq, key[0], key[1],
                 "entry %d covers %s row %s but is filed under %r" % (seq, key[0], key[1], filed[1]))
        else:
            find("inserted", None, key[0], key[1], "%s row %s is not in the chain" % key)
    pruned_rows = 0
    for leaf, (seq, key) in sorted(missing.items(), key=lambda kv: kv[1][0]):
        if seq in explained:
            continue
        if key in pruned:
            pruned_rows += 1
            continue
        find("deleted", seq, key[0], key[1],
             "%s row %s, chained at entry %d, is gone" % (key[0], key[1], seq))

    checks = []
    for note in checkpoints:
        if note["origin"] != ORIGIN_PREFIX + (database_id or ""):
            raise Unusable("a checkpoint is for %r, not this database" % note["origin"])
        signed_by = []
        for name, key_id, public in keys:
            for sig_name, sig_id, signature in note["signatures"]:
                if sig_name == name and sig_id == key_id:
                    if not ed25519_verify(public, note["body"].encode("utf-8"), signature):
                        raise Unusable("the signature by %s on the checkpoint at size %d does "
                                       "not verify" % (name, note["size"]))
                    signed_by.append(name)
        if keys and not signed_by:
            raise Unusable("the checkpoint at size %d is not signed by any key given" % note["size"])
        size = note["size"]
        stored = genesis if size == 0 else links.get(size)
        if stored == note["hash"]:
            extended = True
        else:
            extended = False
            if stored is None and size > expected - 1:
                find("truncated", size, None, None,
                     "a checkpoint covers %d entries but the chain has %d" % (size, expected - 1))
            elif stored is None:
                find("entry_missing", size, None, None, "entry %d is missing" % size)
            else:
                find("forked", size, None, None,
                     "the chain at entry %d differs from the checkpoint" % size)
        checks.append({"size": size, "time": note["time"], "extended": extended,
                       "signed_by": signed_by})
    # "Evidence bundles": each row's latest entry names the row's session, and a checkpoint's
    # tree heads are the chain's (files of schema 8 on; older ones have no sessions).
    chain_columns = {bytes(r[1]).decode() if isinstance(r[1], bytes) else r[1]
                     for r in conn.execute("PRAGMA table_info(audit_chain)")}
    if "session_id" in chain_columns:
        for seq, table, row_id, named, actual in conn.execute(MISLABELLED):
            find("entry_edited", seq, table.decode(), row_id.decode(),
                 "entry %d says its row is of session %s, but the row is of session %s: the "
                 "entry's session was changed" % (
                     seq, "(none)" if named is None else bytes(named).decode("utf-8", "replace"),
                     bytes(actual).decode("utf-8", "replace")))
        with_trees = [(note, tree_heads(note)) for note in checkpoints if tree_heads(note)]
        held = chain_tree_heads(conn, [note["size"] for note, _ in with_trees])
        for (note, claimed), check in zip(with_trees, [c for c, n in zip(checks, checkpoints)
                                                        if tree_heads(n)]):
            at = held.get(note["size"])
            if at is not None and tuple(at) != tuple(claimed):
                find("forked", note["size"], None, None,
                     "the checkpoint at size %d carries tree heads that are not this chain's"
                     % note["size"])
                check["extended"] = False
    return {"intact": not findings, "database_id": database_id, "entries": entries,
            "rows": counts, "head": head.hex(), "findings": findings, "checkpoints": checks,
            "pruned_rows": pruned_rows, "erased_rows": erased_rows}


def vector_values(case):
    values = []
    for cell in case["columns"]:
        kind = cell["type"]
        if kind == "null":
            values.append(None)
        elif kind == "integer":
            values.append(int(cell["value"]))
        elif kind == "real":
            values.append(struct.unpack(">d", bytes.fromhex(cell["bits"]))[0])
        elif kind == "text":
            values.append(Text(cell["value"].encode("utf-8")))
        elif kind == "blob":
            values.append(Blob(bytes.fromhex(cell["hex"])))
    return values


def self_test(vectors_path):
    with open(vectors_path, encoding="utf-8") as handle:
        vectors = json.load(handle)
    failures = 0
    for case in vectors["leaves"]:
        values = vector_values(case)
        got = leaf_hash(case["table"], values).hex()
        if got != case["leaf"]:
            failures += 1
            print("leaf %s: got %s, want %s" % (case["name"], got, case["leaf"]))
    for case in vectors.get("split_leaves", []):
        values = vector_values(case)
        values += [None] * (len(TABLES[case["table"]]) - len(values))
        got = split_leaf_hash(case["table"], values).hex()
        if got != case["leaf"] or content_digest(case["table"], values).hex() != case["content"]:
            failures += 1
            print("split leaf %s: got %s, want %s" % (case["name"], got, case["leaf"]))
    if "pruned" in vectors:
        got = pruned_digest([tuple(r) for r in vectors["pruned"]["rows"]]).hex()
        if got != vectors["pruned"]["digest"] or pruned_digest([]).hex() != vectors["pruned_empty"]:
            failures += 1
            print("pruned digest: got %s" % got)
    for case in vectors["genesis"]:
        got = genesis_hash(case["database_id"]).hex()
        if got != case["genesis"]:
            failures += 1
            print("genesis %s: got %s" % (case["database_id"], got))
    chain = vectors["chain"]
    previous = genesis_hash(chain["database_id"])
    for seq, (leaf, want) in enumerate(zip(chain["leaves"], chain["links"]), start=1):
        previous = link_hash(previous, seq, bytes.fromhex(leaf))
        if previous.hex() != want:
            failures += 1
            print("link %d: got %s, want %s" % (seq, previous.hex(), want))
    for case in vectors.get("ed25519", []):
        ok = ed25519_verify(bytes.fromhex(case["public"]), case["message"].encode("utf-8"),
                            bytes.fromhex(case["signature"]))
        if ok != case["valid"]:
            failures += 1
            print("ed25519 %s: got %s" % (case["name"], ok))
    merkle = vectors.get("merkle")
    merkle_cases = 0
    if merkle:
        leaves = [merkle_leaf(bytes.fromhex(d)) for d in merkle["leaf_data"]]
        roots = [bytes.fromhex(r) for r in merkle["roots"]]
        for n, want in enumerate(roots, start=1):
            merkle_cases += 1
            if merkle_root(leaves[:n]) != want:
                failures += 1
                print("merkle head of %d leaves: got %s" % (n, merkle_root(leaves[:n]).hex()))
        for case in merkle["inclusion"]:
            merkle_cases += 1
            i, n = case["index"], case["size"]
            proof = [bytes.fromhex(h) for h in case["proof"]]
            good = merkle_verify_inclusion(i, n, leaves[i], proof, roots[n - 1])
            # The same proof must not prove another leaf, place or tree.
            bad = [merkle_verify_inclusion(i + 1, n, leaves[i], proof, roots[n - 1]),
                   merkle_verify_inclusion(i, n * 2, leaves[i], proof, roots[n - 1]),
                   merkle_verify_inclusion(i, n, sha256(b"x"), proof, roots[n - 1]),
                   merkle_verify_inclusion(i, n, leaves[i], proof + [roots[0]], roots[n - 1])]
            if not good or any(bad):
                failures += 1
                print("merkle inclusion %d of %d: good %s, corrupted taken %s" % (i, n, good, bad))
        for case in merkle["consistency"]:
            merkle_cases += 1
            m, n = case["old_size"], case["new_size"]
            proof = [bytes.fromhex(h) for h in case["proof"]]
            good = merkle_verify_consistency(m, n, roots[m - 1], roots[n - 1], proof)
            bad = [] if not proof else [
                merkle_verify_consistency(m, n, roots[n - 1], roots[m - 1], proof),
                merkle_verify_consistency(m, n, roots[m - 1], roots[n - 1], proof[:-1]),
                merkle_verify_consistency(m + 1, n, roots[m - 1], roots[n - 1], proof)]
            if not good or any(bad):
                failures += 1
                print("merkle consistency %d to %d: good %s, corrupted taken %s" % (m, n, good, bad))
    evidence = vectors.get("evidence")
    evidence_cases = 0
    if evidence:
        leaves = []
        for case in evidence["entries"]:
            evidence_cases += 1
            data = entry_data(case["seq"], case["table"], case["row_id"], case["session_id"],
                              case["committed_at"], bytes.fromhex(case["leaf"]))
            if data.hex() != case["data"] or merkle_leaf(data).hex() != case["merkle_leaf"]:
                failures += 1
                print("evidence entry %s: got %s" % (case["name"], data.hex()))
            leaves.append(merkle_leaf(data))
        heads = []
        for case in evidence["heads"]:
            evidence_cases += 1
            data = head_data(case["first_committed_at"], case["session_id"], case["count"],
                             case["last"])
            if data.hex() != case["data"] or merkle_leaf(data).hex() != case["merkle_leaf"]:
                failures += 1
                print("evidence head %r: got %s" % (case["session_id"], data.hex()))
            heads.append(merkle_leaf(data))
        for name, got in (("entries_root", merkle_root(leaves)), ("heads_root", merkle_root(heads))):
            evidence_cases += 1
            if got.hex() != evidence[name]:
                failures += 1
                print("evidence %s: got %s" % (name, got.hex()))
        for row in evidence["rows"]:
            evidence_cases += 1
            values = [bundle_value(row["columns"].get(c)) for c in TABLES[row["table"]]]
            if (leaf_hash(row["table"], values).hex() != row["leaf"]
                    or split_leaf_hash(row["table"], values).hex() != row["split_leaf"]):
                failures += 1
                print("evidence row of %s: leaves differ" % row["table"])
    total = (len(vectors["leaves"]) + len(vectors["genesis"]) + len(chain["links"])
             + len(vectors.get("ed25519", [])) + len(vectors.get("split_leaves", []))
             + (1 if "pruned" in vectors else 0) + merkle_cases + evidence_cases)
    print("%d passed, %d failed" % (total - failures, failures))
    return 1 if failures else 0


def main(argv):
    args = list(argv)
    if args and args[0] == "--self-test":
        default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                               "chain-vectors.json")
        return self_test(args[1] if len(args) > 1 else default)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    checkpoints, keys, paths, evidence = [], [], [], None
    try:
        while args:
            arg = args.pop(0)
            if arg == "--evidence" and args:
                evidence = args.pop(0)
            elif arg in ("--checkpoint", "--key") and args:
                with open(args.pop(0), encoding="utf-8") as handle:
                    text = handle.read()
                if arg == "--checkpoint":
                    checkpoints.extend(parse_checkpoints(text))
                else:
                    keys.append(parse_verifier_key(text))
            else:
                paths.append(arg)
        if evidence is not None and not paths:
            return main_evidence(evidence, checkpoints, keys, as_json)
        if len(paths) != 1:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        report = verify(paths[0], checkpoints, keys)
    except (Unusable, OSError, ValueError) as error:
        print("verify_chain: %s" % error, file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print("database  %s" % paths[0])
        print("chain     %d entries, head %s" % (report.get("entries", 0), report.get("head", "")))
        print("rows      %s" % ", ".join("%s %d" % kv for kv in report.get("rows", {}).items()))
        if report.get("pruned_rows") or report.get("erased_rows"):
            print("lifecycle %d rows pruned, %d rows erased, each by a chained event" % (
                report.get("pruned_rows", 0), report.get("erased_rows", 0)))
        if not checkpoints:
            print("checkpoints none given: a cut tail, a recomputed chain or an older copy "
                  "cannot be detected without one")
        for check in report.get("checkpoints", []):
            print("checkpoint size %d: %s" % (check["size"],
                  "extended" if check["extended"] else "NOT extended"))
        for finding in report["findings"]:
            print("  %-13s entry %-8s %s %s  %s" % (
                finding["kind"], finding["seq"], finding["table"] or "-",
                finding["row_id"] or "-", finding["detail"]))
        print("result    %s" % ("intact" if report["intact"] else
                               "TAMPERED: %d finding(s)" % len(report["findings"])))
    return 0 if report["intact"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
