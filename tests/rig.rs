//! A real rig `Agent` (rig-core 0.38) with a tool, against a deterministic completion model
//! written here (no network): rig's own spans — `invoke_agent`, a `chat` per model turn
//! with its token counts, `execute_tool` — land in the database as a session and its steps,
//! with nothing renamed.

mod common;

use common::Audit;
use rig_core::OneOrMany;
use rig_core::agent::AgentBuilder;
use rig_core::completion::{
    AssistantContent, CompletionError, CompletionModel, CompletionRequest, CompletionResponse,
    GetTokenUsage, Prompt, ToolDefinition, Usage,
};
use rig_core::message::{Message, ToolResultContent, UserContent};
use rig_core::streaming::StreamingCompletionResponse;
use rig_core::telemetry::SpanCombinator;
use rig_core::tool::Tool;
use serde::{Deserialize, Serialize};
use std::future::IntoFuture;

/// What the model returns besides the choice (nothing to keep).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Raw;

impl GetTokenUsage for Raw {
    fn token_usage(&self) -> Option<Usage> {
        None
    }
}

/// Usage as a provider reports it.
struct Reported(Usage);

impl GetTokenUsage for Reported {
    fn token_usage(&self) -> Option<Usage> {
        Some(self.0)
    }
}

/// A model that asks for `add` with the numbers in the prompt, then answers with the tool's
/// result: the same answer for the same conversation, every time. Like rig's providers, it
/// records its token usage on the current (`chat`) span.
#[derive(Clone)]
struct Arithmetic;

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        ..Usage::new()
    }
}

impl CompletionModel for Arithmetic {
    type Response = Raw;
    type StreamingResponse = Raw;
    type Client = ();

    fn make(_: &(), _: impl Into<String>) -> Self {
        Arithmetic
    }

    async fn completion(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse<Raw>, CompletionError> {
        let tool_result = request
            .chat_history
            .iter()
            .find_map(|message| match message {
                Message::User { content } => content.iter().find_map(|c| match c {
                    UserContent::ToolResult(result) => {
                        result.content.iter().find_map(|r| match r {
                            ToolResultContent::Text(text) => Some(text.text.clone()),
                            _ => None,
                        })
                    }
                    _ => None,
                }),
                _ => None,
            });
        let (choice, usage) = match tool_result {
            None => (
                AssistantContent::tool_call("call_1", "add", serde_json::json!({"x": 2, "y": 3})),
                usage(21, 9),
            ),
            Some(sum) => (
                AssistantContent::text(format!("2 + 3 = {sum}")),
                usage(40, 6),
            ),
        };
        tracing::Span::current().record_token_usage(&Reported(usage));
        Ok(CompletionResponse {
            choice: OneOrMany::one(choice),
            usage,
            raw_response: Raw,
            message_id: None,
        })
    }

    async fn stream(
        &self,
        _: CompletionRequest,
    ) -> Result<StreamingCompletionResponse<Raw>, CompletionError> {
        Err(CompletionError::ProviderError(
            "this model does not stream".into(),
        ))
    }
}

#[derive(Deserialize)]
struct AddArgs {
    x: i64,
    y: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("addition failed")]
struct AddError;

struct Add;

impl Tool for Add {
    const NAME: &'static str = "add";
    type Error = AddError;
    type Args = AddArgs;
    type Output = i64;

    async fn definition(&self, _prompt: String) -> ToolDefinition {
        ToolDefinition {
            name: "add".into(),
            description: "Adds two integers".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"]
            }),
        }
    }

    async fn call(&self, args: AddArgs) -> Result<i64, AddError> {
        Ok(args.x + args.y)
    }
}

fn agent() -> rig_core::agent::Agent<Arithmetic> {
    AgentBuilder::new(Arithmetic)
        .name("calculator")
        .preamble("You add numbers with the add tool.")
        .tool(Add)
        .default_max_turns(3)
        .build()
}

/// Runs the agent in a GenAI `invoke_agent` span of the caller's. rig 0.38 adopts an
/// ambient span as its run span (and records the run's totals on it); the `invoke_agent`
/// span it opens itself when there is none is never entered, so its turns would have no
/// parent (rig links them to each other with `follows_from` only).
fn run(audit: &Audit, prompt: &'static str) -> String {
    use tracing::Instrument;
    use tracing::field::Empty;
    audit.run(|| {
        let run = tracing::info_span!(
            "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "calculator",
            gen_ai.prompt = Empty,
            gen_ai.completion = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
        );
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(agent().prompt(prompt).into_future().instrument(run))
            .unwrap()
    })
}

#[test]
fn a_rig_agent_with_a_tool_is_recorded_as_a_session_with_chat_and_tool_steps() {
    let audit = Audit::new();
    let answer = run(&audit, "What is 2 + 3?");
    assert_eq!(answer, "2 + 3 = 5");

    assert_eq!(
        audit.rows("SELECT profile, status, ended_at IS NOT NULL FROM sessions"),
        [["calculator", "completed", "1"]]
    );
    // Two model turns with their token counts, the tool call between them.
    assert_eq!(
        audit.rows(
            "SELECT module, tokens_used, input_summary, output_summary, \
             json_extract(attributes, '$.\"gen_ai.operation.name\"') \
             FROM steps ORDER BY started_at"
        ),
        [
            ["calculator", "30", "NULL", "NULL", "chat"],
            ["add", "NULL", r#"{"x":2,"y":3}"#, "5", "execute_tool"],
            ["calculator", "46", "NULL", "NULL", "chat"],
        ]
    );
    // rig links the turns with `follows_from`, not nesting: all are steps of the session.
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE parent_step_id IS NULL"),
        "3"
    );
    let session_tokens: serde_json::Value =
        serde_json::from_str(&audit.one("SELECT attributes FROM sessions")).unwrap();
    assert_eq!(session_tokens["gen_ai.usage.input_tokens"], 61);
    assert_eq!(session_tokens["gen_ai.usage.output_tokens"], 15);
    assert_eq!(session_tokens["gen_ai.operation.name"], "invoke_agent");
}

#[test]
fn inside_the_users_own_session_rigs_spans_are_steps_of_that_session() {
    let audit = Audit::new();
    audit.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _session = tracing::info_span!("session", id = "review-7", profile = "deep").entered();
        runtime.block_on(async { agent().prompt("What is 2 + 3?").await.unwrap() })
    });
    assert_eq!(
        audit.rows("SELECT id, profile FROM sessions"),
        [["review-7", "deep"]]
    );
    assert_eq!(
        audit.rows("SELECT module FROM steps WHERE session_id = 'review-7' ORDER BY started_at"),
        [["calculator"], ["add"], ["calculator"]]
    );
}
