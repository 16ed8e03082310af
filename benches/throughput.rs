//! Targets 3 and 4 of the performance issue: rows committed per second, end to end.
//!
//! - `end_to_end/audit_layer_1_thread`: one thread produces sessions of 10 steps as fast as
//!   it can, until `guard.flush()` returns.
//! - `end_to_end/audit_layer_4_threads`: the same from 4 producer threads.
//! - `end_to_end/direct_rusqlite`: the same rows (UUIDv7 ids, timestamps, the same
//!   columns) inserted straight into the same schema with rusqlite: cached prepared
//!   statements, 1,000 rows per transaction, WAL, `synchronous=NORMAL`.
//!
//! One element is one row. Run: `cargo bench --bench throughput`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::ROWS_PER_SESSION;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

mod support;

fn direct(conn: &mut rusqlite::Connection, sessions: u64) -> Duration {
    let start = Instant::now();
    support::direct_sessions(conn, sessions);
    start.elapsed()
}

fn audited(dir: &tempfile::TempDir, name: &str) -> (Dispatch, reasonkit_audit::AuditGuard) {
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(dir.path().join(name))
        .build()
        .unwrap();
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(ROWS_PER_SESSION));

    let (one, one_guard) = audited(&dir, "one.db");
    group.bench_function("audit_layer_1_thread", |b| {
        b.iter_custom(|iters| support::produce(&one, &one_guard, iters, 1))
    });
    let (four, four_guard) = audited(&dir, "four.db");
    group.bench_function("audit_layer_4_threads", |b| {
        b.iter_custom(|iters| support::produce(&four, &four_guard, iters, 4))
    });

    // The same schema, made by the layer's own migrations.
    let mut conn = support::direct_connection(&dir.path().join("direct.db"));
    group.bench_function("direct_rusqlite", |b| {
        b.iter_custom(|iters| direct(&mut conn, iters))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(2)).sample_size(20);
    targets = bench
}
criterion_main!(benches);
