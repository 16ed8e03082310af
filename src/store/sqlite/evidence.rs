//! Evidence bundles from a SQLite file: the chain, the rows and the erasures read in one
//! read transaction, handed to `chain/evidence/` to prove and assemble; the tree heads of
//! checkpoints; and what `verify` checks of the entries' sessions.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use crate::chain::checkpoint::TreeHeads;
use crate::chain::evidence::build::{
    BuildOptions, ChainReading, Erasure, HeadsAt, ReadChain, assemble, erasure, normalised,
};
use crate::chain::evidence::rows::{cell_json, spec_of};
use crate::chain::evidence::{Bundle, RowRecord, Scope, StoredEntry};
use crate::chain::verify::Mislabelled;
use crate::chain::{AUDIT_EVENTS, Cell, ChainHead, TableSpec};
use crate::error::{Error, Result};
use crate::store::sqlite::chain as file_chain;

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
fn read_chain(conn: &Connection, scope: &Scope) -> rusqlite::Result<ReadChain> {
    let database_id = file_chain::database_id(conn)?.unwrap_or_default();
    let head = file_chain::head(conn)?;
    let mut reading = ChainReading::new(scope);
    let mut stmt = conn.prepare(ENTRIES)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        reading.push(stored_entry(row)?).map_err(|seq| {
            rusqlite::Error::IntegralValueOutOfRange(0, i64::try_from(seq).unwrap_or(i64::MAX))
        })?;
    }
    Ok(reading.finish(database_id, head))
}

/// The tree heads of the chain of the store at `path`, at its current head, for a
/// checkpoint (`reasonkit-audit checkpoint`).
///
/// # Errors
/// The store cannot be read, or its chain has a gap (`verify` says where).
pub fn tree_heads(path: &Path) -> Result<(String, ChainHead, TreeHeads)> {
    let conn = crate::store::sqlite::open::open_read_only(path)?;
    in_read_transaction(&conn, path, |conn| {
        let database_id = file_chain::database_id(conn)?.unwrap_or_default();
        let head = file_chain::head(conn)?;
        let trees = tree_heads_at(conn, &[head.size])?
            .into_iter()
            .find_map(|(_, trees)| trees)
            .ok_or(rusqlite::Error::IntegralValueOutOfRange(
                0,
                i64::try_from(head.size).unwrap_or(i64::MAX),
            ))?;
        Ok((database_id, head, trees))
    })
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
    let refuse = |message: String| Error::Evidence {
        store: path.display().to_string(),
        message,
    };
    let scope = normalised(scope).map_err(refuse)?;
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
    let mut options = options.clone();
    options
        .made_by
        .get_or_insert_with(crate::store::process::user_at_host);
    assemble(&chain, &rows, &erasures, &scope, &options).map_err(refuse)
}

/// Every chained `erased` event, with its latest entry.
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
        let record = RowRecord {
            table: AUDIT_EVENTS.name.to_owned(),
            columns,
        };
        let entry = StoredEntry {
            seq: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
            table: row.get(5)?,
            row_id: row.get(6)?,
            session_id: row.get(7)?,
            committed_at: row.get(8)?,
            leaf: row.get(9)?,
        };
        // An event chained twice keeps its latest entry.
        found.retain(|(r, _, _)| r.columns.get("id") != record.columns.get("id"));
        found.push(erasure(record, entry));
    }
    Ok(found)
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

/// The tree heads of the chain at each of `sizes` (checkpoints to check), in one pass over
/// the chain: `None` for a size past its end. The entries tree is built once and each
/// prefix's head read from it; the sessions tree is built at each size.
pub(crate) fn tree_heads_at(
    conn: &Connection,
    sizes: &[u64],
) -> rusqlite::Result<Vec<(u64, Option<TreeHeads>)>> {
    let mut at = HeadsAt::new(sizes);
    let mut stmt = conn.prepare(ENTRIES)?;
    let mut rows = stmt.query([])?;
    while at.wants_more() {
        let Some(row) = rows.next()? else {
            break;
        };
        at.push(&stored_entry(row)?);
    }
    Ok(at.finish())
}

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
