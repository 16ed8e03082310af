//! Retention in the PostgreSQL store: [`crate::prune()`]'s pruning, in one transaction of
//! set-based statements, under the chain lock so that the `pruned` event records the head
//! it follows.

use super::connection::Writing;
use super::statements::{PgResult, append_event, lock_chain};
use crate::lifecycle::prune::{Prune, PrunePlan, PruneReport, event_detail, plan};

/// Prunes closed sessions older than the cut (see [`crate::prune()`]).
pub(crate) fn prune_in(connection: &mut Writing, prune: &Prune) -> PgResult<PruneReport> {
    let mut tx = connection.begin()?;
    let only: Option<&[String]> = prune.only.as_deref();
    let sessions: Vec<String> = tx
        .query(
            "SELECT id FROM sessions WHERE status <> 'running' \
             AND coalesce(ended_at, started_at) < ($1 || '+00')::timestamptz \
             AND ($2::text[] IS NULL OR id = ANY($2)) ORDER BY started_at, id FOR UPDATE",
            &[&prune.before, &only],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<PgResult<_>>()?;
    let ids = |tx: &mut super::connection::Tx<'_>, sql: &str| -> PgResult<Vec<String>> {
        tx.query(sql, &[&sessions])?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    };
    let steps = ids(&mut tx, "SELECT id FROM steps WHERE session_id = ANY($1)")?;
    let decisions = ids(
        &mut tx,
        "SELECT id FROM decisions WHERE session_id = ANY($1)",
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
    let head = lock_chain(&mut tx)?;
    let detail = event_detail(prune, &report, &mut pruned, &head);
    let (event, seq) = append_event(&mut tx, "pruned", &detail)?;
    report.event_seq = seq;
    let (tables, row_ids): (Vec<String>, Vec<String>) = pruned.into_iter().unzip();
    tx.execute(
        "INSERT INTO audit_pruned (table_name, row_id, event_id) \
         SELECT t, r, $3 FROM unnest($1::text[], $2::text[]) AS u(t, r)",
        &[&tables, &row_ids, &event],
    )?;
    super::search::forget_sessions(&mut tx, &sessions)?;
    tx.execute(
        "DELETE FROM decisions WHERE session_id = ANY($1)",
        &[&sessions],
    )?;
    tx.execute("DELETE FROM steps WHERE session_id = ANY($1)", &[&sessions])?;
    tx.execute("DELETE FROM sessions WHERE id = ANY($1)", &[&sessions])?;
    tx.commit()?;
    report.session_ids = sessions;
    Ok(report)
}
