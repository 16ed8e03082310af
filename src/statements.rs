//! The SQL the writer runs: one INSERT and one UPDATE per table, and the health rows.
//!
//! Every statement goes through `prepare_cached`, so each is compiled once per connection.
//! Values are always bound as parameters; no text from a span ever becomes SQL.

use std::time::SystemTime;

use rusqlite::Transaction;

use crate::health::AuditStats;
use crate::process::Identity;
use crate::record::{Decided, Kind};
use crate::rows::{self, DecisionColumns, Row};

/// Inserts a row as it stands: `running` if still open, final if already closed.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    row: &Row,
    store_inputs: bool,
    identity: &Identity,
) -> rusqlite::Result<()> {
    match row.kind() {
        Kind::Session => {
            let c = rows::session(row, store_inputs);
            tx.prepare_cached(
                "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, input, \
                 status, attributes, pid, host) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute((
                c.id,
                c.started_at,
                c.ended_at,
                c.profile,
                c.input_hash,
                c.input,
                c.status,
                c.attributes,
                identity.pid,
                &identity.host,
            ))?;
        }
        Kind::Step => {
            let c = rows::step(row);
            tx.prepare_cached(
                "INSERT INTO steps (id, session_id, parent_step_id, module, started_at, ended_at, \
                 input_summary, output_summary, confidence, tokens_used, error, attributes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute((
                c.id,
                c.session_id,
                c.parent_step_id,
                c.module,
                c.started_at,
                c.ended_at,
                c.input_summary,
                c.output_summary,
                c.confidence,
                c.tokens_used,
                c.error,
                c.attributes,
            ))?;
        }
        Kind::Decision => insert_decision(tx, rows::decision(row))?,
    }
    Ok(())
}

/// Brings an inserted row up to date once its span has closed.
pub(crate) fn update(tx: &Transaction<'_>, row: &Row, store_inputs: bool) -> rusqlite::Result<()> {
    match row.kind() {
        Kind::Session => {
            let c = rows::session(row, store_inputs);
            tx.prepare_cached(
                "UPDATE sessions SET ended_at = ?2, profile = ?3, input_hash = ?4, input = ?5, \
                 status = ?6, attributes = ?7 WHERE id = ?1",
            )?
            .execute((
                c.id,
                c.ended_at,
                c.profile,
                c.input_hash,
                c.input,
                c.status,
                c.attributes,
            ))?;
        }
        Kind::Step => {
            let c = rows::step(row);
            tx.prepare_cached(
                "UPDATE steps SET ended_at = ?2, module = ?3, input_summary = ?4, \
                 output_summary = ?5, confidence = ?6, tokens_used = ?7, error = ?8, \
                 attributes = ?9 WHERE id = ?1",
            )?
            .execute((
                c.id,
                c.ended_at,
                c.module,
                c.input_summary,
                c.output_summary,
                c.confidence,
                c.tokens_used,
                c.error,
                c.attributes,
            ))?;
        }
        Kind::Decision => {
            let c = rows::decision(row);
            tx.prepare_cached(
                "UPDATE decisions SET decision_type = ?2, options_considered = ?3, \
                 chosen_option = ?4, rationale = ?5, decided_at = ?6, attributes = ?7 \
                 WHERE id = ?1",
            )?
            .execute((
                c.id,
                c.decision_type,
                c.options_considered,
                c.chosen_option,
                c.rationale,
                c.decided_at,
                c.attributes,
            ))?;
        }
    }
    Ok(())
}

/// Inserts the row of a `decision` event.
pub(crate) fn insert_decided(tx: &Transaction<'_>, decided: &Decided) -> rusqlite::Result<()> {
    insert_decision(tx, rows::decided(decided))
}

fn insert_decision(tx: &Transaction<'_>, c: DecisionColumns) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO decisions (id, step_id, decision_type, options_considered, chosen_option, \
         rationale, decided_at, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute((
        c.id,
        c.step_id,
        c.decision_type,
        c.options_considered,
        c.chosen_option,
        c.rationale,
        c.decided_at,
        c.attributes,
    ))?;
    Ok(())
}

/// Marks a session whose recording stopped before it closed.
pub(crate) fn mark_interrupted(tx: &Transaction<'_>, session_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE sessions SET status = 'interrupted' WHERE id = ?1 AND status = 'running'",
    )?
    .execute([session_id])?;
    Ok(())
}

/// One `audit_health` row per counter that grew since `written`.
pub(crate) fn insert_health(
    tx: &Transaction<'_>,
    identity: &Identity,
    written: &AuditStats,
    now: &AuditStats,
    last_error: Option<String>,
) -> rusqlite::Result<()> {
    let at = rows::timestamp(SystemTime::now());
    for ((kind, before), (_, after)) in written.by_kind().into_iter().zip(now.by_kind()) {
        if after > before {
            let detail = (kind == "write_errors")
                .then(|| last_error.clone())
                .flatten();
            tx.prepare_cached(
                "INSERT INTO audit_health (recorded_at, pid, host, kind, count, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute((
                &at,
                identity.pid,
                &identity.host,
                kind,
                i64::try_from(after - before).unwrap_or(i64::MAX),
                detail,
            ))?;
        }
    }
    Ok(())
}
