//! The messages that cross the queue from the layer (caller's threads) to the writer.
//!
//! They are deliberately raw: ids, times as `SystemTime`, the span's target and its fields
//! as recorded. The writer decides what becomes which column (see [`crate::rows`]).

use std::time::SystemTime;

use crate::fields::{FieldValue, Fields};
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

/// What a span learned while it was open, beyond its creation fields.
///
/// Most spans learn nothing, so this lives in a box allocated the first time there is
/// something to keep ([`Learned::get_or_insert`]): a span's state in the registry stays a
/// few words, and the same box crosses the queue in [`Closed`] without being copied.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// Fields recorded with `Span::record` after creation.
    pub(crate) recorded: Fields,
    /// The value of the last `#[instrument(ret)]` event inside the span.
    pub(crate) returned: Option<FieldValue>,
    /// The value of the last `#[instrument(err)]` (`error` field) event inside the span.
    pub(crate) error: Option<FieldValue>,
    /// An ERROR-level event happened directly inside the span.
    pub(crate) error_event: bool,
}

/// What a span that learned nothing learned.
pub(crate) static NOTHING_LEARNED: Learned = Learned {
    recorded: Vec::new(),
    returned: None,
    error: None,
    error_event: false,
};

impl Learned {
    /// The box in `slot`, allocated now if the span had learned nothing until now.
    pub(crate) fn get_or_insert(slot: &mut Option<Box<Learned>>) -> &mut Learned {
        slot.get_or_insert_with(Box::default)
    }

    /// The span failed: an ERROR event or an `error` event value inside it.
    pub(crate) fn failed(&self) -> bool {
        self.error_event || self.error.is_some()
    }
}

/// An audited span closed. Carries what was learned while it was open.
#[derive(Debug)]
pub(crate) struct Closed {
    pub(crate) id: AuditId,
    pub(crate) at: SystemTime,
    /// `None` when the span learned nothing while open: see [`Closed::learned`].
    pub(crate) learned: Option<Box<Learned>>,
}

impl Closed {
    /// What the span learned while open (nothing, for most spans).
    pub(crate) fn learned(&self) -> &Learned {
        self.learned.as_deref().unwrap_or(&NOTHING_LEARNED)
    }
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
