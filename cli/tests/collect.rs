//! `reasonkit-audit collect` with clients nobody here wrote: Python's OpenTelemetry SDK
//! and its OTLP exporters (HTTP and gRPC), the OpenAI Agents SDK traced by OpenInference,
//! and a Rust app exporting through `tracing-opentelemetry` and `opentelemetry-otlp`. Then
//! what the HTTP answers say to a bad request, a collector killed mid-stream, and an
//! OpenTelemetry collector (rotel) in front of `collect`, forwarding and retrying.
//!
//! The Python clients live in a venv `.ci/run` makes (`target/otel-venv`, or
//! `REASONKIT_AUDIT_OTEL_PYTHON`); without it these tests skip with one line, and
//! `REASONKIT_AUDIT_REQUIRE_OTEL=1` makes that skip a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Collector, Relay, free_port, request, rotel_agent_of};
use common::{run, sqlite3, succeeded, text};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

const MAKE_VENV: &str = "python3 -m venv target/otel-venv && target/otel-venv/bin/pip install \
    opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc \
    openai-agents openinference-instrumentation-openai-agents rotel==0.0.1a15 \
    grpcio-health-checking";

/// The venv's Python, if it has the clients; else `None` after saying why (or a failure,
/// when the run requires them).
fn otel_python() -> Option<PathBuf> {
    let python = std::env::var_os("REASONKIT_AUDIT_OTEL_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/otel-venv/bin/python"),
        PathBuf::from,
    );
    let has_clients = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, \
             opentelemetry.exporter.otlp.proto.grpc, agents, \
             openinference.instrumentation.openai_agents, grpc_health.v1",
        ])
        .output()
        .is_ok_and(|out| out.status.success());
    if has_clients {
        return Some(python);
    }
    let why = format!(
        "no Python with the OpenTelemetry clients at {} (make it with: {MAKE_VENV})",
        python.display()
    );
    if std::env::var_os("REASONKIT_AUDIT_REQUIRE_OTEL").is_some() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// The OpenTelemetry SDK for JavaScript, as `.ci/run` installs it from the npm registry.
const MAKE_NODE_MODULES: &str = "npm install --prefix target/otel-node \
    @opentelemetry/sdk-trace-base@2.12.1 @opentelemetry/resources@2.12.1 @opentelemetry/api@1.9.1 \
    @opentelemetry/exporter-trace-otlp-proto@0.223.1 @opentelemetry/exporter-trace-otlp-grpc@0.223.1";

/// The `node_modules` with the JavaScript SDK and its exporters, if `node` and they are
/// there; else `None` after saying why (or a failure, when the run requires them).
fn otel_node_modules() -> Option<PathBuf> {
    let modules = std::env::var_os("REASONKIT_AUDIT_OTEL_NODE_MODULES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/otel-node/node_modules"),
        PathBuf::from,
    );
    let has_clients = Command::new("node")
        .args([
            "-e",
            "require('@opentelemetry/sdk-trace-base'); require('@opentelemetry/exporter-trace-otlp-proto'); \
             require('@opentelemetry/exporter-trace-otlp-grpc')",
        ])
        .env("NODE_PATH", &modules)
        .output()
        .is_ok_and(|out| out.status.success());
    if has_clients {
        return Some(modules);
    }
    let why = format!(
        "no node with the OpenTelemetry JavaScript SDK at {} (make it with: {MAKE_NODE_MODULES})",
        modules.display()
    );
    if std::env::var_os("REASONKIT_AUDIT_REQUIRE_OTEL").is_some() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A client script, run without the machine's CA-bundle variables: `requests` lets them
/// override the exporter's own `certificate_file`.
fn python_command(python: &Path, name: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(script(name))
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    command
}

/// Runs a client script, which must succeed; what it printed.
fn client(python: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = python_command(python, name)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn verified(db: &Path) {
    let out = run(db, &["verify"]);
    assert!(out.status.success(), "verify: {}", text(&out));
}

/// Checks run `n` of `otel_genai_run.py` (conversation `conv-<n>`, claim `1400 + n`) as
/// the conventions table maps it: the run's own step, and under it two model calls and two
/// tools, with their tokens, arguments, results, and the failure.
fn one_run_as_the_conventions_say(db: &Path, n: u32) {
    let one_run = sqlite3(
        db,
        &format!(
            "SELECT s.module, coalesce(p.module, '-'), coalesce(s.tokens_used, ''), \
             coalesce(s.input_summary, ''), coalesce(s.output_summary, ''), \
             coalesce(s.error, '') \
             FROM steps s LEFT JOIN steps p ON p.id = s.parent_step_id \
             WHERE s.session_id = (SELECT id FROM sessions \
                 WHERE json_extract(attributes, '$.\"otel.conversation\"') = 'conv-{n}') \
             ORDER BY s.started_at"
        ),
    );
    let lines: Vec<&str> = one_run.lines().collect();
    assert_eq!(lines.len(), 5, "{one_run}");
    assert!(
        lines[0].starts_with("claims|-||[{\"role\": \"user\""),
        "{one_run}"
    );
    assert_eq!(lines[1], "gpt-4o|claims|150|||");
    assert_eq!(
        lines[2],
        format!(
            "lookup_claim|claims||{{\"claim\": {}}}|{{\"amount\": 950}}|",
            1400 + n
        )
    );
    assert!(
        lines[3].starts_with("gpt-4o|claims|215||[{\"role\": \"assistant\""),
        "{one_run}"
    );
    assert_eq!(
        lines[4],
        "notify_customer|claims||||ConnectionError: mail server down"
    );
}

#[test]
fn python_sdk_genai_runs_arrive_over_http_and_grpc_as_nested_sessions() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "127.0.0.1:0", &[]);

    // Each span alone as it ends (children first, the root last), gzip-compressed.
    client(
        &python,
        "otel_genai_run.py",
        &[&format!("http://{}/v1/traces", collector.http), "http"],
        &[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
    );
    // Three runs batched, over gRPC.
    let grpc = collector.grpc.clone().expect("gRPC served");
    client(
        &python,
        "otel_genai_run.py",
        &[&format!("http://{grpc}"), "grpc", "--batch", "--runs", "3"],
        &[],
    );

    // Four runs in three conversations (each run names `conv-<n>`, its number in its
    // process): a session per conversation, named after the agent, ended as its last run
    // ended. `conv-0`'s two runs came from two processes over two protocols, and are one
    // session. Each run's own trace stays as a pointer to its conversation's session.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), count(DISTINCT profile), min(profile), min(status), max(status), \
             count(DISTINCT json_extract(attributes, '$.\"otel.conversation\"')) FROM sessions \
             WHERE status <> 'joined'"
        ),
        "3|1|claims|completed|completed|3"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), count(DISTINCT json_extract(attributes, '$.\"otel.joined_into\"')) \
             FROM sessions WHERE status = 'joined'"
        ),
        "4|3"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), sum(parent_step_id IS NULL), \
             count(DISTINCT json_extract(attributes, '$.\"otel.trace_id\"')) FROM steps \
             WHERE session_id = (SELECT id FROM sessions \
                 WHERE json_extract(attributes, '$.\"otel.conversation\"') = 'conv-0')"
        ),
        "10|2|2",
        "conv-0: two runs of five spans, each under its own run"
    );
    one_run_as_the_conventions_say(&db, 1);
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM steps"), "20");
    // The OTLP ids are kept: a step is found from a trace viewer's span id and trace id
    // (a step in a conversation's session names its own trace), and so is the pointer.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(DISTINCT json_extract(s.attributes, '$.\"otel.span_id\"')), \
             count(DISTINCT json_extract(s.attributes, '$.\"otel.trace_id\"')), \
             min(json_extract(s.attributes, '$.\"otel.scope.name\"')), \
             (SELECT count(DISTINCT json_extract(attributes, '$.\"otel.trace_id\"')) \
                 FROM sessions WHERE status = 'joined') \
             FROM steps s"
        ),
        "20|4|claims.agent|4"
    );
    assert_eq!(collector.stop().code(), Some(0));
    verified(&db);
}

#[test]
fn an_openai_agents_run_with_a_handoff_and_a_failing_tool_is_one_session_and_a_guardrail_stops_another()
 {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "off", &[]);
    let printed = client(
        &python,
        "openai_agents_run.py",
        &[&format!("http://{}/v1/traces", collector.http)],
        &[],
    );
    assert!(printed.contains("Claim 1432 approved"), "{printed}");
    assert!(printed.contains(r#""stopped": true"#), "{printed}");
    assert_eq!(collector.stop().code(), Some(0));

    // Two runs, two sessions: the run that was served, and the one its guardrail stopped.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), min(profile), min(status) FROM sessions"
        ),
        "2|claims-agents|completed"
    );
    // The guardrail ran in both, under the turn of the agent it guards; where it tripped,
    // the turn carries the tripwire as its error and no model was called.
    let guarded = sqlite3(
        &db,
        "SELECT g.module, coalesce(t.error, '-'), a.module, \
           (SELECT count(*) FROM steps l WHERE l.session_id = g.session_id \
              AND json_extract(l.attributes, '$.\"openinference.span.kind\"') = 'LLM') \
         FROM steps g JOIN steps t ON t.id = g.parent_step_id JOIN steps a ON a.id = t.parent_step_id \
         WHERE json_extract(g.attributes, '$.\"openinference.span.kind\"') = 'GUARDRAIL' \
         ORDER BY g.started_at",
    );
    assert_eq!(
        guarded.lines().collect::<Vec<_>>(),
        vec![
            "names_a_claim|-|Triage|4",
            "names_a_claim|Guardrail tripwire triggered: {'guardrail': 'names_a_claim'}|Triage|0",
        ],
        "{guarded}"
    );
    // Each step under the agent that took it: the tools and the handoff under their
    // agents' turns, the second agent after the handoff.
    let kinds = sqlite3(
        &db,
        "WITH RECURSIVE up(id, agent) AS ( \
           SELECT id, NULL FROM steps WHERE parent_step_id IS NULL \
           UNION ALL SELECT s.id, CASE WHEN json_extract(p.attributes, '$.\"openinference.span.kind\"') = 'AGENT' \
             THEN p.module ELSE up.agent END \
           FROM steps s JOIN up ON s.parent_step_id = up.id JOIN steps p ON p.id = s.parent_step_id) \
         SELECT json_extract(s.attributes, '$.\"openinference.span.kind\"'), s.module, \
           coalesce(up.agent, '-'), coalesce(s.tokens_used, ''), s.error IS NOT NULL \
         FROM up JOIN steps s ON s.id = up.id \
         WHERE json_extract(s.attributes, '$.\"openinference.span.kind\"') IN ('TOOL', 'LLM') \
         ORDER BY s.started_at",
    );
    assert_eq!(
        kinds.lines().collect::<Vec<_>>(),
        vec![
            "LLM|scripted-triage|Triage|120|0",
            "TOOL|lookup_claim|Triage||0",
            "LLM|scripted-triage|Triage|120|0",
            "TOOL|handoff to Payments|Triage||0",
            "LLM|scripted-payments|Payments|120|0",
            "TOOL|pay_claim|Payments||1",
            "LLM|scripted-payments|Payments|120|0",
        ],
        "{kinds}"
    );
    // The handoff is also a decision, made in the triage agent's turn: it chose the
    // payments agent, when the handoff ended.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT d.decision_type, d.chosen_option, s.module, a.module, \
               json_extract(d.attributes, '$.from_agent'), d.decided_at = h.ended_at \
             FROM decisions d JOIN steps s ON s.id = d.step_id \
             JOIN steps a ON a.id = s.parent_step_id \
             JOIN steps h ON json_extract(h.attributes, '$.\"otel.span_id\"') \
               = json_extract(d.attributes, '$.\"otel.span_id\"')"
        ),
        "handoff|Payments|turn|Triage|Triage|1"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT input_summary, output_summary FROM steps WHERE module = 'lookup_claim'"
        ),
        r#"{"claim": 1432}|{"claim": 1432, "amount": 950}"#
    );
    assert_eq!(
        sqlite3(&db, "SELECT count(*) FROM steps WHERE ended_at IS NULL"),
        "0"
    );
    verified(&db);
}

/// An export request of one span, as protobuf.
fn one_span(trace: u8, span: u8) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![trace; 16],
                    span_id: vec![span; 8],
                    name: "chat".into(),
                    start_time_unix_nano: 1_750_000_000_000_000_000,
                    end_time_unix_nano: 1_750_000_001_000_000_000,
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

#[test]
fn http_answers_say_what_was_wrong_in_the_request_s_own_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let token = "a-token-of-sixteen-chars";
    let collector = Collector::start(
        &db,
        "127.0.0.1:0",
        "off",
        &["--token", token, "--max-body", "4096"],
    );
    let addr = collector.http.as_str();
    let auth = format!("Authorization: Bearer {token}");
    let proto = "Content-Type: application/x-protobuf";
    let body = one_span(1, 1).encode_to_vec();

    // No token, a wrong one: 401, nothing written.
    let (code, _, _) = request(addr, "POST", "/v1/traces", &[proto], &body);
    assert_eq!(code, 401);
    let wrong = "Authorization: Bearer a-token-of-sixteen-chars-but-not-this";
    assert_eq!(
        request(addr, "POST", "/v1/traces", &[proto, wrong], &body).0,
        401
    );

    // Malformed protobuf: 400 with a google.rpc.Status that says why.
    let (code, head, answer) =
        request(addr, "POST", "/v1/traces", &[proto, &auth], b"\x0a\xff\xff");
    assert_eq!(code, 400, "{head}");
    assert!(head.contains("application/x-protobuf"), "{head}");
    assert!(
        String::from_utf8_lossy(&answer).contains("malformed protobuf body"),
        "{answer:?}"
    );
    // Malformed JSON: the same, in JSON.
    let json = "Content-Type: application/json";
    let (code, _, answer) = request(
        addr,
        "POST",
        "/v1/traces",
        &[json, &auth],
        b"{\"resourceSpans\": 7}",
    );
    assert_eq!(code, 400);
    let status: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status["code"], 3, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON body")
    );
    // Another type, another encoding, too large (sent, and once inflated).
    let text_plain = "Content-Type: text/plain";
    assert_eq!(
        request(addr, "POST", "/v1/traces", &[text_plain, &auth], &body).0,
        415
    );
    let brotli = "Content-Encoding: br";
    assert_eq!(
        request(addr, "POST", "/v1/traces", &[proto, &auth, brotli], &body).0,
        415
    );
    assert_eq!(
        request(
            addr,
            "POST",
            "/v1/traces",
            &[proto, &auth],
            &vec![0u8; 8192]
        )
        .0,
        413
    );
    let gz = flate2_gzip(&vec![0u8; 64 << 10]);
    let (code, _, answer) = request(
        addr,
        "POST",
        "/v1/traces",
        &[proto, &auth, "Content-Encoding: gzip"],
        &gz,
    );
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(request(addr, "GET", "/v1/traces", &[&auth], b"").0, 405);
    assert_eq!(
        request(addr, "POST", "/v1/logs", &[proto, &auth], &body).0,
        404
    );
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM steps"), "0");

    // A good request, with one span whose ids are invalid: 200, partial success.
    let mut request_body = one_span(1, 1);
    let mut bad = request_body.resource_spans[0].scope_spans[0].spans[0].clone();
    bad.span_id = vec![0; 8];
    request_body.resource_spans[0].scope_spans[0]
        .spans
        .push(bad);
    let (code, _, answer) = request(
        addr,
        "POST",
        "/v1/traces",
        &[proto, &auth],
        &request_body.encode_to_vec(),
    );
    assert_eq!(code, 200);
    let response = ExportTraceServiceResponse::decode(&answer[..]).unwrap();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("invalid"), "{partial:?}");
    // The same over JSON (OTLP/JSON: hex ids), answered in JSON, with nothing to reject.
    let json_body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"{}","name":"tool","startTimeUnixNano":"1750000000000000000","endTimeUnixNano":"1750000000500000000","kind":1}}]}}]}}]}}"#,
        "02".repeat(16),
        "03".repeat(8)
    );
    let (code, _, answer) = request(
        addr,
        "POST",
        "/v1/traces",
        &[json, &auth],
        json_body.as_bytes(),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(String::from_utf8_lossy(&answer), "{}");
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), group_concat(module) FROM (SELECT module FROM steps ORDER BY module)"
        ),
        "2|chat,tool"
    );
    assert_eq!(collector.stop().code(), Some(0));
    verified(&db);
}

fn flate2_gzip(bytes: &[u8]) -> Vec<u8> {
    // The collector's own dependency: gzip as the exporters send it.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn a_token_shorter_than_sixteen_characters_is_refused_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let out = run(
        &db,
        &[
            "collect",
            "--listen",
            "0.0.0.0:0",
            "--grpc",
            "off",
            "--token",
            "short",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("at least 16 characters"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_collector_killed_mid_stream_loses_nothing_it_acknowledged_and_the_retries_add_nothing_twice() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let acked = dir.path().join("acked.txt");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let first = Collector::start(&db, &listen, "off", &[]);

    // 120 runs of 5 spans, each span its own request, children before parents.
    let exporter = Command::new(&python)
        .arg(script("otel_genai_run.py"))
        .args([
            &format!("http://{listen}/v1/traces"),
            "http",
            "--runs",
            "120",
            "--acked",
        ])
        .arg(&acked)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let written: u64 = std::fs::read_to_string(&acked)
            .map(|t| t.lines().count() as u64)
            .unwrap_or(0);
        if written >= 150 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no shutdown, no last flush.
    drop(first);
    let acked_before: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(acked_before.len() >= 150, "{}", acked_before.len());
    std::thread::sleep(Duration::from_millis(300));
    let second = Collector::start(&db, &listen, "off", &[]);
    let out = exporter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(second.stop().code(), Some(0));

    // Every span acknowledged is there, once.
    let stored = sqlite3(
        &db,
        "SELECT json_extract(attributes, '$.\"otel.span_id\"') FROM steps",
    );
    let stored: std::collections::HashSet<&str> = stored.lines().collect();
    let acked_all = std::fs::read_to_string(&acked).unwrap();
    for span in acked_all.lines() {
        assert!(stored.contains(span), "acknowledged span {span} is missing");
    }
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), count(DISTINCT json_extract(attributes, '$.\"otel.span_id\"')) \
             FROM steps"
        ),
        "600|600"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), sum(status = 'completed'), sum(status = 'joined') FROM sessions"
        ),
        "240|120|120",
        "each run its conversation's session, and its own trace's pointer to it"
    );
    // No row was refused as a duplicate, by either collector.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT coalesce(max(count), 0) FROM audit_health WHERE kind = 'write_errors'"
        ),
        "0"
    );
    verified(&db);
    succeeded(&run(&db, &["check"]));
}

/// A Rust app's exporting: `tracing` → `tracing-opentelemetry` → the SDK, sending each
/// span as it ends (one per request, children before parents) to `collector` over
/// OTLP/HTTP. The provider, to flush, and the subscriber to record with.
fn rust_exporter(
    collector: &Collector,
) -> (
    opentelemetry_sdk::trace::SdkTracerProvider,
    impl tracing::Subscriber + Send + Sync,
) {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::prelude::*;

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{}/v1/traces", collector.http))
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("rust-claims")
                .build(),
        )
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("rust-claims")));
    (provider, subscriber)
}

#[test]
fn a_rust_app_exporting_through_tracing_opentelemetry_lands_in_the_same_trail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "off", &[]);
    let (provider, subscriber) = rust_exporter(&collector);
    tracing::subscriber::with_default(subscriber, || {
        let _run = tracing::info_span!(
            "invoke_agent",
            "gen_ai.operation.name" = "invoke_agent",
            "gen_ai.agent.name" = "rust-claims",
        )
        .entered();
        {
            let _chat = tracing::info_span!(
                "chat",
                "gen_ai.operation.name" = "chat",
                "gen_ai.request.model" = "local-model",
                "gen_ai.usage.input_tokens" = 40_i64,
                "gen_ai.usage.output_tokens" = 2_i64,
            )
            .entered();
        }
        let _tool = tracing::info_span!(
            "execute_tool",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = "lookup_claim",
            "gen_ai.tool.call.arguments" = r#"{"claim":7}"#,
        )
        .entered();
        // The layer's own convention for a decision, exported as a span like any other.
        let _decision = tracing::info_span!(
            "decision",
            decision_type = "coverage",
            chosen_option = "covered",
            rationale = "policy 12 covers water damage",
        )
        .entered();
    });
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(collector.stop().code(), Some(0));

    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), min(profile), min(status) FROM sessions"
        ),
        "1|rust-claims|completed"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT s.module, coalesce(p.module, '-'), coalesce(s.tokens_used, ''), \
             coalesce(s.input_summary, '') FROM steps s \
             LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at"
        )
        .lines()
        .collect::<Vec<_>>(),
        vec![
            "rust-claims|-||",
            "local-model|rust-claims|42|",
            r#"lookup_claim|rust-claims||{"claim":7}"#,
            "decision|lookup_claim||",
        ]
    );
    // The decision span is the tool step's decision, as the layer writes it (and a step
    // too, over OTLP: a span's children may come before it, and need a step to name).
    assert_eq!(
        sqlite3(
            &db,
            "SELECT d.decision_type, d.chosen_option, d.rationale, s.module FROM decisions d \
             JOIN steps s ON s.id = d.step_id"
        ),
        "coverage|covered|policy 12 covers water damage|lookup_claim"
    );
    verified(&db);
}

#[test]
fn a_rust_run_whose_turns_only_follow_it_is_one_session_through_tracing_opentelemetry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "off", &[]);
    // One span per request, each sent as it ends: a turn's chat comes before the turn.
    let (provider, subscriber) = rust_exporter(&collector);
    tracing::subscriber::with_default(subscriber, || {
        // rig's shape: the run span is never entered, and each turn is a root of its own
        // that only follows it.
        let run = tracing::info_span!(
            "invoke_agent",
            "gen_ai.operation.name" = "invoke_agent",
            "gen_ai.agent.name" = "rust-claims",
        );
        for turn in 1..=2_i64 {
            let span = tracing::info_span!(parent: None, "turn", turn);
            span.follows_from(&run);
            let _turn = span.entered();
            let _chat = tracing::info_span!(
                "chat",
                "gen_ai.operation.name" = "chat",
                "gen_ai.request.model" = "local-model",
                "gen_ai.usage.input_tokens" = 40_i64 * turn,
            )
            .entered();
        }
        drop(run);
    });
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(collector.stop().code(), Some(0));

    // One run, one session: the turns' own sessions point to it.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT status, count(*) FROM sessions GROUP BY status ORDER BY status"
        )
        .lines()
        .collect::<Vec<_>>(),
        vec!["completed|1", "joined|2"]
    );
    // The run's session was opened by the first turn's link, before the run's own span
    // came: it still has the run's resource (the SDK's service and telemetry attributes).
    assert_eq!(
        sqlite3(
            &db,
            "SELECT json_extract(attributes, '$.\"service.name\"'), \
             json_extract(attributes, '$.\"telemetry.sdk.language\"') FROM sessions \
             WHERE status = 'completed'"
        ),
        "rust-claims|rust"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT s.module, coalesce(p.module, '-'), coalesce(s.tokens_used, '') FROM steps s \
             LEFT JOIN steps p ON p.id = s.parent_step_id \
             WHERE s.session_id = (SELECT id FROM sessions WHERE status = 'completed') \
             ORDER BY s.started_at"
        )
        .lines()
        .collect::<Vec<_>>(),
        vec![
            "rust-claims|-|",
            "turn|-|",
            "local-model|turn|40",
            "turn|-|",
            "local-model|turn|80",
        ]
    );
    // A turn's own session, shown, says where its steps went.
    let run_id = sqlite3(&db, "SELECT id FROM sessions WHERE status = 'completed'");
    let pointer = sqlite3(
        &db,
        "SELECT id FROM sessions WHERE status = 'joined' LIMIT 1",
    );
    let out = run(&db, &["show", &pointer]);
    succeeded(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "joined into session {run_id}: its steps are there (reasonkit-audit show {run_id})"
        )),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    verified(&db);
}

#[test]
fn show_follows_a_pointer_through_a_run_that_joined_another_to_where_the_steps_are() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "off", &[]);
    // Runs 3, 2 and 1, each following the one before it, sent newest first: run 3 joins
    // run 2's session before run 2 joins run 1's.
    for trace in [3_u8, 2, 1] {
        let mut export = one_span(trace, trace);
        let span = &mut export.resource_spans[0].scope_spans[0].spans[0];
        span.name = format!("run {trace}");
        if trace > 1 {
            span.links
                .push(opentelemetry_proto::tonic::trace::v1::span::Link {
                    trace_id: vec![trace - 1; 16],
                    span_id: vec![trace - 1; 8],
                    ..Default::default()
                });
        }
        let (code, _, body) = request(
            &collector.http,
            "POST",
            "/v1/traces",
            &["Content-Type: application/x-protobuf"],
            &export.encode_to_vec(),
        );
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }
    assert_eq!(collector.stop().code(), Some(0));
    let session_of = |trace: u8| {
        sqlite3(
            &db,
            &format!(
                "SELECT id FROM sessions WHERE json_extract(attributes, '$.\"otel.trace_id\"') \
                 = '{}'",
                format!("{trace:02x}").repeat(16)
            ),
        )
    };
    let (one, two, three) = (session_of(1), session_of(2), session_of(3));
    let out = run(&db, &["show", &three]);
    succeeded(&out);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!(
            "joined into session {two}, which joined {one}: its steps are there \
             (reasonkit-audit show {one})"
        )),
        "{shown}"
    );
    // The first run's session holds all three runs.
    assert_eq!(
        sqlite3(
            &db,
            &format!("SELECT count(*) FROM steps WHERE session_id = '{one}'")
        ),
        "3"
    );
    verified(&db);
}

/// A self-signed certificate for 127.0.0.1 and its key, made by the `openssl` command.
fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|out| out.status.success());
    if !made {
        let why = "no `openssl` command to make a test certificate (apt install openssl)";
        assert!(
            std::env::var_os("REASONKIT_AUDIT_REQUIRE_OTEL").is_none(),
            "{why}"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    Some((cert, key))
}

#[test]
fn over_tls_with_a_token_both_protocols_take_spans_and_plain_http_is_refused() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        return;
    };
    let db = dir.path().join("audit.db");
    let token = "tls-token-of-at-least-16";
    let collector = Collector::start(
        &db,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            "--token",
            token,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let ca = cert.to_str().unwrap();
    client(
        &python,
        "otel_genai_run.py",
        &[
            &format!("https://{}/v1/traces", collector.http),
            "http",
            "--token",
            token,
            "--ca",
            ca,
        ],
        &[],
    );
    let grpc = collector.grpc.clone().expect("gRPC served");
    client(
        &python,
        "otel_genai_run.py",
        &[
            &format!("https://{grpc}"),
            "grpc",
            "--token",
            token,
            "--ca",
            ca,
            "--batch",
        ],
        &[],
    );
    // Plain HTTP to the TLS port gets no answer in HTTP.
    let (code, _, _) = request(
        &collector.http,
        "POST",
        "/v1/traces",
        &["Content-Type: application/x-protobuf"],
        &one_span(1, 1).encode_to_vec(),
    );
    assert_eq!(code, 0, "plain HTTP is not served on a TLS port");
    // Without the token, over TLS: refused (401, which exporters do not retry), and the
    // exporter reports it.
    let out = python_command(&python, "otel_genai_run.py")
        .args([
            &format!("https://{}/v1/traces", collector.http),
            "http",
            "--ca",
            ca,
        ])
        .output()
        .unwrap();
    assert!(text(&out).contains("401"), "{}", text(&out));
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), sum(status = 'completed') FROM sessions"
        ),
        "3|1",
        "both runs name conv-0: one conversation, and each trace's pointer to it"
    );
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM steps"), "10");
    verified(&db);
}

#[test]
fn a_full_queue_is_answered_429_with_retry_after_and_the_retry_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(
        &db,
        "127.0.0.1:0",
        "off",
        &["--queue", "16", "--queue-wait-ms", "200"],
    );
    // Another process holds the write lock: the writer cannot commit, its queue fills.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let proto = "Content-Type: application/x-protobuf";
    let answers: Vec<(u8, u16, String)> = std::thread::scope(|scope| {
        let senders: Vec<_> = (1..=12u8)
            .map(|trace| {
                let addr = collector.http.clone();
                scope.spawn(move || {
                    let body = one_span(trace, 1).encode_to_vec();
                    let (code, head, _) = request(&addr, "POST", "/v1/traces", &[proto], &body);
                    (trace, code, head)
                })
            })
            .collect();
        // The requests that found room wait for their commit; let them queue up, then
        // let the writer go.
        std::thread::sleep(Duration::from_millis(1500));
        blocker.execute_batch("ROLLBACK").unwrap();
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let busy: Vec<&(u8, u16, String)> =
        answers.iter().filter(|(_, code, _)| *code == 429).collect();
    assert!(!busy.is_empty(), "{answers:?}");
    for (_, _, head) in &busy {
        assert!(head.contains("retry-after: "), "{head}");
    }
    // The others were answered once committed; the exporter retries the refused ones.
    assert!(
        answers
            .iter()
            .all(|(_, code, _)| *code == 200 || *code == 429),
        "{answers:?}"
    );
    for (trace, _, _) in &busy {
        let body = one_span(*trace, 1).encode_to_vec();
        assert_eq!(
            request(&collector.http, "POST", "/v1/traces", &[proto], &body).0,
            200
        );
    }
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), count(DISTINCT session_id) FROM steps"
        ),
        "12|12"
    );
    verified(&db);
}

/// HTTP/2's client preface and an empty SETTINGS frame: what a gRPC client sends first.
const HTTP2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn the_grpc_port_holds_at_most_max_connections_and_closes_one_that_never_speaks() {
    use std::io::Read;
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(
        &db,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--max-connections", "2"],
    );
    let grpc = collector.grpc.clone().expect("gRPC served");
    // Two connections take both slots and say nothing.
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let stream = TcpStream::connect(&grpc).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            stream
        })
        .collect();
    // A third speaks HTTP/2 at once, and is not answered while they hold the slots (it
    // waits in the kernel's backlog: a server without the cap answers at once).
    let mut third = TcpStream::connect(&grpc).unwrap();
    third.write_all(HTTP2_HELLO).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut frame = [0u8; 9];
    let early = third.read(&mut frame);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "answered past the cap: {early:?} {frame:?}"
    );
    // The silent two are closed 10 s after they were accepted; then the third is served:
    // the server's SETTINGS frame (type 4) comes.
    third
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    third.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame: {frame:?}");
    // Each silent one was closed by the server: its stream ends (after the server's own
    // SETTINGS, which HTTP/2 servers send unasked) rather than time out.
    for stream in &mut silent {
        let mut rest = Vec::new();
        if let Err(e) = stream.read_to_end(&mut rest) {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        }
    }
    drop(third);
    assert_eq!(collector.stop().code(), Some(0));
}

#[test]
fn a_tls_handshake_that_stalls_on_the_grpc_port_is_cut_off_and_frees_its_slot() {
    use std::io::Read;
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        return;
    };
    let db = dir.path().join("audit.db");
    let collector = Collector::start(
        &db,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            "--max-connections",
            "1",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let grpc = collector.grpc.clone().expect("gRPC served");
    // The first bytes of a TLS handshake record announcing 512 bytes, then nothing. The
    // client has spoken, so the "never speaks" cut-off does not apply: only the handshake's
    // own time limit can free the one slot.
    let mut stalled = TcpStream::connect(&grpc).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // A real TLS client waits behind it, in the kernel's backlog, and completes its
    // handshake once the stalled one is cut off.
    let mut waiting = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            grpc.as_str(),
            "-alpn",
            "h2",
            "-CAfile",
        ])
        .arg(&cert)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said = waiting.stdout.take().unwrap();
    let (done, handshake) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0u8; 4096];
        // Until the handshake's summary has been printed, or s_client ends.
        while !String::from_utf8_lossy(&text).contains("Verify return code") {
            match said.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = done.send(String::from_utf8_lossy(&text).into_owned());
    });
    // The server closes the stalled connection (its stream ends, or is reset) instead of
    // holding it until the read gives up.
    let mut rest = Vec::new();
    if let Err(e) = stalled.read_to_end(&mut rest) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    let said = handshake
        .recv_timeout(Duration::from_secs(60))
        .expect("s_client finishes its handshake once the slot is free");
    drop(waiting.stdin.take());
    let _ = waiting.wait();
    assert!(
        said.contains("Verify return code: 0 (ok)") && said.contains("ALPN protocol: h2"),
        "{said}"
    );
    assert_eq!(collector.stop().code(), Some(0));
}

#[test]
fn a_javascript_agent_s_conversation_arrives_over_http_and_grpc_as_one_session_each() {
    let Some(modules) = otel_node_modules() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let collector = Collector::start(&db, "127.0.0.1:0", "127.0.0.1:0", &[]);
    let grpc = collector.grpc.clone().expect("gRPC served");
    for (endpoint, protocol, conversation) in [
        (
            format!("http://{}/v1/traces", collector.http),
            "http",
            "js-conv-1",
        ),
        (format!("http://{grpc}"), "grpc", "js-conv-2"),
    ] {
        let out = Command::new("node")
            .arg(script("otel_js_run.cjs"))
            .args([endpoint.as_str(), protocol, conversation])
            .env("NODE_PATH", &modules)
            .output()
            .unwrap();
        assert!(out.status.success(), "{protocol}: {}", text(&out));
        assert!(
            text(&out).contains(r#"{"acknowledged":6}"#),
            "{}",
            text(&out)
        );
    }
    assert_eq!(collector.stop().code(), Some(0));

    // Two conversations of two turns: a session each, named after the agent, asked the
    // first turn's question, standing as the second turn left it; each turn's trace a
    // pointer to it.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT json_extract(attributes, '$.\"otel.conversation\"'), profile, status, \
             json_extract(attributes, '$.\"service.name\"'), \
             json_extract(attributes, '$.output') LIKE '%Claim 1402 is covered%', \
             (SELECT count(*) FROM sessions p WHERE p.status = 'joined' \
                AND json_extract(p.attributes, '$.\"otel.joined_into\"') = s.id) \
             FROM sessions s WHERE status <> 'joined' ORDER BY 1"
        ),
        "js-conv-1|claims|completed|claims-web|1|2\njs-conv-2|claims|completed|claims-web|1|2"
    );
    // Each turn's model call and tool under its own run; the first turn's tool failed.
    // (A span started within the microsecond of the one before it ties on its start: the
    // names, in the order a turn runs them, break the tie.)
    let steps = sqlite3(
        &db,
        "SELECT s.module, coalesce(p.module, '-'), coalesce(s.tokens_used, ''), \
         coalesce(s.input_summary, ''), coalesce(s.output_summary, ''), coalesce(s.error, '') \
         FROM steps s LEFT JOIN steps p ON p.id = s.parent_step_id \
         WHERE s.session_id = (SELECT id FROM sessions \
             WHERE json_extract(attributes, '$.\"otel.conversation\"') = 'js-conv-1') \
         ORDER BY s.started_at, s.module",
    );
    let lines: Vec<&str> = steps.lines().collect();
    assert_eq!(lines.len(), 6, "{steps}");
    assert!(lines[0].starts_with("claims|-||[{"), "{steps}");
    assert_eq!(lines[1], "gpt-4o|claims|111|||");
    assert_eq!(
        lines[2],
        r#"lookup_claim|claims||{"claim":1401}||TimeoutError: claims database timed out"#
    );
    assert_eq!(lines[4], "gpt-4o|claims|112|||");
    assert_eq!(
        lines[5],
        r#"lookup_claim|claims||{"claim":1402}|{"amount":950}|"#
    );
    // The conversation was asked the first turn's question: its input hash is that one's.
    let question =
        r#"[{"role":"user","parts":[{"type":"text","content":"Is claim 1401 covered?"}]}]"#;
    let expected: String = {
        use sha2::Digest;
        sha2::Sha256::digest(question.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(
        sqlite3(
            &db,
            "SELECT input_hash FROM sessions \
             WHERE json_extract(attributes, '$.\"otel.conversation\"') = 'js-conv-1'"
        ),
        expected
    );
    verified(&db);
}

/// rotel's `rotel-agent`, from PyPI's `rotel` wheel in the clients' venv (`.ci/run` pins
/// it); else `None` after saying why (or a failure, when the run requires the clients).
fn rotel_agent(python: &Path) -> Option<PathBuf> {
    let agent = rotel_agent_of(python);
    if agent.is_none() {
        let why = format!(
            "no rotel collector in {} (make it with: {} -m pip install rotel==0.0.1a15)",
            python.display(),
            python.display()
        );
        if std::env::var_os("REASONKIT_AUDIT_REQUIRE_OTEL").is_some() {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
    }
    agent
}

/// Asks `done` every 20 ms until it says yes; fails with `why` after `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "after {limit:?}: {}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits, at most `limit`, until `sql` answers `want` on `db`. A relay answers its client
/// at once and forwards when its batch is due, so its spans land some time after the
/// client returns; the wait says what the store and the relay had when it gave up.
fn eventually(db: &Path, sql: &str, want: &str, relay: &Relay, limit: Duration) {
    wait_until(
        limit,
        || sqlite3(db, sql) == want,
        || {
            format!(
                "{sql}: {:?}, want {want:?}; rotel printed:\n{}",
                sqlite3(db, sql),
                relay.printed()
            )
        },
    );
}

#[test]
fn services_behind_an_opentelemetry_collector_land_through_it_over_http_and_grpc_with_a_token() {
    let Some(python) = otel_python() else { return };
    let Some(agent) = rotel_agent(&python) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let token = "relay-token-of-at-least-16";
    let collector = Collector::start(&db, "127.0.0.1:0", "127.0.0.1:0", &["--token", token]);
    let bearer = format!("authorization=Bearer {token}");
    let relay = |name: &str, endpoint: String, protocol: &str| {
        let dir = dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        Relay::start(
            &agent,
            &dir,
            &[
                "--otlp-exporter-endpoint",
                &endpoint,
                "--otlp-exporter-protocol",
                protocol,
                "--otlp-exporter-compression",
                "gzip",
                "--otlp-exporter-custom-headers",
                &bearer,
            ],
        )
    };
    // Two collectors in front: one forwards over OTLP/HTTP (protobuf, gzip), the other
    // over OTLP/gRPC, both with the bearer token `collect` asks for.
    let over_http = relay("over-http", format!("http://{}", collector.http), "http");
    let grpc = collector.grpc.clone().expect("gRPC served");
    let over_grpc = relay("over-grpc", format!("http://{grpc}"), "grpc");

    // The services know only their collector: two runs, each span alone as it ends,
    // over gRPC to the first; three runs batched, over HTTP to the second.
    client(
        &python,
        "otel_genai_run.py",
        &[&format!("http://{}", over_http.grpc), "grpc", "--runs", "2"],
        &[],
    );
    client(
        &python,
        "otel_genai_run.py",
        &[
            &format!("http://{}/v1/traces", over_grpc.http),
            "http",
            "--batch",
            "--runs",
            "3",
        ],
        &[],
    );
    let whole = Duration::from_secs(60);
    eventually(&db, "SELECT count(*) FROM steps", "25", &over_http, whole);

    // What the collectors forwarded is what the services sent, mapped as if they had sent
    // it to `collect` themselves: three conversations (`conv-0` and `conv-1` from both
    // services), each trace's pointer, every span once with its OTLP ids, the service's
    // resource and the tracer's scope.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), sum(status = 'completed'), sum(status = 'joined') FROM sessions"
        ),
        "8|3|5"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(DISTINCT json_extract(attributes, '$.\"otel.span_id\"')), \
             count(DISTINCT json_extract(attributes, '$.\"otel.trace_id\"')), \
             min(json_extract(attributes, '$.\"otel.scope.name\"')), \
             sum(parent_step_id IS NULL) FROM steps"
        ),
        "25|5|claims.agent|5"
    );
    one_run_as_the_conventions_say(&db, 2);
    assert_eq!(
        sqlite3(
            &db,
            "SELECT coalesce(max(count), 0) FROM audit_health WHERE kind = 'write_errors'"
        ),
        "0"
    );
    drop((over_http, over_grpc));
    assert_eq!(collector.stop().code(), Some(0));
    verified(&db);
}

#[test]
fn a_collector_in_front_holds_spans_while_collect_is_down_or_killed_and_each_lands_once() {
    let Some(python) = otel_python() else { return };
    let Some(agent) = rotel_agent(&python) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let listen = format!("127.0.0.1:{}", free_port());
    let relay = Relay::start(
        &agent,
        dir.path(),
        &[
            "--otlp-exporter-endpoint",
            &format!("http://{listen}"),
            "--otlp-exporter-protocol",
            "http",
            "--otlp-exporter-retry-initial-backoff",
            "100ms",
            "--otlp-exporter-retry-max-backoff",
            "500ms",
        ],
    );
    let whole = Duration::from_secs(120);

    // Nothing listens where the relay forwards: it takes four runs and retries.
    client(
        &python,
        "otel_genai_run.py",
        &[&format!("http://{}", relay.grpc), "grpc", "--runs", "4"],
        &[],
    );
    wait_until(
        whole,
        || relay.printed().contains("Exporting failed"),
        || format!("rotel never retried: {}", relay.printed()),
    );
    let first = Collector::start(&db, &listen, "off", &[]);
    eventually(&db, "SELECT count(*) FROM steps", "20", &relay, whole);

    // A stream of 120 runs, each span alone as it ends, and `collect` killed (SIGKILL: no
    // shutdown, no last flush) as soon as the stream's first spans are committed; back on
    // the same port a second later. The relay holds what it could not deliver and sends it
    // again: a span it sent into the kill may have been committed already, and must not
    // be written twice.
    let stream = python_command(&python, "otel_genai_run.py")
        .args([&format!("http://{}", relay.grpc), "grpc", "--runs", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        whole,
        || sqlite3(&db, "SELECT count(*) FROM steps") != "20",
        || format!("nothing of the stream arrived: {}", relay.printed()),
    );
    drop(first);
    std::thread::sleep(Duration::from_secs(1));
    let second = Collector::start(&db, &listen, "off", &[]);
    let out = stream.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    eventually(&db, "SELECT count(*) FROM steps", "620", &relay, whole);

    // Every span once; the stream's `conv-0` to `conv-3` joined the sessions the first
    // four runs made.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(DISTINCT json_extract(attributes, '$.\"otel.span_id\"')) FROM steps"
        ),
        "620"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*), sum(status = 'completed'), sum(status = 'joined') FROM sessions"
        ),
        "244|120|124"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT coalesce(max(count), 0) FROM audit_health WHERE kind = 'write_errors'"
        ),
        "0"
    );
    drop(relay);
    assert_eq!(second.stop().code(), Some(0));
    verified(&db);
    succeeded(&run(&db, &["check"]));
}

/// Runs `ask_grpc_health.py` against `addr` for `services`: the JSON it printed.
fn grpc_health(python: &Path, addr: &str, services: &[&str]) -> String {
    client(
        python,
        "ask_grpc_health.py",
        &[&[addr][..], services].concat(),
        &[],
    )
    .trim()
    .to_owned()
}

#[test]
fn health_says_serving_until_commits_fail_and_again_once_they_succeed_on_both_protocols() {
    let Some(python) = otel_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let token = "health-token-of-at-least-16";
    let collector = Collector::start(&db, "127.0.0.1:0", "127.0.0.1:0", &["--token", token]);
    let grpc = collector.grpc.clone().expect("gRPC served");
    let bearer = format!("Authorization: Bearer {token}");
    let watched = "watch:opentelemetry.proto.collector.trace.v1.TraceService";
    let trace_service = "opentelemetry.proto.collector.trace.v1.TraceService";
    let serving = format!(
        r#"{{"": "SERVING", "no.such.Service": "NOT_FOUND", "{trace_service}": "SERVING", "watch:{trace_service}": "SERVING"}}"#
    );

    // Serving, and asked without the token: a probe needs none.
    let (code, _, body) = request(&collector.http, "GET", "/health", &[], b"");
    assert_eq!(
        (code, String::from_utf8_lossy(&body).as_ref()),
        (200, r#"{"status":"serving"}"#)
    );
    assert_eq!(
        grpc_health(
            &python,
            &grpc,
            &["", trace_service, "no.such.Service", watched],
        ),
        serving
    );

    // Another process holds the write lock past the writer's busy timeout: a request's
    // commit fails, and both health checks say so until it succeeds.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let proto = "Content-Type: application/x-protobuf";
    let answered = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let body = one_span(1, 1).encode_to_vec();
            request(
                &collector.http,
                "POST",
                "/v1/traces",
                &[proto, &bearer],
                &body,
            )
            .0
        });
        let mut failing = (200, String::new(), String::new());
        wait_until(
            Duration::from_secs(60),
            || {
                let (code, head, body) = request(&collector.http, "GET", "/health", &[], b"");
                failing = (code, head, String::from_utf8_lossy(&body).into_owned());
                code != 200
            },
            || "still serving while its commits fail".to_owned(),
        );
        // Without the token, only the status; with it, why.
        assert_eq!(failing.0, 503);
        assert!(failing.1.contains("retry-after: 1"), "{}", failing.1);
        assert_eq!(failing.2, r#"{"status":"not_serving"}"#);
        let (code, _, why) = request(&collector.http, "GET", "/health", &[&bearer], b"");
        let why = String::from_utf8_lossy(&why).into_owned();
        assert_eq!(code, 503, "{why}");
        assert!(
            why.contains(r#""status":"not_serving""#) && why.contains("locked"),
            "{why}"
        );
        wait_until(
            Duration::from_secs(30),
            || {
                grpc_health(&python, &grpc, &["", trace_service, watched])
                    .matches("NOT_SERVING")
                    .count()
                    == 3
            },
            || "gRPC still serving".to_owned(),
        );
        blocker.execute_batch("ROLLBACK").unwrap();
        sender.join().unwrap()
    });
    // The request was answered as soon as its commit failed: 503, which exporters retry.
    // The writer kept its spans and commits them once the lock is gone: serving again, on
    // both, and the exporter's retry adds nothing twice.
    assert_eq!(answered, 503);
    let again = Duration::from_secs(30);
    wait_until(
        again,
        || request(&collector.http, "GET", "/health", &[], b"").0 == 200,
        || "not serving again".to_owned(),
    );
    wait_until(
        again,
        || {
            grpc_health(
                &python,
                &grpc,
                &["", trace_service, "no.such.Service", watched],
            ) == serving
        },
        || "gRPC not serving again".to_owned(),
    );
    let body = one_span(1, 1).encode_to_vec();
    assert_eq!(
        request(
            &collector.http,
            "POST",
            "/v1/traces",
            &[proto, &bearer],
            &body
        )
        .0,
        200
    );
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM steps"), "1");
    verified(&db);
}

#[test]
fn a_port_already_taken_is_refused_with_what_to_do_for_either_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    // Something else listens (as a collector on this host would on 4317 and 4318).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (listen, grpc, flag) in [
        (taken.as_str(), "off", "--listen"),
        ("127.0.0.1:0", taken.as_str(), "--grpc"),
    ] {
        let out = run(&db, &["collect", "--listen", listen, "--grpc", grpc]);
        let said = text(&out);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains(&format!("collect: cannot listen on {taken}"))
                && said.contains("another program listens there")
                && said.contains(&format!("choose another address with {flag}")),
            "{said}"
        );
    }
    // An address that is not this machine's (192.0.2.1, set aside for documentation).
    let out = run(
        &db,
        &[
            "collect",
            "--listen",
            "192.0.2.1:4318",
            "--grpc",
            "off",
            "--token",
            "not-this-machine-16",
        ],
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("cannot listen on 192.0.2.1:4318")
            && said.contains("it is not an address of this machine; choose one with --listen"),
        "{said}"
    );
}
