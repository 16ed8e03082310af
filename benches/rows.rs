//! Rows committed per second, end to end, for the two record shapes users run: text-free
//! steps, and realistic ones (steps with 20–200-character summaries, module, confidence and
//! tokens, a decision every third step, sessions with an input). Prints, per shape and
//! producer count, the median over rounds.
//!
//! Self-contained (public API only; the shapes in `support/shapes.rs`), so that the same
//! files build against an earlier commit and the two builds can be run in alternation on one machine:
//! `benches/compare_commits.sh <commit>` does that. Alone: `cargo bench --bench rows`.

use std::time::{Duration, Instant};

use shapes::{realistic, text_free};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "support/shapes.rs"]
mod shapes;

/// Rounds per run, unless `--rounds N` says otherwise.
const ROUNDS: usize = 7;
const SESSIONS: u64 = 1_500;

/// A case: its name, the session shape it produces, and how many producer threads.
type Case = (&'static str, fn(u64) -> u64, u64);

fn produce(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    shape: fn(u64) -> u64,
    threads: u64,
) -> f64 {
    let start = Instant::now();
    let rows: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let dispatch = dispatch.clone();
                scope.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        (t..SESSIONS)
                            .step_by(threads as usize)
                            .map(shape)
                            .sum::<u64>()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    guard.flush().unwrap();
    rows as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: [Case; 4] = [
        ("text-free, 1 thread", text_free, 1),
        ("realistic, 1 thread", realistic, 1),
        ("text-free, 4 threads", text_free, 4),
        ("realistic, 4 threads", realistic, 4),
    ];
    let audited: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(n, _)| {
            let (layer, guard) = reasonkit_audit::AuditLayer::builder()
                .path(dir.path().join(format!("{n}.db")))
                .flush_interval(Duration::from_millis(100))
                .build()
                .unwrap();
            (
                Dispatch::new(tracing_subscriber::registry().with(layer)),
                guard,
            )
        })
        .collect();
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(ROUNDS);
    let mut rates = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (n, (_, shape, threads)) in cases.iter().enumerate() {
            rates[n].push(produce(&audited[n].0, &audited[n].1, *shape, *threads));
        }
    }
    for (n, (name, _, _)) in cases.iter().enumerate() {
        let mut r = rates[n].clone();
        r.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.0} rows/s (range {:.0}–{:.0} over {rounds} rounds)",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
}
