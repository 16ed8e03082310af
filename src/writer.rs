//! The writer thread: owns the only SQLite connection, batches records into transactions.
//!
//! It waits for a record, then gathers more until the batch is full, a flush is asked for,
//! or the first record has waited `flush_interval`; then it commits them all in one
//! transaction with cached prepared statements. A span that opens and closes within one
//! batch becomes a single INSERT of its final row; one that stays open is inserted as
//! `running` and updated when it closes, so a process that dies leaves its open sessions
//! and steps visible.
//!
//! A commit that fails (disk full, lock held too long, I/O error) is rolled back and
//! retried with back-off: the records stay in memory, and while they wait the queue fills
//! and the callers wait (or drop and count, under [`OverflowPolicy::Drop`]). A row SQLite
//! refuses on its own (a constraint) is reported and skipped; it never sinks its batch.
//!
//! [`OverflowPolicy::Drop`]: crate::OverflowPolicy::Drop

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, ErrorCode, Transaction};

use crate::health::Health;
use crate::ids::AuditId;
use crate::record::{Command, Decided, Kind};
use crate::rows::{self, Row};

/// How the writer batches and what it stores.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub(crate) flush_interval: Duration,
    pub(crate) max_batch: usize,
    pub(crate) store_inputs: bool,
}

/// Starts the writer thread. It ends after a `Shutdown` command, or when every sender is
/// gone; `done` is dropped when it ends, however it ends.
pub(crate) fn spawn(
    conn: Connection,
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
                conn,
                commands,
                config,
                health,
                rows: HashMap::new(),
                ops: Vec::new(),
                waiting: Vec::new(),
            }
            .run();
        })
}

/// A row the writer holds: until it is committed, and, if still open, until it closes.
struct Tracked {
    row: Row,
    /// Its INSERT is committed (or SQLite refused it), so a close becomes an UPDATE.
    committed: bool,
    /// SQLite refused its INSERT: later updates must not touch a row of the same id.
    refused: bool,
}

/// One statement of the next transaction, in arrival order (parents before children).
enum Op {
    Insert(AuditId),
    Update(AuditId),
    Decided(Decided),
}

struct Writer {
    conn: Connection,
    commands: Receiver<Command>,
    config: WriterConfig,
    health: Arc<Health>,
    rows: HashMap<AuditId, Tracked>,
    ops: Vec<Op>,
    /// Flush requests answered after the next commit.
    waiting: Vec<Sender<Result<(), String>>>,
}

impl Writer {
    fn run(mut self) {
        let mut stopping = false;
        while !stopping {
            let first = match self.commands.recv() {
                Ok(command) => command,
                Err(_) => break,
            };
            let deadline = Instant::now() + self.config.flush_interval;
            stopping = self.take(first);
            while !stopping && self.waiting.is_empty() && self.ops.len() < self.config.max_batch {
                match self.commands.recv_deadline(deadline) {
                    Ok(command) => stopping = self.take(command),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => stopping = true,
                }
            }
            self.commit();
        }
        // Every sender is gone or shutdown was asked: commit what is left.
        while let Ok(command) = self.commands.try_recv() {
            self.take(command);
        }
        self.commit();
    }

    /// Takes one command into the batch; `true` when it asks the writer to stop.
    fn take(&mut self, command: Command) -> bool {
        match command {
            Command::Opened(opened) => {
                let id = opened.id.clone();
                let tracked = Tracked {
                    row: Row {
                        opened,
                        closed: None,
                    },
                    committed: false,
                    refused: false,
                };
                if self.rows.insert(id.clone(), tracked).is_some() {
                    self.health.record_write_error(&format!(
                        "a second open span has id {id}; the first one's later changes are lost"
                    ));
                }
                self.ops.push(Op::Insert(id));
            }
            Command::Closed(closed) => match self.rows.get_mut(&closed.id) {
                Some(tracked) => {
                    let id = closed.id.clone();
                    tracked.row.closed = Some(closed);
                    // Not yet inserted: the pending INSERT writes the final row.
                    if tracked.committed {
                        self.ops.push(Op::Update(id));
                    }
                }
                None => self.health.record_write_error(&format!(
                    "span {} closed but its opening was never received (dropped?)",
                    closed.id
                )),
            },
            Command::Decided(decided) => self.ops.push(Op::Decided(decided)),
            Command::Flush(answer) => self.waiting.push(answer),
            Command::Shutdown => return true,
        }
        false
    }

    /// Commits the batch, retrying with back-off until it succeeds or the guard's stop
    /// deadline passes.
    fn commit(&mut self) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.try_commit() {
                Ok(refused) => {
                    self.after_commit(refused);
                    for answer in self.waiting.drain(..) {
                        let _ = answer.send(Ok(()));
                    }
                    return;
                }
                Err(error) => {
                    let message = error.to_string();
                    self.health.record_write_error(&format!(
                        "commit of {} records failed ({message}); keeping them and retrying",
                        self.ops.len()
                    ));
                    // Flush callers learn now rather than wait for the fault to clear.
                    for answer in self.waiting.drain(..) {
                        let _ = answer.send(Err(message.clone()));
                    }
                    if self
                        .health
                        .stop_deadline()
                        .is_some_and(|deadline| Instant::now() + backoff > deadline)
                    {
                        self.give_up();
                        return;
                    }
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Runs the batch in one transaction. Returns the ids of rows SQLite refused.
    fn try_commit(&mut self) -> rusqlite::Result<Vec<(AuditId, String)>> {
        if self.ops.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let mut refused = Vec::new();
        for op in &self.ops {
            let (id, result) = match op {
                Op::Insert(id) => match self.rows.get(id) {
                    Some(tracked) => (
                        id.clone(),
                        insert(&tx, &tracked.row, self.config.store_inputs),
                    ),
                    None => continue,
                },
                Op::Update(id) => match self.rows.get(id) {
                    Some(tracked) if !tracked.refused => (
                        id.clone(),
                        update(&tx, &tracked.row, self.config.store_inputs),
                    ),
                    _ => continue,
                },
                Op::Decided(decided) => (decided.id.clone(), insert_decided(&tx, decided)),
            };
            match result {
                Ok(()) => {}
                Err(e) if is_row_error(&e) => refused.push((id, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        tx.commit()?;
        Ok(refused)
    }

    fn after_commit(&mut self, refused: Vec<(AuditId, String)>) {
        for (id, reason) in refused {
            self.health
                .record_write_error(&format!("row {id} was refused: {reason}"));
            if let Some(tracked) = self.rows.get_mut(&id) {
                tracked.refused = true;
            }
        }
        for op in self.ops.drain(..) {
            let id = match op {
                Op::Insert(id) | Op::Update(id) => id,
                Op::Decided(_) => continue,
            };
            if let Some(tracked) = self.rows.get_mut(&id) {
                tracked.committed = true;
                if tracked.row.closed.is_some() {
                    self.rows.remove(&id);
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
    }
}

/// Errors that concern one row only; anything else concerns the whole transaction.
fn is_row_error(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
    )
}

fn insert(tx: &Transaction<'_>, row: &Row, store_inputs: bool) -> rusqlite::Result<()> {
    match row.kind() {
        Kind::Session => {
            let c = rows::session(row, store_inputs);
            tx.prepare_cached(
                "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, input, \
                 status, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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

fn update(tx: &Transaction<'_>, row: &Row, store_inputs: bool) -> rusqlite::Result<()> {
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
                 chosen_option = ?4, rationale = ?5, decided_at = ?6, attributes = ?7 WHERE id = ?1",
            )?
            .execute((
                c.id, c.decision_type, c.options_considered, c.chosen_option, c.rationale,
                c.decided_at, c.attributes,
            ))?;
        }
    }
    Ok(())
}

fn insert_decided(tx: &Transaction<'_>, decided: &Decided) -> rusqlite::Result<()> {
    insert_decision(tx, rows::decided(decided))
}

fn insert_decision(tx: &Transaction<'_>, c: rows::DecisionColumns) -> rusqlite::Result<()> {
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
