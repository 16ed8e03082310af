//! Where a framework step opened outside every session belongs.
//!
//! rig-core 0.38 opens its own `invoke_agent` run span and never enters it: its first turn
//! has no parent and no link at all, and each later turn and tool call is linked to the one
//! before only by a `follows_from` made right after it opens — when the one before has
//! closed, its id often handed to the new span. So a rig step outside every session is
//! kept [`Unplaced`] until rig says where it belongs: a `follows_from` puts it in the
//! session of the span it follows (live, or closed on this thread); a first turn joins the
//! newest run of its agent opened on its thread that no turn has joined; failing both, it
//! gets an implicit session as soon as something happens in it. rig-agent 0.44 enters its
//! run span, and needs none of this.
//!
//! The layer's callbacks call into this file (methods of [`AuditLayer`]), which keeps what
//! it takes: the waiting state, and the runs opened and rig spans closed on each thread.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tracing::Subscriber;
use tracing::span::Id;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::capture::context;
use crate::capture::conventions::Resolved;
use crate::capture::layer::{AuditLayer, GEN_AI_AGENT};
use crate::ids::AuditId;
use crate::record::{Fields, last, text};

/// A framework step opened outside every session, not placed yet: rig 0.38 opens its turns
/// and tool calls with no parent and says which run they belong to only by a
/// `follows_from` right after. It is placed (given its session, and its row opened from
/// its creation time) at the first of: that `follows_from`, a record, an event or a child
/// inside it, its close. (Not on being entered: that would cost every span of the program a
/// callback.)
#[derive(Debug)]
pub(crate) struct Unplaced {
    at: SystemTime,
    resolved: Resolved,
    fields: Fields,
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
fn run_opened(layer: u64, span: tracing::Id, session: AuditId, agent: Option<String>) {
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
fn run_closed(layer: u64, session: &AuditId) {
    let _ = RUNS_OPENED.try_with(|runs| {
        if let Ok(mut runs) = runs.try_borrow_mut() {
            runs.retain(|r| !(r.layer == layer && r.session == *session));
        }
    });
}

/// The session of the newest run of `agent` opened on this thread that no turn has joined,
/// still open (its span still holds that session); it is joined now, so the next turn of
/// the same run finds its way by `follows_from` instead.
fn claim_run(
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
fn rig_span_closed(layer: u64, span: &tracing::Id, session: AuditId, parent_step: Option<AuditId>) {
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
fn after_closed(layer: u64, span: &tracing::Id) -> Option<(AuditId, Option<AuditId>)> {
    let id = span.into_u64();
    CLOSED.with_borrow(|closed| {
        closed
            .iter()
            .rev()
            .find(|c| c.layer == layer && c.span == id)
            .map(|c| (c.session.clone(), c.parent_step.clone()))
    })
}

impl AuditLayer {
    /// Keeps a rig step opened outside every session waiting for its link.
    pub(crate) fn wait_for_link<S>(
        &self,
        span: &SpanRef<'_, S>,
        resolved: Resolved,
        at: SystemTime,
        fields: Fields,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.unplaced.fetch_add(1, Ordering::Relaxed);
        let unplaced = Unplaced {
            at,
            resolved,
            fields,
        };
        context::keep(span, self.key, unplaced);
    }

    /// A framework's run span opened outside every session: a run its first turn may
    /// have to find without a link (rig 0.38).
    pub(crate) fn run_opened<S>(&self, span: &SpanRef<'_, S>, session: &AuditId, fields: &Fields)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let agent = last(fields, GEN_AI_AGENT).map(text);
        run_opened(self.key, span.id(), session.clone(), agent);
    }

    /// A session closed: no turn can join it any more.
    pub(crate) fn run_closed(&self, session: &AuditId) {
        run_closed(self.key, session);
    }

    /// A rig span closes: a turn opened later may name it as the one it follows.
    pub(crate) fn rig_span_closing<S>(&self, span: &SpanRef<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some((session, parent_step)) = joined_after(span, self.key) {
            rig_span_closed(self.key, &span.id(), session, parent_step);
        }
    }

    /// The session of a run of the agent `fields` name, opened on this thread outside every
    /// session and not joined yet (see [`claim_run`]).
    pub(crate) fn claim_run<S>(&self, fields: &Fields, ctx: &Context<'_, S>) -> Option<AuditId>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let agent = text(last(fields, GEN_AI_AGENT)?);
        claim_run(self.key, &agent, |id, session| {
            ctx.span(id)
                .is_some_and(|run| context::holds_session(&run, self.key, session))
        })
    }

    /// Places an [`Unplaced`] span: in `joined` (the session and parent step of the span
    /// it follows from), else in a run of its agent opened on this thread, else in an
    /// implicit session of its own.
    pub(crate) fn place<S>(
        &self,
        span: &SpanRef<'_, S>,
        joined: Option<(AuditId, Option<AuditId>)>,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(unplaced) = context::take::<Unplaced, _>(span, self.key) else {
            return;
        };
        self.unplaced.fetch_sub(1, Ordering::Relaxed);
        let enclosing = joined.or_else(|| self.claim_run(&unplaced.fields, ctx).map(|s| (s, None)));
        let kind = unplaced.resolved.kind;
        self.open_in(span, kind, unplaced.at, unplaced.fields, enclosing, true);
    }

    /// Places `span` now if it waits to be placed: something happens in it.
    pub(crate) fn place_if_unplaced<S>(&self, span: &SpanRef<'_, S>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.unplaced.load(Ordering::Relaxed) > 0
            && context::keeps::<Unplaced, _>(span, self.key)
        {
            self.place(span, None, ctx);
        }
    }

    /// A span opens inside one that waits to be placed: that one is placed first, so the
    /// new one finds its session.
    pub(crate) fn place_unplaced_parent<S>(&self, span: &SpanRef<'_, S>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.unplaced.load(Ordering::Relaxed) == 0 {
            return;
        }
        for ancestor in span.scope().skip(1) {
            if context::is_audited(&ancestor, self.key) {
                return;
            }
            if context::keeps::<Unplaced, _>(&ancestor, self.key) {
                self.place(&ancestor, None, ctx);
                return;
            }
        }
    }

    /// `span` follows from `follows`: a waiting rig step is placed in the session of the
    /// span it follows, beside it.
    pub(crate) fn follows<S>(&self, id: &Id, follows: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        if !context::keeps::<Unplaced, _>(&span, self.key) {
            return;
        }
        // The span followed may have closed, its id handed to another span since — rig
        // 0.38 names the turn before, closed by then, whose id the new turn often has.
        let live = (follows != id)
            .then(|| ctx.span(follows))
            .flatten()
            .and_then(|earlier| {
                self.place_if_unplaced(&earlier, ctx);
                joined_after(&earlier, self.key)
            });
        let Some((session, parent_step)) = live.or_else(|| after_closed(self.key, follows)) else {
            return;
        };
        self.place(&span, Some((session, parent_step)), ctx);
    }
}

/// Where a span that follows from `earlier` belongs: in its session, beside it (under its
/// parent step).
fn joined_after<S>(earlier: &SpanRef<'_, S>, layer: u64) -> Option<(AuditId, Option<AuditId>)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (session, _) = context::enclosing(Some(earlier), layer, true)?;
    let parent_step = context::enclosing(Some(earlier), layer, false)
        .filter(|(s, _)| *s == session)
        .and_then(|(_, step)| step);
    Some((session, parent_step))
}
