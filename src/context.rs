//! Per-span audit state, kept in the registry's span extensions, and the lookups that find
//! the session and step a span or event belongs to.
//!
//! The state of an audited span says which session and which step its children belong to.
//! A new span finds it by walking up its ancestors to the nearest audited one, which works
//! through any number of unrelated spans, across threads (the registry records the parent
//! when the span is created, wherever it is later entered) and through `.instrument(span)`
//! futures. Unrelated spans carry no state and cost nothing here.

use tracing::Subscriber;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::ids::AuditId;
use crate::record::{Kind, Learned};

/// What one layer knows about one audited span while it is open.
#[derive(Debug)]
pub(crate) struct SpanState {
    pub(crate) kind: Kind,
    pub(crate) id: AuditId,
    /// The session the span belongs to (a session's is itself).
    pub(crate) session: AuditId,
    /// The step its children belong to: a step's is itself, a decision's is its step, a
    /// session's is none.
    pub(crate) step: Option<AuditId>,
    /// Recorded fields and outcome events, allocated when the first one arrives.
    pub(crate) learned: Option<Box<Learned>>,
    /// Rows the layer made up to hold this span (an implicit step, an implicit session),
    /// innermost first; they close when the span closes.
    pub(crate) implicit: Vec<AuditId>,
    /// A framework's tool call: a WARN event inside it reports the tool failed.
    pub(crate) tool: bool,
}

/// The extension stored in each audited span. Usually one layer audits a span; when
/// several audit layers share a registry, each keeps its own state under its own key.
#[derive(Debug)]
pub(crate) struct Audited {
    first: (u64, SpanState),
    others: Vec<(u64, SpanState)>,
}

impl Audited {
    pub(crate) fn get(&self, layer: u64) -> Option<&SpanState> {
        if self.first.0 == layer {
            return Some(&self.first.1);
        }
        self.others
            .iter()
            .find(|(k, _)| *k == layer)
            .map(|(_, s)| s)
    }

    pub(crate) fn get_mut(&mut self, layer: u64) -> Option<&mut SpanState> {
        if self.first.0 == layer {
            return Some(&mut self.first.1);
        }
        self.others
            .iter_mut()
            .find(|(k, _)| *k == layer)
            .map(|(_, s)| s)
    }

    /// Any layer's state: for [`current_session_id`], which is not tied to one layer.
    fn any(&self) -> &SpanState {
        &self.first.1
    }
}

/// Stores `state` as `layer`'s state of `span`.
pub(crate) fn insert<S>(span: &SpanRef<'_, S>, layer: u64, state: SpanState)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    match extensions.get_mut::<Audited>() {
        Some(audited) => audited.others.push((layer, state)),
        None => extensions.insert(Audited {
            first: (layer, state),
            others: Vec::new(),
        }),
    }
}

/// Whether `layer` audits `span`.
pub(crate) fn is_audited<S>(span: &SpanRef<'_, S>, layer: u64) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<Audited>()
        .is_some_and(|a| a.get(layer).is_some())
}

/// Removes `layer`'s state of `span`, when it closes.
pub(crate) fn remove<S>(span: &SpanRef<'_, S>, layer: u64) -> Option<SpanState>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    let audited = extensions.get_mut::<Audited>()?;
    if audited.first.0 == layer {
        if audited.others.is_empty() {
            return extensions.remove::<Audited>().map(|a| a.first.1);
        }
        let next = audited.others.remove(0);
        return Some(std::mem::replace(&mut audited.first, next).1);
    }
    let index = audited.others.iter().position(|(k, _)| *k == layer)?;
    Some(audited.others.remove(index).1)
}

/// The session and step a child of `span` (or `span` itself, when `include_self`) belongs
/// to, from the nearest audited span at or above it.
pub(crate) fn enclosing<S>(
    span: Option<&SpanRef<'_, S>>,
    layer: u64,
    include_self: bool,
) -> Option<(AuditId, Option<AuditId>)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = span?;
    let skip = usize::from(!include_self);
    span.scope().skip(skip).find_map(|ancestor| {
        let extensions = ancestor.extensions();
        let state = extensions.get::<Audited>()?.get(layer)?;
        Some((state.session.clone(), state.step.clone()))
    })
}

/// The id of the reasoning session the current span belongs to, as written in the
/// `sessions.id` column; `None` outside every session, or when no [`AuditLayer`] is
/// installed in the current subscriber.
///
/// A session given an id that already names another session is written under
/// `<id>~<uuidv7>` (see the crate docs); the store decides that on the writer thread, so
/// this returns the id as given, which such a row keeps in `attributes.given_id`.
///
/// Use it to link the audit trail to your own records (a response header, a ticket).
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let (audit, _guard) = reasonkit_audit::AuditLayer::builder()
///     .path(dir.path().join("audit.db"))
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(audit);
/// tracing::subscriber::with_default(subscriber, || {
///     assert_eq!(reasonkit_audit::current_session_id(), None);
///     let session = tracing::info_span!("session", id = "sess_abc123");
///     let _entered = session.enter();
///     let step = tracing::info_span!("step", module = "gigathink");
///     let _in_step = step.enter();
///     assert_eq!(reasonkit_audit::current_session_id().as_deref(), Some("sess_abc123"));
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`AuditLayer`]: crate::AuditLayer
pub fn current_session_id() -> Option<String> {
    tracing::Span::current().with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        span.scope().find_map(|ancestor| {
            let extensions = ancestor.extensions();
            Some(extensions.get::<Audited>()?.any().session.to_string())
        })
    })?
}

/// A span whose meaning is not known yet: its callsite declares `gen_ai.operation.name` or
/// `otel.name` without a value, which a later `record` may give (swiftide names its spans
/// that way). Kept until the span is decided or closes.
#[derive(Debug)]
pub(crate) struct Undecided {
    pub(crate) at: std::time::SystemTime,
    pub(crate) said: crate::conventions::Said,
    pub(crate) fields: crate::fields::Fields,
}

/// The extension holding each layer's [`Undecided`] state of a span.
#[derive(Debug, Default)]
struct UndecidedSpans(Vec<(u64, Undecided)>);

/// Keeps `state` as `layer`'s undecided state of `span`.
pub(crate) fn insert_undecided<S>(span: &SpanRef<'_, S>, layer: u64, state: Undecided)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    match extensions.get_mut::<UndecidedSpans>() {
        Some(spans) => spans.0.push((layer, state)),
        None => extensions.insert(UndecidedSpans(vec![(layer, state)])),
    }
}

/// Takes `layer`'s undecided state of `span`, if it has one.
pub(crate) fn take_undecided<S>(span: &SpanRef<'_, S>, layer: u64) -> Option<Undecided>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    let spans = extensions.get_mut::<UndecidedSpans>()?;
    let index = spans.0.iter().position(|(k, _)| *k == layer)?;
    Some(spans.0.swap_remove(index).1)
}

/// A framework step opened outside every session, not placed yet: rig 0.38 opens its turns
/// and tool calls with no parent and says which run they belong to only by a
/// `follows_from` right after. It is placed (given its session, and its row opened from
/// its creation time) at the first of: that `follows_from`, a record, an event or a child
/// inside it, its close. (Not on being entered: that would cost every span of the program a
/// callback.)
#[derive(Debug)]
pub(crate) struct Unplaced {
    pub(crate) at: std::time::SystemTime,
    pub(crate) resolved: crate::conventions::Resolved,
    pub(crate) fields: crate::fields::Fields,
}

/// The extension holding each layer's [`Unplaced`] state of a span.
#[derive(Debug, Default)]
struct UnplacedSpans(Vec<(u64, Unplaced)>);

/// Keeps `state` as `layer`'s unplaced state of `span`.
pub(crate) fn insert_unplaced<S>(span: &SpanRef<'_, S>, layer: u64, state: Unplaced)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    match extensions.get_mut::<UnplacedSpans>() {
        Some(spans) => spans.0.push((layer, state)),
        None => extensions.insert(UnplacedSpans(vec![(layer, state)])),
    }
}

/// Whether `layer` has yet to place `span`.
pub(crate) fn is_unplaced<S>(span: &SpanRef<'_, S>, layer: u64) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<UnplacedSpans>()
        .is_some_and(|spans| spans.0.iter().any(|(k, _)| *k == layer))
}

/// Takes `layer`'s unplaced state of `span`, if it has one.
pub(crate) fn take_unplaced<S>(span: &SpanRef<'_, S>, layer: u64) -> Option<Unplaced>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    let spans = extensions.get_mut::<UnplacedSpans>()?;
    let index = spans.0.iter().position(|(k, _)| *k == layer)?;
    Some(spans.0.swap_remove(index).1)
}

/// A framework's run span opened outside every session on this thread, that no turn has
/// joined yet: rig 0.38 opens its `invoke_agent` span, never enters it, and opens the run's
/// first turn on the same thread with no link to it at all. Such a turn, of the same agent,
/// joins the newest of these (see [`claim_run`]).
#[derive(Debug)]
struct RunOpened {
    layer: u64,
    span: tracing::Id,
    session: AuditId,
    agent: Option<String>,
}

/// How many unjoined runs a thread remembers; older ones are forgotten first.
const RUNS_REMEMBERED: usize = 8;

thread_local! {
    static RUNS_OPENED: std::cell::RefCell<Vec<RunOpened>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Remembers a run span opened outside every session on this thread.
pub(crate) fn run_opened(layer: u64, span: tracing::Id, session: AuditId, agent: Option<String>) {
    RUNS_OPENED.with_borrow_mut(|runs| {
        if runs.len() == RUNS_REMEMBERED {
            runs.remove(0);
        }
        runs.push(RunOpened {
            layer,
            span,
            session,
            agent,
        });
    });
}

/// Forgets a run that closed (on this thread; one closed elsewhere is found stale later).
pub(crate) fn run_closed(layer: u64, session: &AuditId) {
    let _ = RUNS_OPENED.try_with(|runs| {
        if let Ok(mut runs) = runs.try_borrow_mut() {
            runs.retain(|r| !(r.layer == layer && r.session == *session));
        }
    });
}

/// The session of the newest run of `agent` opened on this thread that no turn has joined,
/// still open (its span still holds that session); it is joined now, so the next turn of
/// the same run finds its way by `follows_from` instead.
pub(crate) fn claim_run(
    layer: u64,
    agent: &str,
    holds: impl Fn(&tracing::Id, &AuditId) -> bool,
) -> Option<AuditId> {
    RUNS_OPENED.with_borrow_mut(|runs| {
        while let Some(index) = runs
            .iter()
            .rposition(|r| r.layer == layer && r.agent.as_deref() == Some(agent))
        {
            let run = runs.remove(index);
            if holds(&run.span, &run.session) {
                return Some(run.session);
            }
        }
        None
    })
}

/// Whether `span` holds `session` as `layer`'s session: the span of a run is still open.
pub(crate) fn holds_session<S>(span: &SpanRef<'_, S>, layer: u64, session: &AuditId) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<Audited>()
        .and_then(|a| a.get(layer))
        .is_some_and(|state| state.kind == Kind::Session && state.session == *session)
}

/// A rig span that closed on this thread, with where a span that follows from it belongs.
/// rig 0.38 links each turn to the span before it by that span's id, after that span has
/// closed — and the registry has usually handed the same id to the new turn by then.
#[derive(Debug)]
struct Closed {
    layer: u64,
    span: u64,
    session: AuditId,
    parent_step: Option<AuditId>,
}

/// How many closed rig spans a thread remembers.
const CLOSED_REMEMBERED: usize = 32;

thread_local! {
    static CLOSED: std::cell::RefCell<std::collections::VecDeque<Closed>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// Remembers that the rig span `span`, in `session` under `parent_step`, closed.
pub(crate) fn rig_span_closed(
    layer: u64,
    span: &tracing::Id,
    session: AuditId,
    parent_step: Option<AuditId>,
) {
    let _ = CLOSED.try_with(|closed| {
        if let Ok(mut closed) = closed.try_borrow_mut() {
            if closed.len() == CLOSED_REMEMBERED {
                closed.pop_front();
            }
            closed.push_back(Closed {
                layer,
                span: span.into_u64(),
                session,
                parent_step,
            });
        }
    });
}

/// Where a span following the rig span `span`, closed on this thread, belongs.
pub(crate) fn after_closed(layer: u64, span: &tracing::Id) -> Option<(AuditId, Option<AuditId>)> {
    let id = span.into_u64();
    CLOSED.with_borrow(|closed| {
        closed
            .iter()
            .rev()
            .find(|c| c.layer == layer && c.span == id)
            .map(|c| (c.session.clone(), c.parent_step.clone()))
    })
}
