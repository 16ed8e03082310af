//! OTLP spans for the receiver's tests, and random client scripts of them: traces with
//! conversations, links between traces, handoffs, failing tools and decisions, sent in
//! random pieces and order, with retries and restarts between. Used by `tests/otlp.rs`
//! (what the receiver remembers changes nothing it writes) and `tests/postgres.rs` (both
//! stores write the same sessions).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use reasonkit_audit::AuditGuard;
use reasonkit_audit::otlp::{ExportTraceServiceRequest, Receiver};

pub const T0: u64 = 1_750_000_000_000_000_000;

pub fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

pub fn s(text: &str) -> Value {
    Value::StringValue(text.into())
}

/// A span of trace `trace`, id `id`, child of `parent` (0: root), from `start` to `end` ms.
pub fn span(
    trace: u8,
    id: u8,
    parent: u8,
    name: &str,
    ms: (u64, u64),
    attrs: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        kind: 1,
        start_time_unix_nano: T0 + ms.0 * 1_000_000,
        end_time_unix_nano: T0 + ms.1 * 1_000_000,
        attributes: attrs,
        ..Span::default()
    }
}

/// A root span of trace `trace` that follows span `span` of trace `followed` (a link, as
/// `tracing-opentelemetry` exports `follows_from`).
pub fn following(mut root: Span, followed: u8, span: u8) -> Span {
    root.links
        .push(opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: vec![followed; 16],
            span_id: vec![span; 8],
            ..Default::default()
        });
    root
}

/// One span of the generated runs: its trace, id, parent (0: root), what it names.
#[derive(Clone, Debug)]
pub struct Planned {
    pub trace: u8,
    pub id: u8,
    pub parent: u8,
    pub conversation: Option<&'static str>,
    pub follows: Option<u8>,
    /// 0 chat, 1 tool, 2 handoff, 3 agent, 4 failing tool, 5 decision.
    pub kind: u8,
}

impl Planned {
    pub fn span(&self) -> Span {
        let start = u64::from(self.trace) * 1_000 + u64::from(self.id % 16) * 10;
        let end = u64::from(self.trace) * 1_000 + 500 - u64::from(self.id % 16) * 10;
        let mut attrs = match self.kind {
            0 => vec![
                attr("gen_ai.operation.name", s("chat")),
                attr("gen_ai.request.model", s("gpt-4o")),
                attr(
                    "gen_ai.usage.input_tokens",
                    Value::IntValue(i64::from(self.id)),
                ),
                attr("gen_ai.output.messages", s(&format!("answer {}", self.id))),
            ],
            1 => vec![
                attr("gen_ai.operation.name", s("execute_tool")),
                attr("gen_ai.tool.name", s("lookup")),
                attr(
                    "gen_ai.tool.call.arguments",
                    s(&format!("{{\"n\":{}}}", self.id)),
                ),
            ],
            2 => vec![
                attr("gen_ai.operation.name", s("handoff")),
                attr("output.value", s("billing")),
            ],
            4 => vec![
                attr("gen_ai.operation.name", s("execute_tool")),
                attr("gen_ai.tool.name", s("refund")),
                attr("error.type", s("PermissionDenied")),
            ],
            5 => vec![
                attr("decision_type", s("route")),
                attr("chosen_option", s(&format!("option {}", self.id % 3))),
                attr("options_considered", s("[\"a\",\"b\",\"c\"]")),
            ],
            _ => vec![
                attr("gen_ai.operation.name", s("invoke_agent")),
                attr("gen_ai.agent.name", s("claims")),
                attr("gen_ai.input.messages", s(&format!("question {}", self.id))),
            ],
        };
        if let Some(conversation) = self.conversation {
            // Odd traces name it as the GenAI conventions do, even ones as OpenInference.
            let key = if self.trace % 2 == 1 {
                "gen_ai.conversation.id"
            } else {
                "session.id"
            };
            attrs.push(attr(key, s(conversation)));
        }
        let name = [
            "chat",
            "execute_tool",
            "handoff",
            "invoke_agent",
            "execute_tool",
            "decision",
        ][usize::from(self.kind)];
        let mut span = span(self.trace, self.id, self.parent, name, (start, end), attrs);
        if self.kind == 4 {
            span.status = Some(Status {
                code: 2,
                message: "not allowed".into(),
            });
        }
        match self.follows {
            Some(followed) => following(span, followed, followed * 16 + 1),
            None => span,
        }
    }
}

/// What a client does next: send some spans, send an earlier request again, or restart
/// the collector.
#[derive(Clone, Debug)]
pub enum Step {
    Send(Vec<Planned>),
    Retry(usize),
    Restart,
}

/// Up to four traces of up to five spans each (the root first in id, any parent for the
/// rest), roots that name one of two conversations or follow another trace, children
/// that name their root's conversation too or not. With `one_way`, a root follows only an
/// earlier trace that names no conversation, and never while its own trace names one:
/// where its spans land then does not depend on which of them comes first (a trace's
/// first link wins, by design), nor does what its session says (a trace that follows a
/// run counts as a turn of that run's conversation only when the run had joined it first:
/// see the note on `the_order_spans_arrive_in_changes_nothing_but_their_ids`).
fn planned_spans(one_way: bool) -> impl proptest::strategy::Strategy<Value = Vec<Planned>> {
    use proptest::prelude::*;
    let trace = (
        0..3usize,
        0..5u8,
        proptest::collection::vec((0..4u8, 0..6u8, any::<bool>()), 0..5),
    );
    proptest::collection::vec(trace, 1..5).prop_map(move |traces| {
        let mut planned = Vec::new();
        let count = traces.len() as u8;
        let conversations: Vec<usize> = traces.iter().map(|t| t.0).collect();
        for (t, (conversation, follows, children)) in traces.into_iter().enumerate() {
            let trace = t as u8 + 1;
            let conversation = [None, Some("conv-a"), Some("conv-b")][conversation];
            let follows = (follows > 0 && follows <= count && follows != trace).then_some(follows);
            let follows = if one_way {
                follows.filter(|f| {
                    *f < trace && conversation.is_none() && conversations[usize::from(*f) - 1] == 0
                })
            } else {
                follows
            };
            planned.push(Planned {
                trace,
                id: trace * 16 + 1,
                parent: 0,
                conversation,
                follows,
                kind: 3,
            });
            for (i, (parent, kind, named)) in children.into_iter().enumerate() {
                let id = trace * 16 + 2 + i as u8;
                let parent = trace * 16 + 1 + parent.min(i as u8);
                planned.push(Planned {
                    trace,
                    id,
                    parent,
                    conversation: conversation.filter(|_| named),
                    follows: None,
                    kind,
                });
            }
        }
        planned
    })
}

/// `planned` sent in random order and pieces of one to three spans, with retries and
/// restarts between.
fn sent_in_pieces(planned: Vec<Planned>) -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    let n = planned.len();
    (
        Just(planned).prop_shuffle(),
        proptest::collection::vec(1..4usize, n),
        proptest::collection::vec((0..8usize, 0..3u8), 0..4),
    )
        .prop_map(|(planned, sizes, extras)| {
            let mut steps = Vec::new();
            let mut rest = planned.as_slice();
            for size in sizes {
                if rest.is_empty() {
                    break;
                }
                let (piece, after) = rest.split_at(size.min(rest.len()));
                steps.push(Step::Send(piece.to_vec()));
                rest = after;
            }
            for (at, what) in extras {
                let at = at.min(steps.len());
                let sent = steps[..at]
                    .iter()
                    .filter(|s| matches!(s, Step::Send(_)))
                    .count();
                match what {
                    0 if sent > 0 => steps.insert(at, Step::Retry(at % sent)),
                    1 => steps.insert(at, Step::Restart),
                    _ => {}
                }
            }
            steps
        })
}

/// A client's script: [`planned_spans`] sent in random pieces, with retries and restarts.
pub fn client_script() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    planned_spans(false).prop_flat_map(sent_in_pieces)
}

/// The same spans (one way: see [`planned_spans`]) sent by two clients in two different
/// orders and groupings.
pub fn two_orders() -> impl proptest::strategy::Strategy<Value = (Vec<Step>, Vec<Step>)> {
    use proptest::prelude::*;
    planned_spans(true)
        .prop_flat_map(|planned| (sent_in_pieces(planned.clone()), sent_in_pieces(planned)))
}

/// A request of `spans`, each under its service's resource: odd traces are one service's,
/// even ones another's.
pub fn request_of(spans: &[Planned]) -> ExportTraceServiceRequest {
    let mut request = ExportTraceServiceRequest::default();
    for (parity, service) in [(1, "claims-odd"), (0, "claims-even")] {
        let spans: Vec<Span> = spans
            .iter()
            .filter(|p| p.trace % 2 == parity)
            .map(Planned::span)
            .collect();
        if !spans.is_empty() {
            request.resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attr("service.name", s(service)),
                        attr("deployment.environment", s("test")),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            });
        }
    }
    request
}

/// Runs `script` through receivers `start` makes (each with the guard of its writer): a
/// restart shuts the writer down and starts another.
pub fn play(script: &[Step], start: impl Fn() -> (Receiver, AuditGuard)) {
    let (mut receiver, mut guard) = start();
    let mut sent: Vec<Vec<Planned>> = Vec::new();
    for step in script {
        match step {
            Step::Send(piece) => {
                receiver.export(request_of(piece)).unwrap();
                sent.push(piece.clone());
            }
            Step::Retry(i) => {
                receiver.export(request_of(&sent[*i])).unwrap();
            }
            Step::Restart => {
                drop(receiver);
                guard.shutdown().unwrap();
                (receiver, guard) = start();
            }
        }
    }
    guard.shutdown().unwrap();
}

/// `script` without its restarts: one receiver throughout.
pub fn throughout(script: &[Step]) -> Vec<Step> {
    script
        .iter()
        .filter(|s| !matches!(s, Step::Restart))
        .cloned()
        .collect()
}
