//! Attribute keys as field names.
//!
//! The writer's fields are named by `&'static str` — the names of `tracing` fields, which
//! live for the program — so a span from the layer costs no allocation per name. An OTLP
//! span's keys arrive as text. The names the mapping reads are in [`KNOWN`] and cost
//! nothing; any other key is kept once for the life of the process, up to [`MAX_KEPT`]
//! distinct keys of at most [`MAX_NAME_LEN`] bytes (at most 1 MiB in all). A key beyond
//! those limits is not lost: it goes, with its value, into the `otel.attributes` object
//! (see [`crate::otlp::spans`]). A client cannot make the receiver's memory grow without
//! bound by inventing keys.

use std::collections::HashMap;
use std::sync::LazyLock;

use parking_lot::Mutex;

/// The most distinct unknown keys kept.
pub(crate) const MAX_KEPT: usize = 4096;
/// The longest key kept as a name of its own.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// The keys the conventions table reads, and common resource keys: named without cost.
static KNOWN: &[&str] = &[
    "module",
    "profile",
    "input",
    "output",
    "input_summary",
    "output_summary",
    "confidence",
    "tokens_used",
    "error",
    "error.type",
    "status",
    "decision_type",
    "chosen_option",
    "rationale",
    "options_considered",
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.agent.description",
    "gen_ai.workflow.name",
    "gen_ai.conversation.id",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.type",
    "gen_ai.tool.description",
    "openinference.span.kind",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.invocation_parameters",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "tool.name",
    "tool.description",
    "tool.parameters",
    "agent.name",
    "graph.node.id",
    "graph.node.name",
    "graph.node.parent_id",
    "session.id",
    "user.id",
    "metadata",
    "service.name",
    "service.version",
    "service.namespace",
    "service.instance.id",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "host.name",
    "process.pid",
    "exception.type",
    "exception.message",
    "exception.stacktrace",
];

static KEPT: LazyLock<Mutex<HashMap<Box<str>, &'static str>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `key` as a field name, or `None` when it is too long or the process keeps too many
/// names already (the caller then keeps it in `otel.attributes`).
pub(crate) fn name(key: &str) -> Option<&'static str> {
    if let Some(known) = KNOWN.iter().find(|k| **k == key) {
        return Some(known);
    }
    if key.len() > MAX_NAME_LEN {
        return None;
    }
    let mut kept = KEPT.lock();
    if let Some(name) = kept.get(key) {
        return Some(name);
    }
    if kept.len() >= MAX_KEPT {
        return None;
    }
    // Kept for the life of the process, like a `tracing` callsite's names; bounded above.
    let name: &'static str = Box::leak(key.to_owned().into_boxed_str());
    kept.insert(key.into(), name);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_cost_nothing_and_long_keys_are_refused() {
        let known = name("gen_ai.usage.input_tokens").expect("known");
        assert!(KNOWN.iter().any(|k| std::ptr::eq(*k, known)), "not copied");
        assert_eq!(name(&"k".repeat(MAX_NAME_LEN + 1)), None);
        let once = name("app.custom.key").expect("kept");
        let again = name("app.custom.key").expect("kept");
        assert!(std::ptr::eq(once, again), "a key is kept once");
    }
}
