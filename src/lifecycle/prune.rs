//! Retention: closed sessions older than a cut go, with their steps and decisions, and the
//! chain still verifies.
//!
//! An audit file that only grows ends in a full disk, and retention rules (six months for
//! the EU AI Act's logs, six years for FINRA 4511) say when records may go. A pruning
//! deletes the rows but keeps their chain entries, so the chain and every checkpoint taken
//! before still verify; in the same transaction it appends a chained `pruned` event that
//! commits to exactly the rows it removes (their (table, id) pairs' digest, and the
//! chain's head before it), and lists them in `audit_pruned`, so that `verify` tells them
//! apart from rows deleted behind the trail's back (docs/chain.md, "Pruning"). Running
//! sessions are never pruned.
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
use serde_json::json;

use crate::chain;
use crate::error::{Error, Result};
use crate::store::rows;

/// What to prune: closed sessions that ended (or, interrupted without an end, started)
/// before a cut.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let db = dir.path().join("audit.db");
/// # let (_layer, guard) = reasonkit_audit::AuditLayer::builder().path(&db).build()?;
/// # guard.shutdown()?;
/// use reasonkit_audit::Prune;
/// let cut = std::time::SystemTime::now() - std::time::Duration::from_secs(180 * 86_400);
/// let report = reasonkit_audit::prune(&db, &Prune::before(cut).reason("retention: 180 days"))?;
/// println!("{} sessions pruned", report.sessions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Prune {
    pub(crate) before: String,
    pub(crate) reason: String,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) archive: Option<(String, String)>,
    pub(crate) dry_run: bool,
    vacuum: bool,
}

impl Prune {
    /// Sessions that ended before `cut`.
    pub fn before(cut: SystemTime) -> Self {
        Prune::before_text(rows::timestamp(cut))
    }

    /// The same with the cut as the database's own text, `YYYY-MM-DD HH:MM:SS.ffffff` UTC.
    pub fn before_text(cut: impl Into<String>) -> Self {
        Prune {
            before: cut.into(),
            reason: "pruned".into(),
            only: None,
            archive: None,
            dry_run: false,
            vacuum: false,
        }
    }

    /// Why, as the `pruned` event records it (a retention rule, a ticket).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Only these sessions (still only if closed and older than the cut): those an
    /// archive was written for.
    pub fn only(mut self, sessions: Vec<String>) -> Self {
        self.only = Some(sessions);
        self
    }

    /// The archive the pruned sessions were written to first, and its SHA-256 (hex), for
    /// the `pruned` event to record.
    pub fn archive(mut self, file: impl Into<String>, sha256: impl Into<String>) -> Self {
        self.archive = Some((file.into(), sha256.into()));
        self
    }

    /// Only count what would go; change nothing.
    pub fn dry_run(mut self, dry: bool) -> Self {
        self.dry_run = dry;
        self
    }

    /// After pruning, give the freed pages back to the file system: a full `VACUUM`, then
    /// the search index rebuilt. It holds the write lock for as long as it runs, so writers
    /// wait (and retry) meanwhile.
    pub fn vacuum(mut self, vacuum: bool) -> Self {
        self.vacuum = vacuum;
        self
    }
}

/// What a pruning removed (or, dry, would remove).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PruneReport {
    /// The sessions, in the order they started.
    pub session_ids: Vec<String>,
    /// How many sessions, steps and decisions.
    pub sessions: u64,
    /// Steps of those sessions.
    pub steps: u64,
    /// Decisions of those steps.
    pub decisions: u64,
    /// The `pruned` event's chain entry (`None` when nothing went, or dry).
    pub event_seq: Option<u64>,
    /// The file's size before and after (with its WAL), in bytes.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
}

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
    let (mut report, mut pruned) = PruneReport::counting(&sessions, &steps, &decisions);
    if prune.dry_run || sessions.is_empty() {
        report.session_ids = sessions;
        tx.rollback()?;
        return Ok(report);
    }
    let head = chain::head(&tx)?;
    let detail = event_detail(prune, &report, &mut pruned, &head);
    let at = rows::timestamp(SystemTime::now());
    let (event, seq) = chain::append_event(&tx, "pruned", &detail, &at)?;
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

impl PruneReport {
    /// The counts of what a pruning removes, and its (table, id) pairs.
    pub(crate) fn counting(
        sessions: &[String],
        steps: &[String],
        decisions: &[String],
    ) -> (PruneReport, Vec<(String, String)>) {
        let mut pruned = Vec::with_capacity(sessions.len() + steps.len() + decisions.len());
        for (table, list) in [
            ("sessions", sessions),
            ("steps", steps),
            ("decisions", decisions),
        ] {
            pruned.extend(list.iter().map(|id| (table.to_owned(), id.clone())));
        }
        let report = PruneReport {
            sessions: sessions.len() as u64,
            steps: steps.len() as u64,
            decisions: decisions.len() as u64,
            ..PruneReport::default()
        };
        (report, pruned)
    }
}

/// The `pruned` event's detail (docs/chain.md, "Pruning"); sorts `pruned`.
pub(crate) fn event_detail(
    prune: &Prune,
    report: &PruneReport,
    pruned: &mut [(String, String)],
    head: &chain::ChainHead,
) -> String {
    let digest = chain::hex(&chain::pruned_digest(pruned));
    json!({
        "before": prune.before,
        "reason": prune.reason,
        "sessions": report.sessions,
        "steps": report.steps,
        "decisions": report.decisions,
        "rows": pruned.len(),
        "rows_digest": digest,
        "head": {"size": head.size, "hash": chain::hex(&head.hash)},
        "archive": prune.archive.as_ref().map(|(file, sha256)| json!({"file": file, "sha256": sha256})),
    })
    .to_string()
}
