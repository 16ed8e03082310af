//! What `verify` reports: the findings, the rows and entries it read, the checkpoints it
//! checked — the public face of the verifier, whichever store it read.

use std::path::PathBuf;

use serde::Serialize;

use crate::chain;
use crate::chain::checkpoint::{Checkpoint, VerifierKey};

/// What `verify` is given besides the database.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Checkpoints taken earlier: the chain must still extend each of them.
    pub checkpoints: Vec<Checkpoint>,
    /// Keys whose signatures the checkpoints must carry. When given, every checkpoint must
    /// be signed by one of them, and a signature that does not verify is an error.
    pub keys: Vec<VerifierKey>,
}

/// What kind of disagreement a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A row differs from its latest chained version.
    Modified,
    /// A chained row is gone from its table.
    Deleted,
    /// A row the chain does not know (never written by the layer, or its entry removed).
    Inserted,
    /// A chain entry sits at a position other than the one it was linked at.
    Reordered,
    /// A chain entry's hashes, table or row id were changed.
    EntryEdited,
    /// Chain entries are missing: `seq` is not dense.
    EntryMissing,
    /// The chain's tables or the database id it starts from are gone.
    ChainMissing,
    /// The chain is shorter than a checkpoint: its tail was cut, or an older copy of the
    /// file was put back.
    Truncated,
    /// The chain no longer passes through a checkpoint: it was rewritten (recomputed)
    /// after the checkpoint was taken, or this is another copy.
    Forked,
    /// The rows `audit_pruned` lists for a chained pruning are not the ones its event
    /// committed to (rows deleted and passed off as pruned, say).
    PruneAltered,
}

impl FindingKind {
    /// The kind as one lowercase word, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Modified => "modified",
            FindingKind::Deleted => "deleted",
            FindingKind::Inserted => "inserted",
            FindingKind::Reordered => "reordered",
            FindingKind::EntryEdited => "entry_edited",
            FindingKind::EntryMissing => "entry_missing",
            FindingKind::ChainMissing => "chain_missing",
            FindingKind::Truncated => "truncated",
            FindingKind::Forked => "forked",
            FindingKind::PruneAltered => "prune_altered",
        }
    }
}

/// One piece of evidence of tampering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of disagreement.
    pub kind: FindingKind,
    /// The chain entry concerned, if one is.
    pub seq: Option<u64>,
    /// The table of the row concerned, if one is.
    pub table: Option<String>,
    /// The id of the row concerned, if one is.
    pub row_id: Option<String>,
    /// What was found, in a sentence.
    pub detail: String,
}

/// A row of a span that was still open at its latest chained version: not tampering, but
/// its final version is not on the record (yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenRow {
    /// `sessions`, `steps` or `decisions`.
    pub table: String,
    /// The row's id.
    pub row_id: String,
    /// Its latest chain entry.
    pub seq: u64,
}

/// How one checkpoint compared with the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    /// The checkpoint's size.
    pub size: u64,
    /// Its `time` extension, if it has one.
    pub time: Option<String>,
    /// The chain still passes through it.
    pub extended: bool,
    /// The names of the keys whose signatures were checked.
    pub signed_by: Vec<String>,
}

/// The outcome of [`verify`](crate::verify()): intact when there are no findings.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The database verified.
    pub path: PathBuf,
    /// Its random id, from which the chain starts (`None` if it is gone).
    pub database_id: Option<String>,
    /// Chain entries read.
    pub entries: u64,
    /// Rows of the chained tables read, by table.
    pub rows: Vec<(String, u64)>,
    /// The chain's head as recomputed: the link at the last entry.
    #[serde(serialize_with = "hex_hash")]
    pub head: [u8; 32],
    /// Evidence of tampering, in the order found.
    pub findings: Vec<Finding>,
    /// Rows whose span was still open at their latest chained version.
    pub open: Vec<OpenRow>,
    /// What the trail itself recorded doing to the file (`audit_events`: sealing older
    /// rows, say), as (seq, kind, detail).
    pub events: Vec<(u64, String, String)>,
    /// How each checkpoint given compared.
    pub checkpoints: Vec<CheckpointCheck>,
    /// Chained rows gone because a chained pruning removed them (not findings).
    pub pruned_rows: u64,
    /// Rows whose content a chained erasure replaced, checked against their leaves with
    /// the content digest it recorded (not findings).
    pub erased_rows: u64,
}

fn hex_hash<S: serde::Serializer>(hash: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&chain::hex(hash))
}

impl Report {
    /// No evidence of tampering was found.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// Rows of the chained tables read, all tables together.
    pub fn total_rows(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}
