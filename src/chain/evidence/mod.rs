//! Evidence bundles: a session's rows, taken away from the database, that prove by
//! themselves that they are what the audit layer committed and that none was left out.
//!
//! The chain proves a *file* was not altered; an auditor is given an export. A bundle holds
//! the export and what proves it against a checkpoint of the chain's head, offline, to
//! someone who trusts neither this tool nor whoever made the bundle:
//!
//! - **integrity**: every chain entry of the session, each with its RFC 6962 inclusion
//!   proof in the tree over all entries (the checkpoint's `tree` line), and every row at
//!   its latest version, whose leaf is its latest entry's;
//! - **completeness**: the session's head — how many entries it has and which is last — with
//!   its inclusion proof in the tree of all sessions' heads, sorted by when each was first
//!   committed (the checkpoint's `sessions` line). A bundle with one entry fewer than its
//!   head counts is caught; so is a period's bundle without one of the sessions between the
//!   two heads just outside the period;
//! - **continuity**: consistency proofs from checkpoints taken earlier, so that a bundle
//!   made after the store was rewritten is caught by anyone holding one of them.
//!
//! Each entry's session is written with the entry, by the writer, in the transaction of its
//! row (`audit_chain.session_id`), so the heads are a function of the chain alone: `verify
//! --checkpoint` on the database recomputes both tree heads of every checkpoint, so a signer
//! who lied in one is caught by whoever verifies the file.
//!
//! The encodings are specified in docs/chain.md ("Evidence bundles"), with vectors; the
//! Python verifier (`tools/verify_chain.py --evidence`) implements them from that text.
//!
//! - this file: the two leaf encodings and the bundle's format;
//! - `build.rs`: making a bundle from a SQLite store, and the trees of a checkpoint;
//! - `check.rs`: checking a bundle, finding by finding;
//! - `rows.rs`: a row as a bundle writes it, and back.

pub(crate) mod build;
pub(crate) mod check;
pub(crate) mod rows;

use serde::{Deserialize, Serialize};

use super::Hash;
pub(crate) use super::hex;
use super::merkle;

/// Domain tags of the two Merkle leaf encodings, after those of docs/chain.md's format 1.
const ENTRY_TAG: u8 = 0x06;
const HEAD_TAG: u8 = 0x07;

/// What a bundle's `evidence` field says: the kind of file and its spec version.
pub const EVIDENCE_FORMAT: &str = "reasonkit-audit evidence bundle";
/// The version of docs/chain.md's evidence section a bundle follows.
pub const EVIDENCE_SPEC: u32 = 2;

/// One chain entry as a bundle carries it, with the proof that it is entry `seq` of the
/// tree its checkpoint names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryProof {
    /// Its position in the chain, from 1.
    pub seq: u64,
    /// The table of the row it covers.
    pub table: String,
    /// That row's id, as text.
    pub row_id: String,
    /// The session the writer gave it (none for health rows and events).
    pub session_id: Option<String>,
    /// When it was committed (UTC, as stored).
    pub committed_at: String,
    /// The leaf hash of the row version it covers, hex.
    pub leaf: String,
    /// Its RFC 6962 inclusion proof in the tree of the checkpoint's size, hex, leaf first.
    pub proof: Vec<String>,
}

/// A session's head in the checkpoint's `sessions` tree, with its inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadProof {
    /// Its position in the tree (sessions sorted by their first entry's `committed_at`,
    /// then id, bytewise), from 0.
    pub index: u64,
    /// The `committed_at` of the session's first entry.
    pub first_committed_at: String,
    /// How many entries the session has in the chain up to the checkpoint.
    pub count: u64,
    /// The seq of its last one.
    pub last: u64,
    /// The inclusion proof, hex.
    pub proof: Vec<String>,
}

/// A row as stored: its table and its columns by name (JSON string for text, integer for
/// INTEGER, number with a fraction or exponent for REAL, `null` for NULL; `{"blob": hex}`,
/// `{"text_hex": hex}` for text that is not UTF-8, `{"real": "inf" | "-inf"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    /// The chained table it is a row of.
    pub table: String,
    /// Its columns, named as in the table.
    pub columns: serde_json::Map<String, serde_json::Value>,
}

/// Everything a bundle proves of one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEvidence {
    /// The session's id.
    pub id: String,
    /// Its head in the checkpoint's `sessions` tree: how many entries it has.
    pub head: HeadProof,
    /// Every chain entry of the session, in seq order.
    pub entries: Vec<EntryProof>,
    /// Its rows, each at the version of its latest entry.
    pub rows: Vec<RowRecord>,
    /// For a row chained in this session whose latest version is in another (a step of a
    /// trace joined into another run): that later entry, proving the row moved on.
    #[serde(default)]
    pub moved: Vec<EntryProof>,
    /// For a profile's bundle, a session of the period of another profile: its session row
    /// with its content withheld (the digest in its place), which proves its profile. Its
    /// entries are all given, so this row is provably its latest version; no other row is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_profile: Option<SealedRow>,
    /// The chained `erased` events that replaced the content of some of its rows (a
    /// person's data erased): each event's row and entry, which account for those rows'
    /// tombstones (docs/chain.md, "Erasure").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erasures: Vec<EventEvidence>,
}

/// A row with its content columns withheld: the others, and the digest of the content
/// (docs/chain.md, "Split leaf"), which is all its split leaf needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedRow {
    /// The row's table and its non-content columns.
    pub row: RowRecord,
    /// The digest of its content columns, hex.
    pub content: String,
}

/// A chained `audit_events` row and its entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEvidence {
    /// The event's row (`id`, `recorded_at`, `kind`, `detail`).
    pub row: RowRecord,
    /// Its chain entry, with its proof.
    pub entry: EntryProof,
}

/// What a bundle was asked for: sessions by id, or every session first committed in a
/// period (`since` inclusive, `until` exclusive; UTC, in the stores' text form
/// `YYYY-MM-DD HH:MM:SS.ffffff`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The sessions asked for; for a period, the ones found in it.
    pub sessions: Vec<String>,
    /// The period's start: sessions whose first entry was committed at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The period's end (exclusive); none for up to the bundle's checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Within the period, only the sessions of this profile are taken whole; each other
    /// session of the period is proven to be of another profile, its content withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Scope {
    /// These sessions.
    pub fn sessions(ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Scope {
            sessions: ids.into_iter().map(Into::into).collect(),
            ..Scope::default()
        }
    }

    /// Every session first committed at or after `since` and before `until`.
    pub fn period(since: impl Into<String>, until: Option<String>) -> Self {
        Scope {
            sessions: Vec::new(),
            since: Some(since.into()),
            until,
            profile: None,
        }
    }

    /// Every session of `profile` first committed in the period (from the chain's start
    /// when `since` is `None`).
    pub fn profile(
        profile: impl Into<String>,
        since: Option<String>,
        until: Option<String>,
    ) -> Self {
        Scope {
            profile: Some(profile.into()),
            ..Scope::period(since.unwrap_or_default(), until)
        }
    }

    /// Whether a session first committed at `at` belongs to this period (never, for a
    /// scope of sessions by id).
    pub(crate) fn holds_time(&self, at: &str) -> bool {
        self.since.as_deref().is_some_and(|since| at >= since)
            && self.until.as_deref().is_none_or(|until| at < until)
    }
}

/// A session's head just outside a period, proving where the period starts or ends in the
/// sessions tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Its id.
    pub session_id: String,
    /// Its head and proof.
    pub head: HeadProof,
}

/// For a period: the heads on either side of it (none at an end of the tree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// The last session first committed before `since`.
    pub before: Option<Neighbour>,
    /// The first session first committed at or after `until`.
    pub after: Option<Neighbour>,
}

/// An earlier checkpoint the bundle's checkpoint extends, with the consistency proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// The earlier checkpoint, as text.
    pub checkpoint: String,
    /// The RFC 6962 consistency proof from its tree to the bundle's, hex.
    pub consistency: Vec<String>,
}

/// Who made a bundle, when, of what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The database's id (the checkpoints' origin names it).
    pub database_id: String,
    /// The tool and version that made it.
    pub tool: String,
    /// When (UTC).
    pub made_at: String,
    /// By whom: the user and host that ran the export, as they said.
    pub made_by: String,
    /// What was asked for.
    pub scope: Scope,
    /// How many rows of each table and how many chain entries it holds.
    pub counts: Counts,
    /// The earliest start and the latest end among its sessions.
    pub time_range: Option<(String, String)>,
}

/// A bundle's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Session rows.
    pub sessions: u64,
    /// Step rows.
    pub steps: u64,
    /// Decision rows.
    pub decisions: u64,
    /// Chain entries, moved ones included.
    pub entries: u64,
}

/// An evidence bundle: one JSON file an auditor checks offline with `reasonkit-audit verify
/// --evidence` or `tools/verify_chain.py --evidence`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use reasonkit_audit::evidence::{self, CheckOptions};
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.db");
/// let (layer, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     let _session = tracing::info_span!("session", id = "claim-1432").entered();
///     tracing::info_span!("step", module = "triage", output_summary = "covered").in_scope(|| {});
/// });
/// drop(guard);
///
/// let scope = evidence::Scope::sessions(["claim-1432"]);
/// let bundle = evidence::build(&path, &scope, &evidence::BuildOptions::default())?;
/// assert_eq!(bundle.manifest.counts.steps, 1);
/// // What an auditor runs on the file they were given (here without a key or checkpoint).
/// let report = evidence::check(&bundle, &CheckOptions::default());
/// assert!(report.is_intact_and_complete(), "{report:?}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Always [`EVIDENCE_FORMAT`].
    pub evidence: String,
    /// Always [`EVIDENCE_SPEC`].
    pub spec: u32,
    /// Who made it, when, of what.
    pub manifest: Manifest,
    /// The checkpoint of the chain's head it is proven against, as text, with `tree` and
    /// `sessions` lines; signed when the maker gave a key.
    pub checkpoint: String,
    /// Earlier checkpoints it extends.
    #[serde(default)]
    pub extends: Vec<Extension>,
    /// For a period: the heads just outside it, which prove that no session of it is left
    /// out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Bounds>,
    /// The sessions asked for, with their proofs.
    pub sessions: Vec<SessionEvidence>,
}

/// A chain entry as read from a store: what its Merkle leaf covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    pub(crate) seq: u64,
    pub(crate) table: String,
    pub(crate) row_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) committed_at: String,
    pub(crate) leaf: Vec<u8>,
}

/// Appends `len:u32 ‖ bytes`.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The Merkle leaf data of a chain entry: `0x06 ‖ seq:u64 ‖ len32(table) ‖ len32(row id) ‖
/// session ‖ len32(committed_at) ‖ len32(leaf hash)`, where session is `0x00` for none or
/// `0x01 ‖ len32(session id)`.
pub(crate) fn entry_data(
    seq: u64,
    table: &str,
    row_id: &str,
    session_id: Option<&str>,
    committed_at: &str,
    leaf: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(ENTRY_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    push_bytes(&mut out, table.as_bytes());
    push_bytes(&mut out, row_id.as_bytes());
    match session_id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            push_bytes(&mut out, id.as_bytes());
        }
    }
    push_bytes(&mut out, committed_at.as_bytes());
    push_bytes(&mut out, leaf);
    out
}

/// The Merkle leaf hash of a stored entry.
pub(crate) fn entry_hash(entry: &StoredEntry) -> Hash {
    merkle::leaf_hash(&entry_data(
        entry.seq,
        &entry.table,
        &entry.row_id,
        entry.session_id.as_deref(),
        &entry.committed_at,
        &entry.leaf,
    ))
}

/// The Merkle leaf data of a session's head: `0x07 ‖ len32(first committed_at) ‖
/// len32(session id) ‖ count:u64 ‖ last:u64`.
pub(crate) fn head_data(first: &str, session_id: &str, count: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(HEAD_TAG);
    push_bytes(&mut out, first.as_bytes());
    push_bytes(&mut out, session_id.as_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&last.to_be_bytes());
    out
}

/// Bytes from lowercase or uppercase hex, or `None`.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub use build::BuildOptions;
pub use check::{CheckOptions, EvidenceFinding, EvidenceReport, FindingClass, Verdict, check};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }

    /// docs/chain-vectors.json's `evidence`: the leaf encodings, both trees' heads, and rows
    /// as a bundle writes them (the Python verifier checks the same vectors).
    #[test]
    fn chain_vectors_evidence_leaves_trees_and_rows() {
        let text = include_str!("../../../docs/chain-vectors.json");
        let doc = include_str!("../../../docs/chain.md");
        let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
        let evidence = &vectors["evidence"];
        let mut leaves = Vec::new();
        for case in evidence["entries"].as_array().unwrap() {
            let data = entry_data(
                case["seq"].as_u64().unwrap(),
                case["table"].as_str().unwrap(),
                case["row_id"].as_str().unwrap(),
                case["session_id"].as_str(),
                case["committed_at"].as_str().unwrap(),
                &unhex(case["leaf"].as_str().unwrap()).unwrap(),
            );
            assert_eq!(
                hex(&data),
                case["data"].as_str().unwrap(),
                "{}",
                case["name"]
            );
            let leaf = merkle::leaf_hash(&data);
            assert_eq!(hex(&leaf), case["merkle_leaf"].as_str().unwrap());
            leaves.push(leaf);
        }
        let root = hex(&merkle::Tree::new(leaves).root());
        assert_eq!(root, evidence["entries_root"].as_str().unwrap());
        assert!(doc.contains(&root), "docs/chain.md lacks the entries root");
        let mut heads = Vec::new();
        for case in evidence["heads"].as_array().unwrap() {
            let data = head_data(
                case["first_committed_at"].as_str().unwrap(),
                case["session_id"].as_str().unwrap(),
                case["count"].as_u64().unwrap(),
                case["last"].as_u64().unwrap(),
            );
            assert_eq!(hex(&data), case["data"].as_str().unwrap());
            heads.push(merkle::leaf_hash(&data));
        }
        let root = hex(&merkle::Tree::new(heads).root());
        assert_eq!(root, evidence["heads_root"].as_str().unwrap());
        assert!(doc.contains(&root), "docs/chain.md lacks the heads root");
        for case in evidence["rows"].as_array().unwrap() {
            let row: RowRecord = serde_json::from_value(case.clone()).unwrap();
            let spec = rows::spec_of(&row.table).unwrap();
            let (split, whole) = rows::row_leaves(spec, &row.columns).unwrap();
            assert_eq!(hex(&split), case["split_leaf"].as_str().unwrap());
            assert_eq!(hex(&whole), case["leaf"].as_str().unwrap());
        }
    }

    #[test]
    fn entry_data_tells_no_session_from_an_empty_one() {
        let none = entry_data(1, "steps", "a", None, "t", &[0; 32]);
        let empty = entry_data(1, "steps", "a", Some(""), "t", &[0; 32]);
        assert_ne!(none, empty);
    }
}
