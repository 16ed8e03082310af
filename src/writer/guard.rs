//! [`AuditGuard`]: flushing and stopping the writer thread.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};

use crate::error::{Error, Result};
use crate::health::{AuditStats, Health};
use crate::record::Command;

/// How often a waiting [`AuditGuard::flush`] checks whether the writer is stuck on a fault.
const FAULT_POLL: Duration = Duration::from_millis(20);

/// Owns the writer thread of an [`AuditLayer`](crate::AuditLayer). Keep it alive for as
/// long as instrumented code runs — typically bind it in `main`: `let (audit, _guard) = …`
/// (not `_`, which drops it at once).
///
/// **What it guarantees.**
/// - [`flush`](AuditGuard::flush) returns once every record sent before the call is
///   committed to the database file.
/// - Dropping the guard (at the end of `main`, or while a panic unwinds out of it) commits
///   everything queued, then stops and joins the writer thread. It waits at most the
///   [`shutdown_timeout`](crate::AuditLayerBuilder::shutdown_timeout) (default 10 s); what it
///   could not write by then is reported on stderr and counted in [`stats`](AuditGuard::stats).
/// - `std::process::exit` does not run destructors: call [`flush`](AuditGuard::flush) (or
///   [`shutdown`](AuditGuard::shutdown)) before it, or nothing queued is guaranteed.
/// - Spans that close after the guard is gone are counted as lost and reported once on
///   stderr; sessions still open at that point stay `running` in the database.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let (audit, guard) = reasonkit_audit::AuditLayer::builder()
///     .path(dir.path().join("audit.db"))
///     .build()?;
/// let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(audit));
/// tracing::dispatcher::with_default(&dispatch, || {
///     tracing::info_span!("session", profile = "thorough").in_scope(|| {});
/// });
/// guard.flush()?;
/// assert_eq!(guard.stats().dropped_records, 0);
/// guard.shutdown()?; // or simply let it drop
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard stops the audit writer: bind it, e.g. `let (layer, _guard) = ...`"]
#[derive(Debug)]
pub struct AuditGuard {
    pub(crate) sender: Sender<Command>,
    pub(crate) writer: Option<JoinHandle<()>>,
    /// Disconnects when the writer thread ends, however it ends.
    pub(crate) done: Receiver<()>,
    pub(crate) health: Arc<Health>,
    pub(crate) flush_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl AuditGuard {
    /// Returns once every record sent before this call is committed.
    ///
    /// # Errors
    /// [`Error::Write`] when the commit failed (the records are kept and retried),
    /// [`Error::TimedOut`] when the writer did not answer within the
    /// [`flush_timeout`](crate::AuditLayerBuilder::flush_timeout), and
    /// [`Error::WriterStopped`] after [`shutdown`](AuditGuard::shutdown).
    pub fn flush(&self) -> Result<()> {
        let start = Instant::now();
        let (answer, answered) = crossbeam_channel::bounded(1);
        // While the writer retries a failing commit it reads no commands, so neither room
        // in a full queue nor the answer can come: report the fault instead of waiting.
        let mut request = Command::Flush(answer);
        loop {
            match self.sender.send_timeout(request, FAULT_POLL) {
                Ok(()) => break,
                Err(SendTimeoutError::Disconnected(_)) => return Err(self.stopped()),
                Err(SendTimeoutError::Timeout(unsent)) => {
                    if let Some(message) = self.health.fault() {
                        return Err(self.write_error(message));
                    }
                    if start.elapsed() >= self.flush_timeout {
                        return Err(self.timed_out(start));
                    }
                    request = unsent;
                }
            }
        }
        loop {
            let left = self.flush_timeout.saturating_sub(start.elapsed());
            match answered.recv_timeout(left.min(FAULT_POLL)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(message)) => return Err(self.write_error(message)),
                Err(RecvTimeoutError::Disconnected) => return Err(self.stopped()),
                Err(RecvTimeoutError::Timeout) if left <= FAULT_POLL => {
                    return Err(self.timed_out(start));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(message) = self.health.fault() {
                        return Err(self.write_error(message));
                    }
                }
            }
        }
    }

    fn write_error(&self, message: String) -> Error {
        Error::Write {
            path: self.path().into(),
            message,
        }
    }

    /// Commits everything queued, stops the writer thread and waits for it, at most the
    /// [`shutdown_timeout`](crate::AuditLayerBuilder::shutdown_timeout). Dropping the guard
    /// does the same; this returns what happened.
    ///
    /// # Errors
    /// [`Error::Unwritten`] when the writer gave up on records it could not commit before
    /// the timeout, and [`Error::TimedOut`] when it did not even stop in time; either way
    /// what was lost is reported on stderr.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    /// What was dropped, truncated or failed to write so far.
    pub fn stats(&self) -> AuditStats {
        self.health.stats()
    }

    /// The database file this guard's writer writes to.
    pub fn path(&self) -> &Path {
        &self.health.path
    }

    fn stop(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let start = Instant::now();
        let deadline = start + self.shutdown_timeout;
        self.health.set_stop_deadline(deadline);
        // The queue may be full and the writer stuck on a fault: never wait past the deadline.
        let _ = self.sender.send_deadline(Command::Shutdown, deadline);
        match self.done.recv_deadline(deadline) {
            Err(RecvTimeoutError::Disconnected) | Ok(()) => {
                let _ = writer.join();
                match self.stats().unwritten_at_shutdown {
                    0 => Ok(()),
                    records => Err(Error::Unwritten {
                        path: self.path().into(),
                        records,
                    }),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "reasonkit-audit: {}: the writer did not finish within {:?}; records still \
                     queued are lost",
                    self.path().display(),
                    self.shutdown_timeout
                );
                Err(self.timed_out(start))
            }
        }
    }

    fn timed_out(&self, start: Instant) -> Error {
        Error::TimedOut {
            path: self.path().into(),
            waited: start.elapsed(),
        }
    }

    fn stopped(&self) -> Error {
        Error::WriterStopped {
            path: self.path().into(),
        }
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
