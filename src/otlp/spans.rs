//! One OTLP span as the fields of a row: its attributes under their own keys (so the
//! conventions table in [`crate::store::rows`] reads `gen_ai.*`, OpenInference's `llm.*`,
//! `input.value`, `tool.name` … exactly as it reads a `tracing` span's fields), and what
//! OTLP says beside them as `otel.*` fields: the span's id (its trace's is its session's,
//! its parent's is its parent step's), the name, the kind, the scope, the status, the
//! events and the links. Nothing a span carries is dropped: a key the process
//! cannot keep as a name of its own (see [`crate::otlp::names`]) goes into the
//! `otel.attributes` object.
//!
//! Row ids are derived from the OTLP ids (a session's: a UUIDv8 of the trace id's SHA-256;
//! a step's: see [`step_id`]), so the same span sent twice — a retry, or to a receiver
//! restarted after a crash — names the same row, and a child can name its parent's row
//! before the parent has arrived.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::chain::hex;
use crate::ids::AuditId;
use crate::otlp::names;
use crate::record::{FieldLimits, FieldValue, Fields, last, text};

/// A trace id: 16 bytes, not all zero.
pub(crate) type TraceId = [u8; 16];
/// A span id: 8 bytes, not all zero.
pub(crate) type SpanId = [u8; 8];

/// The field that keeps the attributes no name could be kept for.
pub(crate) const OVERFLOW: &str = "otel.attributes";

/// The session's field that keeps the millisecond its trace's step ids start with.
pub(crate) const ID_MS: &str = "otel.id_ms";

/// A joined session's field that names the session its steps went to.
pub(crate) const JOINED_INTO: &str = "otel.joined_into";

/// The row of the session a trace is recorded as.
pub(crate) fn session_id(trace: &TraceId) -> AuditId {
    derived(&[b"reasonkit-audit otlp session\0", trace])
}

/// The row of a span: a UUIDv7 whose time is its trace's `id_ms` (when the receiver first
/// saw the trace, kept in the session row) and whose other bits are the SHA-256 of the OTLP
/// ids. So it is the same every time the span is sent, a child can name its parent before
/// the parent arrives, and a trace's steps sort together and after earlier traces': the
/// steps' primary-key B-tree grows at its right edge, as it does for the layer's UUIDv7s,
/// rather than at a random page per row.
pub(crate) fn step_id(trace: &TraceId, span: &SpanId, id_ms: u64) -> AuditId {
    let digest = digest(&[b"reasonkit-audit otlp span\0", trace, span]);
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    AuditId::Generated(uuid::Builder::from_unix_timestamp_millis(id_ms, &random).into_uuid())
}

/// A UUIDv8 of the SHA-256 of `parts`: a row id that is the same wherever it is derived.
pub(crate) fn derived(parts: &[&[u8]]) -> AuditId {
    let digest = digest(parts);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    AuditId::Generated(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// Milliseconds since the epoch of a time given in nanoseconds.
pub(crate) fn millis(unix_nanos: u64) -> u64 {
    unix_nanos / 1_000_000
}

/// A time given in nanoseconds since the epoch.
pub(crate) fn time(unix_nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(unix_nanos)
}

/// The ids of a span, checked: `None` when its trace or span id is not the size OTLP
/// says or is all zeros (what the specification calls invalid), or when it names itself
/// as its parent.
pub(crate) fn ids(span: &Span) -> Option<(TraceId, SpanId, Option<SpanId>)> {
    let trace: TraceId = span.trace_id.as_slice().try_into().ok()?;
    let id: SpanId = span.span_id.as_slice().try_into().ok()?;
    if trace == [0; 16] || id == [0; 8] {
        return None;
    }
    let parent = match span.parent_span_id.as_slice() {
        [] => None,
        bytes => match <SpanId>::try_from(bytes) {
            // A span cannot be its own parent.
            Ok(parent) if parent == id => return None,
            Ok(parent) if parent != [0; 8] => Some(parent),
            Ok(_) => None,
            Err(_) => return None,
        },
    };
    Some((trace, id, parent))
}

/// The trace a root span follows: the first of its links to a span of another trace
/// (how `tracing-opentelemetry` exports `follows_from`, and how a run's turns point at the
/// run). `None` for a span with a parent, or without such a link.
pub(crate) fn followed(span: &Span, own: &TraceId) -> Option<TraceId> {
    if !span.parent_span_id.iter().all(|b| *b == 0) {
        return None;
    }
    span.links.iter().find_map(|link| {
        let trace: TraceId = link.trace_id.as_slice().try_into().ok()?;
        let valid = trace != [0; 16] && trace != *own && link.span_id.iter().any(|b| *b != 0);
        valid.then_some(trace)
    })
}

/// What a placeholder row holds until its span arrives: the id that finds it (a
/// session's trace id, a step's span id).
pub(crate) fn placeholder(trace: &TraceId, span: Option<&SpanId>) -> Fields {
    match span {
        Some(span) => vec![("otel.span_id", FieldValue::Str(hex(span)))],
        None => vec![("otel.trace_id", FieldValue::Str(hex(trace)))],
    }
}

/// Every field of a span's row.
pub(crate) fn span_fields(span: &Span, scope: &str, limits: &FieldLimits) -> Fields {
    let mut fields: Fields = Vec::with_capacity(span.attributes.len() + 6);
    // The trace id is the session's (`otel.trace_id`), the parent's span id its step's:
    // a step keeps its own.
    fields.push(("otel.name", FieldValue::Str(limits.keep(&span.name))));
    fields.push(("otel.span_id", FieldValue::Str(hex(&span.span_id))));
    if let Some(kind) = kind_name(span.kind) {
        fields.push(("otel.kind", FieldValue::Str(kind.to_owned())));
    }
    if !scope.is_empty() {
        fields.push(("otel.scope.name", FieldValue::Str(limits.keep(scope))));
    }
    let mut overflow = Map::new();
    attributes(&span.attributes, limits, &mut fields, &mut overflow);
    if let Some(status) = &span.status {
        // OTLP's StatusCode: 1 OK, 2 ERROR. The conventions table reads an ERROR status as
        // the step's error, its description as the message.
        match status.code {
            2 => {
                fields.push(("otel.status_code", FieldValue::Str("ERROR".to_owned())));
                let description = if status.message.is_empty() {
                    exception_message(span).unwrap_or_else(|| "error".to_owned())
                } else {
                    status.message.clone()
                };
                fields.push((
                    "otel.status_description",
                    FieldValue::Str(limits.keep(&description)),
                ));
                // The step's error: the kind of error the conventions name (`error.type`)
                // and what the status says of it, unless the span set `error` itself.
                if last(&fields, "error").is_none() {
                    let error = match last(&fields, "error.type").map(text) {
                        Some(kind) if !description.starts_with(&kind) => {
                            format!("{kind}: {description}")
                        }
                        _ => description,
                    };
                    fields.push(("error", FieldValue::Str(limits.keep(&error))));
                }
            }
            1 => fields.push(("otel.status_code", FieldValue::Str("OK".to_owned()))),
            _ => {}
        }
    }
    if !span.events.is_empty() {
        let events: Vec<Value> = span
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "time": crate::record::timestamp(time(e.time_unix_nano)),
                    "attributes": object(&e.attributes),
                })
            })
            .collect();
        fields.push((
            "otel.events",
            FieldValue::Str(limits.keep(&Value::Array(events).to_string())),
        ));
    }
    if !span.links.is_empty() {
        let links: Vec<Value> = span
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "trace_id": hex(&l.trace_id),
                    "span_id": hex(&l.span_id),
                    "attributes": object(&l.attributes),
                })
            })
            .collect();
        fields.push((
            "otel.links",
            FieldValue::Str(limits.keep(&Value::Array(links).to_string())),
        ));
    }
    if !overflow.is_empty() {
        fields.push((
            OVERFLOW,
            FieldValue::Str(limits.keep(&Value::Object(overflow).to_string())),
        ));
    }
    fields
}

/// A resource's attributes (`service.name`, …), for the session rows of its traces.
pub(crate) fn resource_fields(list: &[KeyValue], limits: &FieldLimits) -> Fields {
    let mut fields = Vec::with_capacity(list.len() + 1);
    let mut overflow = Map::new();
    attributes(list, limits, &mut fields, &mut overflow);
    if !overflow.is_empty() {
        fields.push((
            OVERFLOW,
            FieldValue::Str(limits.keep(&Value::Object(overflow).to_string())),
        ));
    }
    fields
}

/// What the session of a trace learns from its root span: who ran it (`profile`), what it
/// was given and answered, how it ended, and the keys that tie it to a conversation.
pub(crate) fn session_fields(root: &Fields, resource: &Fields) -> Fields {
    let first = |names: &[&str]| names.iter().find_map(|n| last(root, n));
    let mut fields: Fields = Vec::new();
    let profile = first(&[
        "profile",
        "gen_ai.agent.name",
        "agent.name",
        "gen_ai.workflow.name",
    ])
    .or_else(|| last(resource, "service.name"))
    .or_else(|| last(root, "otel.name"));
    if let Some(profile) = profile {
        fields.push(("profile", FieldValue::Str(text(profile))));
    }
    if let Some(input) = first(&[
        "input",
        "gen_ai.input.messages",
        "input.value",
        "gen_ai.prompt",
    ]) {
        fields.push(("input", input.clone()));
    }
    if let Some(output) = first(&["output", "gen_ai.output.messages", "output.value"]) {
        fields.push(("output", output.clone()));
    }
    for name in [
        "otel.name",
        "otel.span_id",
        "gen_ai.conversation.id",
        "session.id",
        "user.id",
        "error",
        "error.type",
        "otel.status_code",
        "otel.status_description",
    ] {
        if let Some(value) = last(root, name) {
            fields.push((name, value.clone()));
        }
    }
    fields
}

fn attributes(
    list: &[KeyValue],
    limits: &FieldLimits,
    fields: &mut Fields,
    overflow: &mut Map<String, Value>,
) {
    for attribute in list {
        let Some(value) = attribute.value.as_ref() else {
            continue;
        };
        match names::name(&attribute.key) {
            Some(name) => fields.push((name, field_value(value, limits))),
            None => {
                overflow.insert(attribute.key.clone(), json(value));
            }
        }
    }
}

fn field_value(value: &AnyValue, limits: &FieldLimits) -> FieldValue {
    match &value.value {
        Some(Any::StringValue(s)) => FieldValue::Str(limits.keep(s)),
        Some(Any::BoolValue(b)) => FieldValue::Bool(*b),
        Some(Any::IntValue(n)) => FieldValue::I64(*n),
        // A reference into a profile's string table: meaningless in a trace, kept as is.
        Some(Any::StringValueStrindex(n)) => FieldValue::I64(i64::from(*n)),
        Some(Any::DoubleValue(n)) => FieldValue::F64(*n),
        Some(Any::BytesValue(b)) => {
            FieldValue::Str(limits.cap(base64::engine::general_purpose::STANDARD.encode(b)))
        }
        // Arrays and maps as their JSON text.
        Some(other @ (Any::ArrayValue(_) | Any::KvlistValue(_))) => {
            FieldValue::Str(limits.cap(json_of(other).to_string()))
        }
        None => FieldValue::Str(String::new()),
    }
}

fn json(value: &AnyValue) -> Value {
    value.value.as_ref().map_or(Value::Null, json_of)
}

fn json_of(value: &Any) -> Value {
    match value {
        Any::StringValue(s) => Value::from(s.as_str()),
        Any::BoolValue(b) => Value::from(*b),
        Any::IntValue(n) => Value::from(*n),
        Any::StringValueStrindex(n) => Value::from(*n),
        Any::DoubleValue(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Any::BytesValue(b) => Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Any::ArrayValue(array) => Value::Array(array.values.iter().map(json).collect()),
        Any::KvlistValue(list) => object(&list.values),
    }
}

fn object(list: &[KeyValue]) -> Value {
    Value::Object(
        list.iter()
            .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, json)))
            .collect(),
    )
}

/// The message of the span's `exception` event, as the semantic conventions record one.
fn exception_message(span: &Span) -> Option<String> {
    let event = span.events.iter().find(|e| e.name == "exception")?;
    let get = |key: &str| {
        event
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Any::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
    };
    match (get("exception.type"), get("exception.message")) {
        (Some(kind), Some(message)) => Some(format!("{kind}: {message}")),
        (kind, message) => message.or(kind),
    }
}

fn kind_name(kind: i32) -> Option<&'static str> {
    match kind {
        1 => Some("internal"),
        2 => Some("server"),
        3 => Some("client"),
        4 => Some("producer"),
        5 => Some("consumer"),
        _ => None,
    }
}
