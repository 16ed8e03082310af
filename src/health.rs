//! The layer's own health: what it dropped, truncated or failed to write.
//!
//! Shared by the layer (caller's threads), the writer thread and the guard. Nothing is ever
//! lost silently: every record that does not reach the database is counted here, readable
//! through [`AuditGuard::stats`](crate::AuditGuard::stats), reported on stderr (at most
//! once a second per kind, so a fault cannot flood it), and written by the writer into the
//! database's own `audit_health` table as soon as it can write.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ids::AuditId;
use crate::record::FieldLimits;

/// The most dropped-close ids kept for the writer between two of its passes.
const MAX_LOST_CLOSES: usize = 65_536;

/// Counters of what did not go as planned, since the layer was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditStats {
    /// Records dropped because the queue was full ([`OverflowPolicy::Drop`] only).
    ///
    /// [`OverflowPolicy::Drop`]: crate::OverflowPolicy::Drop
    pub dropped_records: u64,
    /// Records that arrived after the writer had stopped (spans closing after the guard
    /// was dropped).
    pub lost_after_stop: u64,
    /// Field values cut at the field-size limit.
    pub truncated_fields: u64,
    /// Failed commits (each retried, records kept) and rows SQLite refused.
    pub write_errors: u64,
    /// Closes whose span's opening never reached the writer (it was dropped): the close
    /// has no row to update.
    pub closes_without_open: u64,
    /// Records still unwritten when the writer gave up at shutdown.
    pub unwritten_at_shutdown: u64,
    /// Secrets replaced by `[REDACTED:<rule>]` before writing (see
    /// [`Redaction`](crate::Redaction)): a whole value under a secret's name, or one match
    /// of a pattern inside a text.
    pub redactions: u64,
}

impl AuditStats {
    /// Each counter with the name it has in the `audit_health.kind` column.
    pub fn by_kind(&self) -> [(&'static str, u64); 7] {
        [
            ("dropped_records", self.dropped_records),
            ("lost_after_stop", self.lost_after_stop),
            ("truncated_fields", self.truncated_fields),
            ("write_errors", self.write_errors),
            ("closes_without_open", self.closes_without_open),
            ("unwritten_at_shutdown", self.unwritten_at_shutdown),
            ("redactions", self.redactions),
        ]
    }
}

#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) path: PathBuf,
    limits: Arc<FieldLimits>,
    dropped: AtomicU64,
    lost_after_stop: AtomicU64,
    write_errors: AtomicU64,
    closes_without_open: AtomicU64,
    unwritten_at_shutdown: AtomicU64,
    redactions: AtomicU64,
    /// The latest write error's text, for the `audit_health.detail` column.
    last_error: Mutex<Option<String>>,
    /// When each kind was last reported on stderr.
    reported: Mutex<Vec<(&'static str, Instant)>>,
    /// Why the writer's last commit failed, while it retries; `None` once one succeeds.
    fault: Mutex<Option<String>>,
    /// Set by the guard when it asks the writer to stop: retries end at this instant.
    stop_deadline: Mutex<Option<Instant>>,
    /// Ids of spans whose close was dropped: the writer stops holding their rows.
    lost_closes: Mutex<Vec<AuditId>>,
}

impl Health {
    pub(crate) fn new(path: PathBuf, limits: Arc<FieldLimits>) -> Arc<Self> {
        Arc::new(Health {
            path,
            limits,
            dropped: AtomicU64::new(0),
            lost_after_stop: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            closes_without_open: AtomicU64::new(0),
            unwritten_at_shutdown: AtomicU64::new(0),
            redactions: AtomicU64::new(0),
            last_error: Mutex::new(None),
            fault: Mutex::new(None),
            reported: Mutex::new(Vec::new()),
            stop_deadline: Mutex::new(None),
            lost_closes: Mutex::new(Vec::new()),
        })
    }

    /// Writes one line to stderr, unless this kind was reported less than a second ago.
    pub(crate) fn report(&self, kind: &'static str, message: impl FnOnce() -> String) {
        let now = Instant::now();
        let mut reported = self.reported.lock();
        let due = match reported.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, last)) if now.duration_since(*last) < Duration::from_secs(1) => false,
            Some((_, last)) => {
                *last = now;
                true
            }
            None => {
                reported.push((kind, now));
                true
            }
        };
        drop(reported);
        if due {
            eprintln!("reasonkit-audit: {}: {}", self.path.display(), message());
        }
    }

    pub(crate) fn record_dropped(&self) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        self.report("dropped_records", || {
            format!(
                "the audit queue is full; {total} records dropped so far (overflow policy Drop)"
            )
        });
    }

    pub(crate) fn record_lost_after_stop(&self) {
        let total = self.lost_after_stop.fetch_add(1, Ordering::Relaxed) + 1;
        self.report("lost_after_stop", || {
            format!(
                "the writer has stopped; {total} records of spans closing since are lost (keep \
                 the AuditGuard alive until instrumented work is done)"
            )
        });
    }

    pub(crate) fn record_write_error(&self, what: String) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        self.report("write_errors", || what.clone());
        *self.last_error.lock() = Some(what);
    }

    /// Notes that the close of span `id` was dropped (drop policy, queue full), so that the
    /// writer does not hold its row in memory forever waiting for it. Only the overflow path
    /// takes this lock.
    pub(crate) fn forget_close(&self, id: AuditId) {
        let mut lost = self.lost_closes.lock();
        // Bounded too: past this many unseen ids, the writer holds a few rows longer.
        if lost.len() < MAX_LOST_CLOSES {
            lost.push(id);
        }
    }

    /// The ids [`Health::forget_close`] noted since the last call.
    pub(crate) fn take_lost_closes(&self) -> Vec<AuditId> {
        std::mem::take(&mut *self.lost_closes.lock())
    }

    pub(crate) fn record_close_without_open(&self) {
        self.closes_without_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_redactions(&self, count: u64) {
        self.redactions.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn record_unwritten(&self, records: u64) {
        self.unwritten_at_shutdown
            .fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub(crate) fn set_fault(&self, fault: Option<String>) {
        *self.fault.lock() = fault;
    }

    /// Why the writer cannot commit right now, if it cannot.
    pub(crate) fn fault(&self) -> Option<String> {
        self.fault.lock().clone()
    }

    pub(crate) fn set_stop_deadline(&self, deadline: Instant) {
        *self.stop_deadline.lock() = Some(deadline);
    }

    pub(crate) fn stop_deadline(&self) -> Option<Instant> {
        *self.stop_deadline.lock()
    }

    pub(crate) fn stats(&self) -> AuditStats {
        AuditStats {
            dropped_records: self.dropped.load(Ordering::Relaxed),
            lost_after_stop: self.lost_after_stop.load(Ordering::Relaxed),
            truncated_fields: self.limits.truncated.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            closes_without_open: self.closes_without_open.load(Ordering::Relaxed),
            unwritten_at_shutdown: self.unwritten_at_shutdown.load(Ordering::Relaxed),
            redactions: self.redactions.load(Ordering::Relaxed),
        }
    }
}
