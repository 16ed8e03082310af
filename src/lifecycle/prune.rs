//! Retention: closed sessions older than a cut go, with their steps and decisions, and the
//! chain still verifies — what a pruning asks ([`Prune`]), what it did ([`PruneReport`]),
//! and what its chained `pruned` event commits to ([`event_detail`]), once for both stores.
//!
//! An audit file that only grows ends in a full disk, and retention rules (six months for
//! the EU AI Act's logs, six years for FINRA 4511) say when records may go. A pruning
//! deletes the rows but keeps their chain entries, so the chain and every checkpoint taken
//! before still verify; in the same transaction it appends a chained `pruned` event that
//! commits to exactly the rows it removes (their (table, id) pairs' digest, and the
//! chain's head before it), and lists them in `audit_pruned`, so that `verify` tells them
//! apart from rows deleted behind the trail's back (docs/chain.md, "Pruning"). Running
//! sessions are never pruned. Each store prunes in its own file:
//! `store/sqlite/prune.rs` (and the space a file gives back), `store/postgres/prune.rs`.

use std::time::SystemTime;

use serde_json::json;

use crate::chain;

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
    pub(crate) vacuum: bool,
}

impl Prune {
    /// Sessions that ended before `cut`.
    pub fn before(cut: SystemTime) -> Self {
        Prune::before_text(crate::record::timestamp(cut))
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

/// What a store's pruning writes, once it has selected the rows.
pub(crate) struct PrunePlan {
    /// The counts so far; the store adds the event's entry and the session ids.
    pub(crate) report: PruneReport,
    /// The (table, id) pairs to list in `audit_pruned` and delete.
    pub(crate) pruned: Vec<(String, String)>,
    /// The sessions to delete.
    pub(crate) sessions: Vec<String>,
}

/// What a pruning of these rows writes: `Err(report)` when it writes nothing (a dry run, or
/// no session selected), the report then listing what it would prune.
pub(crate) fn plan(
    prune: &Prune,
    sessions: Vec<String>,
    steps: &[String],
    decisions: &[String],
) -> std::result::Result<PrunePlan, PruneReport> {
    let (mut report, pruned) = PruneReport::counting(&sessions, steps, decisions);
    if prune.dry_run || sessions.is_empty() {
        report.session_ids = sessions;
        return Err(report);
    }
    Ok(PrunePlan {
        report,
        pruned,
        sessions,
    })
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
