//! Retention in a SQLite file: [`prune`] (the `prune` command, and the layer's own
//! retention through the writer's connection), and the space it gives back.
//!
//! Space: the pages a pruning frees go on the file's free list, and the writer fills them
//! before it grows the file again, so a trail pruned on a schedule stops growing at the
//! size of what it keeps. [`Prune::vacuum`] gives them back to the file system as well,
//! with a full `VACUUM` (and a rebuild of the search index, whose rowids it may renumber).
//! `auto_vacuum = INCREMENTAL` would give them back at every pruning, but it cost the
//! writer 5% of its rows per second (the pointer-map pages it keeps on every write), so
//! files are not created with it; one that has it (set by its owner) is vacuumed
//! incrementally after each pruning.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};
use crate::lifecycle::prune::{Prune, PrunePlan, PruneReport, event_detail, plan};
use crate::store::rows;
use crate::store::sqlite::chain as file_chain;

/// Prunes the audit database at `path` (see [`Prune`]); safe while layers write it (one
/// write transaction, waiting for theirs).
///
/// # Errors
/// [`Error::Setup`] naming the path when the database cannot be opened for writing or the
/// pruning fails (nothing is then changed), and the errors of opening it.
pub fn prune(path: &Path, prune: &Prune) -> Result<PruneReport> {
    let conn = crate::store::sqlite::open::open_existing_for_writing(path)?;
    let fail = |step: &str, source| Error::Setup {
        path: path.into(),
        step: step.into(),
        source,
    };
    let bytes_before = file_bytes(path);
    let mut report = prune_in(&conn, prune).map_err(|e| fail("pruning", e))?;
    if report.sessions > 0 && !prune.dry_run {
        reclaim(&conn, prune.vacuum, true).map_err(|e| fail("giving space back", e))?;
    }
    report.bytes_before = bytes_before;
    report.bytes_after = file_bytes(path);
    Ok(report)
}

/// The database and its WAL, in bytes.
fn file_bytes(path: &Path) -> u64 {
    let mut wal = PathBuf::from(path);
    wal.as_mut_os_string().push("-wal");
    [path.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Gives freed pages back: an incremental vacuum where the file has it on, a full one
/// (with the search index rebuilt) when asked; then, with `checkpoint`, the WAL is folded
/// in and truncated so that the file's size shows it.
pub(crate) fn reclaim(conn: &Connection, full: bool, checkpoint: bool) -> rusqlite::Result<()> {
    if full {
        conn.execute_batch("VACUUM")?;
        crate::store::sqlite::search::rebuild(conn)?;
    } else {
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if mode == 2 {
            // Each step of the pragma frees one page: step it to the end.
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
    }
    if checkpoint {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// Prunes in one IMMEDIATE transaction on `conn` (the writer's connection, for the
/// layer's retention, or a command's).
pub(crate) fn prune_in(conn: &Connection, prune: &Prune) -> rusqlite::Result<PruneReport> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS prune_sessions (id TEXT PRIMARY KEY); \
         DELETE FROM temp.prune_sessions;",
    )?;
    let eligible = "status != 'running' AND coalesce(ended_at, started_at) < ?1";
    match &prune.only {
        None => {
            tx.execute(
                &format!(
                    "INSERT INTO temp.prune_sessions SELECT id FROM sessions WHERE {eligible}"
                ),
                [&prune.before],
            )?;
        }
        Some(ids) => {
            let mut insert = tx.prepare(&format!(
                "INSERT OR IGNORE INTO temp.prune_sessions \
                 SELECT id FROM sessions WHERE id = ?2 AND {eligible}"
            ))?;
            for id in ids {
                insert.execute((&prune.before, id))?;
            }
        }
    }
    let ids = |sql: &str| -> rusqlite::Result<Vec<String>> {
        tx.prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()
    };
    let sessions = ids(
        "SELECT s.id FROM sessions s JOIN temp.prune_sessions p ON p.id = s.id \
         ORDER BY s.started_at, s.id",
    )?;
    let steps =
        ids("SELECT st.id FROM steps st JOIN temp.prune_sessions p ON p.id = st.session_id")?;
    let decisions = ids(
        "SELECT d.id FROM decisions d JOIN steps st ON st.id = d.step_id \
         JOIN temp.prune_sessions p ON p.id = st.session_id",
    )?;
    let PrunePlan {
        mut report,
        mut pruned,
        sessions,
    } = match plan(prune, sessions, &steps, &decisions) {
        Ok(to_write) => to_write,
        Err(report) => {
            tx.rollback()?;
            return Ok(report);
        }
    };
    let head = file_chain::head(&tx)?;
    let detail = event_detail(prune, &report, &mut pruned, &head);
    let at = rows::timestamp(SystemTime::now());
    let (event, seq) = file_chain::append_event(&tx, "pruned", &detail, &at)?;
    report.event_seq = seq;
    {
        let mut list = tx.prepare(
            "INSERT INTO audit_pruned (table_name, row_id, event_id) VALUES (?1, ?2, ?3)",
        )?;
        for (table, id) in &pruned {
            list.execute((table, id, event))?;
        }
    }
    tx.execute_batch(
        "DELETE FROM decisions WHERE step_id IN (SELECT st.id FROM steps st \
             JOIN temp.prune_sessions p ON p.id = st.session_id); \
         DELETE FROM steps WHERE session_id IN (SELECT id FROM temp.prune_sessions); \
         DELETE FROM sessions WHERE id IN (SELECT id FROM temp.prune_sessions); \
         DELETE FROM temp.prune_sessions;",
    )?;
    tx.commit()?;
    report.session_ids = sessions;
    Ok(report)
}
