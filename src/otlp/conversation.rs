//! Conversations: every trace that carries one conversation id, recorded as one session.
//!
//! A chat agent exports each turn of a conversation as a trace of its own, tied to the
//! others by an attribute, not a link: `gen_ai.conversation.id` (the GenAI semantic
//! conventions) or `session.id` (OpenInference). Such a trace joins its conversation's
//! session, as a linked trace joins its run's ([`crate::otlp::placement`]): its spans are
//! steps there, and its own session stays as the pointer.
//!
//! Nothing in a conversation's traces is the conversation as a whole, so its session row
//! is the receiver's to write, from its turns (each trace's root span):
//!
//! - **who and what it was asked**: `profile`, `input`, `user.id` and the resource's
//!   attributes come from the turn that started first;
//! - **how it stands**: `output`, the error and the status come from the turn that ended
//!   last — a conversation whose last turn failed has failed, and one whose later turn
//!   recovered has not;
//! - **when**: from the first turn's start to the last turn's end.
//!
//! Each turn rewrites the row with all of it (a new version, chained like any other), so
//! two turns committed together, or in any order, leave the same row. A receiver started
//! again reads the row back ([`Conversation::stored`]) and goes on from it. An erased
//! conversation's row is never written again ([`Conversation::erased`]): the receiver asks
//! the store about every conversation a request names.

use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

use crate::ids::AuditId;
use crate::otlp::{names, spans};
use crate::read::SessionSummary;
use crate::record::{FieldValue, Fields, last};

/// The attributes a conversation id comes in, the GenAI conventions' first.
pub(crate) const KEYS: [&str; 2] = ["gen_ai.conversation.id", "session.id"];

/// The conversation session's own field: the conversation id it gathers. It marks the row
/// as a conversation's for a receiver that finds it in the store.
pub(crate) const CONVERSATION: &str = "otel.conversation";

/// The longest conversation id taken: a longer one is not a conversation id, and leaves
/// its trace a session of its own (the attribute is kept like any other).
const MAX_ID_LEN: usize = 1024;

/// A turn's fields the conversation takes from the turn that ended last. The rest of what
/// [`spans::session_fields`] gives comes from the turn that started first.
const OUTCOME: [&str; 5] = [
    "output",
    "error",
    "error.type",
    "otel.status_code",
    "otel.status_description",
];

/// A turn's fields that name the turn, not the conversation: its own root step keeps them.
const TURN_ONLY: [&str; 2] = ["otel.name", "otel.span_id"];

/// The conversation `span` belongs to: its `gen_ai.conversation.id`, else its
/// `session.id`, when that is a non-empty string or an integer of reasonable length.
pub(crate) fn of(span: &Span) -> Option<String> {
    KEYS.iter().find_map(|key| {
        let value = span
            .attributes
            .iter()
            .find(|a| a.key == *key)?
            .value
            .as_ref()?;
        let id = match value.value.as_ref()? {
            Any::StringValue(s) => s.trim().to_owned(),
            Any::IntValue(n) => n.to_string(),
            _ => return None,
        };
        (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(id)
    })
}

/// The session row of a conversation: a UUID derived from its id, so every receiver, and
/// every restart of one, names the same row.
pub(crate) fn session_id(conversation: &str) -> AuditId {
    spans::derived(&[
        b"reasonkit-audit otlp conversation\0",
        conversation.as_bytes(),
    ])
}

/// What the receiver knows of a conversation's session: enough to write the whole row
/// again when a turn ends.
#[derive(Clone, Debug)]
pub(crate) struct Conversation {
    /// The conversation id.
    id: String,
    /// When the first turn started, and what it gave the session.
    first: Option<(SystemTime, Fields)>,
    /// When the last turn ended, and what it gave the session.
    last: Option<(SystemTime, Fields)>,
    /// The session was erased: its row is not written again (see [`Conversation::erased`]).
    erased: bool,
}

impl Conversation {
    /// A conversation no turn has ended in yet.
    pub(crate) fn new(id: String) -> Conversation {
        Conversation {
            id,
            first: None,
            last: None,
            erased: false,
        }
    }

    /// A conversation whose session an erasure emptied. Its row stays as the erasure left
    /// it: writing it again from what this receiver remembers would bring the erased
    /// content back. Later turns' steps are still recorded in it.
    pub(crate) fn erased(id: String) -> Conversation {
        Conversation {
            erased: true,
            ..Conversation::new(id)
        }
    }

    /// Whether the session was erased.
    pub(crate) fn is_erased(&self) -> bool {
        self.erased
    }

    /// A conversation as its session row in the store says, written by a receiver before
    /// this one.
    pub(crate) fn stored(row: &SessionSummary) -> Conversation {
        let id = match row.attributes.get(CONVERSATION) {
            Some(Value::String(id)) => id.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let mut first: Fields = vec![("profile", FieldValue::Str(row.profile.clone()))];
        match &row.input {
            Some(input) => first.push(("input", FieldValue::Str(input.clone()))),
            // Not stored (`store_inputs` off): its hash stays as it was written.
            None => first.push(("input_hash", FieldValue::Str(row.input_hash.clone()))),
        }
        let mut last: Fields = Vec::new();
        if let Value::Object(attributes) = &row.attributes {
            for (key, value) in attributes {
                if key == CONVERSATION {
                    continue;
                }
                let Some(name) = names::name(key) else {
                    continue;
                };
                let value = field_value(value);
                if OUTCOME.contains(&name) {
                    last.push((name, value));
                } else {
                    first.push((name, value));
                }
            }
        }
        let started = SystemTime::from(row.started_at);
        Conversation {
            id,
            first: Some((started, first)),
            last: row.ended_at.map(|at| (SystemTime::from(at), last)),
            erased: false,
        }
    }

    /// The fields the session row is opened with, before any turn ended: the conversation
    /// id, and the service as the profile until a turn names the agent.
    pub(crate) fn opening(&self, resource: &Fields) -> Fields {
        let mut fields: Fields = vec![(CONVERSATION, FieldValue::Str(self.id.clone()))];
        if let Some(service) = last(resource, "service.name") {
            fields.push(("profile", service.clone()));
        }
        fields
    }

    /// A turn's root span ended: `session` is what [`spans::session_fields`] made of it,
    /// `resource` its resource's attributes.
    pub(crate) fn turn(
        &mut self,
        start: SystemTime,
        end: SystemTime,
        session: &Fields,
        resource: &Fields,
    ) {
        if self.first.as_ref().is_none_or(|(at, _)| start < *at) {
            let mut fields: Fields = resource
                .iter()
                .filter(|(name, _)| !OUTCOME.contains(name))
                .cloned()
                .collect();
            fields.extend(
                session
                    .iter()
                    .filter(|(name, _)| !OUTCOME.contains(name) && !TURN_ONLY.contains(name))
                    .cloned(),
            );
            self.first = Some((start, fields));
        }
        if self.last.as_ref().is_none_or(|(at, _)| end >= *at) {
            let fields = session
                .iter()
                .filter(|(name, _)| OUTCOME.contains(name))
                .cloned()
                .collect();
            self.last = Some((end, fields));
        }
    }

    /// When the session starts: its first turn's start.
    pub(crate) fn started(&self) -> Option<SystemTime> {
        self.first.as_ref().map(|(at, _)| *at)
    }

    /// When the session ends for now: its last turn's end.
    pub(crate) fn ended(&self) -> Option<SystemTime> {
        self.last.as_ref().map(|(at, _)| *at)
    }

    /// Every field of the session row as its turns so far make it.
    pub(crate) fn fields(&self) -> Fields {
        let mut fields: Fields = vec![(CONVERSATION, FieldValue::Str(self.id.clone()))];
        for (_, part) in self.first.iter().chain(&self.last) {
            fields.extend(part.iter().cloned());
        }
        fields
    }
}

/// A value read back from a row's `attributes` as the field it was written from.
fn field_value(value: &Value) -> FieldValue {
    match value {
        Value::String(s) => FieldValue::Str(s.clone()),
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => FieldValue::I64(i),
            (None, Some(f)) => FieldValue::F64(f),
            (None, None) => FieldValue::Str(n.to_string()),
        },
        other => FieldValue::Str(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn attribute(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn the_conventions_id_comes_first_then_openinference_and_odd_values_are_not_ids() {
        let span = |attributes| Span {
            attributes,
            ..Span::default()
        };
        let both = span(vec![
            attribute("session.id", Any::StringValue("oi".into())),
            attribute("gen_ai.conversation.id", Any::StringValue("conv".into())),
        ]);
        assert_eq!(of(&both).as_deref(), Some("conv"));
        let number = span(vec![attribute("session.id", Any::IntValue(42))]);
        assert_eq!(of(&number).as_deref(), Some("42"));
        for odd in [
            Any::StringValue("  ".into()),
            Any::BoolValue(true),
            Any::StringValue("x".repeat(MAX_ID_LEN + 1)),
        ] {
            assert_eq!(of(&span(vec![attribute("session.id", odd)])), None);
        }
        assert_eq!(of(&span(Vec::new())), None);
        assert_ne!(session_id("a"), session_id("b"));
        assert_eq!(session_id("a"), session_id("a"));
    }

    #[test]
    fn the_first_turn_says_what_was_asked_and_the_last_how_it_stands() {
        let mut conversation = Conversation::new("c".into());
        let turn = |input: &str, output: &str, error: Option<&str>| {
            let mut fields: Fields = vec![
                ("profile", FieldValue::Str("planner".into())),
                ("input", FieldValue::Str(input.into())),
                ("output", FieldValue::Str(output.into())),
                ("otel.name", FieldValue::Str("turn".into())),
            ];
            fields.extend(error.map(|e| ("error", FieldValue::Str(e.into()))));
            fields
        };
        let resource = vec![("service.name", FieldValue::Str("chat".into()))];
        // The second turn arrives first and failed; the first recovered nothing yet.
        conversation.turn(at(20), at(30), &turn("q2", "a2", Some("boom")), &resource);
        conversation.turn(at(10), at(15), &turn("q1", "a1", None), &resource);
        let fields = conversation.fields();
        assert_eq!(conversation.started(), Some(at(10)));
        assert_eq!(conversation.ended(), Some(at(30)));
        assert_eq!(last(&fields, "input"), Some(&FieldValue::Str("q1".into())));
        assert_eq!(last(&fields, "output"), Some(&FieldValue::Str("a2".into())));
        assert_eq!(
            last(&fields, "error"),
            Some(&FieldValue::Str("boom".into()))
        );
        assert_eq!(last(&fields, "otel.name"), None);
        // A third turn recovers: the conversation no longer stands failed.
        conversation.turn(at(40), at(50), &turn("q3", "a3", None), &resource);
        let fields = conversation.fields();
        assert_eq!(last(&fields, "error"), None);
        assert_eq!(last(&fields, "output"), Some(&FieldValue::Str("a3".into())));
        assert_eq!(last(&fields, "input"), Some(&FieldValue::Str("q1".into())));
        assert_eq!(
            last(&fields, "service.name"),
            Some(&FieldValue::Str("chat".into()))
        );
    }
}
