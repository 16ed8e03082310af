//! Target 5 of the performance issue: peak memory is bounded by the queue, not by the run.
//!
//! Runs 100,000 realistic steps (`support::shapes::realistic`: summaries of 20–200
//! characters, a decision every third step, sessions with an input; the chain and the
//! search index on), reads the peak resident set size (VmHWM), then 900,000 more (a
//! 1,000,000-step run) and reads it again. With a bounded queue and rows leaving memory
//! once committed, the two peaks are close. Linux only (reads /proc/self/status).
//!
//! Run: `cargo bench --bench memory`.

use std::time::Instant;

use tracing_subscriber::prelude::*;

mod support;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `steps` realistic steps: sessions of ten.
fn run(first_session: u64, steps: u64) {
    for s in first_session..first_session + steps / 10 {
        support::shapes::realistic(s);
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
    run(0, 100_000);
    guard.flush().unwrap();
    let after_100k = peak_rss_kib();
    run(10_000, 900_000);
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
