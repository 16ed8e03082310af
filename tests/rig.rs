//! Real rig agents with a tool, against deterministic models (no network): rig-core 0.38
//! with a completion model written here, and rig-agent 0.44 with the mock model its
//! `test-utils` ship. rig's own spans — `invoke_agent`, a `chat` per model turn with its
//! token counts, `execute_tool` — land in the database as a session and its steps, with
//! nothing renamed: inside a span of the caller's, and without one (rig 0.38 links a run's
//! turns by `follows_from` only); a run that returns an error is `failed`, a tool that
//! fails marks its step.

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
use tracing::field::Empty;

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
/// records its token usage on the current (`chat`) span. A `broken` one fails its second
/// turn, as a provider that goes down mid-run does.
#[derive(Clone, Default)]
struct Arithmetic {
    broken: bool,
}

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
        Arithmetic::default()
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
            Some(_) if self.broken => {
                return Err(CompletionError::ProviderError(
                    "503 Service Unavailable".into(),
                ));
            }
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

/// An `add` tool that always fails.
struct BrokenAdd;

impl Tool for BrokenAdd {
    const NAME: &'static str = "add";
    type Error = AddError;
    type Args = AddArgs;
    type Output = i64;

    async fn definition(&self, prompt: String) -> ToolDefinition {
        Add.definition(prompt).await
    }

    async fn call(&self, _: AddArgs) -> Result<i64, AddError> {
        Err(AddError)
    }
}

fn agent() -> rig_core::agent::Agent<Arithmetic> {
    agent_of(Arithmetic::default(), Add)
}

fn agent_of(model: Arithmetic, tool: impl Tool + 'static) -> rig_core::agent::Agent<Arithmetic> {
    AgentBuilder::new(model)
        .name("calculator")
        .preamble("You add numbers with the add tool.")
        .tool(tool)
        .default_max_turns(3)
        .build()
}

/// The README's recipe for a rig run (rig-core 0.38 here; rig-agent 0.44 below differs in
/// one line): the caller's run span, which rig adopts, with the prompt and the answer, and
/// the error of a run that fails.
#[tracing::instrument(name = "invoke_agent", skip_all, err, fields(
    gen_ai.operation.name = "invoke_agent",
    gen_ai.agent.name = "calculator",
    gen_ai.prompt = prompt,
    gen_ai.completion = Empty,
))]
async fn ask(
    agent: &rig_core::agent::Agent<Arithmetic>,
    prompt: &str,
) -> Result<String, rig_core::completion::PromptError> {
    let answer = agent.prompt(prompt).await?;
    tracing::Span::current().record("gen_ai.completion", answer.as_str());
    Ok(answer)
}

/// The steps of one session: module, tokens, input and output summaries, error, in order.
fn steps_of(audit: &Audit, session: &str) -> Vec<Vec<String>> {
    audit.rows(&format!(
        "SELECT module, tokens_used, input_summary, output_summary, error FROM steps \
         WHERE session_id = '{session}' ORDER BY started_at"
    ))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Runs the agent in a GenAI `invoke_agent` span of the caller's. rig 0.38 adopts an
/// ambient span as its run span (and records the run's totals on it); the `invoke_agent`
/// span it opens itself when there is none is never entered, so its turns would have no
/// parent (rig links them to each other with `follows_from` only).
fn run(audit: &Audit, prompt: &'static str) -> String {
    use tracing::Instrument;
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

/// What a run of 2 + 3 leaves, turn by turn, when nothing fails.
fn two_plus_three() -> Vec<Vec<String>> {
    vec![
        vec![
            "calculator".into(),
            "30".into(),
            "NULL".into(),
            "NULL".into(),
            "NULL".into(),
        ],
        vec![
            "add".into(),
            "NULL".into(),
            r#"{"x":2,"y":3}"#.into(),
            "5".into(),
            "NULL".into(),
        ],
        vec![
            "calculator".into(),
            "46".into(),
            "NULL".into(),
            "NULL".into(),
            "NULL".into(),
        ],
    ]
}

#[test]
fn without_a_span_of_the_callers_each_rig_run_is_one_session_with_its_turns_and_tool() {
    let audit = Audit::new();
    audit.run(|| {
        let runtime = current_thread();
        for _ in 0..5 {
            let answer = runtime.block_on(async { agent().prompt("What is 2 + 3?").await });
            assert_eq!(answer.unwrap(), "2 + 3 = 5");
        }
    });
    let sessions = audit.rows(
        "SELECT id, profile, status, json_extract(attributes, '$.implicit') FROM sessions \
         ORDER BY started_at",
    );
    assert_eq!(sessions.len(), 5, "one session per run: {sessions:?}");
    for session in &sessions {
        assert_eq!(session[1..], ["calculator", "completed", "NULL"]);
        assert_eq!(steps_of(&audit, &session[0]), two_plus_three());
    }
    assert_eq!(audit.count("steps"), 15);
}

#[test]
fn concurrent_rig_runs_without_a_span_keep_their_own_turns() {
    let audit = Audit::new();
    audit.run(|| {
        // The workers record into this test's database too.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
            .build()
            .unwrap();
        runtime.block_on(async {
            let runs = (0..6).map(|_| tokio::spawn(agent().prompt("What is 2 + 3?").into_future()));
            for run in runs.collect::<Vec<_>>() {
                assert_eq!(run.await.unwrap().unwrap(), "2 + 3 = 5");
            }
        });
    });
    let sessions = audit.rows("SELECT id FROM sessions");
    assert_eq!(sessions.len(), 6, "{sessions:?}");
    for session in &sessions {
        assert_eq!(steps_of(&audit, &session[0]), two_plus_three());
    }
}

#[test]
fn a_rig_run_whose_model_fails_is_failed_without_a_span_of_the_callers() {
    let audit = Audit::new();
    let result = audit.run(|| {
        current_thread().block_on(async {
            agent_of(Arithmetic { broken: true }, Add)
                .prompt("What is 2 + 3?")
                .await
        })
    });
    assert!(result.is_err());
    let session =
        audit.rows("SELECT id, status, json_extract(attributes, '$.error') FROM sessions");
    assert_eq!(session.len(), 1, "{session:?}");
    assert_eq!(session[0][1], "failed");
    assert!(
        session[0][2].contains("ended without a result"),
        "{session:?}"
    );
    // The first turn and the tool ran; the failed turn has no usage (rig records none).
    let steps = steps_of(&audit, &session[0][0]);
    assert_eq!(steps[..2], two_plus_three()[..2]);
    assert_eq!(steps[2][..2], ["calculator", "NULL"]);
}

#[test]
fn a_tool_that_fails_marks_its_step_and_the_run_goes_on() {
    let audit = Audit::new();
    let answer = audit.run(|| {
        current_thread().block_on(async {
            agent_of(Arithmetic::default(), BrokenAdd)
                .prompt("What is 2 + 3?")
                .await
        })
    });
    // rig hands the model the error as the tool's output; the model answers with it.
    assert!(answer.unwrap().contains("addition failed"));
    let session = audit.rows("SELECT id, status FROM sessions");
    assert_eq!(session.len(), 1);
    assert_eq!(session[0][1], "completed");
    let tool = audit.rows("SELECT error, output_summary FROM steps WHERE module = 'add'");
    assert_eq!(tool.len(), 1);
    assert!(
        tool[0][0].starts_with("Error while executing tool"),
        "{tool:?}"
    );
    assert!(tool[0][1].contains("addition failed"), "{tool:?}");
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE error IS NOT NULL"),
        "1"
    );
}

#[test]
fn the_readme_recipe_keeps_prompt_and_answer_and_marks_a_failed_run() {
    let audit = Audit::with(|b| b.store_inputs(true));
    audit.run(|| {
        let runtime = current_thread();
        let good = agent();
        assert_eq!(
            runtime.block_on(ask(&good, "What is 2 + 3?")).unwrap(),
            "2 + 3 = 5"
        );
        let broken = agent_of(Arithmetic { broken: true }, Add);
        assert!(runtime.block_on(ask(&broken, "And 2 + 3?")).is_err());
    });
    let sessions = audit.rows(
        "SELECT id, status, input, json_extract(attributes, '$.\"gen_ai.completion\"'), \
         json_extract(attributes, '$.error') FROM sessions ORDER BY started_at",
    );
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(
        sessions[0][1..],
        ["completed", "What is 2 + 3?", "2 + 3 = 5", "NULL"]
    );
    assert_eq!(sessions[1][1..4], ["failed", "And 2 + 3?", "NULL"]);
    assert!(
        sessions[1][4].contains("503 Service Unavailable"),
        "{sessions:?}"
    );
    assert_eq!(steps_of(&audit, &sessions[0][0]), two_plus_three());
    assert_eq!(
        audit.count("steps"),
        6,
        "rig's turns are steps of the caller's span"
    );
}

/// rig-agent 0.44: the agent moved to its own crate, enters its run span (or the caller's,
/// taken when the run is started), and reports a failing tool on the tool's span.
mod rig_agent_0_44 {
    use super::{Audit, current_thread, steps_of};
    use rig_agent::AgentBuilder;
    use rig_agent::core::completion::Usage;
    use rig_agent::test_utils::{MockAddTool, MockCompletionModel, MockTurn};
    use tracing::field::Empty;

    fn usage(input: u64, output: u64) -> Usage {
        Usage::new().input_tokens(input).output_tokens(output)
    }

    /// The model asks for `add`, then answers — or, `broken`, fails its second turn.
    fn agent(broken: bool) -> rig_agent::Agent {
        agent_recording(broken, false)
    }

    /// The same, with rig recording prompts, tool arguments and results, and answers on
    /// its spans when `content`.
    fn agent_recording(broken: bool, content: bool) -> rig_agent::Agent {
        let answer = if broken {
            MockTurn::error("503 Service Unavailable")
        } else {
            MockTurn::text("2 + 3 = 5").with_usage(usage(40, 6))
        };
        AgentBuilder::new(MockCompletionModel::from_turns([
            MockTurn::tool_call("call_1", "add", serde_json::json!({"x": 2, "y": 3}))
                .with_usage(usage(21, 9)),
            answer,
        ]))
        .name("calculator")
        .preamble("You add numbers with the add tool.")
        .tool(MockAddTool)
        .default_max_turns(3)
        .record_content_telemetry(content)
        .build()
    }

    /// The README's recipe, with rig-agent 0.44's one difference: the run answers a
    /// `PromptResponse`, whose `output()` is the answer.
    #[tracing::instrument(name = "invoke_agent", skip_all, err, fields(
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = "calculator",
        gen_ai.prompt = prompt,
        gen_ai.completion = Empty,
    ))]
    async fn ask(
        agent: &rig_agent::Agent,
        prompt: &str,
    ) -> Result<String, rig_agent::completion::PromptError> {
        let answer = agent.prompt(prompt).await?.output();
        tracing::Span::current().record("gen_ai.completion", answer.as_str());
        Ok(answer)
    }

    /// rig-agent 0.44 enters its own run span: without a span of the caller's, each run is
    /// one session. (A run that fails leaves no mark on rig's spans at all, and usage only
    /// as far as the provider reports it, so the layer cannot tell; the recipe below can.)
    #[test]
    fn each_run_without_a_span_of_the_callers_is_one_session_with_its_turns() {
        let audit = Audit::new();
        audit.run(|| {
            let runtime = current_thread();
            for broken in [false, false, true] {
                let result =
                    runtime.block_on(async { agent(broken).prompt("What is 2 + 3?").await });
                assert_eq!(result.is_err(), broken);
            }
        });
        let sessions = audit.rows("SELECT id, profile FROM sessions ORDER BY started_at");
        assert_eq!(sessions.len(), 3, "{sessions:?}");
        for session in &sessions {
            assert_eq!(session[1], "calculator");
            let steps = steps_of(&audit, &session[0]);
            assert_eq!(steps.len(), 3, "{steps:?}");
            assert_eq!(
                steps[0][..2],
                ["mock-model", "30"],
                "the model is the module"
            );
            // rig-agent records tool arguments and results only when asked to
            // (`record_content_telemetry(true)`, as the recipe test does).
            assert_eq!(steps[1][..4], ["add", "NULL", "NULL", "NULL"]);
        }
    }

    #[test]
    fn the_readme_recipe_keeps_prompt_and_answer_and_marks_a_failed_run() {
        let audit = Audit::with(|b| b.store_inputs(true));
        audit.run(|| {
            let runtime = current_thread();
            assert_eq!(
                runtime
                    .block_on(ask(&agent_recording(false, true), "What is 2 + 3?"))
                    .unwrap(),
                "2 + 3 = 5"
            );
            assert!(runtime.block_on(ask(&agent(true), "And 2 + 3?")).is_err());
        });
        let sessions = audit.rows(
            "SELECT id, status, input, json_extract(attributes, '$.\"gen_ai.completion\"'), \
             json_extract(attributes, '$.error') FROM sessions ORDER BY started_at",
        );
        assert_eq!(
            sessions.len(),
            2,
            "one session per run, none of rig's own: {sessions:?}"
        );
        assert_eq!(
            sessions[0][1..],
            ["completed", "What is 2 + 3?", "2 + 3 = 5", "NULL"]
        );
        assert_eq!(sessions[1][1..4], ["failed", "And 2 + 3?", "NULL"]);
        assert!(sessions[1][4].contains("503"), "{sessions:?}");
        // Asked to, rig-agent records the tool's arguments and result.
        let steps = steps_of(&audit, &sessions[0][0]);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1][..4], ["add", "NULL", r#"{"x":2,"y":3}"#, "5"]);
    }
}
