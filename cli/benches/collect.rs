//! Spans per second through `reasonkit-audit collect`, against the layer's own end-to-end
//! rate on the same spans. A benchmark, not a test: it prints.
//!
//! The spans are a tool-calling agent run's, as the GenAI conventions record it (the run,
//! two model calls with tokens and their output messages, two tools with arguments and
//! results; a few hundred bytes of text each). The layer records them from `tracing`
//! directly; the collector receives them from the Rust OTLP exporter (tracing-opentelemetry,
//! the OpenTelemetry SDK's batch processor, opentelemetry-otlp over OTLP/HTTP protobuf).
//! Both are timed from the first span to the moment every span is committed: the layer's
//! `flush`, the provider's `force_flush` (which returns once the collector has answered
//! every batch, and it answers only after the commit). The two alternate, each in a fresh
//! database, ROUNDS times; the medians are printed.
//!
//! The SDK's batch processor exports one batch at a time and waits for its answer, so one
//! exporting service leaves the collector idle while the next batch is encoded and sent,
//! and the service idle while the collector commits. Four services exporting to one
//! collector at once (each its own provider and exporter, a quarter of the runs each) show
//! what the collector takes when it is kept busy.
//!
//! Through a collector in front (rotel, from the venv `.ci/run` makes; skipped without it):
//! one service exports to rotel, which answers at once and forwards its own batches to
//! `collect`; timed until the store holds every span.
//!
//! One service whose batch processor runs on tokio (the SDK's async-runtime processor,
//! behind its `experimental_trace_batch_span_processor_with_async_runtime` feature),
//! exporting over OTLP/gRPC one batch at a time and up to four at a time
//! (`with_max_concurrent_exports`): what a service that lets several batches wait for
//! their commit gets.
//!
//! Beside it, the collector alone: the same spans as OTLP requests of 512, encoded before
//! the clock starts, posted one after the other (as an exporter posts them) and by four
//! senders at once — what the collector costs without the exporter's side.
//!
//! `cargo bench -p reasonkit-audit-cli --bench collect` (RUNS=… agent runs, 5 spans each;
//! ROUNDS=…).

#[path = "../tests/common/server.rs"]
#[allow(dead_code)]
mod server;

use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_reasonkit-audit");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One agent run: five spans shaped like a real one's.
fn agent_run(n: u64) {
    let question = format!(
        r#"[{{"role":"user","parts":[{{"type":"text","content":"Settle claim {n}: the policy holder reports water damage in the kitchen after a pipe burst; check coverage, the deductible and prior claims."}}]}}]"#
    );
    let answer = format!(
        r#"[{{"role":"assistant","parts":[{{"type":"text","content":"Claim {n} is covered under section 4.2 (sudden and accidental discharge). Deductible 500; no prior claims in 36 months; approve 950 after deductible."}}]}}]"#
    );
    let _run = info_span!(
        "invoke_agent",
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.agent.name" = "claims",
        "gen_ai.conversation.id" = %format!("conv-{n}"),
        "gen_ai.input.messages" = %question,
    )
    .entered();
    for turn in 0..2u64 {
        info_span!(
            "chat",
            "gen_ai.operation.name" = "chat",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.usage.input_tokens" = 120 + turn as i64 * 80,
            "gen_ai.usage.output_tokens" = 30_i64,
            "gen_ai.output.messages" = %answer,
        )
        .in_scope(|| {});
        info_span!(
            "execute_tool",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = if turn == 0 { "lookup_policy" } else { "prior_claims" },
            "gen_ai.tool.call.arguments" = %format!(r#"{{"claim":{n},"turn":{turn}}}"#),
            "gen_ai.tool.call.result" = %format!(
                r#"{{"policy":"HO-{n}","section":"4.2","deductible":500,"covered":true,"limit":25000,"turn":{turn}}}"#
            ),
        )
        .in_scope(|| {});
    }
}

/// Seconds for the layer to commit `runs` runs.
fn through_layer(runs: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let start = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || (0..runs).for_each(agent_run));
    guard.flush().unwrap();
    let took = start.elapsed();
    guard.shutdown().unwrap();
    took
}

/// The SDK's batching for `runs` runs: batches of 512, sent 50 ms after the first span
/// waits, and a queue that holds every span (the SDK drops what does not fit, which would
/// make the figure a measure of dropping).
fn batches(runs: u64) -> opentelemetry_sdk::trace::BatchConfigBuilder {
    opentelemetry_sdk::trace::BatchConfigBuilder::default()
        .with_max_queue_size((runs * 5) as usize + 1024)
        .with_max_export_batch_size(512)
        .with_scheduled_delay(Duration::from_millis(50))
}

/// A service's exporting: the SDK's thread-based batch processor ([`batches`]) and the
/// OTLP/HTTP protobuf exporter, sending to `http` (`127.0.0.1:PORT`).
fn service(http: &str, runs: u64) -> opentelemetry_sdk::trace::SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{http}/v1/traces"))
        .with_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(batches(runs).build())
        .build();
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

/// Seconds for `runs` runs to be exported to a collector and committed, by `services`
/// processes' worth of exporters at once (each its own provider, batch processor and
/// exporter, as separate services exporting to one collector are); checks they all arrived.
fn through_collect(runs: u64, services: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let collector = server::Collector::start(&path, "127.0.0.1:0", "off", &[]);
    let providers: Vec<_> = (0..services)
        .map(|_| service(&collector.http, runs))
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (i, provider) in providers.iter().enumerate() {
            let i = i as u64;
            scope.spawn(move || {
                let subscriber = tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
                tracing::subscriber::with_default(subscriber, || {
                    (0..runs).filter(|n| n % services == i).for_each(agent_run)
                });
                provider.force_flush().unwrap();
            });
        }
    });
    let took = start.elapsed();
    for provider in providers {
        provider.shutdown().unwrap();
    }
    stopped_with_every_span(collector, &path, runs);
    took
}

/// Seconds for `runs` runs exported by one service whose batch processor runs on tokio
/// (the SDK's async-runtime processor, batches of 512) and may have `concurrent` batches
/// in flight at once, over OTLP/gRPC; `force_flush` returns once every batch is answered,
/// and `collect` answers once committed. Checks they all arrived.
fn through_collect_concurrent(runs: u64, concurrent: usize) -> Duration {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let collector = server::Collector::start(&path, "127.0.0.1:0", "127.0.0.1:0", &[]);
    let grpc = collector.grpc.clone().expect("gRPC served");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let provider = runtime.block_on(async {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{grpc}"))
            .with_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
            .with_batch_config(
                batches(runs)
                    .with_max_concurrent_exports(concurrent)
                    .build(),
            )
            .build();
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build()
    });
    let start = Instant::now();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || (0..runs).for_each(agent_run));
    provider.force_flush().unwrap();
    let took = start.elapsed();
    provider.shutdown().unwrap();
    drop(runtime);
    stopped_with_every_span(collector, &path, runs);
    took
}

/// rotel's `rotel-agent`: `REASONKIT_AUDIT_ROTEL`, or the one in the venv `.ci/run` makes.
fn rotel_agent() -> Option<std::path::PathBuf> {
    if let Some(agent) = std::env::var_os("REASONKIT_AUDIT_ROTEL") {
        return Some(agent.into());
    }
    server::rotel_agent_of(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/otel-venv/bin/python"),
    )
}

/// Seconds for `runs` runs to reach the store through a collector in front of `collect`,
/// as deployments run one: the service exports to rotel (its defaults: batches of up to
/// 8,192 spans or 200 ms, gzip), which answers the service at once and forwards to
/// `collect` over OTLP/HTTP. Timed until every span is committed in the store, which is
/// read every 5 ms; checks they all arrived.
fn through_relay(agent: &std::path::Path, runs: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let collector = server::Collector::start(&path, "127.0.0.1:0", "off", &[]);
    let relay = server::Relay::start(
        agent,
        dir.path(),
        &[
            "--otlp-exporter-endpoint",
            &format!("http://{}", collector.http),
            "--otlp-exporter-protocol",
            "http",
        ],
    );
    let provider = service(&relay.http, runs);
    let committed = || steps(&path);
    let start = Instant::now();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || (0..runs).for_each(agent_run));
    provider.force_flush().unwrap();
    while committed() < runs * 5 {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} of {} spans after 10 minutes; rotel printed:\n{}",
            committed(),
            runs * 5,
            relay.printed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    provider.shutdown().unwrap();
    drop(relay);
    stopped_with_every_span(collector, &path, runs);
    took
}

/// The steps the store at `path` holds.
fn steps(path: &std::path::Path) -> u64 {
    let store =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    store
        .query_row("SELECT count(*) FROM steps", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Stops `collector` (what it holds is committed) and checks that every span of `runs`
/// runs is in its store, once.
fn stopped_with_every_span(collector: server::Collector, path: &std::path::Path, runs: u64) {
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(steps(path), runs * 5, "every span arrived, once");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runs = env_or("RUNS", 4_000);
    let rounds = env_or("ROUNDS", 5);
    let spans = (runs * 5) as f64;
    let mut layer = Vec::new();
    let mut ratios: [Vec<f64>; 7] = Default::default();
    let agent = rotel_agent();
    if agent.is_none() {
        println!(
            "no rotel (REASONKIT_AUDIT_ROTEL, or target/otel-venv as .ci/run makes it): \
             the path through a collector in front is not run"
        );
    }
    for round in 0..rounds {
        let l = spans / through_layer(runs).as_secs_f64();
        let c = spans / through_collect(runs, 1).as_secs_f64();
        let c4 = spans / through_collect(runs, 4).as_secs_f64();
        let r = agent.as_deref().map_or(f64::NAN, |agent| {
            spans / through_relay(agent, runs).as_secs_f64()
        });
        let g1 = spans / through_collect_concurrent(runs, 1).as_secs_f64();
        let g4 = spans / through_collect_concurrent(runs, 4).as_secs_f64();
        let a = spans / collector_alone(runs, 1).as_secs_f64();
        let a4 = spans / collector_alone(runs, 4).as_secs_f64();
        println!(
            "round {round}: layer {l:.0} spans/s; collect from the Rust SDK, 1 service {c:.0} \
             ({:.2}x), 4 services {c4:.0} ({:.2}x), 1 service through rotel {r:.0} ({:.2}x), \
             1 service on tokio over gRPC, 1 batch at a time {g1:.0} ({:.2}x), 4 at a time \
             {g4:.0} ({:.2}x); collector alone, 1 sender {a:.0} ({:.2}x), 4 senders {a4:.0} \
             ({:.2}x)",
            c / l,
            c4 / l,
            r / l,
            g1 / l,
            g4 / l,
            a / l,
            a4 / l
        );
        layer.push(l);
        for (ratio, value) in ratios.iter_mut().zip([c, c4, r, g1, g4, a, a4]) {
            ratio.push(value / l);
        }
    }
    let [c, c4, r, g1, g4, a, a4] = ratios.map(median);
    println!(
        "median of {rounds} rounds, {runs} runs of 5 spans: layer {:.0} spans/s; collect / \
         layer from the Rust SDK: 1 service {c:.2}, 4 services {c4:.2}, 1 service through \
         rotel {r:.2}, 1 service on tokio over gRPC, 1 batch at a time {g1:.2}, 4 at a time \
         {g4:.2}; the collector alone (requests encoded before the clock): 1 sender {a:.2}, \
         4 senders {a4:.2}",
        median(layer),
    );
}

/// The same runs as OTLP requests of 512 spans, built and encoded before the clock starts.
fn encoded_requests(runs: u64) -> Vec<Vec<u8>> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let kv = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let text = |t: String| Value::StringValue(t);
    let base = 1_750_000_000_000_000_000u64;
    let mut spans = Vec::new();
    for n in 0..runs {
        let trace: Vec<u8> = (n as u128 + 1).to_be_bytes().to_vec();
        let t = base + n * 10_000_000;
        let span = |id: u8, parent: u8, name: &str, attributes: Vec<KeyValue>| Span {
            trace_id: trace.clone(),
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            kind: 1,
            start_time_unix_nano: t + u64::from(id) * 1_000_000,
            end_time_unix_nano: t + 9_000_000 - u64::from(id) * 100_000,
            attributes,
            ..Span::default()
        };
        for turn in 0..2u8 {
            spans.push(span(2 + 2 * turn, 1, "chat", vec![
                kv("gen_ai.operation.name", text("chat".into())),
                kv("gen_ai.request.model", text("gpt-4o".into())),
                kv("gen_ai.usage.input_tokens", Value::IntValue(120 + i64::from(turn) * 80)),
                kv("gen_ai.usage.output_tokens", Value::IntValue(30)),
                kv("gen_ai.output.messages", text(format!(r#"[{{"role":"assistant","parts":[{{"type":"text","content":"Claim {n} is covered under section 4.2 (sudden and accidental discharge). Deductible 500; no prior claims in 36 months; approve 950 after deductible."}}]}}]"#))),
            ]));
            spans.push(span(3 + 2 * turn, 1, "execute_tool", vec![
                kv("gen_ai.operation.name", text("execute_tool".into())),
                kv("gen_ai.tool.name", text(if turn == 0 { "lookup_policy" } else { "prior_claims" }.into())),
                kv("gen_ai.tool.call.arguments", text(format!(r#"{{"claim":{n},"turn":{turn}}}"#))),
                kv("gen_ai.tool.call.result", text(format!(r#"{{"policy":"HO-{n}","section":"4.2","deductible":500,"covered":true,"limit":25000,"turn":{turn}}}"#))),
            ]));
        }
        spans.push(span(1, 0, "invoke_agent", vec![
            kv("gen_ai.operation.name", text("invoke_agent".into())),
            kv("gen_ai.agent.name", text("claims".into())),
            kv("gen_ai.conversation.id", text(format!("conv-{n}"))),
            kv("gen_ai.input.messages", text(format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"Settle claim {n}: the policy holder reports water damage in the kitchen after a pipe burst; check coverage, the deductible and prior claims."}}]}}]"#))),
        ]));
    }
    spans
        .chunks(512)
        .map(|chunk| {
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", text("claims-service".into()))],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: chunk.to_vec(),
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                }],
            }
            .encode_to_vec()
        })
        .collect()
}

/// Seconds for the collector alone to take `requests`, sent one after the other (as an
/// exporter sends them) or by `clients` senders at once.
fn collector_alone(runs: u64, clients: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let collector = server::Collector::start(&path, "127.0.0.1:0", "off", &[]);
    let requests = encoded_requests(runs);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in requests.chunks(requests.len().div_ceil(clients)) {
            let addr = collector.http.clone();
            scope.spawn(move || {
                for body in part {
                    let (code, _, _) = server::request(
                        &addr,
                        "POST",
                        "/v1/traces",
                        &["Content-Type: application/x-protobuf"],
                        body,
                    );
                    assert_eq!(code, 200);
                }
            });
        }
    });
    let took = start.elapsed();
    assert_eq!(collector.stop().code(), Some(0));
    took
}
