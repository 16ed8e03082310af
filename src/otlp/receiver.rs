//! The receiver: export requests in, rows through the audit writer out, and an answer
//! only once they are committed.
//!
//! # One trace, one session; every span a step
//! A trace is recorded as one session (its id derived from the trace id), and each of its
//! spans as a step of it, nested as `parent_span_id` says. The root span is the run itself:
//! its step holds the run as a whole, and the session takes from it who ran it (`profile`:
//! the agent's name, else the service's), the input and output, and how it ended.
//!
//! # Children before parents
//! An exporter sends a span when it ends, so a parent always comes after its children —
//! often in a later request. Holding the children back until the parent comes would hold
//! the answer to their request back too, and an exporter that sends one batch at a time
//! would wait on itself. So a child is written at once, and the parent it names is opened
//! as a *placeholder*: a running step with the ids that will find it, exactly as the layer
//! opens a span's row before its children's. When the parent arrives, its close completes
//! the placeholder (its start and enclosing step included). The session is opened the same
//! way by the first span of its trace and completed by the root. A parent that never comes
//! stays a running step — a dead process's spans look the same in the layer — and nothing
//! is ever held back or dropped.
//!
//! # A run spread over several traces
//! A root span that links to a span of another trace (`follows_from`, a run's turns)
//! joins that trace's session; spans of it written before the link was known are moved
//! there, and its own session stays as a pointer (see `placement.rs`).
//!
//! # A conversation spread over many traces
//! A trace whose spans name a conversation (`gen_ai.conversation.id`, OpenInference's
//! `session.id`) joins the conversation's session the same way; each turn's root then
//! rewrites that session from all the turns so far (see `conversation.rs`).
//!
//! # Acknowledged means committed
//! Each request's rows are sent to the writer followed by a flush, and the answer waits for
//! that commit. A full queue is waited on for [`Receiver::queue_wait`], then answered
//! [`ExportError::Busy`] (HTTP 429 / gRPC `RESOURCE_EXHAUSTED`, which exporters retry).
//! Rows already sent stay sent: the row ids are derived from the OTLP ids, and the receiver
//! asks the store (and remembers) which rows exist, so a retried request — or a request
//! sent again to a receiver restarted after a crash — writes nothing twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;

use crate::capture::layer::AuditLayer;
use crate::health::Health;
use crate::ids::AuditId;
use crate::otlp::answer::{self, Accepted, ExportError};
use crate::otlp::conversation::{self, Conversation};
use crate::otlp::order::parents_first;
use crate::otlp::placement::{Item, Sending, State, Trace, known};
use crate::otlp::spans::{self, TraceId};
use crate::read::Reader;
use crate::read::presence::Found;
use crate::record::{Command, FieldLimits, Fields};

/// Writes OTLP trace export requests into the audit trail, through an [`AuditLayer`]'s
/// writer: redaction, the hash chain, batching and health as for the layer's own spans.
///
/// Cloning it is cheap; clones share one state. [`Receiver::export`] blocks until the
/// request is committed: call it from a blocking thread (`spawn_blocking` in async code).
///
/// ```
/// use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
/// use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
/// use reasonkit_audit::{AuditLayer, otlp::Receiver, read::Reader};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.db");
/// let (layer, guard) = AuditLayer::builder().path(&path).build()?;
/// let receiver = Receiver::new(&layer, Reader::open(&path)?);
///
/// let span = Span {
///     trace_id: vec![1; 16],
///     span_id: vec![2; 8],
///     name: "invoke_agent".into(),
///     start_time_unix_nano: 1_700_000_000_000_000_000,
///     end_time_unix_nano: 1_700_000_001_000_000_000,
///     ..Span::default()
/// };
/// let request = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
///         ..Default::default()
///     }],
/// };
/// let accepted = receiver.export(request)?; // returns once committed
/// assert_eq!(accepted.rejected_spans, 0);
///
/// let sessions = Reader::open(&path)?.sessions(&Default::default())?;
/// assert_eq!(sessions[0].status, "completed");
/// # drop(guard);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    queue_wait: Duration,
    commit_wait: Duration,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("queue_wait", &self.queue_wait)
            .field("commit_wait", &self.commit_wait)
            .finish_non_exhaustive()
    }
}

struct Inner {
    sender: Sender<Command>,
    health: Arc<Health>,
    limits: Arc<FieldLimits>,
    reader: Mutex<Reader>,
    state: Mutex<State>,
}

impl Receiver {
    /// A receiver writing through `layer`'s writer, asking `store` (a reader of the same
    /// store) which rows exist already. The layer itself may be dropped afterwards; keep
    /// its [`AuditGuard`](crate::AuditGuard) to flush and stop the writer.
    pub fn new(layer: &AuditLayer, store: Reader) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                sender: layer.sender.clone(),
                health: layer.health.clone(),
                limits: layer.limits.clone(),
                reader: Mutex::new(store),
                state: Mutex::new(State::default()),
            }),
            queue_wait: Duration::from_secs(2),
            commit_wait: Duration::from_secs(30),
        }
    }

    /// How long a request waits for room in a full queue before it is answered
    /// [`ExportError::Busy`] (2 s by default).
    pub fn queue_wait(mut self, wait: Duration) -> Receiver {
        self.queue_wait = wait;
        self
    }

    /// How long a request waits for its commit before it is answered
    /// [`ExportError::Unavailable`] (30 s by default).
    pub fn commit_wait(mut self, wait: Duration) -> Receiver {
        self.commit_wait = wait;
        self
    }

    /// How many rows the receiver remembers, for this receiver and its clones: which rows
    /// exist and where each trace's steps go, known without asking the store. Past this
    /// many, the rows committed and ended are forgotten after a request. 200,000 by
    /// default (some tens of MiB). What is written does not depend on it: a forgotten row
    /// that comes back (a retry, a late span, a conversation's next turn, a run's turn) is
    /// asked of the store, as a receiver started again would.
    ///
    /// ```
    /// use reasonkit_audit::{AuditLayer, otlp::Receiver, read::Reader};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("audit.db");
    /// let (layer, _guard) = AuditLayer::builder().path(&path).build()?;
    /// // A small collector beside a small agent: forget sooner, ask the store more.
    /// let receiver = Receiver::new(&layer, Reader::open(&path)?).remember(10_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remember(self, rows: usize) -> Receiver {
        self.inner.state.lock().remember = rows;
        self
    }

    /// Why the store is not taking spans right now, or `None` while it is: what a health
    /// check answers. Its commits are failing (the writer keeps the records and retries;
    /// the text is the last failure, which may name the store's path), or its writer has
    /// been asked to stop. Says nothing of a queue that is only full: that is
    /// [`ExportError::Busy`], answered per request.
    ///
    /// ```
    /// use reasonkit_audit::{AuditLayer, otlp::Receiver, read::Reader};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("audit.db");
    /// let (layer, guard) = AuditLayer::builder().path(&path).build()?;
    /// let receiver = Receiver::new(&layer, Reader::open(&path)?);
    /// assert_eq!(receiver.fault(), None);
    /// guard.shutdown()?;
    /// assert!(receiver.fault().is_some(), "a stopped writer takes nothing");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fault(&self) -> Option<String> {
        if let Some(fault) = self.inner.health.fault() {
            return Some(format!("the audit store's commits are failing: {fault}"));
        }
        self.inner
            .health
            .stop_deadline()
            .map(|_| "the audit writer is stopping".to_owned())
    }

    /// Writes a request's spans and returns once they are committed. Blocks.
    pub fn export(&self, request: ExportTraceServiceRequest) -> Result<Accepted, ExportError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + self.queue_wait;
        let mut resources: Vec<Fields> = Vec::new();
        let mut items: Vec<Item<'_>> = Vec::new();
        let mut rejected: i64 = 0;
        for resource_spans in &request.resource_spans {
            let resource = resource_spans.resource.as_ref().map_or_else(Vec::new, |r| {
                spans::resource_fields(&r.attributes, &inner.limits)
            });
            resources.push(resource);
            for scope_spans in &resource_spans.scope_spans {
                let scope = scope_spans.scope.as_ref().map_or("", |s| s.name.as_str());
                for span in &scope_spans.spans {
                    match spans::ids(span) {
                        Some((trace, id, parent)) => items.push(Item {
                            trace,
                            id,
                            parent,
                            follows: spans::followed(span, &trace),
                            conversation: conversation::of(span),
                            resource: resources.len() - 1,
                            scope,
                            span,
                        }),
                        None => rejected += 1,
                    }
                }
            }
        }
        let items = parents_first(items, |item| (item.trace, item.id, item.parent));

        let mut state = inner.state.lock();
        self.look_up(&mut state, &items)?;
        let mut sending = Sending {
            sender: &inner.sender,
            limits: &inner.limits,
            state: &mut state,
            deadline,
            queue_wait: self.queue_wait,
            commit_wait: self.commit_wait,
        };
        for item in &items {
            sending.place(item, &resources[item.resource])?;
        }
        let (answer, flushed) = sending.flush()?;
        drop(state);
        // The wait is outside the lock: other requests are placed meanwhile.
        answer::committed(&answer, self.commit_wait)?;
        let mut state = inner.state.lock();
        state.committed = state.committed.max(flushed);
        state.forget_committed();
        let error_message = if rejected > 0 {
            format!(
                "{rejected} spans had an invalid trace or span id (OTLP requires 16 and 8 \
                 bytes, not all zero) and were not recorded"
            )
        } else {
            String::new()
        };
        Ok(Accepted {
            rejected_spans: rejected,
            error_message,
        })
    }

    /// Asks the store about the rows of `items` the receiver does not remember: first the
    /// sessions of traces it has not seen, and of the traces their root spans follow (a
    /// session says the millisecond its trace's step ids start with, and the session it
    /// joined, if it did; a trace new to the store takes its earliest start in this
    /// request), then the sessions of the conversations they name (a conversation's is
    /// read back whole: its next turn writes it again), then the steps.
    fn look_up(&self, state: &mut State, items: &[Item<'_>]) -> Result<(), ExportError> {
        let mut conversations: Vec<AuditId> = Vec::new();
        let fresh = self.look_up_sessions(state, items, &mut conversations)?;
        self.look_up_conversations(state, items, &mut conversations)?;
        self.load_conversations(state, conversations)?;
        self.look_up_steps(state, items, &fresh)
    }

    /// The sessions of the traces of `items` the receiver has not seen, and of the traces
    /// their root spans follow. Sessions found that are conversations' go to
    /// `conversations`, to be read back. Returns the traces the store has no session of.
    fn look_up_sessions(
        &self,
        state: &mut State,
        items: &[Item<'_>],
        conversations: &mut Vec<AuditId>,
    ) -> Result<HashSet<TraceId>, ExportError> {
        // Each trace not seen, with the earliest start of its own spans here (`None` for a
        // trace only followed: its step ids start where the span that follows it opens its
        // session, if it does — see `Sending::join`).
        let mut new_traces: HashMap<TraceId, Option<u64>> = HashMap::new();
        let mut fresh: HashSet<TraceId> = HashSet::new();
        for item in items {
            let start = spans::millis(item.span.start_time_unix_nano);
            if !state.traces.contains_key(&item.trace) {
                let earliest = new_traces.entry(item.trace).or_insert(Some(start));
                *earliest = Some(earliest.map_or(start, |ms| ms.min(start)));
            }
            if let Some(followed) = item.follows
                && !state.traces.contains_key(&followed)
            {
                new_traces.entry(followed).or_insert(None);
            }
        }
        if !new_traces.is_empty() {
            let sessions: Vec<AuditId> = new_traces.keys().map(spans::session_id).collect();
            let found = self.ask(&sessions)?;
            let mut pointers: Vec<AuditId> = Vec::new();
            let mut learned = Vec::with_capacity(new_traces.len());
            for (trace, first_start) in new_traces {
                let own = spans::session_id(&trace);
                let (id_ms, session) = match found.get(&own.to_string()) {
                    Some(row) => {
                        state.rows.insert(own.clone(), known(row.presence));
                        let into = row.joined_into.as_deref().and_then(joined_id);
                        if let Some(into) = &into {
                            state.joined.insert(own.clone(), into.clone());
                            pointers.push(into.clone());
                        }
                        let id_ms = row.id_ms.and_then(|ms| u64::try_from(ms).ok());
                        (id_ms.unwrap_or(0), into.unwrap_or(own))
                    }
                    None => {
                        fresh.insert(trace);
                        let Some(first_start) = first_start else {
                            continue;
                        };
                        (first_start, own)
                    }
                };
                learned.push((trace, id_ms, session));
            }
            self.follow_pointers(state, pointers, conversations)?;
            // A trace that joined a session that joined another in turn goes straight to
            // where its steps are now.
            for (trace, id_ms, session) in learned {
                let session = state.resolve(&session);
                state.add_trace(trace, Trace { id_ms, session });
            }
        }
        Ok(fresh)
    }

    /// The sessions of the conversations `items` name: those the receiver does not know
    /// and finds go to `conversations`, to be read back; those erased since are marked so
    /// (asked every time: an erasure is another process's doing).
    fn look_up_conversations(
        &self,
        state: &mut State,
        items: &[Item<'_>],
        conversations: &mut Vec<AuditId>,
    ) -> Result<(), ExportError> {
        let mut asked: Vec<(AuditId, &str)> = Vec::new();
        for id in items.iter().filter_map(|item| item.conversation.as_deref()) {
            let session = conversation::session_id(id);
            let settled = state
                .conversations
                .get(&session)
                .is_some_and(Conversation::is_erased);
            if !settled && !asked.iter().any(|(s, _)| *s == session) {
                asked.push((session, id));
            }
        }
        if asked.is_empty() {
            return Ok(());
        }
        let ids: Vec<AuditId> = asked.iter().map(|(s, _)| s.clone()).collect();
        let found = self.ask(&ids)?;
        for (session, id) in asked {
            let Some(row) = found.get(&session.to_string()) else {
                continue;
            };
            state
                .rows
                .entry(session.clone())
                .or_insert(known(row.presence));
            if row.erased {
                state
                    .conversations
                    .insert(session, Conversation::erased(id.to_owned()));
            } else if row.conversation
                && !state.conversations.contains_key(&session)
                && !conversations.contains(&session)
            {
                conversations.push(session);
            }
        }
        Ok(())
    }

    /// Reads back the session rows of `conversations`, written by a receiver before this
    /// one (or by this one, before it forgot them), so that the next turn writes them
    /// whole again.
    fn load_conversations(
        &self,
        state: &mut State,
        conversations: Vec<AuditId>,
    ) -> Result<(), ExportError> {
        for session in conversations {
            if state.conversations.contains_key(&session) {
                continue;
            }
            let rows = self
                .inner
                .reader
                .lock()
                .select_sessions(&Default::default(), Some(&session.to_string()))
                .map_err(|e| {
                    ExportError::Unavailable(format!(
                        "could not read conversation session {session} back from the store: {e}"
                    ))
                })?;
            if let Some(row) = rows.first() {
                state
                    .conversations
                    .insert(session, Conversation::stored(row));
            }
        }
        Ok(())
    }

    /// The steps of `items`, and their parents', that the receiver does not remember.
    fn look_up_steps(
        &self,
        state: &mut State,
        items: &[Item<'_>],
        fresh: &HashSet<TraceId>,
    ) -> Result<(), ExportError> {
        let mut unknown: HashSet<AuditId> = HashSet::new();
        for item in items {
            // A trace whose session the store does not hold has no steps there either (a
            // step needs its session): only the traces seen before are asked about.
            if fresh.contains(&item.trace) {
                continue;
            }
            let id_ms = state.traces.get(&item.trace).map_or(0, |t| t.id_ms);
            let mut ids = vec![spans::step_id(&item.trace, &item.id, id_ms)];
            ids.extend(item.parent.map(|p| spans::step_id(&item.trace, &p, id_ms)));
            unknown.extend(ids.into_iter().filter(|id| !state.rows.contains_key(id)));
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let unknown: Vec<AuditId> = unknown.into_iter().collect();
        let found = self.ask(&unknown)?;
        for id in unknown {
            if let Some(row) = found.get(&id.to_string()) {
                state.rows.insert(id, known(row.presence));
            }
        }
        Ok(())
    }

    /// Learns the sessions that joined sessions point to: whether each is in the store,
    /// and whether it joined another in turn, to the end of every chain (a run that
    /// followed a run that followed another … is as many hops as runs; each hop is one
    /// question to the store, asked once, and a session is never asked twice).
    fn follow_pointers(
        &self,
        state: &mut State,
        mut pointers: Vec<AuditId>,
        conversations: &mut Vec<AuditId>,
    ) -> Result<(), ExportError> {
        loop {
            let mut asked = HashSet::new();
            pointers.retain(|id| !state.rows.contains_key(id) && asked.insert(id.clone()));
            if pointers.is_empty() {
                break;
            }
            let found = self.ask(&pointers)?;
            let mut next = Vec::new();
            for id in pointers.drain(..) {
                let Some(row) = found.get(&id.to_string()) else {
                    continue;
                };
                state.rows.insert(id.clone(), known(row.presence));
                if row.conversation {
                    conversations.push(id.clone());
                }
                if let Some(into) = row.joined_into.as_deref().and_then(joined_id) {
                    state.joined.insert(id, into.clone());
                    next.push(into);
                }
            }
            pointers = next;
        }
        Ok(())
    }

    /// Which of `ids` the store holds.
    fn ask(&self, ids: &[AuditId]) -> Result<HashMap<String, Found>, ExportError> {
        let texts: Vec<String> = ids.iter().map(AuditId::to_string).collect();
        self.inner.reader.lock().presence(&texts).map_err(|e| {
            ExportError::Unavailable(format!("could not ask the store which spans it holds: {e}"))
        })
    }
}

/// The session a joined session names (`otel.joined_into`): the receiver's sessions are
/// UUIDs.
fn joined_id(text: &str) -> Option<AuditId> {
    uuid::Uuid::parse_str(text).ok().map(AuditId::Generated)
}
