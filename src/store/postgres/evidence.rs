//! Evidence bundles from a PostgreSQL store: the chain, the rows and the erasures read in
//! one REPEATABLE READ snapshot, handed to `chain/evidence/` to prove and assemble, as
//! `store/sqlite/evidence.rs` does for a file. Rows are read through the same image lists
//! the writer hashes (`images.rs`), so a bundle's rows are exactly what was chained; one
//! from a store that imported SQLite files proves their rows like any other.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::fallible_iterator::FallibleIterator;

use super::images;
use super::target::message;
use crate::chain::checkpoint::TreeHeads;
use crate::chain::evidence::build::{
    BuildOptions, ChainReading, Erasure, HeadsAt, ReadChain, assemble, erasure, normalised,
};
use crate::chain::evidence::rows::{cell_json, spec_of};
use crate::chain::evidence::{Bundle, RowRecord, Scope, StoredEntry};
use crate::chain::verify::Mislabelled;
use crate::chain::{ChainHead, TableSpec};
use crate::error::{Error, Result};
use crate::store::sql::pg_utc;

/// Every chain entry in seq order, its time in the stores' text form.
const ENTRIES: &str = concat!(
    "SELECT seq, table_name, row_id, session_id, ",
    pg_utc!("committed_at"),
    ", leaf_hash FROM audit_chain ORDER BY seq"
);

fn stored_entry(row: &postgres::Row) -> std::result::Result<StoredEntry, postgres::Error> {
    Ok(StoredEntry {
        seq: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
        table: row.try_get(1)?,
        row_id: row.try_get(2)?,
        session_id: row.try_get(3)?,
        committed_at: row.try_get(4)?,
        leaf: row.try_get(5)?,
    })
}

/// Makes the evidence bundle of what `scope` asks for from the PostgreSQL store
/// `connection` names (a URL or key=value string, completed from the PG* variables).
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached or read; [`Error::Evidence`] for
/// what [`crate::evidence::build`] refuses.
pub fn build(connection: &str, scope: &Scope, options: &BuildOptions) -> Result<Bundle> {
    let (target, mut client) = super::connected(connection)?;
    let store = target.to_string();
    let refuse = |message: String| Error::Evidence {
        store: store.clone(),
        message,
    };
    let scope = normalised(scope).map_err(refuse)?;
    let fail = |what: &str, e: postgres::Error| Error::Postgres {
        message: format!(
            "cannot make evidence from PostgreSQL {store}: {what}: {}",
            message(&e)
        ),
    };
    let mut tx = super::snapshot(&mut client, &store)?;
    let chain = match read_chain(&mut tx, &scope).map_err(|e| fail("reading the chain", e))? {
        Ok(chain) => chain,
        Err(seq) => {
            return Err(refuse(format!(
                "its chain is not dense at seq {seq}; run `reasonkit-audit verify` to see why"
            )));
        }
    };
    let mut rows = HashMap::new();
    for key in chain.latest.keys() {
        let Some((table, id)) = key.split_once('\0') else {
            continue;
        };
        if let Some(spec) = spec_of(table) {
            let row = read_row(&mut tx, spec, id).map_err(|e| fail("reading a row", e))?;
            rows.insert(key.clone(), row);
        }
    }
    let erasures = read_erasures(&mut tx).map_err(|e| fail("reading audit_events", e))?;
    let mut options = options.clone();
    options
        .made_by
        .get_or_insert_with(crate::store::process::user_at_host);
    assemble(&chain, &rows, &erasures, &scope, &options).map_err(refuse)
}

/// The chain read whole (`Err(seq)` where it is not dense).
fn read_chain(
    tx: &mut Transaction<'_>,
    scope: &Scope,
) -> std::result::Result<std::result::Result<ReadChain, u64>, postgres::Error> {
    let database_id: String = tx
        .query_opt(
            "SELECT value FROM audit_meta WHERE key = 'database_id'",
            &[],
        )?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or_default();
    let head = tx.query_opt(
        "SELECT seq, chain_hash FROM audit_chain ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let head = match head {
        Some(row) => ChainHead {
            size: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
            hash: row.try_get::<_, Vec<u8>>(1)?.try_into().unwrap_or([0; 32]),
        },
        None => ChainHead {
            size: 0,
            hash: crate::chain::genesis(&database_id),
        },
    };
    let mut reading = ChainReading::new(scope);
    let mut rows = tx.query_raw(ENTRIES, std::iter::empty::<i64>())?;
    while let Some(row) = rows.next()? {
        if let Err(seq) = reading.push(stored_entry(&row)?) {
            return Ok(Err(seq));
        }
    }
    Ok(Ok(reading.finish(database_id, head)))
}

fn image_of(spec: &TableSpec) -> &'static str {
    images::CHAINED
        .iter()
        .find(|(table, _)| table.name == spec.name)
        .map_or("", |(_, image)| image)
}

/// A row through its image list, or `None` when it is gone.
fn read_row(
    tx: &mut Transaction<'_>,
    spec: &TableSpec,
    id: &str,
) -> std::result::Result<Option<RowRecord>, postgres::Error> {
    let sql = format!(
        "SELECT {} FROM {} t WHERE t.id = $1 LIMIT 1",
        image_of(spec),
        spec.name
    );
    Ok(tx.query_opt(&sql, &[&id])?.map(|row| record(spec, &row)))
}

fn record(spec: &TableSpec, row: &postgres::Row) -> RowRecord {
    let cells = images::cells(row);
    let columns = spec
        .columns
        .iter()
        .zip(cells)
        .map(|(name, cell)| ((*name).to_owned(), cell_json(cell)))
        .collect();
    RowRecord {
        table: spec.name.to_owned(),
        columns,
    }
}

/// Every chained `erased` event, with its latest entry.
fn read_erasures(tx: &mut Transaction<'_>) -> std::result::Result<Vec<Erasure>, postgres::Error> {
    let sql = format!(
        "SELECT {}, c.seq, c.table_name, c.row_id, c.session_id, {}, c.leaf_hash \
         FROM audit_events t JOIN audit_chain c \
           ON c.table_name = 'audit_events' AND c.row_id = t.id::text \
         WHERE t.kind = 'erased' ORDER BY c.seq",
        images::AUDIT_EVENTS,
        pg_utc!("c.committed_at")
    );
    let mut found: Vec<Erasure> = Vec::new();
    for row in tx.query(&sql, &[])? {
        let width = crate::chain::AUDIT_EVENTS.columns.len();
        let cells = images::cells(&row);
        let columns = crate::chain::AUDIT_EVENTS
            .columns
            .iter()
            .zip(cells.into_iter().take(width))
            .map(|(name, cell)| ((*name).to_owned(), cell_json(cell)))
            .collect();
        let record = RowRecord {
            table: crate::chain::AUDIT_EVENTS.name.to_owned(),
            columns,
        };
        let entry = StoredEntry {
            seq: u64::try_from(row.try_get::<_, i64>(width)?).unwrap_or(0),
            table: row.try_get(width + 1)?,
            row_id: row.try_get(width + 2)?,
            session_id: row.try_get(width + 3)?,
            committed_at: row.try_get(width + 4)?,
            leaf: row.try_get(width + 5)?,
        };
        found.retain(|(r, _, _)| r.columns.get("id") != record.columns.get("id"));
        found.push(erasure(record, entry));
    }
    Ok(found)
}

/// The tree heads of the store's chain at each of `sizes`, in one pass (for `verify`).
pub(crate) fn tree_heads_at(
    tx: &mut Transaction<'_>,
    sizes: &[u64],
) -> std::result::Result<Vec<(u64, Option<TreeHeads>)>, postgres::Error> {
    let mut at = HeadsAt::new(sizes);
    let mut rows = tx.query_raw(ENTRIES, std::iter::empty::<i64>())?;
    while at.wants_more() {
        let Some(row) = rows.next()? else {
            break;
        };
        at.push(&stored_entry(&row)?);
    }
    Ok(at.finish())
}

/// Entries whose session is not their row's (see the SQLite store's twin): `(seq, table,
/// row id, session named, session of the row)`.
pub(crate) fn mislabelled_entries(
    tx: &mut Transaction<'_>,
) -> std::result::Result<Vec<Mislabelled>, postgres::Error> {
    tx.query(
        "WITH latest AS (SELECT DISTINCT ON (table_name, row_id) table_name, row_id, \
                                    session_id, seq FROM audit_chain \
                             WHERE table_name IN ('sessions', 'steps') \
                             ORDER BY table_name, row_id, seq DESC), \
                  held AS (SELECT l.*, CASE l.table_name WHEN 'sessions' THEN \
                             (SELECT id FROM sessions WHERE id = l.row_id) \
                             ELSE (SELECT session_id FROM steps WHERE id = l.row_id LIMIT 1) \
                           END AS actual FROM latest l) \
             SELECT seq, table_name, row_id, session_id, actual FROM held \
             WHERE actual IS NOT NULL AND session_id IS DISTINCT FROM actual ORDER BY seq",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok((
            u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        ))
    })
    .collect()
}
