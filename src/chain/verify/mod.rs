//! `verify`: recompute the whole chain from the stored rows and say what does not agree.
//!
//! Nothing is taken on trust from the file: every leaf is recomputed from the row it
//! covers, every link from its predecessor (never only the ends — immudb's advisory
//! GHSA-672p-m5jq-mrh8 was a verifier that skipped the middle), `seq` must be dense, every
//! chained row must exist in its latest chained version, and every row of a chained table
//! must be covered. Each [`Finding`] names the seq, the table and id, and its kind.
//!
//! What the chain alone cannot show — a cut tail, a wholly recomputed chain, an older copy
//! put back — needs a [`Checkpoint`] taken earlier and kept elsewhere: pass it in
//! [`VerifyOptions::checkpoints`]. See `docs/chain.md` for the encoding and
//! `docs/tamper-evidence.md` for what is detected and what cannot be.
//!
//! This file is the engine, which knows no store: each store feeds it what it reads
//! (`store/sqlite/verify.rs`, `store/postgres/verify.rs`). `report.rs` holds what it
//! reports.

mod report;

pub use report::{CheckpointCheck, Finding, FindingKind, OpenRow, Report, VerifyOptions};

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::chain::checkpoint::{Checkpoint, VerifierKey};
use crate::chain::{self, CHAINED_TABLES, Cell, TableSpec};
use crate::error::{Error, Result};

/// How many failed links are searched for a position where they would fit (to tell a
/// reordered entry from an edited one); each search hashes the whole chain once.
const REORDER_SEARCHES: usize = 8;

use crate::chain::verify_lifecycle::{Event, Lifecycle, PrunedRow, erased_leaf};

/// The latest chain entry of a row.
struct Latest {
    seq: u64,
    /// The stored leaf hash, `None` when it is not 32 bytes (a damaged entry).
    leaf: Option<[u8; 32]>,
    /// A row was found for it.
    seen: bool,
}

/// One stored chain entry, as much of it as the later passes need.
struct Entry {
    seq: u64,
    chain_hash: Stored,
    leaf_hash: Stored,
}

/// Where the walk over the chain is: the `seq` expected next, and the positions (in
/// `entries`) whose link did not verify.
pub(crate) struct ChainWalk {
    expected: u64,
    failed: Vec<usize>,
}

impl Default for ChainWalk {
    fn default() -> Self {
        ChainWalk {
            expected: 1,
            failed: Vec::new(),
        }
    }
}

/// A hash as stored: 32 bytes, kept inline, or whatever else a damaged entry holds.
pub(crate) enum Stored {
    Hash([u8; 32]),
    Other(Vec<u8>),
}

impl Stored {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        match <[u8; 32]>::try_from(bytes) {
            Ok(hash) => Stored::Hash(hash),
            Err(_) => Stored::Other(bytes.to_vec()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Stored::Hash(hash) => hash,
            Stored::Other(bytes) => bytes,
        }
    }

    fn hash(&self) -> Option<[u8; 32]> {
        match self {
            Stored::Hash(hash) => Some(*hash),
            Stored::Other(_) => None,
        }
    }
}

/// The checks, fed by a store's reader: [`verify_with`](crate::verify_with) for SQLite, and
/// `postgres::verify` for PostgreSQL.
pub(crate) struct Verifier {
    pub(crate) report: Report,
    genesis: [u8; 32],
    entries: Vec<Entry>,
    failed_seqs: HashSet<u64>,
    /// Per chained table (by index): row id → its latest entry. One map per table, so a
    /// row is looked up by its id without building a key.
    latest: Vec<HashMap<String, Latest>>,
    /// Rows the chain does not know: (table index, row id, split and whole leaves).
    unknown: Vec<(u8, String, [[u8; 32]; 2])>,
}

impl Verifier {
    pub(crate) fn new(path: &Path) -> Self {
        Verifier {
            report: Report {
                path: path.into(),
                database_id: None,
                entries: 0,
                rows: Vec::new(),
                head: [0; 32],
                findings: Vec::new(),
                open: Vec::new(),
                events: Vec::new(),
                checkpoints: Vec::new(),
                pruned_rows: 0,
                erased_rows: 0,
            },
            genesis: [0; 32],
            entries: Vec::new(),
            failed_seqs: HashSet::new(),
            latest: CHAINED_TABLES.iter().map(|_| HashMap::new()).collect(),
            unknown: Vec::new(),
        }
    }

    /// Reads the lifecycle events and the pruned rows; a pruning whose listed rows do not
    /// hash to its digest is a finding, and explains none of its rows.
    pub(crate) fn lifecycle(&mut self, events: Vec<Event>, pruned: Vec<PrunedRow>) -> Lifecycle {
        let (lifecycle, altered) = crate::chain::verify_lifecycle::accepted(events, pruned);
        for pruning in altered {
            self.find(
                FindingKind::PruneAltered,
                Some(pruning.seq),
                Some(("audit_events", &pruning.event_id.to_string())),
                format!(
                    "the rows audit_pruned lists for the pruning at entry {} ({}) are not the {} \
                     it committed to",
                    pruning.seq,
                    pruning.listed,
                    pruning.stated.map_or("?".to_owned(), |n| n.to_string())
                ),
            );
        }
        lifecycle
    }

    pub(crate) fn find(
        &mut self,
        kind: FindingKind,
        seq: Option<u64>,
        row: Option<(&str, &str)>,
        detail: String,
    ) {
        self.report.findings.push(Finding {
            kind,
            seq,
            table: row.map(|(t, _)| t.to_owned()),
            row_id: row.map(|(_, id)| id.to_owned()),
            detail,
        });
    }

    /// The chain starts from the database's id (a finding when it is gone).
    pub(crate) fn start(&mut self, database_id: Option<String>) {
        self.report.database_id = database_id;
        if self.report.database_id.is_none() {
            self.find(
                FindingKind::ChainMissing,
                None,
                None,
                "audit_meta has no database_id, the value the chain starts from".into(),
            );
        }
        self.genesis = chain::genesis(self.report.database_id.as_deref().unwrap_or(""));
        self.report.head = self.genesis;
    }

    /// Checks one chain entry, read in `seq` order: `table` is the stored table name's
    /// bytes (or, when it is not text, what it holds).
    pub(crate) fn entry(
        &mut self,
        walk: &mut ChainWalk,
        seq: u64,
        table: std::result::Result<&[u8], String>,
        row_id: String,
        leaf_hash: Stored,
        chain_hash: Stored,
    ) {
        let expected = walk.expected;
        let table_index = table.as_ref().ok().and_then(|name| {
            CHAINED_TABLES
                .iter()
                .position(|t| t.name.as_bytes() == *name)
        });
        let gap = seq != expected;
        if gap {
            let detail = if seq > expected {
                format!("entries {expected}..{} are missing from the chain", seq - 1)
            } else {
                format!("entry {seq} appears where {expected} was expected")
            };
            self.find(FindingKind::EntryMissing, Some(expected), None, detail);
        }
        // Each link from the previous entry's stored link, so that one edit is one
        // finding; after a gap the link cannot hold and the gap is the finding.
        let previous = self
            .entries
            .last()
            .map_or(&self.genesis[..], |e| e.chain_hash.bytes());
        let computed = chain::link(previous, seq, leaf_hash.bytes());
        self.report.head = computed;
        if computed[..] != *chain_hash.bytes() && !gap {
            walk.failed.push(self.entries.len());
            self.failed_seqs.insert(seq);
        }
        match table_index {
            Some(index) => {
                let latest = Latest {
                    seq,
                    leaf: leaf_hash.hash(),
                    seen: false,
                };
                self.latest[index].insert(row_id, latest);
            }
            None => {
                let table = match table {
                    Ok(name) => String::from_utf8_lossy(name).into_owned(),
                    Err(other) => other,
                };
                self.find(
                    FindingKind::EntryEdited,
                    Some(seq),
                    None,
                    format!("entry {seq} names table {table:?}, which the chain does not cover"),
                );
            }
        }
        self.entries.push(Entry {
            seq,
            chain_hash,
            leaf_hash,
        });
        walk.expected = seq + 1;
    }

    /// After the last entry: counts, and tells reordered entries from edited ones.
    pub(crate) fn end_chain(&mut self, walk: ChainWalk) {
        self.report.entries = self.entries.len() as u64;
        self.classify_failed_links(&walk.failed);
    }

    /// A failed link is a reordered entry when it verifies at another position, or after
    /// another predecessor; otherwise its entry was edited.
    fn classify_failed_links(&mut self, failed: &[usize]) {
        for (n, &position) in failed.iter().enumerate() {
            let entry = &self.entries[position];
            let moved = n < REORDER_SEARCHES && self.fits_elsewhere(position);
            let (kind, detail) = match moved {
                true => (
                    FindingKind::Reordered,
                    format!(
                        "entry {} was linked at another position or after another entry",
                        entry.seq
                    ),
                ),
                _ => (
                    FindingKind::EntryEdited,
                    format!(
                        "the link of entry {} does not follow from the entry before it and its leaf",
                        entry.seq
                    ),
                ),
            };
            let seq = entry.seq;
            self.find(kind, Some(seq), None, detail);
        }
    }

    /// Whether the entry at `position` has a valid link with some other predecessor or at
    /// some other seq.
    fn fits_elsewhere(&self, position: usize) -> bool {
        let entry = &self.entries[position];
        let predecessors = std::iter::once((&self.genesis[..], 0_u64))
            .chain(self.entries.iter().map(|e| (e.chain_hash.bytes(), e.seq)));
        for (previous, previous_seq) in predecessors {
            for seq in [entry.seq, previous_seq + 1] {
                if chain::link(previous, seq, entry.leaf_hash.bytes())[..]
                    == *entry.chain_hash.bytes()
                {
                    return true;
                }
            }
        }
        false
    }

    /// Pass 2: every row a store read (SQLite's `read_rows`) against its latest chained version.
    pub(crate) fn match_rows(&mut self, tables: Vec<TableRows>) {
        for table in tables {
            let name = CHAINED_TABLES[usize::from(table.index)].name;
            self.report
                .rows
                .push((name.to_owned(), table.rows.len() as u64));
            for row in table.rows {
                let found = self.latest[usize::from(table.index)].get_mut(&row.id);
                match found {
                    None => self
                        .unknown
                        .push((table.index, row.id, [row.split, row.whole])),
                    Some(latest) => {
                        latest.seen = true;
                        let seq = latest.seq;
                        // A row an erasure chained after its latest entry must be erased:
                        // its content tombstoned and the rest as chained.
                        let erased = row.erased.filter(|(by, _)| *by > seq);
                        let matches = match erased {
                            Some((_, leaf)) => leaf.is_some() && latest.leaf == leaf,
                            None => {
                                latest.leaf == Some(row.split) || latest.leaf == Some(row.whole)
                            }
                        };
                        if matches && erased.is_some() {
                            self.report.erased_rows += 1;
                        } else if !matches {
                            if !self.failed_seqs.contains(&seq) {
                                let detail = format!(
                                    "{name} row {} differs from its version chained at entry {seq}",
                                    row.id
                                );
                                self.find(
                                    FindingKind::Modified,
                                    Some(seq),
                                    Some((name, &row.id)),
                                    detail,
                                );
                            }
                        } else if row.open {
                            self.report.open.push(OpenRow {
                                table: name.to_owned(),
                                row_id: row.id,
                                seq,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Rows the chain does not know and chained rows not found: a row whose leaf is that of
    /// an entry filed under another table or id means the entry was edited; the rest are
    /// inserted and deleted rows.
    pub(crate) fn reconcile(&mut self, lifecycle: &Lifecycle) {
        let mut missing: HashMap<[u8; 32], (u64, u8, String)> = HashMap::new();
        let mut deleted: Vec<(u64, u8, String)> = Vec::new();
        for (index, rows) in self.latest.iter().enumerate() {
            for (id, latest) in rows.iter().filter(|(_, l)| !l.seen) {
                let entry = (latest.seq, index as u8, id.clone());
                if let Some(leaf) = latest.leaf {
                    missing.insert(leaf, entry.clone());
                }
                deleted.push(entry);
            }
        }
        let mut explained: HashSet<u64> = HashSet::new();
        for (table, id, leaves) in std::mem::take(&mut self.unknown) {
            let name = CHAINED_TABLES[table as usize].name;
            match leaves.iter().find_map(|leaf| missing.get(leaf)) {
                Some((seq, _, filed_as)) => {
                    explained.insert(*seq);
                    let seq = *seq;
                    let detail = format!(
                        "entry {seq} covers {name} row {id} but is filed under id {filed_as:?}"
                    );
                    self.find(
                        FindingKind::EntryEdited,
                        Some(seq),
                        Some((name, &id)),
                        detail,
                    );
                }
                None => self.find(
                    FindingKind::Inserted,
                    None,
                    Some((name, &id)),
                    format!("{name} row {id} is not in the chain"),
                ),
            }
        }
        deleted.sort();
        for (seq, table, id) in deleted {
            if explained.contains(&seq) {
                continue;
            }
            if lifecycle.pruned.contains_key(&(table, id.clone())) {
                self.report.pruned_rows += 1;
                continue;
            }
            let name = CHAINED_TABLES[table as usize].name;
            self.find(
                FindingKind::Deleted,
                Some(seq),
                Some((name, &id)),
                format!("{name} row {id}, chained at entry {seq}, is gone"),
            );
        }
    }

    pub(crate) fn check_checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
        keys: &[VerifierKey],
    ) -> Result<()> {
        let problem = |message: String| Error::Checkpoint { message };
        let ours = self.report.database_id.as_deref().unwrap_or("");
        match checkpoint.database_id() {
            Some(id) if id == ours => {}
            _ => {
                return Err(problem(format!(
                    "the checkpoint at size {} is for {:?}, not this database \
                     (reasonkit-audit/{ours})",
                    checkpoint.size, checkpoint.origin
                )));
            }
        }
        let mut signed_by = Vec::new();
        if !keys.is_empty() {
            let mut last_error = None;
            for key in keys {
                match checkpoint.check_signature(key) {
                    Ok(()) => signed_by.push(key.name().to_owned()),
                    Err(e) => last_error = Some(e),
                }
            }
            if signed_by.is_empty() {
                return Err(problem(last_error.map(|e| e.0).unwrap_or_default()));
            }
        }
        let size = checkpoint.size;
        let stored = if size == 0 {
            Some(&self.genesis[..])
        } else {
            self.entries
                .binary_search_by_key(&size, |e| e.seq)
                .ok()
                .map(|i| self.entries[i].chain_hash.bytes())
        };
        let last = self.entries.last().map_or(0, |e| e.seq);
        let extended =
            match stored {
                Some(hash) if hash == checkpoint.hash => true,
                Some(_) => {
                    self.find(
                    FindingKind::Forked,
                    Some(size),
                    None,
                    format!(
                        "the chain at entry {size} differs from the checkpoint{}: rewritten since, \
                         or another copy",
                        checkpoint.time().map(|t| format!(" of {t}")).unwrap_or_default()
                    ),
                );
                    false
                }
                None if size > last => {
                    self.find(
                        FindingKind::Truncated,
                        Some(size),
                        None,
                        format!(
                            "a checkpoint{} covers {size} entries but the chain has only {last}: \
                         its tail was cut, or an older copy of the file was put back",
                            checkpoint
                                .time()
                                .map(|t| format!(" of {t}"))
                                .unwrap_or_default()
                        ),
                    );
                    false
                }
                None => {
                    self.find(
                        FindingKind::EntryMissing,
                        Some(size),
                        None,
                        format!("entry {size}, which a checkpoint covers, is missing"),
                    );
                    false
                }
            };
        self.report.checkpoints.push(CheckpointCheck {
            size,
            time: checkpoint.time().map(str::to_owned),
            extended,
            signed_by,
        });
        Ok(())
    }
}

/// The rows of one chained table, each as its id, its recomputed leaf and whether it is
/// open.
pub(crate) struct TableRows {
    pub(crate) index: u8,
    pub(crate) rows: Vec<RowLeaf>,
}

pub(crate) struct RowLeaf {
    pub(crate) id: String,
    /// Its split leaf (what the writer chains), and its whole leaf (what rows chained
    /// before the split leaf existed have).
    pub(crate) split: [u8; 32],
    pub(crate) whole: [u8; 32],
    /// For a row a chained erasure lists: that event's entry, and (when its content is
    /// tombstoned) the leaf the row had before it was erased.
    pub(crate) erased: Option<(u64, Option<[u8; 32]>)>,
    pub(crate) open: bool,
}

impl RowLeaf {
    /// A row of the chained table `index`, from its columns in ordinal order.
    pub(crate) fn of(index: u8, cells: &[Cell<'_>], lifecycle: &Lifecycle) -> RowLeaf {
        let table = CHAINED_TABLES[usize::from(index)];
        let id = chain::row_id(cells.first().copied().unwrap_or(Cell::Null));
        RowLeaf {
            split: chain::split_leaf(table, cells),
            whole: chain::leaf(table.name, cells.iter().copied()),
            erased: erased_leaf(lifecycle, index, &id, cells),
            open: is_open(table, cells),
            id,
        }
    }
}

/// A row whose span had not closed: a running session, a step or decision span without
/// its end.
pub(crate) fn is_open(table: &TableSpec, cells: &[Cell<'_>]) -> bool {
    let column = |name: &str| {
        table
            .columns
            .iter()
            .position(|c| *c == name)
            .map(|i| cells[i])
    };
    match table.name {
        "sessions" => column("status") == Some(Cell::Text(b"running")),
        "steps" => column("ended_at") == Some(Cell::Null),
        "decisions" => column("decided_at") == Some(Cell::Null),
        _ => false,
    }
}

/// An entry whose session is not its row's: seq, table, row id, the session it names, the
/// session of the row.
pub(crate) type Mislabelled = (u64, String, String, Option<String>, String);

/// The sizes of the checkpoints in `options` that carry tree heads: where a store must
/// compute its own to check them.
pub(crate) fn tree_checkpoint_sizes(options: &VerifyOptions) -> Vec<u64> {
    options
        .checkpoints
        .iter()
        .filter(|c| c.tree_heads().is_some())
        .map(|c| c.size)
        .collect()
}

/// What evidence bundles rest on, whatever the store (docs/chain.md, "Evidence bundles"):
/// each `(seq, table, row id, session named, session of the row)` a store found mislabelled
/// is *entry edited*, and every checkpoint whose tree heads are not `held` at its size is
/// *forked* — a signer who signed other heads is caught by whoever verifies the store.
pub(crate) fn check_sessions_and_trees(
    verifier: &mut Verifier,
    mislabelled: Vec<Mislabelled>,
    held: &[(u64, Option<crate::chain::checkpoint::TreeHeads>)],
    options: &VerifyOptions,
) {
    for (seq, table, row_id, named, actual) in mislabelled {
        verifier.find(
            FindingKind::EntryEdited,
            Some(seq),
            Some((&table, &row_id)),
            format!(
                "entry {seq} says its {table} row {row_id} is of session {}, but the row is of \
                 session {actual}: the entry's session was changed (an evidence bundle of \
                 {actual} would leave it out)",
                named.as_deref().unwrap_or("(none)")
            ),
        );
    }
    let with_trees = options
        .checkpoints
        .iter()
        .filter_map(|c| c.tree_heads().map(|t| (c, t)));
    for (checkpoint, claimed) in with_trees {
        let at = held
            .iter()
            .find(|(size, _)| *size == checkpoint.size)
            .and_then(|(_, t)| *t);
        // A checkpoint past the chain's end is reported as truncated already.
        if at.is_some_and(|at| at != claimed) {
            verifier.find(
                FindingKind::Forked,
                Some(checkpoint.size),
                None,
                format!(
                    "the checkpoint at size {} carries tree heads that are not this chain's: \
                     its entries or their sessions were changed since, or whoever signed it \
                     did not sign this chain",
                    checkpoint.size
                ),
            );
            if let Some(check) = verifier
                .report
                .checkpoints
                .iter_mut()
                .find(|c| c.size == checkpoint.size)
            {
                check.extended = false;
            }
        }
    }
}
