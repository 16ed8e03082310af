//! How big an evidence bundle of one session is, and how long it takes to make and to check,
//! against the length of the chain it is proven in: 10,000, 100,000 and 1,000,000 entries
//! of realistic sessions (ten steps with summaries, decisions, an input) written by the
//! layer. The bundle is of one such session, taken from the middle of the store; its size
//! in bytes (as `evidence` writes it) is printed per size.
//! Run: `cargo bench --bench evidence`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use reasonkit_audit::evidence::{self, BuildOptions, CheckOptions, Scope};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

mod support;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evidence.db");
    let mut next = 0u64;
    let mut group = c.benchmark_group("evidence");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for target in [10_000u64, 100_000, 1_000_000] {
        // Grow the store to `target` chain entries, one realistic session after another.
        let (layer, guard) = reasonkit_audit::AuditLayer::builder()
            .path(&path)
            .build()
            .unwrap();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        let mut entries = reasonkit_audit::chain_head(&path).unwrap().1.size;
        tracing::dispatcher::with_default(&dispatch, || {
            while entries < target {
                entries += support::shapes::realistic(next);
                next += 1;
            }
        });
        drop(dispatch);
        guard.shutdown().unwrap();
        let size = reasonkit_audit::chain_head(&path).unwrap().1.size;
        let middle = middle_session(&path);
        let started = Instant::now();
        let bundle = evidence::build(
            &path,
            &Scope::sessions([middle.as_str()]),
            &BuildOptions::default(),
        )
        .unwrap();
        let built_in = started.elapsed();
        let bytes = serde_json::to_string_pretty(&bundle).unwrap().len();
        let started = Instant::now();
        let report = evidence::check(&bundle, &CheckOptions::default());
        let checked_in = started.elapsed();
        assert!(report.is_intact_and_complete(), "{report:?}");
        println!(
            "evidence bench: chain of {size} entries; one session ({} rows, {} entries): bundle \
             {bytes} bytes, built in {built_in:?}, checked in {checked_in:?}",
            report.rows, report.entries
        );
        group.bench_function(format!("build_one_session_of_{target}_entries"), |b| {
            b.iter(|| {
                evidence::build(
                    &path,
                    &Scope::sessions([middle.as_str()]),
                    &BuildOptions::default(),
                )
                .unwrap()
            })
        });
        group.bench_function(format!("check_one_session_of_{target}_entries"), |b| {
            b.iter(|| evidence::check(&bundle, &CheckOptions::default()))
        });
    }
    group.finish();
}

/// A session from the middle of the store (by start time).
fn middle_session(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT id FROM sessions ORDER BY started_at LIMIT 1 \
         OFFSET (SELECT count(*) / 2 FROM sessions)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
