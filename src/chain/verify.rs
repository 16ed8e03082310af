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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use crate::chain::checkpoint::{Checkpoint, VerifierKey};
use crate::chain::{self, CHAINED_TABLES, Cell, TableSpec};
use crate::error::{Error, Result};

/// How many failed links are searched for a position where they would fit (to tell a
/// reordered entry from an edited one); each search hashes the whole chain once.
const REORDER_SEARCHES: usize = 8;

use crate::chain::MAX_COLUMNS;
use crate::chain::verify_lifecycle::{Event, Lifecycle, PrunedRow, erased_leaf};

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

/// The outcome of [`verify`]: intact when there are no findings.
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

/// Verifies the chain of the audit database at `path`, read-only, without checkpoints.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.db");
/// let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
/// let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(audit));
/// tracing::dispatcher::with_default(&dispatch, || {
///     tracing::info_span!("session").in_scope(|| {
///         tracing::info_span!("step", module = "gigathink", confidence = 0.9).in_scope(|| {});
///     });
/// });
/// guard.shutdown()?;
///
/// let report = reasonkit_audit::verify(&path)?;
/// assert!(report.is_intact());
///
/// // Lower a confidence behind the layer's back: verify names the row.
/// let db = rusqlite::Connection::open(&path)?;
/// db.execute("UPDATE steps SET confidence = 0.2", [])?;
/// let report = reasonkit_audit::verify(&path)?;
/// assert_eq!(report.findings.len(), 1);
/// assert_eq!(report.findings[0].kind, reasonkit_audit::FindingKind::Modified);
/// assert_eq!(report.findings[0].table.as_deref(), Some("steps"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When the file cannot be verified at all: missing, not SQLite, a schema without a chain
/// (older: run `migrate` first) or newer than this release. Tampering is not an error: it
/// is reported in [`Report::findings`].
pub fn verify(path: &Path) -> Result<Report> {
    verify_with(path, &VerifyOptions::default())
}

/// Verifies the chain and checks it against the given checkpoints (see [`verify`]).
///
/// # Errors
/// Those of [`verify`], and [`Error::Checkpoint`] when a checkpoint names another
/// database, or is not signed by one of `options.keys` (when keys are given), or carries
/// a signature that does not verify.
pub fn verify_with(path: &Path, options: &VerifyOptions) -> Result<Report> {
    let fail = |step: &str, source| Error::Setup {
        path: path.into(),
        step: step.into(),
        source,
    };
    let conn = snapshot(path)?;
    let mut verifier = Verifier::new(path);
    if !verifier
        .tables_present(&conn)
        .map_err(|e| fail("reading the chain", e))?
    {
        return Ok(verifier.report);
    }
    // The rows are read and hashed on a second connection and thread while this one walks
    // the chain: on two cores, nearly twice as fast. Both read transactions must see the
    // same snapshot; every commit of the layer appends to the chain, so the same chain
    // length in both means the same state. If a commit slipped in between, read the rows
    // again on this connection (its snapshot is kept).
    let rows_conn = snapshot(path)?;
    let size = |c: &Connection| {
        c.query_row("SELECT max(seq) FROM audit_chain", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
    };
    let here = size(&conn).map_err(|e| fail("reading the chain", e))?;
    let (events, pruned) = read_lifecycle(&conn).map_err(|e| fail("reading audit_events", e))?;
    let lifecycle = verifier.lifecycle(events, pruned);
    let (chain, rows) = std::thread::scope(|scope| {
        let lifecycle = &lifecycle;
        let reader = scope.spawn(move || {
            let there = size(&rows_conn)?;
            Ok::<_, rusqlite::Error>((there, read_rows(&rows_conn, lifecycle)?))
        });
        let chain = verifier.read_chain(&conn);
        let rows = reader.join().unwrap_or(Err(rusqlite::Error::InvalidQuery));
        (chain, rows)
    });
    chain.map_err(|e| fail("reading the chain", e))?;
    let rows = match rows {
        Ok((there, rows)) if there == here => rows,
        _ => read_rows(&conn, &lifecycle).map_err(|e| fail("reading the rows", e))?,
    };
    verifier.match_rows(rows);
    verifier.reconcile(&lifecycle);
    verifier
        .read_events(&conn)
        .map_err(|e| fail("reading audit_events", e))?;
    for checkpoint in &options.checkpoints {
        verifier.check_checkpoint(checkpoint, &options.keys)?;
    }
    Ok(verifier.report)
}

/// A read-only connection inside a read transaction: everything it reads comes from one
/// snapshot, so a layer writing meanwhile cannot make rows and chain look out of step.
fn snapshot(path: &Path) -> Result<Connection> {
    let conn = crate::store::sqlite::open::open_read_only(path)?;
    conn.execute_batch("BEGIN DEFERRED")
        .map_err(|source| Error::Setup {
            path: path.into(),
            step: "starting a read transaction".into(),
            source,
        })?;
    Ok(conn)
}

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

/// The checks, fed by a store's reader: [`verify_with`] for SQLite, and
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

    /// The chain's own tables and the database id; `false` when the chain cannot be read.
    fn tables_present(&mut self, conn: &Connection) -> rusqlite::Result<bool> {
        let present = |name: &str| -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        for name in ["audit_chain", "audit_meta"]
            .into_iter()
            .chain(CHAINED_TABLES.iter().map(|t| t.name))
        {
            if !present(name)? {
                self.find(
                    FindingKind::ChainMissing,
                    None,
                    None,
                    format!("table {name} is gone from a database whose schema has it"),
                );
            }
        }
        if !self.report.findings.is_empty() {
            return Ok(false);
        }
        self.start(chain::database_id(conn)?);
        Ok(true)
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

    /// Pass 1: every entry's link, `seq` density, and the latest leaf of every row.
    fn read_chain(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(
            "SELECT seq, table_name, row_id, leaf_hash, chain_hash FROM audit_chain ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut walk = ChainWalk::default();
        while let Some(row) = rows.next()? {
            let table = match row.get_ref(1)? {
                rusqlite::types::ValueRef::Text(name) => Ok(name),
                other => Err(text_of(other)),
            };
            self.entry(
                &mut walk,
                u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                table,
                text_of(row.get_ref(2)?),
                Stored::of(&bytes_of(row.get_ref(3)?)),
                Stored::of(&bytes_of(row.get_ref(4)?)),
            );
        }
        self.end_chain(walk);
        Ok(())
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

    /// Pass 2: every row read by [`read_rows`] against its latest chained version.
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

    fn read_events(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(
            "SELECT c.seq, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = CAST(e.id AS TEXT) \
             ORDER BY c.seq",
        )?;
        self.report.events = stmt
            .query_map([], |r| {
                Ok((
                    u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    r.get(1)?,
                    r.get(2)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
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

/// The `pruned` and `erased` events, with their chain entries, and the rows
/// `audit_pruned` lists (a database from before schema 7 has none).
fn read_lifecycle(conn: &Connection) -> rusqlite::Result<(Vec<Event>, Vec<PrunedRow>)> {
    let events = conn
        .prepare(
            "SELECT max(c.seq), e.id, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = CAST(e.id AS TEXT) \
             WHERE e.kind IN ('pruned', 'erased') GROUP BY e.id ORDER BY 1",
        )?
        .query_map([], |r| {
            Ok(Event {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                id: r.get(1)?,
                kind: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let has_pruned: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'audit_pruned'",
        [],
        |r| r.get(0),
    )?;
    let pruned = if has_pruned == 0 {
        Vec::new()
    } else {
        conn.prepare("SELECT table_name, row_id, event_id FROM audit_pruned")?
            .query_map([], |r| {
                Ok(PrunedRow {
                    table: r.get(0)?,
                    row_id: r.get(1)?,
                    event_id: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
    };
    Ok((events, pruned))
}

/// Reads every row of every chained table and recomputes its leaf.
fn read_rows(conn: &Connection, lifecycle: &Lifecycle) -> rusqlite::Result<Vec<TableRows>> {
    let mut out = Vec::with_capacity(CHAINED_TABLES.len());
    for (index, table) in CHAINED_TABLES.iter().enumerate() {
        let mut stmt = conn.prepare(&table.select(""))?;
        let mut rows = stmt.query([])?;
        let width = table.columns.len();
        let mut leaves = Vec::new();
        while let Some(row) = rows.next()? {
            let mut all = [Cell::Null; MAX_COLUMNS];
            for (i, cell) in all.iter_mut().enumerate().take(width) {
                *cell = Cell::from(row.get_ref(i)?);
            }
            leaves.push(RowLeaf::of(index as u8, &all[..width], lifecycle));
        }
        out.push(TableRows {
            index: index as u8,
            rows: leaves,
        });
    }
    Ok(out)
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

fn text_of(value: rusqlite::types::ValueRef<'_>) -> String {
    chain::row_id(Cell::from(value))
}

/// A stored hash's bytes: a blob as it is; anything else (a tampered entry) as the bytes
/// it would hash as, so the links are computed over what is there.
fn bytes_of(value: rusqlite::types::ValueRef<'_>) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match value {
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => Cow::Borrowed(b),
        rusqlite::types::ValueRef::Integer(n) => Cow::Owned(n.to_be_bytes().to_vec()),
        rusqlite::types::ValueRef::Real(f) => Cow::Owned(f.to_bits().to_be_bytes().to_vec()),
        rusqlite::types::ValueRef::Null => Cow::Borrowed(&[]),
    }
}
