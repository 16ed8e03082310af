//! Erasure in a SQLite file: [`erase`], in one IMMEDIATE transaction.
//!
//! The rows keep their ids, times and tree; their content gives way to tombstones after a
//! chained `erased` event (what and why: `lifecycle/erase.rs`).
//!
//! The content is also gone from the file's bytes: the erasure runs with SQLite's
//! `secure_delete` on (freed space is zeroed), merges the search index's segments so that
//! no deleted term remains in them, and truncates the WAL. While another process reads the
//! file, the WAL cannot be truncated at once: its old frames go at the next checkpoint that
//! finds no reader. Copies made before (backups, exports, archives) are not reached: erase
//! them by their own means.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::json;

use crate::chain::{self, CHAINED_TABLES, Cell, Leaf, MAX_COLUMNS, TableSpec};
use crate::error::{Error, Result};
use crate::lifecycle::erase::{Erase, EraseReport, NO_REASON, Selector, closed_sessions};
use crate::store::rows;
use crate::store::sqlite::chain as file_chain;

/// Erases the sessions `erase` selects from the audit database at `path` (see [`Erase`]).
///
/// # Errors
/// [`Error::Erase`] when no closed session matches, a matching session is still running,
/// no reason is given, or a row to erase no longer matches its chained version (erasing
/// it would hide that: run `verify`); nothing is then changed. The errors of opening the
/// database for writing.
pub fn erase(path: &Path, erase: &Erase) -> Result<EraseReport> {
    let refuse = |message: String| Error::Erase {
        path: path.into(),
        message,
    };
    if erase.reason.trim().is_empty() {
        return Err(refuse(NO_REASON.into()));
    }
    let conn = crate::store::sqlite::open::open_existing_for_writing(path)?;
    let fail = |step: &str, source| Error::Setup {
        path: path.into(),
        step: step.into(),
        source,
    };
    conn.pragma_update(None, "secure_delete", true)
        .map_err(|e| fail("turning secure_delete on", e))?;
    let report = match erase_in(&conn, erase).map_err(|e| fail("erasing", e))? {
        Ok(report) => report,
        Err(message) => return Err(refuse(message)),
    };
    // No erased term may stay in the search index's segments, nor old pages in the WAL.
    for indexed in &crate::store::sqlite::search::INDEXED {
        conn.execute_batch(&format!(
            "INSERT INTO {fts} ({fts}) VALUES ('optimize')",
            fts = indexed.fts
        ))
        .map_err(|e| fail("merging the search index", e))?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| fail("checkpointing the WAL", e))?;
    Ok(report)
}

/// The content columns' tombstones, as an UPDATE's SET list.
fn tombstone_set(table: &TableSpec) -> String {
    table
        .content
        .iter()
        .map(|&i| {
            let value = match table.tombstone(i) {
                Cell::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
                _ => "NULL".to_owned(),
            };
            format!("{} = {value}", table.columns[i])
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Erases in one IMMEDIATE transaction; `Ok(Err(why))` when it refuses (nothing changed).
pub(crate) fn erase_in(
    conn: &Connection,
    erase: &Erase,
) -> rusqlite::Result<std::result::Result<EraseReport, String>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let matching: Vec<(String, String)> = match &erase.selector {
        Selector::Session(id) => tx
            .prepare("SELECT id, status FROM sessions WHERE id = ?1")?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?,
        Selector::Attribute { name, value } => {
            let path = format!("$.\"{}\"", name.replace('"', "\\\""));
            tx.prepare(
                "SELECT id, status FROM sessions WHERE json_valid(attributes) \
                 AND CAST(json_extract(attributes, ?1) AS TEXT) = ?2 ORDER BY started_at, id",
            )?
            .query_map((path, value), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
        }
    };
    let sessions = match closed_sessions(matching) {
        Ok(sessions) => sessions,
        Err(why) => return Ok(Err(why)),
    };
    let mut rows: Vec<(&'static TableSpec, String)> = Vec::new();
    for id in &sessions {
        rows.push((&chain::SESSIONS, id.clone()));
        let steps: Vec<String> = tx
            .prepare_cached("SELECT id FROM steps WHERE session_id = ?1 ORDER BY rowid")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for step in &steps {
            rows.push((&chain::STEPS, step.clone()));
            let decisions: Vec<String> = tx
                .prepare_cached("SELECT id FROM decisions WHERE step_id = ?1 ORDER BY rowid")?
                .query_map([step], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            rows.extend(decisions.into_iter().map(|d| (&chain::DECISIONS, d)));
        }
    }

    let at = rows::timestamp(SystemTime::now());
    let mut reseal = Vec::new();
    let mut listed = Vec::with_capacity(rows.len());
    for (table, id) in &rows {
        let mut stmt = tx.prepare_cached(&table.select("WHERE id = ?1"))?;
        let found = stmt
            .query_row([id], |row| {
                let mut all = [Cell::Null; MAX_COLUMNS];
                let width = table.columns.len();
                let mut owned: Vec<rusqlite::types::Value> = Vec::with_capacity(width);
                for i in 0..width {
                    owned.push(row.get(i)?);
                }
                for (slot, value) in all.iter_mut().zip(&owned) {
                    *slot = Cell::from(rusqlite::types::ValueRef::from(value));
                }
                let cells = &all[..width];
                Ok((
                    chain::split_leaf(table, cells),
                    chain::leaf(table.name, cells.iter().copied()),
                    chain::content_digest(table, cells),
                    Leaf::of(table, id.clone(), cells.iter().copied()),
                ))
            })
            .optional()?;
        let Some((split, whole, content, leaf)) = found else {
            continue;
        };
        let latest: Option<Vec<u8>> = tx
            .prepare_cached(
                "SELECT leaf_hash FROM audit_chain WHERE table_name = ?1 AND row_id = ?2 \
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row((table.name, id), |r| r.get(0))
            .optional()?;
        match latest {
            Some(l) if l == split => {}
            Some(l) if l == whole => reseal.push(leaf),
            _ => {
                return Ok(Err(format!(
                    "{} row {id} does not match its chained version; erasing it would hide \
                     that (run `reasonkit-audit verify`; nothing erased)",
                    table.name
                )));
            }
        }
        listed.push(json!([table.name, id, chain::hex(&content)]));
    }
    let mut report = EraseReport {
        sessions: sessions.len() as u64,
        rows: listed.len() as u64,
        resealed: reseal.len() as u64,
        ..EraseReport::default()
    };
    file_chain::append(&tx, &reseal, &at)?;
    let detail = json!({
        "reason": erase.reason,
        "selector": erase.selector_text(),
        "sessions": sessions.len(),
        "rows": listed,
    })
    .to_string();
    report.event_seq = file_chain::append_event(&tx, "erased", &detail, &at)?.1;
    for table in CHAINED_TABLES.iter().filter(|t| !t.content.is_empty()) {
        let mut update = tx.prepare(&format!(
            "UPDATE {} SET {} WHERE id = ?1",
            table.name,
            tombstone_set(table)
        ))?;
        for (_, id) in rows.iter().filter(|(t, _)| t.name == table.name) {
            update.execute([id])?;
        }
    }
    tx.commit()?;
    report.session_ids = sessions;
    Ok(Ok(report))
}
