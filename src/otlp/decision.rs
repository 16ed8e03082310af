//! Spans that are decisions: besides its step, such a span is a row of `decisions`, made
//! by the step it ran in — as the layer records a `decision` span.
//!
//! | span | decision |
//! |---|---|
//! | named `decision` or `genai.plan`, or `gen_ai.operation.name` = `plan` (the layer's own conventions, exported by `tracing-opentelemetry`) | `decision_type`, `chosen_option`, `options_considered`, `rationale` from the span's attributes of those names (the type else the operation's name) |
//! | a handoff: OpenInference's `handoff to <agent>` (the OpenAI Agents SDK), or `gen_ai.operation.name` = `handoff` | `decision_type` `handoff`, `chosen_option` the agent handed to (`output.value`, else the name's), `from_agent` in `attributes` (`input.value`) |
//!
//! The decision's step is the span's enclosing step (the agent that handed off), or the
//! span's own step for a root span. Its id is derived from the OTLP ids, and it is written
//! only with its span's first complete row, so a span sent again adds no second decision.

use opentelemetry_proto::tonic::trace::v1::Span;

use crate::ids::AuditId;
use crate::otlp::spans::{self, SpanId, TraceId};
use crate::record::{FieldValue, Fields, last, text};

/// What OpenInference names a handoff span: `handoff to <agent>`.
const HANDOFF_PREFIX: &str = "handoff to ";

/// The fields of the decision `span` is, given its step's `fields`; `None` for a span that
/// is no decision.
pub(crate) fn of(span: &Span, fields: &Fields) -> Option<Fields> {
    let operation = last(fields, "gen_ai.operation.name").map(text);
    let name = span.name.as_str();
    if name.starts_with(HANDOFF_PREFIX) || operation.as_deref() == Some("handoff") {
        let to = last(fields, "output.value")
            .map(text)
            .or_else(|| name.strip_prefix(HANDOFF_PREFIX).map(str::to_owned))
            .filter(|to| !to.is_empty());
        let mut decision: Fields = vec![("decision_type", FieldValue::Str("handoff".to_owned()))];
        decision.extend(to.map(|to| ("chosen_option", FieldValue::Str(to))));
        if let Some(from) = last(fields, "input.value") {
            decision.push(("from_agent", from.clone()));
        }
        decision.extend(last(fields, "otel.span_id").map(|id| ("otel.span_id", id.clone())));
        return Some(decision);
    }
    if matches!(name, "decision" | "genai.plan") || operation.as_deref() == Some("plan") {
        let mut decision: Fields = Vec::new();
        for key in [
            "decision_type",
            "gen_ai.operation.name",
            "chosen_option",
            "options_considered",
            "rationale",
            "otel.span_id",
        ] {
            if let Some(value) = last(fields, key) {
                decision.push((key, value.clone()));
            }
        }
        if last(&decision, "decision_type").is_none() && operation.is_none() {
            decision.push(("decision_type", FieldValue::Str(name.to_owned())));
        }
        return Some(decision);
    }
    None
}

/// The row of the decision a span is.
pub(crate) fn id(trace: &TraceId, span: &SpanId) -> AuditId {
    spans::derived(&[b"reasonkit-audit otlp decision\0", trace, span])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str) -> Span {
        Span {
            name: name.to_owned(),
            ..Span::default()
        }
    }

    fn str(value: &str) -> FieldValue {
        FieldValue::Str(value.to_owned())
    }

    #[test]
    fn a_handoff_chooses_the_agent_it_hands_to() {
        let fields = vec![
            ("input.value", str("Triage")),
            ("output.value", str("Payments")),
            ("openinference.span.kind", str("TOOL")),
        ];
        let decision = of(&span("handoff to Payments"), &fields).unwrap();
        assert_eq!(last(&decision, "decision_type"), Some(&str("handoff")));
        assert_eq!(last(&decision, "chosen_option"), Some(&str("Payments")));
        assert_eq!(last(&decision, "from_agent"), Some(&str("Triage")));
        // Without the attributes, the name says whom.
        let decision = of(&span("handoff to Refunds"), &Vec::new()).unwrap();
        assert_eq!(last(&decision, "chosen_option"), Some(&str("Refunds")));
    }

    #[test]
    fn a_decision_span_keeps_its_columns_and_other_spans_are_none() {
        let fields = vec![
            ("decision_type", str("route")),
            ("chosen_option", str("escalate")),
            ("rationale", str("amount over limit")),
            ("tokens_used", FieldValue::I64(3)),
        ];
        let decision = of(&span("decision"), &fields).unwrap();
        assert_eq!(last(&decision, "decision_type"), Some(&str("route")));
        assert_eq!(
            last(&decision, "rationale"),
            Some(&str("amount over limit"))
        );
        assert_eq!(last(&decision, "tokens_used"), None);
        let plan = vec![("gen_ai.operation.name", str("plan"))];
        assert!(of(&span("plan next"), &plan).is_some());
        assert!(of(&span("chat gpt-4o"), &Vec::new()).is_none());
        assert!(of(&span("handoff"), &Vec::new()).is_none());
        assert_ne!(id(&[1; 16], &[2; 8]), id(&[1; 16], &[3; 8]));
    }
}
