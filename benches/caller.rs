//! Targets 1 and 2 of the performance issue: what an instrumented thread pays.
//!
//! - `step_span`: a `step` span with five fields inside a session (create, enter, exit,
//!   close), in bursts of 2,000 with the queue drained, untimed, between bursts — against
//!   the bare registry, and fmt + tracing-appender's non_blocking writer for reference.
//! - `other_span`: a span with any other name, with the audit layer installed or not.
//!
//! Run: `cargo bench --bench caller`. Compare the ratios within one run.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::{other_span, step_span};
use tracing::{Dispatch, info_span};
use tracing_subscriber::prelude::*;

mod support;

const BURST: u64 = 2_000;

/// Times `iters` spans in bursts, calling `drain` between bursts, untimed.
fn bursts(
    dispatch: &Dispatch,
    iters: u64,
    span: fn(u64),
    inside_session: bool,
    drain: &dyn Fn(),
) -> Duration {
    tracing::dispatcher::with_default(dispatch, || {
        let session = inside_session.then(|| info_span!("session", profile = "bench"));
        let _in_session = session.as_ref().map(|s| s.enter());
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = BURST.min(iters - done);
            let start = Instant::now();
            for i in 0..n {
                span(i);
            }
            total += start.elapsed();
            done += n;
            drain();
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (audit, guard) = reasonkit_audit::AuditLayer::builder()
        .path(dir.path().join("bench.db"))
        .build()
        .unwrap();
    let audited = Dispatch::new(tracing_subscriber::registry().with(audit));
    let bare = Dispatch::new(tracing_subscriber::registry());
    let (writer, _appender_guard) = tracing_appender::non_blocking(std::io::sink());
    let fmt = Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE),
        ),
    );
    let flush = || guard.flush().unwrap();
    let nothing = || {};

    let mut group = c.benchmark_group("step_span");
    group.bench_function("bare_registry", |b| {
        b.iter_custom(|iters| bursts(&bare, iters, step_span, true, &nothing))
    });
    group.bench_function("audit_layer", |b| {
        b.iter_custom(|iters| bursts(&audited, iters, step_span, true, &flush))
    });
    group.bench_function("fmt_non_blocking", |b| {
        b.iter_custom(|iters| bursts(&fmt, iters, step_span, true, &nothing))
    });
    group.finish();

    let mut group = c.benchmark_group("other_span");
    group.bench_function("bare_registry", |b| {
        b.iter_custom(|iters| bursts(&bare, iters, other_span, false, &nothing))
    });
    group.bench_function("audit_layer", |b| {
        b.iter_custom(|iters| bursts(&audited, iters, other_span, false, &flush))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
