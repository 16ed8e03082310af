//! Target 5 of the performance issue: peak memory is bounded by the queue, not by the run.
//!
//! Runs 100,000 steps, reads the peak resident set size (VmHWM), then 900,000 more (a
//! 1,000,000-step run) and reads it again. With a bounded queue and rows leaving memory
//! once committed, the two peaks are close. Linux only (reads /proc/self/status).
//!
//! Run: `cargo bench --bench memory`.

use std::time::Instant;

use tracing::info_span;
use tracing_subscriber::prelude::*;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn run(steps: u64) {
    for s in 0..steps / 10 {
        info_span!("session", profile = "memory", n = s).in_scope(|| {
            for k in 0..10 {
                info_span!(
                    "step",
                    module = "gigathink",
                    confidence = 0.8,
                    tokens_used = k,
                    input_summary = "some text of moderate length"
                )
                .in_scope(|| {});
            }
        });
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks benches to list themselves
    }
    let dir = tempfile::tempdir().unwrap();
    let before = peak_rss_kib();
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(dir.path().join("memory.db"))
        .build()
        .unwrap();
    tracing_subscriber::registry().with(layer).init();
    let start = Instant::now();
    run(100_000);
    guard.flush().unwrap();
    let after_100k = peak_rss_kib();
    run(900_000);
    guard.flush().unwrap();
    let after_1m = peak_rss_kib();
    let elapsed = start.elapsed();
    println!(
        "queue capacity {} records: peak RSS {} KiB before, {} KiB after 100,000 steps, {} KiB after 1,000,000 steps ({:.1} s)",
        reasonkit_audit::DEFAULT_QUEUE_CAPACITY,
        before,
        after_100k,
        after_1m,
        elapsed.as_secs_f64()
    );
}
