//! Spans of the OpenTelemetry GenAI conventions and of the Rust agent frameworks become
//! sessions, steps and decisions without being renamed. Each test opens the spans exactly
//! as the framework does (quoted from its source in the research note on Rust AI tracing:
//! genai 0.7 `src/otel/span.rs`, swiftide-agents 0.33 `src/agent.rs`, adk-rust 2.0
//! `adk-runner`/`adk-agent`), then reads the database back.

mod common;

use common::Audit;
use tracing::field::Empty;
use tracing::{Level, Span, info_span, instrument};

/// genai's `otel` feature: an agent helper span, a chat span per model call with usage
/// recorded when the answer arrives, a tool span, a plan span, and an error recorded the way
/// genai's `record_error` does.
#[test]
fn genai_spans_become_a_session_with_model_and_tool_steps_and_a_plan() {
    let audit = Audit::new();
    audit.run(|| {
        let agent = info_span!(
            "genai.agent",
            "otel.name" = "invoke_agent planner",
            "gen_ai.operation.name" = "invoke_agent",
            "gen_ai.agent.name" = "planner",
            "gen_ai.conversation.id" = "conv-42",
        );
        let _agent = agent.enter();
        let plan = info_span!(
            "genai.plan",
            "otel.name" = "plan planner",
            "gen_ai.operation.name" = "plan",
            "gen_ai.agent.name" = "planner",
        );
        plan.in_scope(|| {});
        drop(plan);
        let chat = info_span!(
            "genai.chat",
            "otel.name" = "chat gpt-4o-mini",
            "otel.kind" = "client",
            "otel.status_code" = Empty,
            "error.type" = Empty,
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = "openai",
            "gen_ai.request.model" = "gpt-4o-mini",
            "gen_ai.request.stream" = false,
            "gen_ai.response.finish_reasons" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "gen_ai.usage.cache_read.input_tokens" = Empty,
            "gen_ai.usage.reasoning.output_tokens" = Empty,
            "gen_ai.input.messages" = Empty,
            "gen_ai.output.messages" = Empty,
        );
        chat.record("gen_ai.usage.input_tokens", 120_u64);
        chat.record("gen_ai.usage.output_tokens", 30_u64);
        chat.record("gen_ai.response.finish_reasons", r#"["tool_calls"]"#);
        drop(chat);
        let tool = info_span!(
            "genai.execute_tool",
            "otel.name" = "execute_tool get_weather",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = "get_weather",
            "gen_ai.tool.call.id" = "call_1",
        );
        tool.in_scope(|| {});
        drop(tool);
        let failed = info_span!(
            "genai.chat",
            "otel.name" = "chat gpt-4o-mini",
            "otel.status_code" = Empty,
            "error.type" = Empty,
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o-mini",
        );
        failed.record("otel.status_code", "error");
        failed.record("error.type", "rate_limited");
    });

    assert_eq!(
        audit.rows("SELECT id, profile, status FROM sessions"),
        [["conv-42", "planner", "completed"]]
    );
    assert_eq!(
        audit.rows(
            "SELECT module, tokens_used, error FROM steps WHERE session_id = 'conv-42' \
             ORDER BY started_at"
        ),
        [
            ["implicit", "NULL", "NULL"], // holds the plan, which came before any step
            ["gpt-4o-mini", "150", "NULL"],
            ["get_weather", "NULL", "NULL"],
            ["gpt-4o-mini", "NULL", "rate_limited"],
        ]
    );
    assert_eq!(audit.one("SELECT decision_type FROM decisions"), "plan");
    // Everything without a column stays in `attributes`, under its own name.
    let attributes: serde_json::Value = serde_json::from_str(
        &audit.one("SELECT attributes FROM steps WHERE module = 'gpt-4o-mini' AND error IS NULL"),
    )
    .unwrap();
    assert_eq!(attributes["gen_ai.provider.name"], "openai");
    assert_eq!(attributes["gen_ai.usage.input_tokens"], 120);
    assert_eq!(attributes["otel.name"], "chat gpt-4o-mini");
    assert_eq!(
        attributes["gen_ai.response.finish_reasons"],
        r#"["tool_calls"]"#
    );
}

#[derive(Debug)]
struct ToolFailed;

impl std::fmt::Display for ToolFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the tool failed")
    }
}

impl std::error::Error for ToolFailed {}

/// swiftide's `step` span: its tracing name is already ours, and `otel.name` comes later.
#[instrument(skip(_messages), err, fields(otel.name))]
fn step(_messages: &[&str], step_count: usize) -> Result<(), ToolFailed> {
    Span::current().record("otel.name", format!("step-{step_count}"));
    complete()?;
    let tool_span = info_span!("tool", "otel.name" = format!("tool.{}", "search"));
    tool_span.in_scope(|| {
        tracing::debug!(
            output = "3 results",
            args = "{\"q\":\"rust\"}",
            tool_name = "search"
        );
    });
    if step_count == 2 {
        return Err(ToolFailed);
    }
    Ok(())
}

/// swiftide-integrations' model call: `#[tracing::instrument(skip_all, err)]`, named
/// after the function.
#[instrument(skip_all, err)]
fn complete() -> Result<(), ToolFailed> {
    Ok(())
}

/// swiftide-agents' run: `#[tracing::instrument(skip_all, name = "agent.run", err)]`.
#[instrument(skip_all, name = "agent.run", err)]
fn run_agent() -> Result<(), ToolFailed> {
    step(&["hi"], 1)?;
    step(&["again"], 2)?;
    Ok(())
}

#[test]
fn swiftide_spans_become_a_failed_session_with_its_steps_tools_and_model_calls() {
    let audit = Audit::new();
    audit.run(|| assert!(run_agent().is_err()));

    assert_eq!(audit.one("SELECT status FROM sessions"), "failed");
    let steps = audit.rows(
        "SELECT s.module, p.module, s.error FROM steps s \
         LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at",
    );
    let target = "frameworks";
    assert_eq!(
        steps,
        [
            ["step-1", "NULL", "NULL"],
            [target, "step-1", "NULL"], // complete
            ["tool.search", "step-1", "NULL"],
            ["step-2", "NULL", "the tool failed"],
            [target, "step-2", "NULL"],
            ["tool.search", "step-2", "NULL"],
        ]
    );
    let attributes: serde_json::Value =
        serde_json::from_str(&audit.one("SELECT attributes FROM steps WHERE module = 'step-1'"))
            .unwrap();
    assert_eq!(attributes["step_count"], 1);
}

/// adk-rust: the runner's `agent.execute` with the session in `gen_ai.conversation.id`,
/// the agent's `call_llm`, the provider's `model.generate_content` and `gen_ai.generate`
/// with the token counts, and a tool span whose tracing name is the empty string.
#[test]
fn adk_rust_spans_become_a_session_with_nested_model_steps_and_a_tool() {
    let audit = Audit::new();
    audit.run(|| {
        let execute = info_span!(
            "agent.execute",
            "gcp.vertex.agent.invocation_id" = "inv-1",
            "gcp.vertex.agent.session_id" = "sess-9",
            "gcp.vertex.agent.event_id" = "inv-1",
            "gen_ai.conversation.id" = "sess-9",
            "adk.app_name" = "weather-app",
            "adk.user_id" = "u-1",
            "agent.name" = "assistant",
        );
        let _execute = execute.enter();
        let request = r#"{"model":"gemini-2.0-flash","contents":[]}"#;
        let llm = info_span!(
            "call_llm",
            "gcp.vertex.agent.event_id" = "ev-1",
            "gcp.vertex.agent.invocation_id" = "inv-1",
            "gcp.vertex.agent.session_id" = "sess-9",
            "gen_ai.conversation.id" = "sess-9",
            "gcp.vertex.agent.llm_request" = %request,
            "gcp.vertex.agent.llm_response" = Empty,
        );
        let _llm = llm.enter();
        let generate = info_span!("model.generate_content", model = "gemini-2.0-flash");
        let _generate = generate.enter();
        let usage = info_span!(
            "gen_ai.generate",
            gen_ai.system = %"gemini",
            gen_ai.request.model = "gemini-2.0-flash",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.total_tokens = Empty,
            otel.kind = "client",
        );
        usage.record("gen_ai.usage.input_tokens", 40_i64);
        usage.record("gen_ai.usage.output_tokens", 2_i64);
        usage.record("gen_ai.usage.total_tokens", 42_i64);
        drop(usage);
        drop(_generate);
        drop(_llm);
        let name = "get_weather";
        let span_name = format!("execute_tool {name}");
        let tool = info_span!(
            "",
            otel.name = %span_name,
            tool.name = %name,
            "gcp.vertex.agent.event_id" = "ev-2",
        );
        tool.in_scope(|| {});
    });

    assert_eq!(
        audit.rows("SELECT id, profile FROM sessions"),
        [["sess-9", "assistant"]]
    );
    let steps = audit.rows(
        "SELECT s.module, p.module, s.tokens_used FROM steps s \
         LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at",
    );
    assert_eq!(
        steps,
        [
            ["frameworks", "NULL", "NULL"], // call_llm: nothing names a module
            ["frameworks", "frameworks", "NULL"], // model.generate_content
            ["gemini-2.0-flash", "frameworks", "42"],
            ["get_weather", "NULL", "NULL"],
        ]
    );
}

/// rig does not open `invoke_agent` when a span is current, and other frameworks nest
/// their runs in the caller's: inside the user's own session, a framework's run is a step.
#[test]
fn a_framework_run_inside_the_users_session_is_a_step_of_that_session() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "mine", profile = "deep").in_scope(|| {
            info_span!(
                "invoke_agent",
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = "helper",
            )
            .in_scope(|| {
                info_span!(
                    "chat",
                    gen_ai.operation.name = "chat",
                    gen_ai.request.model = "m1"
                )
                .in_scope(|| {});
            });
        });
    });
    assert_eq!(audit.rows("SELECT id FROM sessions"), [["mine"]]);
    assert_eq!(
        audit.rows(
            "SELECT s.module, p.module FROM steps s \
             LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at"
        ),
        [["helper", "NULL"], ["m1", "helper"]]
    );
}

/// A common word as a span name is a framework's step only inside a session; a span
/// whose `otel.name` says nothing we know (an HTTP request's) is not recorded at all.
#[test]
fn weak_names_count_only_inside_a_session_and_unknown_otel_names_not_at_all() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("tool", name = "grep").in_scope(|| {});
        info_span!("complete").in_scope(|| {});
        info_span!("request", otel.name = "GET /users", otel.kind = "server").in_scope(|| {});
        info_span!("agent.run").in_scope(|| {
            info_span!("tool", name = "grep").in_scope(|| {});
            info_span!("request", otel.name = "GET /users").in_scope(|| {});
        });
    });
    assert_eq!(audit.count("sessions"), 1);
    assert_eq!(audit.rows("SELECT module FROM steps"), [["frameworks"]]);
}

/// The meaning of a span may arrive with a later `record`: the span is audited from its
/// creation time, with the fields it was created with.
#[test]
fn a_span_whose_meaning_arrives_with_a_later_record_is_recorded_from_its_start() {
    let audit = Audit::new();
    let recorded_at = std::sync::Mutex::new(None);
    audit.run(|| {
        let session = info_span!("agent.query");
        let _session = session.enter();
        let span = info_span!(
            "work",
            otel.name = Empty,
            gen_ai.tool.name = "lookup",
            gen_ai.tool.call.result = Empty
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        *recorded_at.lock().unwrap() = Some(chrono::Utc::now());
        span.record("otel.name", "execute_tool lookup");
        span.record("gen_ai.tool.call.result", "found it");
        drop(span);
        let never = info_span!("other", otel.name = Empty);
        never.record("otel.name", "GET /");
    });
    assert_eq!(
        audit.rows("SELECT module, output_summary FROM steps"),
        [["lookup", "found it"]]
    );
    let recorded_at = recorded_at.lock().unwrap().unwrap();
    let started_at = audit.one("SELECT started_at FROM steps");
    assert!(
        started_at < recorded_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        "the step starts when the span was created ({started_at}), not at the record"
    );
}

/// Token counts under the deprecated names, and the status convention.
#[test]
fn deprecated_token_names_and_status_codes_are_read() {
    let audit = Audit::new();
    audit.run(|| {
        let _session =
            info_span!("invoke_workflow", gen_ai.operation.name = "invoke_workflow").entered();
        info_span!(
            "text_completion",
            gen_ai.usage.prompt_tokens = 7_u64,
            gen_ai.usage.completion_tokens = 3_u64,
        )
        .in_scope(|| {});
        let failed = info_span!(
            "call_llm",
            otel.status_code = Empty,
            otel.status_description = Empty
        );
        failed.record("otel.status_code", "ERROR");
        failed.record("otel.status_description", "upstream timed out");
    });
    assert_eq!(
        audit.rows("SELECT tokens_used, error FROM steps ORDER BY started_at"),
        [["10", "NULL"], ["NULL", "upstream timed out"]]
    );
}

#[test]
fn the_builder_switch_turns_framework_spans_off() {
    let audit = Audit::with(|b| b.frameworks(false));
    audit.run(|| {
        info_span!("invoke_agent", gen_ai.operation.name = "invoke_agent").in_scope(|| {
            info_span!("chat", gen_ai.operation.name = "chat").in_scope(|| {});
        });
        info_span!("session").in_scope(|| info_span!("step").in_scope(|| {}));
    });
    assert_eq!(audit.count("sessions"), 1);
    assert_eq!(audit.count("steps"), 1);
}

/// An ERROR event inside a framework step fails the step, as inside our own `step` (the
/// session fails only by an error of its own).
#[test]
fn an_error_event_inside_a_framework_step_marks_it_failed() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("agent.run").in_scope(|| {
            info_span!("execute_tool", gen_ai.tool.name = "rm").in_scope(|| {
                tracing::event!(Level::ERROR, "permission denied");
            });
        });
    });
    assert_eq!(
        audit.rows("SELECT module, error FROM steps"),
        [["rm", "permission denied"]]
    );
    assert_eq!(audit.one("SELECT status FROM sessions"), "completed");
}

/// genai's `genai.agent` helper also opens a span to *create* an agent (`create_agent`):
/// that is no run, so it is no session — a step inside one, nothing outside.
#[test]
fn creating_an_agent_is_no_session_and_a_step_inside_one() {
    let audit = Audit::new();
    let create = || {
        info_span!(
            "genai.agent",
            "otel.name" = "create_agent planner",
            "gen_ai.operation.name" = "create_agent",
            "gen_ai.agent.name" = "planner",
        )
        .in_scope(|| {});
    };
    audit.run(|| {
        create();
        let _session = info_span!("session", id = "s").entered();
        create();
    });
    assert_eq!(audit.rows("SELECT id FROM sessions"), [["s"]]);
    assert_eq!(
        audit.rows("SELECT module, session_id FROM steps"),
        [["planner", "s"]]
    );
}

/// rig's providers' streaming calls (`chat_streaming`, up to 0.43) and Gemini's
/// interactions API (`interactions`, `interactions_streaming`) are model calls like `chat`;
/// a model named only in the response (`gen_ai.response.model`) names the step.
#[test]
fn streaming_and_interactions_calls_are_steps_named_by_the_model_that_answered() {
    let audit = Audit::new();
    audit.run(|| {
        let _run = info_span!(
            "invoke_agent",
            "gen_ai.operation.name" = "invoke_agent",
            "gen_ai.agent.name" = "writer",
        )
        .entered();
        for operation in ["chat_streaming", "interactions", "interactions_streaming"] {
            let call = info_span!(
                target: "rig::completions",
                "chat_streaming",
                "gen_ai.operation.name" = operation,
                "gen_ai.request.model" = Empty,
                "gen_ai.response.model" = Empty,
                "gen_ai.usage.input_tokens" = Empty,
            );
            call.record("gen_ai.response.model", "gemini-2.5-flash");
            call.record("gen_ai.usage.input_tokens", 12_u64);
            call.in_scope(|| {});
        }
    });
    assert_eq!(
        audit.rows(
            "SELECT module, tokens_used, json_extract(attributes, '$.\"gen_ai.operation.name\"') \
             FROM steps ORDER BY started_at"
        ),
        [
            ["gemini-2.5-flash", "12", "chat_streaming"],
            ["gemini-2.5-flash", "12", "interactions"],
            ["gemini-2.5-flash", "12", "interactions_streaming"],
        ]
    );
}

/// Model calls that carry a conversation id, with no agent span around them (a chat app
/// calling genai directly): each call's session is written under the conversation id, so
/// one conversation's turns are found together (`<id>`, then `<id>~<uuidv7>`).
#[test]
fn chat_calls_with_a_conversation_id_and_no_agent_span_are_found_by_the_conversation() {
    let audit = Audit::new();
    audit.run(|| {
        for conversation in ["conv-7", "conv-7", "conv-8", "conv-7"] {
            info_span!(
                "genai.chat",
                "otel.name" = "chat gpt-4o",
                "gen_ai.operation.name" = "chat",
                "gen_ai.request.model" = "gpt-4o",
                "gen_ai.conversation.id" = conversation,
            )
            .in_scope(|| {});
        }
    });
    let rows = audit.rows(
        "SELECT coalesce(json_extract(s.attributes, '$.given_id'), s.id), s.profile, \
         count(st.id) FROM sessions s JOIN steps st ON st.session_id = s.id \
         GROUP BY s.id ORDER BY s.started_at",
    );
    assert_eq!(
        rows,
        [
            ["conv-7", "implicit", "1"],
            ["conv-7", "implicit", "1"],
            ["conv-8", "implicit", "1"],
            ["conv-7", "implicit", "1"],
        ]
    );
    assert_eq!(
        audit.one("SELECT count(*) FROM sessions WHERE id = 'conv-7' OR id LIKE 'conv-7~%'"),
        "3"
    );
}

/// A WARN event inside a framework's tool call says the tool failed (rig 0.38 logs
/// "Error while executing tool: …" and hands the error to the model as output); the same
/// event inside the caller's own step is a warning, not a failure.
#[test]
fn a_warning_inside_a_framework_tool_call_marks_it_failed_and_only_there() {
    let audit = Audit::new();
    audit.run(|| {
        let _session = info_span!("session", id = "s").entered();
        info_span!(
            "execute_tool",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = "search",
        )
        .in_scope(|| tracing::warn!("Error while executing tool: timed out"));
        info_span!("step", module = "mine").in_scope(|| tracing::warn!("cache is cold"));
    });
    assert_eq!(
        audit.rows("SELECT module, error FROM steps ORDER BY started_at"),
        [
            ["search", "Error while executing tool: timed out"],
            ["mine", "NULL"],
        ]
    );
    assert_eq!(audit.one("SELECT status FROM sessions"), "completed");
}

/// A run span of the caller's that declares `error = Empty` and records the error of a run
/// that failed is `failed`, with the error kept; one that records nothing is `completed`.
#[test]
fn a_run_span_that_records_its_error_is_failed() {
    let audit = Audit::new();
    audit.run(|| {
        for outcome in [Err("provider returned 503"), Ok(())] {
            let run = info_span!(
                "invoke_agent",
                "gen_ai.operation.name" = "invoke_agent",
                "gen_ai.agent.name" = "support",
                error = Empty,
            );
            if let Err(error) = outcome {
                run.record("error", error);
            }
        }
    });
    assert_eq!(
        audit.rows(
            "SELECT status, json_extract(attributes, '$.error') FROM sessions ORDER BY started_at"
        ),
        [["failed", "provider returned 503"], ["completed", "NULL"]]
    );
}
