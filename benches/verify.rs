//! How fast `verify` recomputes a chain: a database of 7,000 realistic sessions (105,000
//! rows: steps with summaries, decisions, inputs) written by the layer, verified whole.
//! One element is one chain entry (a row version); rows/s is printed too.
//! Run: `cargo bench --bench verify`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

mod support;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verify.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..7_000 {
            support::shapes::realistic(i);
        }
    });
    guard.shutdown().unwrap();
    let report = reasonkit_audit::verify(&path).unwrap();
    assert!(report.is_intact());
    println!(
        "verify bench: {} chain entries over {} rows",
        report.entries,
        report.total_rows()
    );

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(report.entries));
    group.bench_function("realistic_105k_rows", |b| {
        b.iter(|| reasonkit_audit::verify(&path).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(10)).sample_size(10);
    targets = bench
}
criterion_main!(benches);
