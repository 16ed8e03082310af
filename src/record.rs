//! The messages that cross the queue from the layer (caller's threads) to the writer.
//!
//! They are deliberately raw: ids, times as `SystemTime`, the span's target and its fields
//! as recorded. The writer decides what becomes which column (see [`crate::rows`]).

use std::time::SystemTime;

use crate::fields::Fields;
use crate::ids::AuditId;

/// What an audited span stands for, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Session,
    Step,
    Decision,
}

impl Kind {
    /// The kind of a span with this name, if it is audited at all.
    pub(crate) fn of_span(name: &str) -> Option<Kind> {
        match name {
            "session" => Some(Kind::Session),
            "step" => Some(Kind::Step),
            "decision" => Some(Kind::Decision),
            _ => None,
        }
    }
}

/// An audited span (or an implicit parent the layer made up) was created.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) kind: Kind,
    pub(crate) id: AuditId,
    /// For a step: its session. For a decision: its step. For a session: `None`.
    pub(crate) parent: Option<AuditId>,
    /// For a step: the enclosing step, if it is nested.
    pub(crate) parent_step: Option<AuditId>,
    pub(crate) at: SystemTime,
    /// The span's target (the module path, unless set): a step's default `module`.
    pub(crate) target: &'static str,
    pub(crate) fields: Fields,
    /// The layer made this row up to hold an orphan step or decision.
    pub(crate) implicit: bool,
}

/// An audited span closed. Carries what was learned while it was open.
#[derive(Debug)]
pub(crate) struct Closed {
    pub(crate) id: AuditId,
    pub(crate) at: SystemTime,
    /// Fields recorded with `Span::record` after creation.
    pub(crate) recorded: Fields,
    /// The value of the last `#[instrument(ret)]` event inside the span.
    pub(crate) returned: Option<crate::fields::FieldValue>,
    /// The value of the last `#[instrument(err)]` (`error` field) event inside the span.
    pub(crate) error: Option<crate::fields::FieldValue>,
    /// An ERROR-level event happened directly inside the span.
    pub(crate) error_event: bool,
}

/// A `decision` event: a decision made in a single moment.
#[derive(Debug)]
pub(crate) struct Decided {
    pub(crate) id: AuditId,
    pub(crate) step: AuditId,
    pub(crate) at: SystemTime,
    pub(crate) fields: Fields,
}

/// One message to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Opened(Opened),
    Closed(Closed),
    Decided(Decided),
    /// Commit everything received so far, then answer.
    Flush(crossbeam_channel::Sender<Result<(), String>>),
    /// Commit everything received so far, then stop.
    Shutdown,
}
