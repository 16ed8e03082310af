//! The full-text search index, kept by the writer in batches instead of by a trigger on
//! every insert.
//!
//! An FTS5 insert per row with text made every such write about five times slower, and
//! under the block policy the instrumented application waited for it. Now the writer
//! indexes the rows past each table's high-water mark (`search_index_state`) when it is
//! idle, a chunk per transaction so that new records never wait long, and also after a
//! commit when many rows are waiting, so the unindexed tail stays short under sustained
//! load. Rows already indexed that change later (an open step closing with its summary)
//! are kept in step by the update triggers of migration 0006. After a crash the tail is
//! simply indexed by the next writer. `reasonkit-audit search` searches the tail too, so a
//! row is found as soon as it is committed, whatever the index has caught up with.

use rusqlite::{Connection, TransactionBehavior};

/// One indexed table: its name, its FTS5 table, and the columns indexed.
pub(crate) struct Indexed {
    pub(crate) table: &'static str,
    pub(crate) fts: &'static str,
    pub(crate) columns: &'static str,
}

/// The two indexed tables, as migration 0004 made their FTS5 tables.
pub(crate) const INDEXED: [Indexed; 2] = [
    Indexed {
        table: "steps",
        fts: "steps_fts",
        columns: "input_summary, output_summary, error",
    },
    Indexed {
        table: "decisions",
        fts: "decisions_fts",
        columns: "options_considered, chosen_option, rationale",
    },
];

/// How many rows of each table one indexing transaction covers.
pub(crate) const CHUNK_ROWS: i64 = 4_096;

/// Past this many rows waiting, the writer indexes a chunk after a commit even if it is
/// not idle, so that searching the unindexed tail stays cheap under sustained load.
pub(crate) const MAX_BACKLOG: u64 = 65_536;

/// Rebuilds both indexes from their tables and sets the marks past every row: after a
/// full `VACUUM`, which may give the rows new rowids.
pub(crate) fn rebuild(conn: &Connection) -> rusqlite::Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    for indexed in &INDEXED {
        tx.execute_batch(&format!(
            "INSERT INTO {fts} ({fts}) VALUES ('rebuild'); \
             UPDATE search_index_state SET indexed_rowid = \
             (SELECT coalesce(max(rowid), 0) FROM {table}) WHERE name = '{table}';",
            fts = indexed.fts,
            table = indexed.table
        ))?;
    }
    tx.commit()
}

/// Indexes up to [`CHUNK_ROWS`] rows of each table past its mark, in one transaction.
/// Returns whether rows remain past the marks.
pub(crate) fn index_chunk(conn: &Connection) -> rusqlite::Result<bool> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut more = false;
    for indexed in &INDEXED {
        let mark: i64 = tx.query_row(
            "SELECT indexed_rowid FROM search_index_state WHERE name = ?1",
            [indexed.table],
            |r| r.get(0),
        )?;
        // The last rowid of this chunk, and whether rows remain past it.
        let upto: Option<i64> = tx.query_row(
            &format!(
                "SELECT max(rowid) FROM (SELECT rowid FROM {} WHERE rowid > ?1 \
                 ORDER BY rowid LIMIT ?2)",
                indexed.table
            ),
            (mark, CHUNK_ROWS),
            |r| r.get(0),
        )?;
        let Some(upto) = upto else { continue };
        more |= tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE rowid > ?1)",
                indexed.table
            ),
            [upto],
            |r| r.get::<_, bool>(0),
        )?;
        // Every row, text or not: the index is then exactly what FTS5 rebuilds from the rows.
        tx.prepare_cached(&format!(
            "INSERT INTO {fts} (rowid, {cols}) SELECT rowid, {cols} FROM {table} \
             WHERE rowid > ?1 AND rowid <= ?2",
            fts = indexed.fts,
            cols = indexed.columns,
            table = indexed.table,
        ))?
        .execute((mark, upto))?;
        tx.prepare_cached("UPDATE search_index_state SET indexed_rowid = ?2 WHERE name = ?1")?
            .execute((indexed.table, upto))?;
    }
    tx.commit()?;
    Ok(more)
}
