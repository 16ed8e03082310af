//! An OTLP receiver: OpenTelemetry traces from any language, written into the audit trail.
//!
//! Agents written in Python or TypeScript (the OpenAI Agents SDK, LangChain, LlamaIndex,
//! CrewAI …) already emit OpenTelemetry traces, with the GenAI semantic conventions
//! (`gen_ai.*`) or OpenInference's (`openinference.span.kind`, `llm.*`, `input.value`).
//! [`Receiver`] takes their export requests and writes them through the same writer as
//! the layer: the same conventions table, redaction, hash chain, batching and health. The
//! `reasonkit-audit collect` command serves it over OTLP/HTTP and OTLP/gRPC.
//!
//! | file | what it does |
//! |---|---|
//! | `decode.rs` | [`decode()`]: an OTLP/HTTP body (protobuf or JSON, gzip) as a request |
//! | `spans.rs` | one span as a row's fields; row ids derived from the OTLP ids |
//! | `names.rs` | attribute keys as field names, bounded |
//! | `answer.rs` | [`Accepted`], [`ExportError`]: what an export answers |
//! | `receiver.rs` | [`Receiver`]: a request in, looked up in the store, answered once committed |
//! | `placement.rs` | each span as the writer's commands: placeholders for parents not yet arrived |
//! | `conversation.rs` | the traces of one conversation id as one session, written from its turns |
//! | `decision.rs` | spans that are decisions (handoffs, `decision` spans) as `decisions` rows too |
//! | `order.rs` | a request's spans parents first |
//!
//! How a trace becomes rows (the receiver's module docs say why):
//!
//! | OTLP | row |
//! |---|---|
//! | a trace | a session; `profile` from the root span's `gen_ai.agent.name` / `agent.name`, else the resource's `service.name` |
//! | a trace naming a conversation (`gen_ai.conversation.id`, `session.id`) | a turn in the conversation's one session |
//! | a span | a step in it, nested by `parent_span_id`; `module`, summaries, tokens and error by the conventions table |
//! | a handoff, a `decision` span | also a decision of its enclosing step |
//! | span status ERROR | the step's `error` (the description, else the `exception` event's type and message) |
//! | ids, name, kind, scope, events, links | `otel.span_id` (the session: `otel.trace_id`), `otel.name`, … in `attributes` |
//!
//! Find a row from a trace viewer with
//! `SELECT * FROM steps WHERE json_extract(attributes, '$."otel.span_id"') = '…'`.
//!
//! Requires the `otlp` cargo feature.

mod answer;
mod conversation;
mod decision;
mod decode;
mod names;
mod order;
mod placement;
mod receiver;
mod spans;

pub use answer::{Accepted, ExportError};
pub use decode::{DecodeError, Encoding, decode};
pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use receiver::Receiver;
