//! The tamper-evident chain: the canonical encoding of a row, its leaf hash, and the links
//! between leaves. Each store appends to its own `audit_chain` table
//! (`store/sqlite/chain.rs`, `store/postgres/statements.rs`).
//!
//! One place for the encoding, used by the writer (every row version it commits), the
//! migration that seals rows written before the chain existed, and [`verify`](crate::verify()).
//! The encoding is specified, with test vectors, in `docs/chain.md`; the independent Python
//! verifier in `tools/` implements it from that text alone. Change nothing here without
//! changing both, and a new format version.
//!
//! In short (all integers big-endian):
//! - leaf = SHA-256(`0x00` ‖ format:u8 ‖ len:u32 ‖ table ‖ for each non-NULL column, in the
//!   table's ordinal order: ordinal:u16 ‖ tag:u8 ‖ len:u32 ‖ bytes). Tags: 1 integer (i64),
//!   2 real (IEEE-754 bits, −0.0 as +0.0), 3 text (UTF-8 as stored), 4 blob.
//! - link = SHA-256(`0x01` ‖ previous link ‖ seq:u64 ‖ leaf).
//! - genesis (the "previous link" of seq 1) = SHA-256(`0x02` ‖ format:u8 ‖ len:u32 ‖ database id).
//!
//! Hashes are computed over exactly the values the writer binds, which are exactly what
//! SQLite reads back: text as text, `i64` as INTEGER, `f64` as REAL with −0.0 made +0.0
//! before binding (a REAL column would otherwise read −0.0 back as 0.0).

//!
//! Beside the encoding, in this folder: `checkpoint.rs`, C2SP checkpoints of the chain's
//! head and their Ed25519 signatures; `merkle.rs`, RFC 6962 tree heads and their inclusion
//! and consistency proofs; `verify.rs`, recomputing the chain and classifying
//! what disagrees; `verify_lifecycle.rs`, what `verify` accepts as pruned or erased.

pub(crate) mod checkpoint;
pub mod evidence;
pub(crate) mod merkle;
pub(crate) mod verify;
pub(crate) mod verify_lifecycle;

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use sha2::{Digest, Sha256};

/// The version of the canonical encoding, hashed into every leaf and the genesis value.
pub const CHAIN_FORMAT: u8 = 1;

/// A SHA-256 digest.
pub(crate) type Hash = [u8; 32];

/// Domain tags: the first byte of every hashed message, so that no leaf can be taken for a
/// link or a genesis value (RFC 6962 does the same for leaves and nodes).
const LEAF_TAG: u8 = 0x00;
const LINK_TAG: u8 = 0x01;
const GENESIS_TAG: u8 = 0x02;
const SPLIT_LEAF_TAG: u8 = 0x03;
const CONTENT_TAG: u8 = 0x04;
const PRUNED_TAG: u8 = 0x05;

/// The most columns a chained table has (room to spare).
pub(crate) const MAX_COLUMNS: usize = 16;

const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// One column value, as bound to SQLite and as read back from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// Text as its bytes: what SQLite stores (and what a tampered file may hold, valid
    /// UTF-8 or not).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl<'a> Cell<'a> {
    pub(crate) fn text(text: &'a str) -> Self {
        Cell::Text(text.as_bytes())
    }

    pub(crate) fn opt_text(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::text)
    }

    /// A REAL value in canonical form: −0.0 is stored as +0.0, which is what SQLite
    /// reads back from a REAL column anyway.
    pub(crate) fn real(value: f64) -> Self {
        Cell::Real(if value == 0.0 { 0.0 } else { value })
    }

    pub(crate) fn opt_real(value: Option<f64>) -> Self {
        value.map_or(Cell::Null, Cell::real)
    }

    pub(crate) fn opt_integer(value: Option<i64>) -> Self {
        value.map_or(Cell::Null, Cell::Integer)
    }
}

impl<'a> From<ValueRef<'a>> for Cell<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(n) => Cell::Integer(n),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(t),
            ValueRef::Blob(b) => Cell::Blob(b),
        }
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Cell::Null => ValueRef::Null,
            Cell::Integer(n) => ValueRef::Integer(n),
            Cell::Real(f) => ValueRef::Real(f),
            Cell::Text(t) => ValueRef::Text(t),
            Cell::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A chained table: its name and its columns in ordinal order (ordinal = index). A column
/// added later goes at the end; since NULLs are not encoded, rows that predate it keep
/// their hashes.
#[derive(Debug)]
pub(crate) struct TableSpec {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [&'static str],
    /// The ordinals of the content columns: what a person's data is in, and what erasure
    /// replaces (each by [`TableSpec::tombstone`]). A split leaf hashes them apart.
    pub(crate) content: &'static [usize],
}

pub(crate) const SESSIONS: TableSpec = TableSpec {
    name: "sessions",
    columns: &[
        "id",
        "started_at",
        "ended_at",
        "profile",
        "input_hash",
        "status",
        "input",
        "attributes",
        "pid",
        "host",
    ],
    // input_hash, input, attributes
    content: &[4, 6, 7],
};

pub(crate) const STEPS: TableSpec = TableSpec {
    name: "steps",
    columns: &[
        "id",
        "session_id",
        "module",
        "started_at",
        "ended_at",
        "input_summary",
        "output_summary",
        "confidence",
        "tokens_used",
        "error",
        "parent_step_id",
        "attributes",
    ],
    // input_summary, output_summary, error, attributes
    content: &[5, 6, 9, 11],
};

pub(crate) const DECISIONS: TableSpec = TableSpec {
    name: "decisions",
    columns: &[
        "id",
        "step_id",
        "decision_type",
        "options_considered",
        "chosen_option",
        "rationale",
        "decided_at",
        "attributes",
    ],
    // options_considered, chosen_option, rationale, attributes
    content: &[3, 4, 5, 7],
};

pub(crate) const AUDIT_HEALTH: TableSpec = TableSpec {
    name: "audit_health",
    columns: &[
        "id",
        "recorded_at",
        "pid",
        "host",
        "kind",
        "count",
        "detail",
    ],
    content: &[],
};

pub(crate) const AUDIT_EVENTS: TableSpec = TableSpec {
    name: "audit_events",
    columns: &["id", "recorded_at", "kind", "detail"],
    content: &[],
};

/// Every chained table, in the order the sealing migration and `verify` walk them.
pub(crate) const CHAINED_TABLES: [&TableSpec; 5] =
    [&SESSIONS, &STEPS, &DECISIONS, &AUDIT_HEALTH, &AUDIT_EVENTS];

impl TableSpec {
    /// What erasure leaves in content column `ordinal`: `'erased'` for `input_hash`
    /// (NOT NULL in ADR-002's schema), `'{}'` for `attributes` (NOT NULL in PostgreSQL),
    /// NULL for the others.
    pub(crate) fn tombstone(&self, ordinal: usize) -> Cell<'static> {
        match self.columns.get(ordinal).copied() {
            Some("input_hash") => Cell::Text(b"erased"),
            Some("attributes") => Cell::Text(b"{}"),
            _ => Cell::Null,
        }
    }

    /// `SELECT <columns in ordinal order> FROM <table>`, with `tail` appended.
    pub(crate) fn select(&self, tail: &str) -> String {
        format!(
            "SELECT {} FROM {} {tail}",
            self.columns.join(", "),
            self.name
        )
    }
}

/// The leaf hash of a row of `table`, from its columns in ordinal order.
pub(crate) fn leaf<'a>(table: &str, cells: impl IntoIterator<Item = Cell<'a>>) -> Hash {
    // The encoding is built in one buffer and hashed in one call: with SHA-NI the hash of a
    // row is cheaper than feeding the hasher forty small pieces.
    with_buffer(|out| encode_leaf(out, table, cells))
}

/// The canonical encoding of a row, as docs/chain.md specifies it.
fn encode_leaf<'a>(out: &mut Vec<u8>, table: &str, cells: impl IntoIterator<Item = Cell<'a>>) {
    out.extend_from_slice(&[LEAF_TAG, CHAIN_FORMAT]);
    push_bytes(out, table.as_bytes());
    encode_columns(out, cells.into_iter().enumerate());
}

/// The split leaf of a row (docs/chain.md, "Split leaf"): its non-content columns, then
/// the digest of its content columns, so that the content can be erased and the row still
/// be checked against its leaf given that digest. The writer chains every row this way.
pub(crate) fn split_leaf(table: &TableSpec, cells: &[Cell<'_>]) -> Hash {
    split_leaf_with(table, cells, &content_digest(table, cells))
}

/// The cells of a row's content columns (`content`) or of the others, with their ordinals.
fn columns<'a, 'c>(
    table: &'a TableSpec,
    cells: &'a [Cell<'c>],
    content: bool,
) -> impl Iterator<Item = (usize, Cell<'c>)> + 'a {
    cells
        .iter()
        .copied()
        .enumerate()
        .filter(move |(i, _)| table.content.contains(i) == content)
}

/// The digest of a row's content columns.
pub(crate) fn content_digest(table: &TableSpec, cells: &[Cell<'_>]) -> Hash {
    with_buffer(|out| {
        out.push(CONTENT_TAG);
        encode_columns(out, columns(table, cells, true));
    })
}

/// The split leaf of a row whose content digest is `content` (the row's own, or the one
/// an erasure recorded before replacing the content).
pub(crate) fn split_leaf_with(table: &TableSpec, cells: &[Cell<'_>], content: &Hash) -> Hash {
    with_buffer(|out| {
        out.extend_from_slice(&[SPLIT_LEAF_TAG, CHAIN_FORMAT]);
        push_bytes(out, table.name.as_bytes());
        encode_columns(out, columns(table, cells, false));
        out.extend_from_slice(content);
    })
}

/// Whether every content column of `cells` holds its tombstone: the row was erased.
pub(crate) fn is_tombstoned(table: &TableSpec, cells: &[Cell<'_>]) -> bool {
    table
        .content
        .iter()
        .all(|&i| cells.get(i).copied().unwrap_or(Cell::Null) == table.tombstone(i))
}

/// The digest a pruning records of the rows it removed (docs/chain.md, "Pruning"): over
/// each (table, row id), sorted.
pub(crate) fn pruned_digest(rows: &mut [(String, String)]) -> Hash {
    rows.sort();
    let mut hasher = Sha256::new();
    hasher.update([PRUNED_TAG]);
    for (table, id) in rows.iter() {
        hasher.update(u32::try_from(table.len()).unwrap_or(u32::MAX).to_be_bytes());
        hasher.update(table.as_bytes());
        hasher.update(u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
        hasher.update(id.as_bytes());
    }
    hasher.finalize().into()
}

/// SHA-256 of what `fill` writes into a reused thread-local buffer.
fn with_buffer(fill: impl FnOnce(&mut Vec<u8>)) -> Hash {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        fill(&mut buffer);
        Sha256::digest(&buffer[..]).into()
    })
}

/// Each non-NULL column as ordinal:u16 ‖ tag:u8 ‖ len:u32 ‖ bytes.
fn encode_columns<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = (usize, Cell<'a>)>) {
    for (ordinal, cell) in cells {
        let ordinal = u16::try_from(ordinal).unwrap_or(u16::MAX).to_be_bytes();
        let (tag, bytes): (u8, &[u8]) = match &cell {
            Cell::Null => continue,
            Cell::Integer(n) => {
                out.extend_from_slice(&ordinal);
                out.push(INTEGER);
                push_bytes(out, &n.to_be_bytes());
                continue;
            }
            Cell::Real(f) => {
                let canonical = if *f == 0.0 { 0.0 } else { *f };
                out.extend_from_slice(&ordinal);
                out.push(REAL);
                push_bytes(out, &canonical.to_bits().to_be_bytes());
                continue;
            }
            Cell::Text(bytes) => (TEXT, bytes),
            Cell::Blob(bytes) => (BLOB, bytes),
        };
        out.extend_from_slice(&ordinal);
        out.push(tag);
        push_bytes(out, bytes);
    }
}

/// A length-prefixed byte string: len:u32 ‖ bytes. SQLite values are at most 2^31 bytes.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The link of entry `seq`: SHA-256(0x01 ‖ previous link ‖ seq ‖ leaf). `previous` is the
/// previous entry's `chain_hash` as stored (or the genesis value for seq 1).
pub(crate) fn link(previous: &[u8], seq: u64, leaf: &[u8]) -> Hash {
    if previous.len() == 32 && leaf.len() == 32 {
        let mut message = [0u8; 73];
        message[0] = LINK_TAG;
        message[1..33].copy_from_slice(previous);
        message[33..41].copy_from_slice(&seq.to_be_bytes());
        message[41..].copy_from_slice(leaf);
        return Sha256::digest(message).into();
    }
    // A damaged entry (a hash of another length): the same formula over what is stored.
    let mut hasher = Sha256::new();
    hasher.update([LINK_TAG]);
    hasher.update(previous);
    hasher.update(seq.to_be_bytes());
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The value the first link starts from, derived from the database's random id.
pub(crate) fn genesis(database_id: &str) -> Hash {
    let mut message = vec![GENESIS_TAG, CHAIN_FORMAT];
    push_bytes(&mut message, database_id.as_bytes());
    Sha256::digest(&message).into()
}

/// A row version waiting to be appended to the chain with the transaction that wrote it.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) table: &'static str,
    pub(crate) row_id: String,
    pub(crate) hash: Hash,
    /// The session of a session or step row, from its own columns: what its chain entry
    /// names (PostgreSQL writes it with the entry; SQLite's INSERT reads it from the row).
    /// A decision's is its step's, which the row does not hold.
    pub(crate) session: Option<String>,
}

impl Leaf {
    /// The leaf the writer chains for a row: its split leaf.
    pub(crate) fn of<'a>(
        table: &TableSpec,
        row_id: String,
        cells: impl IntoIterator<Item = Cell<'a>>,
    ) -> Self {
        let mut all = [Cell::Null; MAX_COLUMNS];
        let mut width = 0;
        for (slot, cell) in all.iter_mut().zip(cells) {
            *slot = cell;
            width += 1;
        }
        let text = |cell: Cell<'_>| match cell {
            Cell::Text(bytes) => std::str::from_utf8(bytes).ok().map(str::to_owned),
            _ => None,
        };
        let session = match table.name {
            "sessions" => Some(row_id.clone()),
            "steps" => text(all[1]),
            _ => None,
        };
        Leaf {
            table: table.name,
            row_id,
            hash: split_leaf(table, &all[..width]),
            session,
        }
    }
}

/// The chain's newest entry: how many entries it has, and the last link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The number of entries (the last `seq`); 0 for an empty chain.
    pub size: u64,
    /// The last link (`audit_chain.chain_hash` at `seq = size`), or the genesis value of
    /// an empty chain.
    pub hash: [u8; 32],
}

/// The `row_id` a chain entry gives a row: its `id` column as text (a decimal integer for
/// the tables with integer ids).
pub(crate) fn row_id(id: Cell<'_>) -> String {
    match id {
        Cell::Integer(n) => n.to_string(),
        Cell::Text(t) | Cell::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        Cell::Real(f) => f.to_string(),
        Cell::Null => String::new(),
    }
}

/// Lowercase hex of a hash (or any bytes).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vectors of docs/chain.md (the same ones the Python verifier checks).
    #[test]
    fn chain_vectors_match_the_spec() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let json = std::fs::read_to_string(dir.join("chain-vectors.json")).unwrap();
        let doc = std::fs::read_to_string(dir.join("chain.md")).unwrap();
        let vectors: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(vectors["format"], u64::from(CHAIN_FORMAT));
        let cases = vectors["leaves"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let owned = owned_cells(&case["columns"]);
            let cells: Vec<Cell<'_>> = owned.iter().map(OwnedCell::cell).collect();
            let got = hex(&leaf(case["table"].as_str().unwrap(), cells));
            let want = case["leaf"].as_str().unwrap();
            assert_eq!(got, want, "leaf {}", case["name"]);
            assert!(
                doc.contains(want),
                "docs/chain.md lacks the leaf of {}",
                case["name"]
            );
        }
        for case in vectors["genesis"].as_array().unwrap() {
            let got = hex(&genesis(case["database_id"].as_str().unwrap()));
            assert_eq!(got, case["genesis"].as_str().unwrap());
            assert!(doc.contains(&got));
        }
        let chain = &vectors["chain"];
        let mut previous = genesis(chain["database_id"].as_str().unwrap());
        let leaves = chain["leaves"].as_array().unwrap();
        let links = chain["links"].as_array().unwrap();
        assert_eq!(leaves.len(), links.len());
        for (seq, (leaf_hex, want)) in leaves.iter().zip(links).enumerate() {
            let leaf_hex = leaf_hex.as_str().unwrap();
            let leaf_bytes: Vec<u8> = (0..64)
                .step_by(2)
                .map(|i| u8::from_str_radix(&leaf_hex[i..i + 2], 16).unwrap())
                .collect();
            previous = link(&previous, seq as u64 + 1, &leaf_bytes);
            assert_eq!(hex(&previous), want.as_str().unwrap(), "link {}", seq + 1);
            assert!(doc.contains(want.as_str().unwrap()));
        }
        let split = vectors["split_leaves"].as_array().unwrap();
        assert!(split.len() >= 6);
        for case in split {
            let table = CHAINED_TABLES
                .iter()
                .find(|t| t.name == case["table"].as_str().unwrap())
                .unwrap();
            let owned = owned_cells(&case["columns"]);
            let mut cells: Vec<Cell<'_>> = owned.iter().map(OwnedCell::cell).collect();
            cells.resize(table.columns.len(), Cell::Null);
            let want = case["leaf"].as_str().unwrap();
            assert_eq!(
                hex(&split_leaf(table, &cells)),
                want,
                "split {}",
                case["name"]
            );
            assert_eq!(
                hex(&content_digest(table, &cells)),
                case["content"].as_str().unwrap()
            );
            assert!(
                doc.contains(want),
                "docs/chain.md lacks split {}",
                case["name"]
            );
        }
        let mut rows: Vec<(String, String)> = vectors["pruned"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
            .collect();
        let want = vectors["pruned"]["digest"].as_str().unwrap();
        assert_eq!(hex(&pruned_digest(&mut rows)), want);
        assert!(doc.contains(want));
        let empty = vectors["pruned_empty"].as_str().unwrap();
        assert_eq!(hex(&pruned_digest(&mut [])), empty);
    }

    /// A column of a golden vector, owned.
    enum OwnedCell {
        Null,
        Integer(i64),
        Real(f64),
        Text(Vec<u8>),
        Blob(Vec<u8>),
    }

    impl OwnedCell {
        fn cell(&self) -> Cell<'_> {
            match self {
                OwnedCell::Null => Cell::Null,
                OwnedCell::Integer(n) => Cell::Integer(*n),
                OwnedCell::Real(f) => Cell::Real(*f),
                OwnedCell::Text(t) => Cell::Text(t),
                OwnedCell::Blob(b) => Cell::Blob(b),
            }
        }
    }

    fn owned_cells(columns: &serde_json::Value) -> Vec<OwnedCell> {
        let unhex = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        columns
            .as_array()
            .unwrap()
            .iter()
            .map(|c| match c["type"].as_str().unwrap() {
                "null" => OwnedCell::Null,
                "integer" => OwnedCell::Integer(c["value"].as_str().unwrap().parse().unwrap()),
                "real" => OwnedCell::Real(f64::from_bits(
                    u64::from_str_radix(c["bits"].as_str().unwrap(), 16).unwrap(),
                )),
                "text" => OwnedCell::Text(c["value"].as_str().unwrap().as_bytes().to_vec()),
                "blob" => OwnedCell::Blob(unhex(c["hex"].as_str().unwrap())),
                other => panic!("unknown type {other}"),
            })
            .collect()
    }

    #[test]
    fn nulls_are_not_encoded_so_a_trailing_null_column_keeps_the_hash() {
        let without = leaf("t", [Cell::Integer(1), Cell::text("a")]);
        let with_null = leaf("t", [Cell::Integer(1), Cell::text("a"), Cell::Null]);
        assert_eq!(without, with_null);
    }

    #[test]
    fn negative_zero_hashes_as_positive_zero_and_types_are_distinct() {
        assert_eq!(leaf("t", [Cell::Real(-0.0)]), leaf("t", [Cell::Real(0.0)]));
        assert_ne!(leaf("t", [Cell::Real(1.0)]), leaf("t", [Cell::Integer(1)]));
        assert_ne!(leaf("t", [Cell::text("1")]), leaf("t", [Cell::Integer(1)]));
        assert_ne!(leaf("t", [Cell::text("x")]), leaf("t", [Cell::Blob(b"x")]));
    }

    #[test]
    fn field_boundaries_and_ordinals_are_unambiguous() {
        assert_ne!(
            leaf("t", [Cell::text("ab"), Cell::text("c")]),
            leaf("t", [Cell::text("a"), Cell::text("bc")])
        );
        assert_ne!(
            leaf("t", [Cell::text("a"), Cell::Null]),
            leaf("t", [Cell::Null, Cell::text("a")])
        );
        assert_ne!(leaf("ab", [Cell::text("c")]), leaf("a", [Cell::text("bc")]));
    }

    #[test]
    fn link_depends_on_previous_seq_and_leaf() {
        let g = genesis("db");
        let l = leaf("t", [Cell::Integer(1)]);
        let base = link(&g, 1, &l);
        assert_ne!(base, link(&g, 2, &l));
        assert_ne!(base, link(&genesis("other"), 1, &l));
        assert_ne!(base, link(&g, 1, &leaf("t", [Cell::Integer(2)])));
    }
}
