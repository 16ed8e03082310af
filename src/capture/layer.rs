//! [`AuditLayer`]: the tracing callbacks, and nothing else. This is the caller's hot path.
//!
//! Each callback does the least it can on the caller's thread: recognise the span by name,
//! copy its fields, give it an id, and send a small record to the writer thread. No SQLite,
//! no hashing, no JSON happens here. Spans with other names return after one table lookup
//! on creation and one span lookup on close, and a `follows_from` after one load while no
//! rig step waits to be placed (see [`crate::capture::placement`]); entering a span costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use crossbeam_channel::{Sender, TrySendError};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::capture::context::{self, SpanState, Undecided};
use crate::capture::conventions::{self, Callsites, Meaning, Resolved, Said};
use crate::capture::fields::Collector;
use crate::capture::open_spans::OpenSpans;
use crate::health::Health;
use crate::ids::AuditId;
use crate::record::{self, Closed, Command, Decided, Kind, Learned, Opened};
use crate::record::{FieldLimits, FieldValue, Fields, last};

/// A [`tracing_subscriber::Layer`] that records spans named `session`, `step` and
/// `decision` (and events named `decision`) as rows of an SQLite audit database.
///
/// Build it with [`AuditLayer::builder`], which also returns the [`AuditGuard`] that owns
/// the writer thread; add it to the registry you already have. See the
/// [crate documentation](crate) for the mapping of fields onto columns.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let (audit, guard) = reasonkit_audit::AuditLayer::builder()
///     .path(dir.path().join("audit.db"))
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(audit);
///
/// tracing::subscriber::with_default(subscriber, || {
///     let session = tracing::info_span!("session", profile = "quick", input = "Is 2 prime?");
///     let _session = session.enter();
///     let step = tracing::info_span!("step", module = "laserlogic", confidence = 0.93);
///     let _step = step.enter();
///     tracing::info!(name: "decision", decision_type = "verdict", chosen_option = "yes");
/// });
/// guard.flush()?; // everything above is now committed
///
/// let db = rusqlite::Connection::open(dir.path().join("audit.db"))?;
/// let (module, confidence): (String, f64) =
///     db.query_row("SELECT module, confidence FROM steps", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
/// assert_eq!((module.as_str(), confidence), ("laserlogic", 0.93));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`AuditGuard`]: crate::AuditGuard
#[derive(Debug)]
pub struct AuditLayer {
    /// Tells this layer's span state apart from another audit layer's in the same registry.
    pub(crate) key: u64,
    pub(crate) sender: Sender<Command>,
    pub(crate) policy: OverflowPolicy,
    pub(crate) limits: Arc<FieldLimits>,
    pub(crate) health: Arc<Health>,
    /// What each callsite's spans are, decided once.
    pub(crate) callsites: Callsites,
    /// How many spans wait to be placed ([`crate::capture::placement`]): while none do, a
    /// `follows_from` costs one load.
    pub(crate) unplaced: AtomicUsize,
    /// The spans open now whose callsite this layer does not ignore, so that an unrelated
    /// span's close is decided without a lookup.
    pub(crate) open: OpenSpans,
}

/// What the layer does when the queue to the writer is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// The instrumented thread waits until there is room: nothing is lost. The default.
    #[default]
    Block,
    /// The record is dropped and counted ([`AuditStats::dropped_records`]); the
    /// instrumented thread never waits.
    ///
    /// [`AuditStats::dropped_records`]: crate::AuditStats::dropped_records
    Drop,
}

/// The GenAI conventions' session key: a run in a conversation is a session with its id.
const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// The GenAI conventions' agent name: a run's, and each of its turns'.
pub(crate) const GEN_AI_AGENT: &str = "gen_ai.agent.name";

impl AuditLayer {
    fn send(&self, command: Command) {
        let result = match self.policy {
            OverflowPolicy::Block => self
                .sender
                .send(command)
                .map_err(|e| TrySendError::Disconnected(e.into_inner())),
            OverflowPolicy::Drop => self.sender.try_send(command),
        };
        match result {
            Ok(()) => {}
            Err(TrySendError::Full(dropped)) => {
                if let Command::Closed(closed) = dropped {
                    // The writer holds the row until it closes: tell it the close is lost.
                    self.health.forget_close(closed.id);
                }
                self.health.record_dropped();
            }
            Err(TrySendError::Disconnected(_)) => self.health.record_lost_after_stop(),
        }
    }

    fn collect(&self, capacity: usize, record: impl FnOnce(&mut Collector<'_>)) -> Fields {
        let mut collector = Collector::new(&self.limits, capacity);
        record(&mut collector);
        collector.fields
    }

    /// Opens a row the layer makes up to hold an orphan step or decision.
    fn open_implicit(
        &self,
        kind: Kind,
        parent: Option<AuditId>,
        at: SystemTime,
        target: &'static str,
    ) -> AuditId {
        self.send_implicit(kind, AuditId::generate(at), parent, at, target, Vec::new())
    }

    /// Sends the opening of a row the layer made up, under `id`, with `fields`.
    fn send_implicit(
        &self,
        kind: Kind,
        id: AuditId,
        parent: Option<AuditId>,
        at: SystemTime,
        target: &'static str,
        fields: Fields,
    ) -> AuditId {
        self.send(Command::Opened(Opened {
            kind,
            id: id.clone(),
            parent,
            parent_step: None,
            at,
            target,
            fields,
            implicit: true,
        }));
        id
    }

    /// The session and step for a decision: the enclosing ones, or implicit ones (returned
    /// in `implicit`, innermost first, for the caller to close).
    fn step_for_decision(
        &self,
        enclosing: Option<(AuditId, Option<AuditId>)>,
        at: SystemTime,
        target: &'static str,
        implicit: &mut Vec<AuditId>,
    ) -> (AuditId, AuditId) {
        match enclosing {
            Some((session, Some(step))) => (session, step),
            Some((session, None)) => {
                let step = self.open_implicit(Kind::Step, Some(session.clone()), at, target);
                implicit.push(step.clone());
                (session, step)
            }
            None => {
                let session = self.open_implicit(Kind::Session, None, at, target);
                let step = self.open_implicit(Kind::Step, Some(session.clone()), at, target);
                implicit.push(step.clone());
                implicit.push(session.clone());
                (session, step)
            }
        }
    }

    fn close_implicit(&self, implicit: Vec<AuditId>, at: SystemTime, failed: bool) {
        for id in implicit {
            self.send(Command::Closed(Closed {
                id,
                at,
                learned: failed.then(|| {
                    Box::new(Learned {
                        error_event: true,
                        ..Learned::default()
                    })
                }),
            }));
        }
    }
}

impl AuditLayer {
    /// Opens the row of a span that turned out to be audited, as `resolved`, with the
    /// fields it has so far, and keeps its state in the span — or, for a rig step outside
    /// every session, keeps it waiting until rig says which run it belongs to
    /// ([`crate::capture::placement`]).
    fn open<S>(
        &self,
        span: &SpanRef<'_, S>,
        resolved: Resolved,
        at: SystemTime,
        fields: Fields,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.place_unplaced_parent(span, ctx);
        let enclosing = context::enclosing(Some(span), self.key, false);
        let mut kind = resolved.kind;
        if resolved.framework {
            // `tool`, `chat`, `complete` … are common words: a framework's only inside a
            // session. An agent run inside a session is one of its steps.
            if resolved.weak && enclosing.is_none() {
                return;
            }
            if kind == Kind::Session && enclosing.is_some() {
                kind = Kind::Step;
            }
            if kind == Kind::Step && enclosing.is_none() {
                if let Some(session) = self.claim_run(&fields, ctx) {
                    self.open_in(span, kind, at, fields, Some((session, None)), true);
                    return;
                }
                if conventions::links_by_follows_from(span.metadata().target()) {
                    self.wait_for_link(span, resolved, at, fields);
                    return;
                }
            }
        }
        self.open_in(span, kind, at, fields, enclosing, resolved.framework);
    }

    /// Opens the row of `span` as a `kind` in `enclosing` (the session and step its parent
    /// belongs to; `None` outside every session), and keeps its state in the span.
    pub(crate) fn open_in<S>(
        &self,
        span: &SpanRef<'_, S>,
        kind: Kind,
        at: SystemTime,
        fields: Fields,
        enclosing: Option<(AuditId, Option<AuditId>)>,
        framework: bool,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let target = span.metadata().target();
        let mut implicit = Vec::new();
        let (id, session, step, parent, parent_step) = match kind {
            Kind::Session => {
                let given = last(&fields, "id").or_else(|| last(&fields, CONVERSATION_ID));
                let id = match given {
                    Some(given) => AuditId::given(record::text(given), at),
                    None => AuditId::generate(at),
                };
                if framework {
                    self.run_opened(span, &id, &fields);
                }
                (id.clone(), id, None, None, None)
            }
            Kind::Step => {
                let (session, parent_step) = match enclosing {
                    Some(found) => found,
                    None => {
                        let session = self.open_implicit_session(&fields, at, target);
                        implicit.push(session.clone());
                        (session, None)
                    }
                };
                let id = AuditId::generate(at);
                (
                    id.clone(),
                    session.clone(),
                    Some(id),
                    Some(session),
                    parent_step,
                )
            }
            Kind::Decision => {
                let (session, step) = self.step_for_decision(enclosing, at, target, &mut implicit);
                (
                    AuditId::generate(at),
                    session,
                    Some(step.clone()),
                    Some(step),
                    None,
                )
            }
        };

        self.send(Command::Opened(Opened {
            kind,
            id: id.clone(),
            parent,
            parent_step,
            at,
            target,
            fields,
            implicit: false,
        }));
        context::insert(
            span,
            self.key,
            SpanState {
                kind,
                id,
                session,
                step,
                learned: None,
                implicit,
                tool: framework && kind == Kind::Step && conventions::is_tool(span.metadata()),
            },
        );
    }

    /// The session a step outside every session is given: a new one, under the step's
    /// `gen_ai.conversation.id` when it has one (so the turns of one conversation are
    /// found by its id, each written `<id>~<uuidv7>` after the first).
    fn open_implicit_session(
        &self,
        fields: &Fields,
        at: SystemTime,
        target: &'static str,
    ) -> AuditId {
        let Some(conversation) = last(fields, CONVERSATION_ID) else {
            return self.open_implicit(Kind::Session, None, at, target);
        };
        let id = AuditId::given(record::text(conversation), at);
        let fields = vec![(CONVERSATION_ID, conversation.clone())];
        self.send_implicit(Kind::Session, id, None, at, target, fields)
    }

    /// A `record` on a span whose meaning was not known at creation: decides it now, if the
    /// record says.
    fn decide_late<S>(
        &self,
        span: &SpanRef<'_, S>,
        values: &Record<'_>,
        meaning: Meaning,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(mut undecided) = context::take::<Undecided, _>(span, self.key) else {
            return;
        };
        let mut later = Said::default();
        values.record(&mut later);
        undecided
            .fields
            .extend(self.collect(values.len(), |c| values.record(c)));
        undecided.said.merge(later);
        match meaning.resolve(&undecided.said) {
            Some(resolved) => self.open(span, resolved, undecided.at, undecided.fields, ctx),
            None if undecided.said.may_still_say(span.metadata()) => {
                context::keep(span, self.key, undecided);
            }
            None => {}
        }
    }

    /// The rest of `on_new_span`, for a callsite that may be audited: out of line, so that
    /// the callbacks stay small for the spans of no interest.
    #[inline(never)]
    fn new_span<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>, meaning: Meaning)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let metadata = attrs.metadata();
        let mut said = Said::default();
        if matches!(meaning, Meaning::ByValue { .. }) {
            attrs.record(&mut said);
        }
        let resolved = meaning.resolve(&said);
        let undecided = resolved.is_none() && said.may_still_say(metadata);
        if resolved.is_none() && !undecided {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let at = SystemTime::now();
        let fields = self.collect(metadata.fields().len(), |c| attrs.record(c));
        match resolved {
            Some(resolved) => self.open(&span, resolved, at, fields, &ctx),
            None => context::keep(&span, self.key, Undecided { at, said, fields }),
        }
    }

    /// The rest of `on_close`, for a callsite that may be audited.
    #[inline(never)]
    fn close<S>(&self, span: &SpanRef<'_, S>, meaning: Meaning, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.place_if_unplaced(span, ctx);
        let framework = !matches!(meaning, Meaning::Explicit(_));
        if framework && conventions::links_by_follows_from(span.metadata().target()) {
            self.rig_span_closing(span);
        }
        let Some(state) = context::remove(span, self.key) else {
            if matches!(meaning, Meaning::ByValue { .. }) {
                // Closed before anything said what it was: it was not audited.
                context::take::<Undecided, _>(span, self.key);
            }
            return;
        };
        if state.kind == Kind::Session {
            self.run_closed(&state.id);
        }
        let at = SystemTime::now();
        let failed = state.learned.as_deref().is_some_and(Learned::failed);
        self.send(Command::Closed(Closed {
            id: state.id,
            at,
            learned: state.learned,
        }));
        self.close_implicit(state.implicit, at, failed);
    }
}

impl<S> tracing_subscriber::Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Decide each callsite's meaning once, here, rather than on its first span.
        self.callsites.meaning(metadata);
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meaning = self.callsites.meaning(attrs.metadata());
        if meaning.is_ignored() {
            return;
        }
        self.open.opened(id);
        self.new_span(attrs, id, ctx, meaning);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let meaning = self.callsites.meaning(span.metadata());
        if meaning.is_ignored() {
            return;
        }
        self.place_if_unplaced(&span, &ctx);
        if matches!(meaning, Meaning::ByValue { .. }) && !context::is_audited(&span, self.key) {
            self.decide_late(&span, values, meaning, &ctx);
            return;
        }
        let fields = self.collect(values.len(), |c| values.record(c));
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions
            .get_mut::<context::Audited>()
            .and_then(|a| a.get_mut(self.key))
        {
            Learned::get_or_insert(&mut state.learned)
                .recorded
                .extend(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let is_decision = metadata.name() == "decision";
        let is_error = *metadata.level() == Level::ERROR;
        let is_warning = *metadata.level() == Level::WARN;
        let fields_of_interest = metadata.fields().field("return").is_some()
            || metadata.fields().field("error").is_some();
        if !(is_decision || is_error || is_warning || fields_of_interest) {
            return;
        }
        let parent = ctx.event_span(event);
        if let Some(span) = &parent {
            self.place_if_unplaced(span, &ctx);
        }
        // An outcome only matters directly inside an audited span: anywhere else (an error
        // logged in unrelated code, say) the event's fields are not even copied. A warning
        // matters only inside a framework's tool call, where it says the tool failed.
        let mut tool_failed = false;
        let notes_outcome = (is_error || is_warning || fields_of_interest)
            && parent.as_ref().is_some_and(|span| {
                if self.callsites.meaning(span.metadata()).is_ignored() {
                    return false;
                }
                let extensions = span.extensions();
                let Some(state) = extensions
                    .get::<context::Audited>()
                    .and_then(|a| a.get(self.key))
                else {
                    return false;
                };
                tool_failed = is_warning && state.tool;
                is_error || tool_failed || fields_of_interest
            });
        if !(is_decision || notes_outcome) {
            return;
        }
        let at = SystemTime::now();
        let fields = self.collect(metadata.fields().len(), |c| event.record(c));

        if notes_outcome {
            if let Some(span) = &parent {
                let mut extensions = span.extensions_mut();
                if let Some(state) = extensions
                    .get_mut::<context::Audited>()
                    .and_then(|a| a.get_mut(self.key))
                {
                    note_outcome(state, &fields, is_error || tool_failed);
                }
            }
        }

        if is_decision {
            let target = metadata.target();
            let enclosing = context::enclosing(parent.as_ref(), self.key, true);
            let mut implicit = Vec::new();
            let (_, step) = self.step_for_decision(enclosing, at, target, &mut implicit);
            self.send(Command::Decided(Decided {
                id: AuditId::generate(at),
                step,
                at,
                fields,
            }));
            self.close_implicit(implicit, at, false);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // Most spans of an application are not the layer's: decided by one load.
        if !self.open.may_hold(&id) {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let meaning = self.callsites.meaning(span.metadata());
        if meaning.is_ignored() {
            return;
        }
        self.open.closed(&id);
        self.close(&span, meaning, &ctx);
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if self.unplaced.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.follows(id, follows, &ctx);
    }
}

/// What an event directly inside an audited span says about its outcome: the value of
/// `return` (`#[instrument(ret)]`), of `error` (`#[instrument(err)]`), or, for a failure
/// (an ERROR-level event, or a WARN inside a framework's tool call) without an `error`
/// field, its message.
fn note_outcome(state: &mut SpanState, fields: &[(&'static str, FieldValue)], is_error: bool) {
    let kind = state.kind;
    let learned = Learned::get_or_insert(&mut state.learned);
    if let Some(value) = last(fields, "return") {
        learned.returned = Some(value.clone());
    }
    if let Some(value) = last(fields, "error") {
        learned.error = Some(value.clone());
    } else if is_error && kind == Kind::Step {
        learned.error = last(fields, "message").cloned();
    }
    learned.error_event |= is_error;
}
