//! The layer's own health: what it dropped, truncated or failed to write.
//!
//! Shared by the layer (caller's threads), the writer thread and the guard. Nothing is ever
//! lost silently: every record that does not reach the database is counted here, reported
//! on stderr, and readable through [`AuditGuard::stats`](crate::AuditGuard::stats).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::fields::FieldLimits;

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
    /// Failed commits (each retried) and rows SQLite refused (each reported on stderr).
    pub write_errors: u64,
    /// Rows still unwritten when the writer gave up at shutdown.
    pub unwritten_at_shutdown: u64,
}

#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) path: PathBuf,
    limits: Arc<FieldLimits>,
    dropped: AtomicU64,
    lost_after_stop: AtomicU64,
    write_errors: AtomicU64,
    unwritten_at_shutdown: AtomicU64,
    warned_stopped: AtomicBool,
    /// Set by the guard when it asks the writer to stop: retries end at this instant.
    stop_deadline: Mutex<Option<Instant>>,
}

impl Health {
    pub(crate) fn new(path: PathBuf, limits: Arc<FieldLimits>) -> Arc<Self> {
        Arc::new(Health {
            path,
            limits,
            dropped: AtomicU64::new(0),
            lost_after_stop: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            unwritten_at_shutdown: AtomicU64::new(0),
            warned_stopped: AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
        })
    }

    pub(crate) fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_lost_after_stop(&self) {
        self.lost_after_stop.fetch_add(1, Ordering::Relaxed);
        if !self.warned_stopped.swap(true, Ordering::Relaxed) {
            eprintln!(
                "reasonkit-audit: the writer for {} has stopped; records of spans closing now \
                 are lost (keep the AuditGuard alive until instrumented work is done)",
                self.path.display()
            );
        }
    }

    pub(crate) fn record_write_error(&self, what: &str) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("reasonkit-audit: {}: {what}", self.path.display());
    }

    pub(crate) fn record_unwritten(&self, rows: u64) {
        self.unwritten_at_shutdown
            .fetch_add(rows, Ordering::Relaxed);
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
            unwritten_at_shutdown: self.unwritten_at_shutdown.load(Ordering::Relaxed),
        }
    }
}
