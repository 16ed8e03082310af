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
    let held = |span: &SpanRef<'_, S>| {
        let extensions = span.extensions();
        let state = extensions.get::<Audited>()?.get(layer)?;
        Some((state.session.clone(), state.step.clone()))
    };
    if include_self {
        if let Some(found) = held(span) {
            return Some(found);
        }
    }
    // Parent by parent rather than `scope().skip(1)`, which would look the span itself up
    // once more in the registry: this runs for every audited span that opens.
    let mut next = span.parent();
    while let Some(ancestor) = next {
        if let Some(found) = held(&ancestor) {
            return Some(found);
        }
        next = ancestor.parent();
    }
    None
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
    pub(crate) said: crate::capture::conventions::Said,
    pub(crate) fields: crate::record::Fields,
}

/// An extension holding one state of type `T` per layer: [`Undecided`] and
/// [`Unplaced`](crate::capture::placement::Unplaced) spans, kept until they are audited or close.
#[derive(Debug)]
struct PerLayer<T>(Vec<(u64, T)>);

/// Keeps `state` as `layer`'s state of type `T` in `span`.
pub(crate) fn keep<T, S>(span: &SpanRef<'_, S>, layer: u64, state: T)
where
    T: Send + Sync + 'static,
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    match extensions.get_mut::<PerLayer<T>>() {
        Some(states) => states.0.push((layer, state)),
        None => extensions.insert(PerLayer(vec![(layer, state)])),
    }
}

/// Whether `span` keeps a state of type `T` for `layer`.
pub(crate) fn keeps<T, S>(span: &SpanRef<'_, S>, layer: u64) -> bool
where
    T: Send + Sync + 'static,
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<PerLayer<T>>()
        .is_some_and(|states| states.0.iter().any(|(k, _)| *k == layer))
}

/// Takes `layer`'s state of type `T` from `span`, if it keeps one.
pub(crate) fn take<T, S>(span: &SpanRef<'_, S>, layer: u64) -> Option<T>
where
    T: Send + Sync + 'static,
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut extensions = span.extensions_mut();
    let states = extensions.get_mut::<PerLayer<T>>()?;
    let index = states.0.iter().position(|(k, _)| *k == layer)?;
    Some(states.0.swap_remove(index).1)
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
