//! Placing one request's spans: the commands each span becomes, sent to the writer in an
//! order that every transaction can take (a row's parent before it), with the receiver's
//! memory of each row kept true to what was sent — so that a request cut short (a full
//! queue) is finished by its retry, and nothing is sent twice.
//!
//! A span whose row does not exist yet is opened and closed at once (one INSERT). A span
//! whose row a child opened as a placeholder completes it (its start and enclosing step
//! corrected). A span already written is skipped. The root span also completes its
//! trace's session.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{SendTimeoutError, Sender};
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::ids::AuditId;
use crate::otlp::answer::{self, ExportError};
use crate::otlp::spans::{self, SpanId, TraceId};
use crate::read::presence::Presence;
use crate::record::{Closed, Command, FieldLimits, FieldValue, Fields, Kind, Learned, Opened};

/// The target of every OTLP row: a step without a name the conventions read is named by
/// its span's name (`otel.name`) first, so this shows only on placeholders.
const TARGET: &str = "otlp";

/// Above this many remembered rows, those known committed and ended are forgotten (the
/// store is asked again if they come back).
const MAX_REMEMBERED: usize = 200_000;

/// What the receiver knows of the rows it has seen.
#[derive(Default)]
pub(super) struct State {
    pub(super) rows: HashMap<AuditId, Known>,
    /// The millisecond each trace's step ids start with (see [`spans::step_id`]).
    pub(super) traces: HashMap<TraceId, u64>,
    /// The number of the last command sent to the writer.
    pub(super) sent: u64,
    /// Every command up to this number is committed.
    pub(super) committed: u64,
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

impl State {
    /// Forgets ended rows known committed, when the memory is large.
    pub(super) fn forget_committed(&mut self) {
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

    pub(super) fn place(&mut self, item: &Item<'_>, resource: &Fields) -> Result<(), ExportError> {
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
        let fields = spans::span_fields(item.span, item.scope, self.limits);
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
