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

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing::{Dispatch, info_span};
use tracing_subscriber::prelude::*;

const STEPS: u64 = 10;
const ROWS_PER_SESSION: u64 = STEPS + 1;

fn session(i: u64) {
    info_span!("session", profile = "bench", input = "a question").in_scope(|| {
        for k in 0..STEPS {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.8,
                tokens_used = k,
                n = i
            )
            .in_scope(|| {});
        }
    });
}

fn produce(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    sessions: u64,
    threads: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in (t..sessions).step_by(threads as usize) {
                        session(i);
                    }
                })
            });
        }
    });
    guard.flush().unwrap();
    start.elapsed()
}

fn timestamp(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn direct(conn: &mut rusqlite::Connection, sessions: u64) -> Duration {
    let start = Instant::now();
    let mut tx = conn.transaction().unwrap();
    let mut in_tx = 0;
    for i in 0..sessions {
        let session_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let begun = timestamp(SystemTime::now());
        tx.prepare_cached(
            "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, status, attributes, pid, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .unwrap()
        .execute((&session_id, &begun, &begun, "bench", "e3b0c442", "completed", "{}", 1, "host"))
        .unwrap();
        for k in 0..STEPS {
            let now = timestamp(SystemTime::now());
            tx.prepare_cached(
                "INSERT INTO steps (id, session_id, parent_step_id, module, started_at, ended_at,
                 input_summary, output_summary, confidence, tokens_used, error, attributes)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL, NULL, ?6, ?7, NULL, ?8)",
            )
            .unwrap()
            .execute((
                uuid::Uuid::now_v7().hyphenated().to_string(),
                &session_id,
                "gigathink",
                &now,
                &now,
                0.8,
                k as i64,
                format!("{{\"n\":{i}}}"),
            ))
            .unwrap();
        }
        in_tx += ROWS_PER_SESSION;
        if in_tx >= 1_000 {
            tx.commit().unwrap();
            tx = conn.transaction().unwrap();
            in_tx = 0;
        }
    }
    tx.commit().unwrap();
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
        b.iter_custom(|iters| produce(&one, &one_guard, iters, 1))
    });
    let (four, four_guard) = audited(&dir, "four.db");
    group.bench_function("audit_layer_4_threads", |b| {
        b.iter_custom(|iters| produce(&four, &four_guard, iters, 4))
    });

    // The same schema, made by the layer's own migrations.
    let direct_path = dir.path().join("direct.db");
    drop(
        reasonkit_audit::AuditLayer::builder()
            .path(&direct_path)
            .build()
            .unwrap(),
    );
    let mut conn = rusqlite::Connection::open(&direct_path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
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
