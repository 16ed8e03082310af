//! Making a bundle from a SQLite store: one pass over the chain in one read transaction
//! builds both trees (entries, sessions' heads), keeps the entries of the sessions asked
//! for, then reads their rows as they stand. Also the tree heads a checkpoint carries.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::Connection;

use super::{
    Bounds, Bundle, Counts, EVIDENCE_FORMAT, EVIDENCE_SPEC, EntryProof, EventEvidence, Extension,
    HeadProof, Manifest, Neighbour, RowRecord, Scope, SessionEvidence, StoredEntry, entry_hash,
    head_data, hex,
};
use crate::chain::checkpoint::{Checkpoint, SignerKey, TreeHeads};
use crate::chain::merkle::{self, Tree};
use crate::chain::{AUDIT_EVENTS, Cell, ChainHead, DECISIONS, Hash, SESSIONS, STEPS, TableSpec};
use crate::error::{Error, Result};
use crate::store::sqlite::chain as file_chain;

/// How a bundle is made.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Sign the bundle's checkpoint with this key.
    pub sign: Option<SignerKey>,
    /// Earlier checkpoints of this store the bundle must prove it extends (those with tree
    /// heads; the others cannot be proven offline and are listed in the build's notes).
    pub extends: Vec<Checkpoint>,
    /// Who makes it, for the manifest (defaults to `$USER@host`).
    pub made_by: Option<String>,
}

/// Each session's head as counted so far.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    /// The `committed_at` of its first entry: where the sessions tree sorts it, and what
    /// a period is asked by.
    pub(crate) first: String,
    pub(crate) count: u64,
    pub(crate) last: u64,
}

/// Every session's head, by id.
#[derive(Default)]
pub(crate) struct Heads(HashMap<String, Head>);

impl Heads {
    /// Counts an entry into its session's head; `true` when it is the session's first.
    fn count(&mut self, entry: &StoredEntry) -> bool {
        let Some(session) = &entry.session_id else {
            return false;
        };
        match self.0.get_mut(session) {
            Some(head) => {
                head.count += 1;
                head.last = entry.seq;
                false
            }
            None => {
                self.0.insert(
                    session.clone(),
                    Head {
                        first: entry.committed_at.clone(),
                        count: 1,
                        last: entry.seq,
                    },
                );
                true
            }
        }
    }

    /// The session ids in the sessions tree's order: by first entry's time, then id.
    fn order(&self) -> Vec<&String> {
        let mut ids: Vec<&String> = self.0.keys().collect();
        ids.sort_by(|a, b| (&self.0[*a].first, *a).cmp(&(&self.0[*b].first, *b)));
        ids
    }

    /// The sessions tree and the ids in its order.
    fn tree(&self) -> (Tree, Vec<String>) {
        let order = self.order();
        let tree = Tree::new(
            order
                .iter()
                .map(|id| {
                    let head = &self.0[*id];
                    merkle::leaf_hash(&head_data(&head.first, id, head.count, head.last))
                })
                .collect(),
        );
        (tree, order.into_iter().cloned().collect())
    }
}

/// The chain of a store read whole: both trees, and the entries of the sessions asked for.
pub(crate) struct ReadChain {
    pub(crate) database_id: String,
    pub(crate) head: ChainHead,
    pub(crate) entries: Tree,
    pub(crate) heads: Heads,
    pub(crate) heads_tree: Tree,
    /// The session ids in the sessions tree's order.
    pub(crate) order: Vec<String>,
    /// The entries of the sessions asked for (by id, or first committed in the period).
    pub(crate) kept: HashMap<String, Vec<StoredEntry>>,
    /// For each row those entries cover (`table\0id`), its latest entry in the whole chain.
    pub(crate) latest: HashMap<String, StoredEntry>,
}

impl ReadChain {
    pub(crate) fn tree_heads(&self) -> TreeHeads {
        TreeHeads {
            entries: self.entries.root(),
            sessions: self.order.len() as u64,
            heads: self.heads_tree.root(),
        }
    }

    /// A session's head with its proof, by its index in the sessions tree.
    fn head_proof(&self, index: usize) -> Option<(String, HeadProof)> {
        let id = self.order.get(index)?;
        let head = self.heads.0.get(id)?;
        let proof = self.heads_tree.inclusion_proof(index as u64)?;
        Some((
            id.clone(),
            HeadProof {
                index: index as u64,
                first_committed_at: head.first.clone(),
                count: head.count,
                last: head.last,
                proof: proof.iter().map(|h| hex(h)).collect(),
            },
        ))
    }
}

fn row_key(table: &str, row_id: &str) -> String {
    format!("{table}\0{row_id}")
}

/// Every chain entry, in seq order: what both trees are built from.
const ENTRIES: &str = "SELECT seq, table_name, row_id, session_id, committed_at, leaf_hash \
                       FROM audit_chain ORDER BY seq";

fn stored_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    Ok(StoredEntry {
        seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
        table: row.get(1)?,
        row_id: row.get(2)?,
        session_id: row.get(3)?,
        committed_at: row.get(4)?,
        leaf: row.get(5)?,
    })
}

/// Reads the whole chain of `conn` (inside the caller's read transaction), keeping the
/// entries of the sessions `scope` asks for.
pub(crate) fn read_chain(conn: &Connection, scope: &Scope) -> rusqlite::Result<ReadChain> {
    let database_id = file_chain::database_id(conn)?.unwrap_or_default();
    let head = file_chain::head(conn)?;
    let mut kept: HashMap<String, Vec<StoredEntry>> = scope
        .sessions
        .iter()
        .map(|s| (s.clone(), Vec::new()))
        .collect();
    let mut latest: HashMap<String, StoredEntry> = HashMap::new();
    let mut heads = Heads::default();
    let mut leaves = Vec::new();
    let mut stmt = conn.prepare(ENTRIES)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let entry = stored_entry(row)?;
        if entry.seq != leaves.len() as u64 + 1 {
            // A gap or a duplicate: the tree's positions would not be the chain's.
            return Err(rusqlite::Error::IntegralValueOutOfRange(
                0,
                i64::try_from(entry.seq).unwrap_or(i64::MAX),
            ));
        }
        leaves.push(entry_hash(&entry));
        if heads.count(&entry) && scope.holds_time(&entry.committed_at) {
            if let Some(id) = &entry.session_id {
                kept.entry(id.clone()).or_default();
            }
        }
        let key = row_key(&entry.table, &entry.row_id);
        if let Some(entries) = entry.session_id.as_ref().and_then(|s| kept.get_mut(s)) {
            entries.push(entry.clone());
            latest.insert(key, entry);
        } else if let Some(later) = latest.get_mut(&key) {
            *later = entry;
        }
    }
    let (heads_tree, order) = heads.tree();
    Ok(ReadChain {
        database_id,
        head,
        entries: Tree::new(leaves),
        heads,
        heads_tree,
        order,
        kept,
        latest,
    })
}

/// The tree heads of the chain of the store at `path`, at its current head, for a
/// checkpoint (`reasonkit-audit checkpoint`).
///
/// # Errors
/// The store cannot be read, or its chain has a gap (`verify` says where).
pub fn tree_heads(path: &Path) -> Result<(String, ChainHead, TreeHeads)> {
    let conn = crate::store::sqlite::open::open_read_only(path)?;
    let chain = in_read_transaction(&conn, path, |conn| read_chain(conn, &Scope::default()))?;
    Ok((chain.database_id.clone(), chain.head, chain.tree_heads()))
}

fn in_read_transaction<T>(
    conn: &Connection,
    path: &Path,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let failed = |e: rusqlite::Error| Error::Evidence {
        store: path.display().to_string(),
        message: match e {
            rusqlite::Error::IntegralValueOutOfRange(_, seq) => format!(
                "its chain is not dense at seq {seq}; run `reasonkit-audit verify` to see why"
            ),
            e => format!("reading its chain failed: {e}"),
        },
    };
    conn.execute_batch("BEGIN").map_err(failed)?;
    let result = read(conn).map_err(failed);
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Makes the evidence bundle of what `scope` asks for — sessions by id, or every session
/// first committed in a period — from the SQLite store at `path`.
///
/// # Errors
/// The store cannot be read; a session asked for has no entry in its chain; a row of one is
/// gone from the store (pruned or deleted: `verify` says which); or a checkpoint in
/// `options.extends` is of another database, newer than the store, or one the store's
/// chain no longer extends — evidence of tampering, which `verify` shows.
pub fn build(path: &Path, scope: &Scope, options: &BuildOptions) -> Result<Bundle> {
    let store = path.display().to_string();
    let refuse = |message: String| Error::Evidence {
        store: store.clone(),
        message,
    };
    let mut scope = scope.clone();
    scope.sessions.sort();
    scope.sessions.dedup();
    if scope.sessions.is_empty() && scope.since.is_none() {
        return Err(refuse(
            "nothing was asked for: give session ids, or a period".into(),
        ));
    }
    if !scope.sessions.is_empty() && (scope.since.is_some() || scope.until.is_some()) {
        return Err(refuse("give session ids or a period, not both".into()));
    }
    let conn = crate::store::sqlite::open::open_read_only(path)?;
    let (chain, rows, erasures) = in_read_transaction(&conn, path, |conn| {
        let chain = read_chain(conn, &scope)?;
        let mut rows = HashMap::new();
        for key in chain.latest.keys() {
            let Some((table, id)) = key.split_once('\0') else {
                continue;
            };
            if let Some(spec) = spec_of(table) {
                rows.insert(key.clone(), read_row(conn, spec, id)?);
            }
        }
        let erasures = read_erasures(conn)?;
        Ok((chain, rows, erasures))
    })?;
    for id in &scope.sessions {
        if !chain.heads.0.contains_key(id) {
            return Err(refuse(format!(
                "session {id} has no entry in its chain: check the id with `reasonkit-audit \
                 sessions`"
            )));
        }
    }
    // The sessions proven, in the sessions tree's order; for a period, those first
    // committed in it, and the heads just outside it.
    let index: HashMap<&str, usize> = chain
        .order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut proven: Vec<usize> = chain
        .kept
        .keys()
        .filter_map(|id| index.get(id.as_str()).copied())
        .collect();
    proven.sort_unstable();
    let bounds = scope.since.as_ref().map(|since| {
        let first = chain
            .order
            .partition_point(|id| chain.heads.0[id].first.as_str() < since.as_str());
        let end = match &scope.until {
            Some(until) => chain
                .order
                .partition_point(|id| chain.heads.0[id].first.as_str() < until.as_str()),
            None => chain.order.len(),
        };
        let neighbour = |i: usize| {
            chain
                .head_proof(i)
                .map(|(session_id, head)| Neighbour { session_id, head })
        };
        Bounds {
            before: first.checked_sub(1).and_then(neighbour),
            after: neighbour(end),
        }
    });
    if scope.since.is_some() {
        scope.sessions = proven.iter().map(|&i| chain.order[i].clone()).collect();
    }
    let trees = chain.tree_heads();
    let mut checkpoint = Checkpoint::of_head(&chain.database_id, &chain.head).with_trees(&trees);
    if let Some(key) = &options.sign {
        checkpoint = checkpoint.signed(key);
    }
    let extends = options
        .extends
        .iter()
        .filter(|c| c.tree_heads().is_some())
        .map(|earlier| extension(&chain, earlier).map_err(&refuse))
        .collect::<Result<Vec<_>>>()?;

    let proof = |entry: &StoredEntry| EntryProof {
        seq: entry.seq,
        table: entry.table.clone(),
        row_id: entry.row_id.clone(),
        session_id: entry.session_id.clone(),
        committed_at: entry.committed_at.clone(),
        leaf: hex(&entry.leaf),
        proof: chain
            .entries
            .inclusion_proof(entry.seq - 1)
            .unwrap_or_default()
            .iter()
            .map(|h| hex(h))
            .collect(),
    };
    let mut counts = Counts::default();
    let mut bundled = Vec::new();
    let mut range: Option<(String, String)> = None;
    for &position in &proven {
        let Some((id, head)) = chain.head_proof(position) else {
            continue;
        };
        let id = &id;
        let entries = chain.kept.get(id).map_or(&[][..], Vec::as_slice);
        // Each row's latest entry in this session, in row order.
        let mut last_here: BTreeMap<String, u64> = BTreeMap::new();
        for entry in entries {
            last_here.insert(row_key(&entry.table, &entry.row_id), entry.seq);
        }
        let mut session = SessionEvidence {
            id: id.clone(),
            head,
            entries: entries.iter().map(proof).collect(),
            rows: Vec::new(),
            moved: Vec::new(),
            erasures: Vec::new(),
        };
        for (event, entry, listed) in &erasures {
            if listed.iter().any(|key| last_here.contains_key(key)) {
                session.erasures.push(EventEvidence {
                    row: event.clone(),
                    entry: proof(entry),
                });
            }
        }
        for (key, seq) in last_here {
            let Some(latest) = chain.latest.get(&key) else {
                continue;
            };
            if latest.seq > seq && latest.session_id.as_deref() != Some(id) {
                session.moved.push(proof(latest));
                continue;
            }
            match rows.get(&key) {
                Some(Some(row)) => {
                    match row.table.as_str() {
                        "sessions" => {
                            counts.sessions += 1;
                            let at = |c: &str| row.columns.get(c).and_then(|v| v.as_str());
                            if let Some(start) = at("started_at") {
                                let end = at("ended_at").unwrap_or(start);
                                range = Some(match range.take() {
                                    None => (start.to_owned(), end.to_owned()),
                                    Some((a, b)) => {
                                        (a.min(start.to_owned()), b.max(end.to_owned()))
                                    }
                                });
                            }
                        }
                        "steps" => counts.steps += 1,
                        _ => counts.decisions += 1,
                    }
                    session.rows.push(row.clone());
                }
                _ => {
                    let (table, row_id) = key.split_once('\0').unwrap_or((&key, ""));
                    return Err(refuse(format!(
                        "{table} row {row_id} of session {id} is not in the store (pruned, or \
                         deleted behind the audit layer's back); run `reasonkit-audit verify`"
                    )));
                }
            }
        }
        counts.entries +=
            (session.entries.len() + session.moved.len() + session.erasures.len()) as u64;
        bundled.push(session);
    }
    Ok(Bundle {
        evidence: EVIDENCE_FORMAT.to_owned(),
        spec: EVIDENCE_SPEC,
        manifest: Manifest {
            database_id: chain.database_id.clone(),
            tool: format!("reasonkit-audit {}", env!("CARGO_PKG_VERSION")),
            made_at: checkpoint.time().unwrap_or_default().to_owned(),
            made_by: options.made_by.clone().unwrap_or_else(|| {
                format!(
                    "{}@{}",
                    std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
                    crate::store::process::Identity::current().host
                )
            }),
            scope,
            counts,
            time_range: range,
        },
        checkpoint: checkpoint.to_string(),
        extends,
        bounds,
        sessions: bundled,
    })
}

/// The consistency proof from an earlier checkpoint to the chain read, after checking the
/// chain still holds what that checkpoint says.
fn extension(chain: &ReadChain, earlier: &Checkpoint) -> std::result::Result<Extension, String> {
    let size = earlier.size;
    if earlier.database_id() != Some(chain.database_id.as_str()) {
        return Err(format!(
            "checkpoint at size {size} is of another database ({}): give this store's",
            earlier.origin
        ));
    }
    if size > chain.head.size {
        return Err(format!(
            "checkpoint at size {size} is newer than the store's chain ({} entries): the \
             store lost entries since, or it is an older copy; run `reasonkit-audit verify \
             --checkpoint`",
            chain.head.size
        ));
    }
    let held = chain.entries.prefix_root(size);
    if earlier.tree_heads().map(|t| t.entries) != held {
        return Err(format!(
            "the store's chain no longer extends the checkpoint at size {size}: its first \
             {size} entries were rewritten after it was taken. That is evidence of \
             tampering; run `reasonkit-audit verify --checkpoint` to see where"
        ));
    }
    Ok(Extension {
        checkpoint: earlier.to_string(),
        consistency: chain
            .entries
            .consistency_proof(size)
            .unwrap_or_default()
            .iter()
            .map(|h| hex(h))
            .collect(),
    })
}

/// Every chained `erased` event: its row, its latest entry, and the rows it lists
/// (`table\0id`).
type Erasure = (RowRecord, StoredEntry, Vec<String>);

fn read_erasures(conn: &Connection) -> rusqlite::Result<Vec<Erasure>> {
    let mut stmt = conn.prepare(
        "SELECT e.id, e.recorded_at, e.kind, e.detail, c.seq, c.table_name, c.row_id, \
                c.session_id, c.committed_at, c.leaf_hash \
         FROM audit_events e JOIN audit_chain c \
           ON c.table_name = 'audit_events' AND c.row_id = CAST(e.id AS TEXT) \
         WHERE e.kind = 'erased' ORDER BY c.seq",
    )?;
    let mut found: Vec<Erasure> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut columns = serde_json::Map::new();
        for (i, name) in AUDIT_EVENTS.columns.iter().enumerate() {
            columns.insert((*name).to_owned(), cell_json(Cell::from(row.get_ref(i)?)));
        }
        let detail: serde_json::Value = columns
            .get("detail")
            .and_then(|d| d.as_str())
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let listed = detail["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some(row_key(r[0].as_str()?, r[1].as_str()?)))
            .collect();
        let entry = StoredEntry {
            seq: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            table: row.get(5)?,
            row_id: row.get(6)?,
            session_id: row.get(7)?,
            committed_at: row.get(8)?,
            leaf: row.get(9)?,
        };
        let record = RowRecord {
            table: AUDIT_EVENTS.name.to_owned(),
            columns,
        };
        // An event chained twice keeps its latest entry.
        found.retain(|(r, _, _)| r.columns.get("id") != record.columns.get("id"));
        found.push((record, entry, listed));
    }
    Ok(found)
}

pub(crate) fn spec_of(table: &str) -> Option<&'static TableSpec> {
    match table {
        "sessions" => Some(&SESSIONS),
        "steps" => Some(&STEPS),
        "decisions" => Some(&DECISIONS),
        _ => None,
    }
}

/// A row as stored, or `None` when it is gone.
fn read_row(conn: &Connection, spec: &TableSpec, id: &str) -> rusqlite::Result<Option<RowRecord>> {
    use rusqlite::OptionalExtension;
    let mut stmt = conn.prepare_cached(&spec.select("WHERE id = ?1"))?;
    stmt.query_row([id], |row| {
        let mut columns = serde_json::Map::new();
        for (i, name) in spec.columns.iter().enumerate() {
            columns.insert((*name).to_owned(), cell_json(Cell::from(row.get_ref(i)?)));
        }
        Ok(RowRecord {
            table: spec.name.to_owned(),
            columns,
        })
    })
    .optional()
}

/// A stored value as the bundle writes it (see [`RowRecord`]).
pub(crate) fn cell_json(cell: Cell<'_>) -> serde_json::Value {
    use serde_json::{Value, json};
    match cell {
        Cell::Null => Value::Null,
        Cell::Integer(n) => Value::from(n),
        Cell::Real(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None if f > 0.0 => json!({ "real": "inf" }),
            None => json!({ "real": "-inf" }),
        },
        Cell::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::from(text),
            Err(_) => json!({ "text_hex": hex(bytes) }),
        },
        Cell::Blob(bytes) => json!({ "blob": hex(bytes) }),
    }
}

/// The tree heads of the chain at each of `sizes` (checkpoints to check), in one pass over
/// the chain: `None` for a size past its end. The entries tree is built once and each
/// prefix's head read from it; the sessions tree is built at each size.
pub(crate) fn tree_heads_at(
    conn: &Connection,
    sizes: &[u64],
) -> rusqlite::Result<Vec<(u64, Option<TreeHeads>)>> {
    let mut wanted: Vec<u64> = sizes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let last_wanted = wanted.last().copied().unwrap_or(0);
    let mut next = wanted.iter().copied().peekable();
    // (size, sessions, sessions tree head) at each size reached.
    let mut reached = Vec::new();
    let mut heads = Heads::default();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut snapshot = |heads: &Heads, size: u64| {
        let (tree, order) = heads.tree();
        reached.push((size, order.len() as u64, tree.root()));
    };
    while next.peek() == Some(&0) {
        snapshot(&heads, 0);
        next.next();
    }
    let mut stmt = conn.prepare(ENTRIES)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if leaves.len() as u64 >= last_wanted {
            break;
        }
        let entry = stored_entry(row)?;
        leaves.push(entry_hash(&entry));
        heads.count(&entry);
        while next.peek() == Some(&(leaves.len() as u64)) {
            snapshot(&heads, leaves.len() as u64);
            next.next();
        }
    }
    let tree = Tree::new(leaves);
    let mut out: Vec<(u64, Option<TreeHeads>)> = reached
        .into_iter()
        .map(|(size, sessions, heads)| {
            let entries = tree.prefix_root(size);
            (
                size,
                entries.map(|entries| TreeHeads {
                    entries,
                    sessions,
                    heads,
                }),
            )
        })
        .collect();
    out.extend(next.map(|size| (size, None)));
    Ok(out)
}

/// An entry whose session is not its row's: seq, table, row id, the session it names, the
/// session of the row.
pub(crate) type Mislabelled = (u64, String, String, Option<String>, String);

/// Chain entries whose session is not their row's: the latest entry of each session and
/// step row must name the session the row is in (a decision's follows its step, which a
/// join over OTLP may move, so decisions are not held to it). `(seq, table, row id,
/// session named, session of the row)`.
pub(crate) fn mislabelled_entries(conn: &Connection) -> rusqlite::Result<Vec<Mislabelled>> {
    let mut stmt = conn.prepare(
        "WITH latest AS (SELECT table_name, row_id, session_id, max(seq) AS seq \
                         FROM audit_chain WHERE table_name IN ('sessions', 'steps') \
                         GROUP BY table_name, row_id), \
              held AS (SELECT l.*, CASE l.table_name WHEN 'sessions' THEN \
                         (SELECT id FROM sessions WHERE id = l.row_id) \
                         ELSE (SELECT session_id FROM steps WHERE id = l.row_id) END AS actual \
                       FROM latest l) \
         SELECT seq, table_name, row_id, session_id, actual FROM held \
         WHERE actual IS NOT NULL AND session_id IS NOT actual ORDER BY seq",
    )?;
    stmt.query_map([], |r| {
        Ok((
            u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    })?
    .collect()
}
