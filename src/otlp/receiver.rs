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
//! # Acknowledged means committed
//! Each request's rows are sent to the writer followed by a flush, and the answer waits for
//! that commit. A full queue is waited on for [`Receiver::queue_wait`], then answered
//! [`ExportError::Busy`] (HTTP 429 / gRPC `RESOURCE_EXHAUSTED`, which exporters retry).
//! Rows already sent stay sent: the row ids are derived from the OTLP ids, and the receiver
//! asks the store (and remembers) which rows exist, so a retried request — or a request
//! sent again to a receiver restarted after a crash — writes nothing twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{SendTimeoutError, Sender};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;

use crate::capture::layer::AuditLayer;
use crate::ids::AuditId;
use crate::otlp::spans::{self, SpanId, TraceId};
use crate::read::Reader;
use crate::read::presence::{Found, Presence};
use crate::record::{Closed, Command, FieldLimits, FieldValue, Fields, Kind, Learned, Opened};

/// The target of every OTLP row: a step without a name the conventions read is named by
/// its span's name (`otel.name`) first, so this shows only on placeholders.
const TARGET: &str = "otlp";

/// Above this many remembered rows, those known committed and ended are forgotten (the
/// store is asked again if they come back).
const MAX_REMEMBERED: usize = 200_000;

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
    limits: Arc<FieldLimits>,
    reader: Mutex<Reader>,
    state: Mutex<State>,
}

/// What the receiver knows of the rows it has seen.
#[derive(Default)]
struct State {
    rows: HashMap<AuditId, Known>,
    /// The millisecond each trace's step ids start with (see [`spans::step_id`]).
    traces: HashMap<TraceId, u64>,
    /// The number of the last command sent to the writer.
    sent: u64,
    /// Every command up to this number is committed.
    committed: u64,
}

#[derive(Clone, Copy, Debug)]
enum Known {
    /// Opened by this receiver (a placeholder, or a span whose close is still to be sent):
    /// the writer tracks it, so a close completes it.
    Open { sent: u64 },
    /// Open in the store, written by a receiver before this one: the writer must adopt it
    /// before a close can complete it.
    Stored,
    /// Written in full; `sent` is 0 when it was found in the store.
    Ended { sent: u64 },
}

impl Known {
    fn sent(self) -> u64 {
        match self {
            Known::Open { sent } | Known::Ended { sent } => sent,
            Known::Stored => 0,
        }
    }
}

/// A request taken: what was not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Spans not recorded (OTLP's `partial_success.rejected_spans`): those whose trace or
    /// span id is invalid. Spans already recorded (a retry) are accepted, not rejected.
    pub rejected_spans: i64,
    /// Why, when `rejected_spans` is not zero (OTLP's `partial_success.error_message`).
    pub error_message: String,
}

/// Why a request was not taken. Nothing of it is lost either way: what was sent before
/// the error stays sent, and a retry sends only the rest.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer's queue stayed full for the whole wait: retry after `retry_after`
    /// (HTTP 429, gRPC `RESOURCE_EXHAUSTED`).
    #[error(
        "the audit writer is behind (its queue stayed full for {waited:?}); retry after {retry_after:?}"
    )]
    Busy {
        /// How long the request waited for room.
        waited: Duration,
        /// When to try again.
        retry_after: Duration,
    },
    /// The store or the writer cannot take the request now (HTTP 503, gRPC `UNAVAILABLE`):
    /// a commit failed or did not finish in time, the store could not be read, or the
    /// writer has stopped. The message says which.
    #[error("{0}")]
    Unavailable(String),
}

/// One span of a request, with where it came from.
struct Item<'a> {
    trace: TraceId,
    id: SpanId,
    parent: Option<SpanId>,
    resource: usize,
    scope: &'a str,
    span: &'a Span,
}

impl Receiver {
    /// A receiver writing through `layer`'s writer, asking `store` (a reader of the same
    /// store) which rows exist already. The layer itself may be dropped afterwards; keep
    /// its [`AuditGuard`](crate::AuditGuard) to flush and stop the writer.
    pub fn new(layer: &AuditLayer, store: Reader) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                sender: layer.sender.clone(),
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
                            resource: resources.len() - 1,
                            scope,
                            span,
                        }),
                        None => rejected += 1,
                    }
                }
            }
        }
        parents_first(&mut items);

        let mut state = inner.state.lock();
        self.look_up(&mut state, &items)?;
        let mut sending = Sending {
            inner,
            state: &mut state,
            deadline,
            queue_wait: self.queue_wait,
            commit_wait: self.commit_wait,
        };
        for item in &items {
            sending.place(item, &resources[item.resource])?;
        }
        let (answer, committed) = crossbeam_channel::bounded(1);
        sending.send(Command::Flush(answer))?;
        let flushed = state.sent;
        drop(state);
        match committed.recv_timeout(self.commit_wait) {
            Ok(Ok(())) => {
                let mut state = inner.state.lock();
                state.committed = state.committed.max(flushed);
                state.forget_committed();
            }
            Ok(Err(fault)) => {
                return Err(ExportError::Unavailable(format!(
                    "the audit store did not commit the spans: {fault}; they are kept and \
                     retried, and a retry of this request adds nothing twice"
                )));
            }
            Err(_) => {
                return Err(ExportError::Unavailable(format!(
                    "the audit store did not commit within {:?}; retry",
                    self.commit_wait
                )));
            }
        }
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
    /// sessions of traces it has not seen (which say the millisecond their step ids start
    /// with; a trace new to the store takes its earliest start in this request), then the
    /// steps.
    fn look_up(&self, state: &mut State, items: &[Item<'_>]) -> Result<(), ExportError> {
        let mut new_traces: HashMap<TraceId, u64> = HashMap::new();
        let mut fresh: HashSet<TraceId> = HashSet::new();
        for item in items {
            if !state.traces.contains_key(&item.trace) {
                let start = spans::millis(item.span.start_time_unix_nano);
                new_traces
                    .entry(item.trace)
                    .and_modify(|ms| *ms = (*ms).min(start))
                    .or_insert(start);
            }
        }
        if !new_traces.is_empty() {
            let sessions: Vec<AuditId> = new_traces.keys().map(spans::session_id).collect();
            let found = self.ask(&sessions)?;
            for (trace, first_start) in new_traces {
                let session = spans::session_id(&trace);
                let id_ms = match found.get(&session.to_string()) {
                    Some(row) => {
                        state.rows.insert(session, known(row.presence));
                        row.id_ms.and_then(|ms| u64::try_from(ms).ok()).unwrap_or(0)
                    }
                    None => {
                        fresh.insert(trace);
                        first_start
                    }
                };
                state.traces.insert(trace, id_ms);
            }
        }
        let mut unknown: HashSet<AuditId> = HashSet::new();
        for item in items {
            // A trace whose session the store does not hold has no steps there either (a
            // step needs its session): only the traces seen before are asked about.
            if fresh.contains(&item.trace) {
                continue;
            }
            let id_ms = state.traces.get(&item.trace).copied().unwrap_or(0);
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

    /// Which of `ids` the store holds.
    fn ask(&self, ids: &[AuditId]) -> Result<HashMap<String, Found>, ExportError> {
        let texts: Vec<String> = ids.iter().map(AuditId::to_string).collect();
        self.inner.reader.lock().presence(&texts).map_err(|e| {
            ExportError::Unavailable(format!("could not ask the store which spans it holds: {e}"))
        })
    }
}

/// What a row found in the store is to this receiver.
fn known(presence: Presence) -> Known {
    match presence {
        Presence::Open => Known::Stored,
        Presence::Ended => Known::Ended { sent: 0 },
    }
}

impl State {
    /// Forgets ended rows known committed, when the memory is large.
    fn forget_committed(&mut self) {
        if self.rows.len() > MAX_REMEMBERED {
            let committed = self.committed;
            self.rows
                .retain(|_, known| !matches!(known, Known::Ended { sent } if *sent <= committed));
            let rows = &self.rows;
            self.traces
                .retain(|trace, _| rows.contains_key(&spans::session_id(trace)));
        }
    }
}

/// Sends one request's commands, keeping the state true to what was sent.
struct Sending<'a> {
    inner: &'a Inner,
    state: &'a mut State,
    deadline: Instant,
    queue_wait: Duration,
    commit_wait: Duration,
}

impl Sending<'_> {
    fn send(&mut self, command: Command) -> Result<u64, ExportError> {
        match self.inner.sender.send_deadline(command, self.deadline) {
            Ok(()) => {
                self.state.sent += 1;
                Ok(self.state.sent)
            }
            Err(SendTimeoutError::Timeout(_)) => Err(ExportError::Busy {
                waited: self.queue_wait,
                retry_after: self.queue_wait.max(Duration::from_secs(1)),
            }),
            Err(SendTimeoutError::Disconnected(_)) => Err(ExportError::Unavailable(
                "the audit writer has stopped; restart the receiver".to_owned(),
            )),
        }
    }

    /// Waits until everything sent so far is committed.
    fn commit_now(&mut self) -> Result<(), ExportError> {
        let (answer, committed) = crossbeam_channel::bounded(1);
        self.send(Command::Flush(answer))?;
        let flushed = self.state.sent;
        match committed.recv_timeout(self.commit_wait) {
            Ok(Ok(())) => {
                self.state.committed = self.state.committed.max(flushed);
                Ok(())
            }
            Ok(Err(fault)) => Err(ExportError::Unavailable(format!(
                "the audit store did not commit: {fault}"
            ))),
            Err(_) => Err(ExportError::Unavailable(format!(
                "the audit store did not commit within {:?}; retry",
                self.commit_wait
            ))),
        }
    }

    fn opened(&self, kind: Kind, id: &AuditId, at: SystemTime, fields: Fields) -> Opened {
        Opened {
            kind,
            id: id.clone(),
            parent: None,
            parent_step: None,
            at,
            target: TARGET,
            fields,
            implicit: false,
        }
    }

    /// The session row of a trace: opened as a placeholder by its first span.
    fn session_placeholder(&self, item: &Item<'_>, resource: &Fields) -> Opened {
        let mut fields = spans::placeholder(&item.trace, None);
        let id_ms = i64::try_from(self.id_ms(item)).unwrap_or(i64::MAX);
        fields.push((spans::ID_MS, FieldValue::I64(id_ms)));
        if let Some(service) = crate::record::last(resource, "service.name") {
            fields.push(("profile", service.clone()));
        }
        fields.extend(resource.iter().cloned());
        let id = spans::session_id(&item.trace);
        self.opened(
            Kind::Session,
            &id,
            spans::time(item.span.start_time_unix_nano),
            fields,
        )
    }

    /// The millisecond the step ids of `item`'s trace start with (looked up before any
    /// item is placed).
    fn id_ms(&self, item: &Item<'_>) -> u64 {
        self.state.traces.get(&item.trace).copied().unwrap_or(0)
    }

    /// The row of a span whose child came first.
    fn step_placeholder(&self, item: &Item<'_>, span: &SpanId) -> Opened {
        let mut opened = self.opened(
            Kind::Step,
            &spans::step_id(&item.trace, span, self.id_ms(item)),
            spans::time(item.span.start_time_unix_nano),
            spans::placeholder(&item.trace, Some(span)),
        );
        opened.parent = Some(spans::session_id(&item.trace));
        opened
    }

    fn place(&mut self, item: &Item<'_>, resource: &Fields) -> Result<(), ExportError> {
        let session = spans::session_id(&item.trace);
        if !self.state.rows.contains_key(&session) {
            let opened = self.session_placeholder(item, resource);
            let sent = self.send(Command::Opened(opened))?;
            self.state
                .rows
                .insert(session.clone(), Known::Open { sent });
        }
        let id_ms = self.id_ms(item);
        let parent = item.parent.map(|p| spans::step_id(&item.trace, &p, id_ms));
        if let (Some(parent_span), Some(parent_id)) = (&item.parent, &parent)
            && !self.state.rows.contains_key(parent_id)
        {
            let opened = self.step_placeholder(item, parent_span);
            let sent = self.send(Command::Opened(opened))?;
            self.state
                .rows
                .insert(parent_id.clone(), Known::Open { sent });
        }

        let id = spans::step_id(&item.trace, &item.id, id_ms);
        let start = spans::time(item.span.start_time_unix_nano);
        let end = spans::time(
            item.span
                .end_time_unix_nano
                .max(item.span.start_time_unix_nano),
        );
        let fields = spans::span_fields(item.span, item.scope, &self.inner.limits);
        let session_fields = item
            .parent
            .is_none()
            .then(|| spans::session_fields(&fields, resource));
        match self.state.rows.get(&id).copied() {
            Some(Known::Ended { .. }) => {}
            None => {
                let mut opened = self.opened(Kind::Step, &id, start, fields);
                opened.parent = Some(session.clone());
                opened.parent_step = parent.clone();
                let sent = self.send(Command::Opened(opened))?;
                self.state.rows.insert(id.clone(), Known::Open { sent });
                let sent = self.send(Command::Closed(Closed {
                    id: id.clone(),
                    at: end,
                    learned: None,
                }))?;
                self.state.rows.insert(id, Known::Ended { sent });
            }
            Some(known) => {
                if let Known::Stored = known {
                    let adopted = self.step_placeholder(item, &item.id);
                    let sent = self.send(Command::Adopted(adopted))?;
                    self.state.rows.insert(id.clone(), Known::Open { sent });
                }
                let own = self.state.rows.get(&id).map_or(0, |k| k.sent());
                // The parent's INSERT must come before this row's in a transaction: if the
                // parent was sent after this row's placeholder and neither is committed
                // yet, commit the placeholder first so the completion is an UPDATE.
                let parent_sent = parent
                    .as_ref()
                    .and_then(|p| self.state.rows.get(p))
                    .map_or(0, |k| k.sent());
                if parent_sent > own && own > self.state.committed {
                    self.commit_now()?;
                }
                let sent = self.send(Command::Closed(Closed {
                    id: id.clone(),
                    at: end,
                    learned: Some(Box::new(Learned {
                        recorded: fields,
                        started: Some(start),
                        parent_step: parent,
                        ..Learned::default()
                    })),
                }))?;
                self.state.rows.insert(id, Known::Ended { sent });
            }
        }

        if let Some(recorded) = session_fields {
            self.close_session(item, resource, session, start, end, recorded)?;
        }
        Ok(())
    }

    /// The root span arrived: the session takes its start, end, profile and outcome.
    fn close_session(
        &mut self,
        item: &Item<'_>,
        resource: &Fields,
        session: AuditId,
        start: SystemTime,
        end: SystemTime,
        recorded: Fields,
    ) -> Result<(), ExportError> {
        match self.state.rows.get(&session).copied() {
            Some(Known::Ended { .. }) => return Ok(()),
            Some(Known::Stored) => {
                let adopted = self.session_placeholder(item, resource);
                let sent = self.send(Command::Adopted(adopted))?;
                self.state
                    .rows
                    .insert(session.clone(), Known::Open { sent });
            }
            _ => {}
        }
        let sent = self.send(Command::Closed(Closed {
            id: session.clone(),
            at: end,
            learned: Some(Box::new(Learned {
                recorded,
                started: Some(start),
                ..Learned::default()
            })),
        }))?;
        self.state.rows.insert(session, Known::Ended { sent });
        Ok(())
    }
}

/// Orders a request's spans so that a span comes after its parent when both are in it:
/// the parent's row then has its place before the child names it. A cycle of parents
/// (which no real trace has) is cut where it closes.
fn parents_first(items: &mut [Item<'_>]) {
    let index: HashMap<(TraceId, SpanId), usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.trace, item.id), i))
        .collect();
    let parent_of = |i: usize| {
        items[i]
            .parent
            .and_then(|p| index.get(&(items[i].trace, p)).copied())
    };
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    let mut on_path = vec![false; items.len()];
    for start in 0..items.len() {
        let mut path = Vec::new();
        let mut at = start;
        let base = loop {
            if let Some(d) = depth[at] {
                break Some(d);
            }
            path.push(at);
            on_path[at] = true;
            match parent_of(at) {
                Some(parent) if !on_path[parent] => at = parent,
                _ => break None,
            }
        };
        let top = base.map_or(0, |d| d + 1);
        for (d, &i) in (top..).zip(path.iter().rev()) {
            depth[i] = Some(d);
            on_path[i] = false;
        }
    }
    let mut keyed: Vec<(usize, usize)> = depth
        .iter()
        .enumerate()
        .map(|(i, d)| (d.unwrap_or(0), i))
        .collect();
    keyed.sort();
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    apply_order(items, &order);
}

/// Rearranges `items` so that position `k` holds what was at `order[k]`.
fn apply_order<T>(items: &mut [T], order: &[usize]) {
    let mut position: Vec<usize> = (0..items.len()).collect(); // where each original is now
    let mut at: Vec<usize> = (0..items.len()).collect(); // which original is at each place
    for (k, &original) in order.iter().enumerate() {
        let from = position[original];
        if from != k {
            items.swap(k, from);
            let displaced = at[k];
            at[k] = original;
            at[from] = displaced;
            position[original] = k;
            position[displaced] = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_order_moves_each_item_where_the_order_says() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e'];
        apply_order(&mut items, &[3, 0, 4, 1, 2]);
        assert_eq!(items, vec!['d', 'a', 'e', 'b', 'c']);
    }
}
