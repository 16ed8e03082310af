//! Placing one request's spans: the commands each span becomes, sent to the writer in an
//! order that every transaction can take (a row's parent before it), with the receiver's
//! memory of each row kept true to what was sent — so that a request cut short (a full
//! queue) is finished by its retry, and nothing is sent twice.
//!
//! A span whose row does not exist yet is opened and closed at once (one INSERT). A span
//! whose row a child opened as a placeholder completes it (its start and enclosing step
//! corrected). A span already written is skipped. The root span also completes its
//! trace's session.
//!
//! A root span that follows a span of another trace (a link: a run's turn pointing at the
//! run) joins that trace's session: its trace's steps go there. When some of them were
//! already written into the trace's own session, that session is joined into the other
//! ([`Command::Joined`]); either way the trace's own session row stays, as the pointer
//! (`joined`, `otel.joined_into`) that a receiver started later finds.
//!
//! A span that names a conversation joins its trace to the conversation's session the same
//! way, and a turn's root span rewrites that session whole ([`crate::otlp::conversation`]).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{SendTimeoutError, Sender};
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::ids::AuditId;
use crate::otlp::answer::{self, ExportError};
use crate::otlp::conversation::{self, Conversation};
use crate::otlp::decision;
use crate::otlp::spans::{self, SpanId, TraceId};
use crate::read::presence::Presence;
use crate::record::{
    Closed, Command, Decided, FieldLimits, FieldValue, Fields, Joined, Kind, Learned, Opened,
};

/// The target of every OTLP row: a step without a name the conventions read is named by
/// its span's name (`otel.name`) first, so this shows only on placeholders.
const TARGET: &str = "otlp";

/// Above this many remembered rows, those known committed and ended are forgotten (the
/// store is asked again if they come back): [`crate::otlp::Receiver::remember`]'s default.
pub(super) const MAX_REMEMBERED: usize = 200_000;

/// What the receiver knows of the rows it has seen.
pub(super) struct State {
    /// Above this many rows in `rows`, those committed and ended are forgotten.
    pub(super) remember: usize,
    pub(super) rows: HashMap<AuditId, Known>,
    /// Each trace seen: where its step ids start and where its steps go.
    pub(super) traces: HashMap<TraceId, Trace>,
    /// The traces whose steps go to a session other than their own, by that session: the
    /// ones that move when it joins another in turn (so a join costs what moves, not a
    /// pass over every trace remembered).
    pub(super) followers: HashMap<AuditId, Vec<TraceId>>,
    /// Sessions joined into another: the one each was joined into.
    pub(super) joined: HashMap<AuditId, AuditId>,
    /// The sessions of conversations: what each one's turns have made it so far.
    pub(super) conversations: HashMap<AuditId, Conversation>,
    /// The number of the last command sent to the writer.
    pub(super) sent: u64,
    /// Every command up to this number is committed.
    pub(super) committed: u64,
}

/// What the receiver knows of a trace.
#[derive(Clone, Debug)]
pub(super) struct Trace {
    /// The millisecond its step ids start with (see [`spans::step_id`]).
    pub(super) id_ms: u64,
    /// The session its steps go to: its own, or the one it joined.
    pub(super) session: AuditId,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Known {
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

/// One span of a request, with where it came from.
pub(super) struct Item<'a> {
    pub(super) trace: TraceId,
    pub(super) id: SpanId,
    pub(super) parent: Option<SpanId>,
    /// For a root span: the trace it follows (see [`spans::followed`]).
    pub(super) follows: Option<TraceId>,
    /// The conversation the span names (see [`conversation::of`]).
    pub(super) conversation: Option<String>,
    pub(super) resource: usize,
    pub(super) scope: &'a str,
    pub(super) span: &'a Span,
}

/// What a row found in the store is to this receiver.
pub(super) fn known(presence: Presence) -> Known {
    match presence {
        Presence::Open => Known::Stored,
        Presence::Ended => Known::Ended { sent: 0 },
    }
}

impl Default for State {
    fn default() -> State {
        State {
            remember: MAX_REMEMBERED,
            rows: HashMap::new(),
            traces: HashMap::new(),
            followers: HashMap::new(),
            joined: HashMap::new(),
            conversations: HashMap::new(),
            sent: 0,
            committed: 0,
        }
    }
}

impl State {
    /// Forgets ended rows known committed, when the memory is large.
    pub(super) fn forget_committed(&mut self) {
        if self.rows.len() > self.remember {
            let committed = self.committed;
            self.rows
                .retain(|_, known| !matches!(known, Known::Ended { sent } if *sent <= committed));
            let rows = &self.rows;
            self.traces
                .retain(|trace, _| rows.contains_key(&spans::session_id(trace)));
            self.joined.retain(|from, _| rows.contains_key(from));
            self.conversations.retain(|id, _| rows.contains_key(id));
            let traces = &self.traces;
            self.followers.retain(|_, followers| {
                followers.retain(|trace| traces.contains_key(trace));
                !followers.is_empty()
            });
        }
    }

    /// Remembers `trace`, whose steps go to `trace.session`.
    pub(super) fn add_trace(&mut self, id: TraceId, trace: Trace) {
        if trace.session != spans::session_id(&id) {
            self.followers
                .entry(trace.session.clone())
                .or_default()
                .push(id);
        }
        self.traces.insert(id, trace);
    }
}

impl State {
    /// Where a session's steps are: itself, or the session it was joined into, followed
    /// to the end (one hop for what this receiver joined, as [`Sending::move_into`] keeps
    /// it; a chain of runs each following the last, read from the store, is flattened as
    /// it is read). A cycle, which no receiver writes, ends the walk.
    pub(super) fn resolve(&self, session: &AuditId) -> AuditId {
        let mut at = session;
        for _ in 0..=self.joined.len() {
            match self.joined.get(at) {
                Some(next) if next != session => at = next,
                _ => break,
            }
        }
        at.clone()
    }
}

/// Sends one request's commands, keeping the state true to what was sent.
pub(super) struct Sending<'a> {
    pub(super) sender: &'a Sender<Command>,
    pub(super) limits: &'a FieldLimits,
    pub(super) state: &'a mut State,
    pub(super) deadline: Instant,
    pub(super) queue_wait: Duration,
    pub(super) commit_wait: Duration,
}

impl Sending<'_> {
    pub(super) fn send(&mut self, command: Command) -> Result<u64, ExportError> {
        match self.sender.send_deadline(command, self.deadline) {
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

    /// Sends a flush: what will answer it, and the number of the last command it covers.
    pub(super) fn flush(
        &mut self,
    ) -> Result<(crossbeam_channel::Receiver<Result<(), String>>, u64), ExportError> {
        let (answer, committed) = crossbeam_channel::bounded(1);
        self.send(Command::Flush(answer))?;
        Ok((committed, self.state.sent))
    }

    /// Sends a row's opening, remembered as open: its close is still to be sent.
    fn open(&mut self, opened: Opened) -> Result<(), ExportError> {
        let id = opened.id.clone();
        let sent = self.send(Command::Opened(opened))?;
        self.state.rows.insert(id, Known::Open { sent });
        Ok(())
    }

    /// Waits until everything sent so far is committed.
    fn commit_now(&mut self) -> Result<(), ExportError> {
        let (answer, flushed) = self.flush()?;
        answer::committed(&answer, self.commit_wait)?;
        self.state.committed = self.state.committed.max(flushed);
        Ok(())
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
        let mut opened = self.trace_placeholder(&item.trace, item);
        if let Some(service) = crate::record::last(resource, "service.name") {
            opened.fields.push(("profile", service.clone()));
        }
        opened.fields.extend(resource.iter().cloned());
        opened
    }

    /// The session row of `trace`, holding only what finds it again: its trace id and
    /// where its step ids start. (A followed trace's, opened by the span that follows it.)
    fn trace_placeholder(&self, trace: &TraceId, item: &Item<'_>) -> Opened {
        let mut fields = spans::placeholder(trace, None);
        let id_ms = self.state.traces.get(trace).map_or(0, |t| t.id_ms);
        let id_ms = i64::try_from(id_ms).unwrap_or(i64::MAX);
        fields.push((spans::ID_MS, FieldValue::I64(id_ms)));
        self.opened(
            Kind::Session,
            &spans::session_id(trace),
            spans::time(item.span.start_time_unix_nano),
            fields,
        )
    }

    /// The millisecond the step ids of `item`'s trace start with (looked up before any
    /// item is placed).
    fn id_ms(&self, item: &Item<'_>) -> u64 {
        self.state.traces.get(&item.trace).map_or(0, |t| t.id_ms)
    }

    /// The session `item`'s steps go to.
    fn session_of(&self, item: &Item<'_>) -> AuditId {
        let own = spans::session_id(&item.trace);
        let session = self
            .state
            .traces
            .get(&item.trace)
            .map_or(own, |t| t.session.clone());
        self.state.resolve(&session)
    }

    /// A root span follows a span of `followed`: its trace joins that trace's session,
    /// unless it joined one already (the first link wins) or that would join it to itself.
    fn join(&mut self, item: &Item<'_>, followed: &TraceId) -> Result<(), ExportError> {
        let own = spans::session_id(&item.trace);
        if self.session_of(item) != own {
            return Ok(());
        }
        let followed_own = spans::session_id(followed);
        let target = self.state.resolve(
            &self
                .state
                .traces
                .get(followed)
                .map_or(followed_own.clone(), |t| t.session.clone()),
        );
        if target == own {
            return Ok(());
        }
        if !self.state.rows.contains_key(&target) {
            // The followed trace's session, not seen yet: opened now, completed by its
            // own root when that comes.
            self.state.traces.entry(*followed).or_insert(Trace {
                id_ms: spans::millis(item.span.start_time_unix_nano),
                session: followed_own,
            });
            let opened = self.trace_placeholder(followed, item);
            self.open(opened)?;
        }
        self.move_into(item, own, target)
    }

    /// A span names its conversation: its trace joins the conversation's session, unless
    /// it joined a run's or a conversation's already (see [`crate::otlp::conversation`]).
    fn join_conversation(
        &mut self,
        item: &Item<'_>,
        id: &str,
        resource: &Fields,
    ) -> Result<(), ExportError> {
        let own = spans::session_id(&item.trace);
        if self.session_of(item) != own {
            return Ok(());
        }
        let target = conversation::session_id(id);
        let conversation = self
            .state
            .conversations
            .entry(target.clone())
            .or_insert_with(|| Conversation::new(id.to_owned()));
        if !self.state.rows.contains_key(&target) {
            // Its first span anywhere: the session is opened now, and each turn's root
            // completes it.
            let fields = conversation.opening(resource);
            let opened = self.opened(
                Kind::Session,
                &target,
                spans::time(item.span.start_time_unix_nano),
                fields,
            );
            self.open(opened)?;
        }
        self.move_into(item, own, target)
    }

    /// `item`'s trace, whose session was `own`, goes to `target`: the steps it has there
    /// already move, and `own` becomes the pointer to `target`.
    fn move_into(
        &mut self,
        item: &Item<'_>,
        own: AuditId,
        target: AuditId,
    ) -> Result<(), ExportError> {
        if self.state.rows.contains_key(&own) {
            // Some of its spans are written in its own session already: they move.
            let sent = self.send(Command::Joined(Joined {
                from: own.clone(),
                into: target.clone(),
                at: SystemTime::now(),
                trace: crate::chain::hex(&item.trace),
            }))?;
            self.state.rows.insert(own.clone(), Known::Ended { sent });
        } else {
            // Nothing written yet: its own session is the pointer from the start.
            let opened = self.trace_placeholder(&item.trace, item);
            self.send(Command::Opened(opened))?;
            let sent = self.send(Command::Closed(Closed {
                id: own.clone(),
                at: spans::time(item.span.start_time_unix_nano),
                learned: Some(Box::new(Learned {
                    recorded: pointer_fields(&target),
                    ..Learned::default()
                })),
            }))?;
            self.state.rows.insert(own.clone(), Known::Ended { sent });
        }
        self.state.joined.insert(own.clone(), target.clone());
        // The traces whose steps went to `own` now go to `target`: `item`'s own and those
        // that joined `own` before (kept one hop from where their steps are).
        let state = &mut *self.state;
        let mut moved = state.followers.remove(&own).unwrap_or_default();
        moved.push(item.trace);
        moved.retain(|trace| match state.traces.get_mut(trace) {
            Some(t) if t.session == own => {
                t.session = target.clone();
                true
            }
            _ => false,
        });
        state.followers.entry(target).or_default().extend(moved);
        Ok(())
    }

    /// The row of a span whose child came first.
    fn step_placeholder(&self, item: &Item<'_>, span: &SpanId) -> Opened {
        let mut opened = self.opened(
            Kind::Step,
            &spans::step_id(&item.trace, span, self.id_ms(item)),
            spans::time(item.span.start_time_unix_nano),
            spans::placeholder(&item.trace, Some(span)),
        );
        let session = self.session_of(item);
        if session != spans::session_id(&item.trace) {
            opened.fields.push(trace_id_field(&item.trace));
        }
        opened.parent = Some(session);
        opened
    }

    pub(super) fn place(&mut self, item: &Item<'_>, resource: &Fields) -> Result<(), ExportError> {
        if let Some(followed) = &item.follows {
            self.join(item, followed)?;
        }
        if let Some(conversation) = &item.conversation {
            self.join_conversation(item, conversation, resource)?;
        }
        let own = spans::session_id(&item.trace);
        if !self.state.rows.contains_key(&own) {
            let opened = self.session_placeholder(item, resource);
            self.open(opened)?;
        }
        let session = self.session_of(item);
        let id_ms = self.id_ms(item);
        let parent = item.parent.map(|p| spans::step_id(&item.trace, &p, id_ms));
        if let (Some(parent_span), Some(parent_id)) = (&item.parent, &parent)
            && !self.state.rows.contains_key(parent_id)
        {
            let opened = self.step_placeholder(item, parent_span);
            self.open(opened)?;
        }

        let id = spans::step_id(&item.trace, &item.id, id_ms);
        let start = spans::time(item.span.start_time_unix_nano);
        let end = spans::time(
            item.span
                .end_time_unix_nano
                .max(item.span.start_time_unix_nano),
        );
        let mut fields = spans::span_fields(item.span, item.scope, self.limits);
        if session != own {
            // Its session's `otel.trace_id` is another trace's: it names its own.
            fields.push(trace_id_field(&item.trace));
        }
        // The root completes its trace's session, unless the trace joined another: a
        // run's is completed by the run's own root, a conversation's by every turn's.
        let conversation = self.state.conversations.contains_key(&session);
        let session_fields = (item.parent.is_none() && (session == own || conversation))
            .then(|| spans::session_fields(&fields, resource));
        let sent_before = matches!(self.state.rows.get(&id), Some(Known::Ended { .. }));
        // A decision is written with its span's first complete row, never again.
        let decision = (!sent_before)
            .then(|| decision::of(item.span, &fields))
            .flatten()
            .map(|fields| Decided {
                id: decision::id(&item.trace, &item.id),
                step: parent.clone().unwrap_or_else(|| id.clone()),
                at: end,
                fields,
            });
        match self.state.rows.get(&id).copied() {
            Some(Known::Ended { .. }) => {}
            None => {
                let mut opened = self.opened(Kind::Step, &id, start, fields);
                opened.parent = Some(session.clone());
                opened.parent_step = parent.clone();
                self.open(opened)?;
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
        if let Some(decided) = decision {
            self.send(Command::Decided(decided))?;
        }

        match session_fields {
            Some(recorded) if session == own => {
                self.close_session(item, resource, session, start, end, recorded)?;
            }
            // A turn sent again changes nothing: its conversation has it already.
            Some(turn) if !sent_before => {
                self.close_conversation(resource, session, start, end, &turn)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A turn of a conversation ended (its trace's root span arrived): the conversation's
    /// session is written again, whole, as its turns now make it.
    fn close_conversation(
        &mut self,
        resource: &Fields,
        session: AuditId,
        start: SystemTime,
        end: SystemTime,
        turn: &Fields,
    ) -> Result<(), ExportError> {
        let Some(conversation) = self.state.conversations.get_mut(&session) else {
            return Ok(());
        };
        if conversation.is_erased() {
            return Ok(());
        }
        conversation.turn(start, end, turn, resource);
        let recorded = conversation.fields();
        let started = conversation.started().unwrap_or(start);
        let ended = conversation.ended().unwrap_or(end);
        let opening = conversation.opening(resource);
        if !matches!(self.state.rows.get(&session), Some(Known::Open { .. })) {
            // Written and closed before (or by a receiver before this one): the writer
            // takes it up again, and the close rewrites it.
            let adopted = self.opened(Kind::Session, &session, started, opening);
            let sent = self.send(Command::Adopted(adopted))?;
            self.state
                .rows
                .insert(session.clone(), Known::Open { sent });
        }
        let sent = self.send(Command::Closed(Closed {
            id: session.clone(),
            at: ended,
            learned: Some(Box::new(Learned {
                recorded,
                started: Some(started),
                ..Learned::default()
            })),
        }))?;
        self.state.rows.insert(session, Known::Ended { sent });
        Ok(())
    }

    /// The root span arrived: the session takes its start, end, profile and outcome, and
    /// the resource's attributes (a session opened by a span that follows its trace was
    /// opened without them).
    fn close_session(
        &mut self,
        item: &Item<'_>,
        resource: &Fields,
        session: AuditId,
        start: SystemTime,
        end: SystemTime,
        root: Fields,
    ) -> Result<(), ExportError> {
        let mut recorded = resource.clone();
        recorded.extend(root);
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

/// What a trace's own session says once the trace joined `into`.
fn pointer_fields(into: &AuditId) -> Fields {
    vec![
        ("status", FieldValue::Str("joined".to_owned())),
        (spans::JOINED_INTO, FieldValue::Str(into.to_string())),
    ]
}

/// `otel.trace_id` for a step whose session is another trace's.
fn trace_id_field(trace: &TraceId) -> (&'static str, FieldValue) {
    (
        crate::store::TRACE_ID,
        FieldValue::Str(crate::chain::hex(trace)),
    )
}
