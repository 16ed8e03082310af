//! The writer thread: owns the only connection to the store, batches records into
//! transactions, and commits them through its [`Backend`].
//!
//! It waits for a record, then gathers more until the batch is full, a flush is asked for,
//! or the first record has waited `flush_interval`; then it commits them all in one
//! transaction (see [`crate::store`]). A span that opens and closes within one batch
//! becomes a single INSERT of its final row; one that stays open is inserted as `running`
//! and updated when it closes, so a process that dies leaves its open sessions and steps
//! visible.
//!
//! A commit that fails (disk full, lock held too long, I/O error, a lost connection) is
//! rolled back and retried with capped, jittered back-off: the records stay in memory, and
//! while they wait the queue fills and the callers wait (or drop and count, under
//! [`OverflowPolicy::Drop`]). A row the store refuses on its own (a constraint) is
//! reported and skipped; it never sinks its batch.
//!
//!
//! Beside the thread, in this folder: `guard.rs`, the [`AuditGuard`](crate::AuditGuard)
//! the user holds to flush and stop it; `checkpoint_log.rs`, the checkpoints it appends.
//!
//! [`OverflowPolicy::Drop`]: crate::OverflowPolicy::Drop

pub(crate) mod checkpoint_log;
pub(crate) mod guard;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::health::{AuditStats, Health};
use crate::ids::AuditId;
use crate::record::{Command, Kind};
use crate::record::{FieldValue, Fields};
use crate::redaction::{Redaction, Redactor};
use crate::store::rows::{self, Row};
use crate::store::sqlite::search;
use crate::store::{Backend, Batch, Committed, Op, Refused, Tracked, WriteOptions};
use crate::writer::checkpoint_log::{CheckpointConfig, CheckpointLog};

/// How often the writer prunes for a retention: the cut moves slowly, and each pruning
/// is a chained event.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3_600);

/// How long the queue must stay quiet before the writer builds a chunk of the search
/// index. A client that waits for each commit before it sends again (an OTLP exporter
/// waiting for its acknowledgement, a caller of `flush`) leaves gaps of a few milliseconds
/// between batches; a chunk of the index takes tens of milliseconds, and one built in such
/// a gap would hold up the next batch by as much. Search finds unindexed rows meanwhile
/// (it scans the tail), and a backlog past [`search::MAX_BACKLOG`] is indexed regardless.
const INDEX_WHEN_QUIET_FOR: Duration = Duration::from_millis(50);

/// How often the writer looks at the queue while it gathers a batch.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How many batches the writer remembers a dropped close whose opening it has not seen:
/// the opening was queued before the close was dropped, so it is at most a queue's worth
/// of batches behind.
const LOST_CLOSE_MEMORY: u8 = 64;

/// At most this many chunks of the search index are built at shutdown.
const SHUTDOWN_INDEX_CHUNKS: usize = 4;

/// The longest pause between two attempts at a failing commit.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How the writer batches and what it stores.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub(crate) flush_interval: Duration,
    pub(crate) max_batch: usize,
    /// What the store needs to write rows.
    pub(crate) write: WriteOptions,
    /// What the writer removes from values as it receives them.
    pub(crate) redaction: Redaction,
    /// How long closed sessions are kept before the writer prunes them, if it does.
    pub(crate) retention: Option<Duration>,
    /// How long one attempt may wait for a lock: at shutdown, no attempt is started that
    /// could end after the guard's deadline.
    pub(crate) busy_timeout: Duration,
    /// Where to write checkpoints of the chain's head, if anywhere.
    pub(crate) checkpoints: Option<CheckpointConfig>,
}

/// Starts the writer thread. It ends after a `Shutdown` command, or when every sender is
/// gone; `done` is dropped when it ends, however it ends.
pub(crate) fn spawn(
    backend: Box<dyn Backend>,
    commands: Receiver<Command>,
    config: WriterConfig,
    health: Arc<Health>,
    done: Sender<()>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("reasonkit-audit-writer".into())
        .spawn(move || {
            let _done = done;
            Writer {
                checkpoints: config.checkpoints.clone().map(CheckpointLog::new),
                redactor: Redactor::new(&config.redaction),
                pruned_at: None,
                chain_size: None,
                // Rows a crashed writer left unindexed are indexed when this one is idle.
                search_pending: true,
                unindexed: 0,
                backend,
                batch_number: 1,
                commands,
                config,
                health,
                rows: HashMap::new(),
                ops: Vec::new(),
                waiting: Vec::new(),
                health_written: AuditStats::default(),
                health_of_batch: None,
                lost_closes: HashMap::new(),
            }
            .run();
        })
}

struct Writer {
    backend: Box<dyn Backend>,
    /// The number of the batch being committed (see [`Batch::number`]).
    batch_number: u64,
    commands: Receiver<Command>,
    config: WriterConfig,
    health: Arc<Health>,
    rows: HashMap<AuditId, Tracked>,
    ops: Vec<Op>,
    /// Flush requests answered after the next commit.
    waiting: Vec<Sender<Result<(), String>>>,
    /// The health counters as last written to `audit_health`.
    health_written: AuditStats,
    /// The counters the batch being committed writes, taken at its first attempt and kept
    /// through its retries: an attempt whose COMMIT landed unanswered wrote exactly these,
    /// so the errors of the retries go with the next batch instead of being lost with it.
    health_of_batch: Option<AuditStats>,
    /// Removes secrets from each record as it arrives, before anything is built from it.
    redactor: Redactor,
    /// When the writer last pruned for the retention (`None`: not yet).
    pruned_at: Option<Instant>,
    /// Ids whose close was dropped before their opening reached the writer, with the
    /// batches they have waited.
    lost_closes: HashMap<AuditId, u8>,
    checkpoints: Option<CheckpointLog>,
    /// The chain's size after this writer's last commit that appended to it.
    chain_size: Option<u64>,
    /// Rows may lie past the search index's marks (see [`crate::store::sqlite::search`]).
    search_pending: bool,
    /// Rows written since the search index last caught up, roughly.
    unindexed: u64,
}

impl Writer {
    fn run(mut self) {
        self.checkpoint_if_due(false);
        let mut stopping = false;
        let mut last_command = Instant::now();
        while !stopping {
            // While idle, wake now and then so that health counters that changed (records
            // dropped while the queue was full, say) are written even if no record follows,
            // timed checkpoints are written even when nothing else is, and the search
            // index catches up, a chunk at a time, as soon as the queue is quiet.
            let idle = if self.search_pending {
                // Quiet long enough: one chunk after another, each as soon as the queue
                // is still empty a moment later.
                INDEX_WHEN_QUIET_FOR
                    .saturating_sub(last_command.elapsed())
                    .max(POLL_INTERVAL)
            } else {
                self.config.flush_interval
            };
            let first = match self.commands.recv_timeout(idle) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    if self.health.stats() != self.health_written {
                        self.commit();
                    }
                    self.checkpoint_if_due(false);
                    if self.search_pending {
                        self.index_search();
                    }
                    self.prune_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let deadline = Instant::now() + self.config.flush_interval;
            stopping = self.take(first) || self.gather(deadline);
            last_command = Instant::now();
            let written = self.ops.len() as u64;
            if self.commit() && written > 0 {
                self.search_pending = true;
                self.unindexed += written;
                if self.unindexed >= search::MAX_BACKLOG {
                    self.index_search();
                }
            }
            self.checkpoint_if_due(false);
        }
        // Shutdown was asked, or every sender is gone: commit what is left.
        while let Ok(command) = self.commands.try_recv() {
            self.take(command);
        }
        if self.commit() {
            self.mark_open_sessions_interrupted();
        }
        // A short run leaves its few rows indexed (Datasette's search sees them); a long
        // backlog is left for the next writer rather than hold up the exit.
        for _ in 0..SHUTDOWN_INDEX_CHUNKS {
            let late = self
                .health
                .stop_deadline()
                .is_some_and(|d| Instant::now() + self.config.busy_timeout > d);
            if !self.search_pending || late {
                break;
            }
            self.index_search();
        }
        self.checkpoint_if_due(true);
    }

    /// Prunes for the retention, when one is set and an hour has passed since the last
    /// time (or none has). A failure is a write error, tried again an hour later.
    fn prune_if_due(&mut self) {
        let Some(keep) = self.config.retention else {
            return;
        };
        if self
            .pruned_at
            .is_some_and(|at| at.elapsed() < PRUNE_INTERVAL)
        {
            return;
        }
        self.pruned_at = Some(Instant::now());
        let Some(cut) = std::time::SystemTime::now().checked_sub(keep) else {
            return;
        };
        let prune = crate::lifecycle::prune::Prune::before(cut)
            .reason(format!("retention: keep {} s", keep.as_secs()));
        if let Err(error) = self.backend.prune(&prune) {
            self.health
                .record_write_error(format!("pruning for the retention failed: {error}"));
        }
    }

    /// Indexes one chunk of the rows past the search index's marks. A failure is reported
    /// and retried after the next commit; search still finds the rows (it scans the tail).
    fn index_search(&mut self) {
        match self.backend.index_search() {
            Ok(more) => {
                self.search_pending = more;
                if !more {
                    self.unindexed = 0;
                }
            }
            Err(error) => {
                self.search_pending = false;
                self.health
                    .record_write_error(format!("indexing rows for search failed: {error}"));
            }
        }
    }

    /// Appends a checkpoint of the chain's head when one is due (or `now`). A failure is a
    /// write error, chained into `audit_health` with the next commit.
    fn checkpoint_if_due(&mut self, now: bool) {
        let Some(log) = self.checkpoints.as_mut() else {
            return;
        };
        if !now && !log.due(self.chain_size) {
            return;
        }
        let backend = &mut self.backend;
        if let Err(message) = log.write(|| backend.chain_head()) {
            self.health.record_write_error(message);
        }
        if now && self.health.stats() != self.health_written {
            self.commit();
        }
    }

    /// Gathers commands into the batch until it is full, a flush or shutdown is asked, or
    /// `deadline` passes; `true` when it must stop.
    ///
    /// It polls rather than blocking on the queue: a receiver parked on the queue must be
    /// woken by the next sender with a futex syscall, which the instrumented threads would
    /// pay on every record. Polling every [`POLL_INTERVAL`] leaves them a plain push.
    fn gather(&mut self, deadline: Instant) -> bool {
        // A full queue has callers waiting for room (block policy): for the rest of this
        // batch, waiting on the queue beats sleeping, since they are parked and pay for a
        // wake-up anyway.
        let mut callers_waiting = false;
        loop {
            callers_waiting |= self.commands.is_full();
            loop {
                if !self.waiting.is_empty() || self.ops.len() >= self.config.max_batch {
                    return false;
                }
                match self.commands.try_recv() {
                    Ok(command) => {
                        if self.take(command) {
                            return true;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return true,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let pause = POLL_INTERVAL.min(deadline - now);
            if callers_waiting {
                match self.commands.recv_timeout(pause) {
                    Ok(command) => {
                        if self.take(command) {
                            return true;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return true,
                }
            } else {
                thread::sleep(pause);
            }
        }
    }

    /// Takes one command into the batch; `true` when it asks the writer to stop.
    fn take(&mut self, command: Command) -> bool {
        match command {
            Command::Opened(mut opened) => {
                redact_input(&mut self.redactor, &mut opened.fields, &[], opened.kind);
                self.redactor.fields(&mut opened.fields);
                let id = opened.id.clone();
                let mut tracked = Tracked {
                    row: Row::new(opened),
                    committed: false,
                    refused: false,
                    close_lost: false,
                };
                tracked.close_lost = self.lost_closes.remove(&id).is_some();
                if self.rows.insert(id.clone(), tracked).is_some() {
                    self.health.record_write_error(format!(
                        "a second open span has id {id}; the first one's later changes are lost"
                    ));
                }
                self.ops.push(Op::Insert(id));
            }
            Command::Adopted(opened) => {
                // Already in the store, as it was written: its fields went through the
                // redactor then. Only its close is still to come.
                let id = opened.id.clone();
                let tracked = Tracked {
                    row: Row::new(opened),
                    committed: true,
                    refused: false,
                    close_lost: false,
                };
                self.rows.entry(id).or_insert(tracked);
            }
            Command::Closed(mut closed) => match self.rows.get_mut(&closed.id) {
                Some(tracked) => {
                    if let Some(learned) = closed.learned.as_deref_mut() {
                        let opened = &tracked.row.opened;
                        redact_input(
                            &mut self.redactor,
                            &mut learned.recorded,
                            &opened.fields,
                            opened.kind,
                        );
                        self.redactor.fields(&mut learned.recorded);
                        if let Some(value) = learned.returned.as_mut() {
                            self.redactor.value("return", value);
                        }
                        if let Some(value) = learned.error.as_mut() {
                            self.redactor.value("error", value);
                        }
                    }
                    let id = closed.id.clone();
                    tracked.row.closed = Some(closed);
                    // Not yet inserted: the pending INSERT writes the final row.
                    if tracked.committed {
                        self.ops.push(Op::Update(id));
                    }
                }
                // Its opening was dropped (queue full under OverflowPolicy::Drop).
                None => self.health.record_close_without_open(),
            },
            Command::Decided(mut decided) => {
                self.redactor.fields(&mut decided.fields);
                self.ops.push(Op::Decided(decided));
            }
            Command::Joined(joined) => {
                // The joined session's row is finished by the join's own statement: let
                // it go once inserted, as a row whose close will not come.
                if let Some(tracked) = self.rows.get_mut(&joined.from) {
                    tracked.close_lost = true;
                }
                self.ops.push(Op::Joined(joined));
            }
            Command::Flush(answer) => self.waiting.push(answer),
            Command::Shutdown => return true,
        }
        false
    }

    /// Commits the batch, retrying with back-off until it succeeds (`true`) or the guard's
    /// stop deadline is near (`false`, the batch given up).
    fn commit(&mut self) -> bool {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.try_commit() {
                Ok((
                    Committed {
                        refused,
                        chain_size,
                    },
                    health,
                )) => {
                    self.health.set_fault(None);
                    self.health_written = health;
                    self.chain_size = chain_size.or(self.chain_size);
                    self.after_commit(refused);
                    for answer in self.waiting.drain(..) {
                        let _ = answer.send(Ok(()));
                    }
                    return true;
                }
                Err(message) => {
                    self.health.set_fault(Some(message.clone()));
                    self.health.record_write_error(format!(
                        "commit of {} records failed ({message}); keeping them and retrying",
                        self.ops.len()
                    ));
                    // Flush callers learn now rather than wait for the fault to clear.
                    for answer in self.waiting.drain(..) {
                        let _ = answer.send(Err(message.clone()));
                    }
                    let next_attempt_ends = Instant::now() + backoff + self.config.busy_timeout;
                    if self
                        .health
                        .stop_deadline()
                        .is_some_and(|d| next_attempt_ends > d)
                    {
                        self.give_up();
                        return false;
                    }
                    // Jittered (75–125%), so that writers that lost one server together do
                    // not come back in lockstep.
                    self.pause(backoff.mul_f64(0.75 + fastrand::f64() / 2.0));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sleeps for `backoff` between two attempts, waking early when the guard asks the
    /// writer to stop, so that shutdown is never held up by a long pause.
    fn pause(&self, backoff: Duration) {
        let until = Instant::now() + backoff;
        while Instant::now() < until && self.health.stop_deadline().is_none() {
            thread::sleep(
                Duration::from_millis(5).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Commits the batch, and the health counters that changed, through the backend.
    /// Returns what it did and the health counters it wrote.
    fn try_commit(&mut self) -> Result<(Committed, AuditStats), String> {
        let redacted = self.redactor.take_count();
        if redacted > 0 {
            self.health.record_redactions(redacted);
        }
        let health = *self
            .health_of_batch
            .get_or_insert_with(|| self.health.stats());
        if self.ops.is_empty() && health == self.health_written {
            self.health_of_batch = None;
            return Ok((Committed::default(), health));
        }
        let undo = crate::store::JoinUndo::of(&self.rows, &self.ops);
        let committed = self
            .backend
            .commit(Batch {
                number: self.batch_number,
                rows: &mut self.rows,
                ops: &self.ops,
                config: &self.config.write,
                health: &self.health,
                health_written: &self.health_written,
                health_now: &health,
            })
            .inspect_err(|_| undo.restore(&mut self.rows))?;
        self.batch_number += 1;
        self.health_of_batch = None;
        Ok((committed, health))
    }

    fn after_commit(&mut self, refused: Refused) {
        for (id, reason) in refused {
            self.health
                .record_write_error(format!("row {id} was refused: {reason}"));
            if let Some(tracked) = self.rows.get_mut(&id) {
                tracked.refused = true;
            }
        }
        for op in self.ops.drain(..) {
            let id = match op {
                Op::Insert(id) | Op::Update(id) => id,
                Op::Decided(_) | Op::Joined(_) => continue,
            };
            if let Some(tracked) = self.rows.get_mut(&id) {
                tracked.committed = true;
                if tracked.finished() {
                    self.rows.remove(&id);
                }
            }
        }
        // Rows whose close was dropped: nothing will close them, so stop holding them. The
        // opening may still be queued behind this batch: remember the id for a while.
        self.lost_closes.retain(|_, batches| {
            *batches += 1;
            *batches < LOST_CLOSE_MEMORY
        });
        for id in self.health.take_lost_closes() {
            match self.rows.get_mut(&id) {
                Some(tracked) if tracked.committed => {
                    self.rows.remove(&id);
                }
                Some(tracked) => tracked.close_lost = true,
                None => {
                    self.lost_closes.insert(id, 0);
                }
            }
        }
    }

    fn give_up(&mut self) {
        let unwritten = self.ops.len() as u64;
        self.health.record_unwritten(unwritten);
        eprintln!(
            "reasonkit-audit: {}: gave up at shutdown with {unwritten} records unwritten",
            self.health.path.display()
        );
        self.ops.clear();
        // Its outcome may be unknown (a connection lost during COMMIT): whatever comes
        // next is another batch.
        self.batch_number += 1;
        self.health_of_batch = None;
    }

    /// Sessions still open when the writer stops will never close in this file: their
    /// recording was interrupted, and their row says so.
    fn mark_open_sessions_interrupted(&mut self) {
        let open: Vec<String> = self
            .rows
            .values()
            .filter(|t| t.committed && !t.refused && t.row.closed.is_none())
            .filter(|t| t.row.kind() == Kind::Session)
            .map(|t| t.row.written_id())
            .collect();
        if open.is_empty() {
            return;
        }
        let result = self.backend.mark_interrupted(&open);
        if let Err(error) = result {
            self.health.record_write_error(format!(
                "could not mark {} sessions still open at shutdown as interrupted: {error}",
                open.len()
            ));
        }
    }
}

/// A session's `input_hash` identifies the input as recorded, before redaction: when
/// redaction will change the `input` field of `fields` (and no `input_hash` was given in
/// them or in `earlier`), the hash of the raw input is added as the `input_hash` field.
fn redact_input(
    redactor: &mut Redactor,
    fields: &mut Fields,
    earlier: &[(&'static str, FieldValue)],
    kind: Kind,
) {
    if kind != Kind::Session {
        return;
    }
    let given = |f: &[(&'static str, FieldValue)]| f.iter().any(|(n, _)| *n == "input_hash");
    if given(fields) || given(earlier) {
        return;
    }
    let Some(raw) = fields
        .iter()
        .rev()
        .find(|(n, _)| *n == "input")
        .map(|(_, v)| v)
    else {
        return;
    };
    if redactor.changes("input", raw) {
        let hash = rows::sha256_hex(&crate::record::text(raw));
        fields.push(("input_hash", FieldValue::Str(hash)));
    }
}
