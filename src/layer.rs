//! [`AuditLayer`]: the tracing callbacks, and nothing else. This is the caller's hot path.
//!
//! Each callback does the least it can on the caller's thread: recognise the span by name,
//! copy its fields, give it an id, and send a small record to the writer thread. No SQLite,
//! no hashing, no JSON happens here. Spans with other names return after one string
//! comparison on creation and one span lookup on close.

use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{Sender, TrySendError};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::builder::{AuditLayerBuilder, OverflowPolicy};
use crate::context::{self, SpanState};
use crate::fields::{Collector, FieldLimits, FieldValue, last};
use crate::health::Health;
use crate::ids::AuditId;
use crate::record::{Closed, Command, Decided, Kind, Learned, Opened};
use crate::rows;

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
}

impl AuditLayer {
    /// Starts configuring an audit layer; see [`AuditLayerBuilder`] for the options and
    /// their defaults.
    pub fn builder() -> AuditLayerBuilder {
        AuditLayerBuilder::default()
    }

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

    fn collect(
        &self,
        capacity: usize,
        record: impl FnOnce(&mut Collector<'_>),
    ) -> crate::fields::Fields {
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
        let id = AuditId::generate(at);
        self.send(Command::Opened(Opened {
            kind,
            id: id.clone(),
            parent,
            parent_step: None,
            at,
            target,
            fields: Vec::new(),
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

impl<S> tracing_subscriber::Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let Some(kind) = Kind::of_span(metadata.name()) else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        let at = SystemTime::now();
        let target = metadata.target();
        let fields = self.collect(metadata.fields().len(), |c| attrs.record(c));
        let enclosing = context::enclosing(Some(&span), self.key, false);

        let mut implicit = Vec::new();
        let (id, session, step, parent, parent_step) = match kind {
            Kind::Session => {
                let id = match last(&fields, "id") {
                    Some(given) => AuditId::Given(rows::text(given).into()),
                    None => AuditId::generate(at),
                };
                (id.clone(), id, None, None, None)
            }
            Kind::Step => {
                let (session, parent_step) = match enclosing {
                    Some(found) => found,
                    None => {
                        let session = self.open_implicit(Kind::Session, None, at, target);
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
            &span,
            self.key,
            SpanState {
                kind,
                id,
                session,
                step,
                learned: None,
                implicit,
            },
        );
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if Kind::of_span(span.name()).is_none() {
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
        let fields_of_interest = metadata.fields().field("return").is_some()
            || metadata.fields().field("error").is_some();
        if !(is_decision || is_error || fields_of_interest) {
            return;
        }
        let parent = ctx.event_span(event);
        // An outcome only matters directly inside an audited span: anywhere else (an error
        // logged in unrelated code, say) the event's fields are not even copied.
        let notes_outcome = (is_error || fields_of_interest)
            && parent.as_ref().is_some_and(|span| {
                Kind::of_span(span.name()).is_some()
                    && span
                        .extensions()
                        .get::<context::Audited>()
                        .is_some_and(|a| a.get(self.key).is_some())
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
                    note_outcome(state, &fields, is_error);
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
        let Some(span) = ctx.span(&id) else { return };
        if Kind::of_span(span.name()).is_none() {
            return;
        }
        let Some(state) = context::remove(&span, self.key) else {
            return;
        };
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

/// What an event directly inside an audited span says about its outcome: the value of
/// `return` (`#[instrument(ret)]`), of `error` (`#[instrument(err)]`), or, for an
/// ERROR-level event without an `error` field, its message.
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
