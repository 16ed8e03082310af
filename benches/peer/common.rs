//! The workload both sides of the peer bench run: the same spans, the same loops, the same
//! measurements. Each side's `main.rs` only says how its layer is installed and flushed.
//!
//! `<binary> MODE DB` runs one measurement in this process and prints its figure:
//!
//! | mode | what | prints |
//! |---|---|---|
//! | `caller` | a 5-field `step` span (create, enter, exit, close) in bursts of 2,000 inside a session, the writer drained untimed between bursts; 9 alternations of 10 bursts with the bare registry, in this process | `layer_ns bare_ns` (medians) |
//! | `text`, `text-free` | 20,000 sessions of 10 steps (220,000 spans), steps with two 20–200-character summaries or none, until all are committed | spans per second |
//! | `memory` | 100,000 sessions of 10 steps with text (1,100,000 spans), then committed | peak RSS, KiB |
//! | `exit` | 10,000 sessions of 1 step through the global subscriber, then `main` returns without a flush | nothing (the script counts the rows) |

use std::time::Instant;

use tracing::{Dispatch, info_span};

/// How a side is installed: its dispatch, how to wait until everything sent is committed,
/// and what must stay alive (dropped when `main` returns).
pub struct Side {
    pub dispatch: Dispatch,
    pub flush: Box<dyn Fn()>,
    pub keep: Box<dyn std::any::Any>,
}

const WORDS: [&str; 8] = [
    "premises",
    "quarterly",
    "filing",
    "revenue",
    "forecast",
    "vendor",
    "evidence",
    "deduction",
];

/// Text of 20 to 200 characters, varying with `seed`.
fn summary(seed: u64) -> String {
    let target = 20 + (seed.wrapping_mul(2_654_435_761) % 181) as usize;
    let mut text = String::with_capacity(target + 12);
    let mut k = seed;
    while text.len() < target {
        text.push_str(WORDS[(k % 8) as usize]);
        text.push(' ');
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) >> 7;
    }
    text.truncate(target);
    text
}

/// One session of `steps` steps, with text or without: `steps + 1` spans.
fn session(i: u64, steps: u64, text: bool) {
    info_span!("session", profile = "bench").in_scope(|| {
        for k in 0..steps {
            if text {
                info_span!(
                    "step",
                    module = "gigathink",
                    input_summary = %summary(i * 10 + k),
                    output_summary = %summary(i * 10 + k + 7),
                    confidence = 0.9,
                    tokens_used = k,
                )
                .in_scope(|| {});
            } else {
                info_span!(
                    "step",
                    module = "gigathink",
                    confidence = 0.9,
                    tokens_used = k
                )
                .in_scope(|| {});
            }
        }
    });
}

/// The 5-field step span of the caller-cost measure.
fn step_span(i: u64) {
    info_span!(
        "step",
        module = "gigathink",
        input_summary = "short input",
        confidence = 0.9,
        tokens_used = i,
        output_summary = "short output"
    )
    .in_scope(|| {});
}

/// Nanoseconds per step span over a burst of 2,000.
fn burst(dispatch: &Dispatch) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let _session = info_span!("session", profile = "bench").entered();
        let start = Instant::now();
        for i in 0..2_000 {
            step_span(i);
        }
        start.elapsed().as_nanos() as f64 / 2_000.0
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Peak resident memory of this process, KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `mode` on the side `install` makes for the database at `db`.
pub fn run(install: fn(&std::path::Path) -> Side) {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(db)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: {} caller|text|text-free|memory|exit DB", args[0]);
        std::process::exit(2);
    };
    let db = std::path::Path::new(db);
    match mode.as_str() {
        "caller" => {
            let side = install(db);
            let bare = Dispatch::new(tracing_subscriber::registry());
            let (mut layer_ns, mut bare_ns) = (Vec::new(), Vec::new());
            for _ in 0..9 {
                let mut b = Vec::new();
                let mut l = Vec::new();
                for _ in 0..10 {
                    b.push(burst(&bare));
                    l.push(burst(&side.dispatch));
                    (side.flush)();
                }
                bare_ns.push(median(b));
                layer_ns.push(median(l));
            }
            println!("{:.0} {:.0}", median(layer_ns), median(bare_ns));
        }
        "text" | "text-free" => {
            let side = install(db);
            let text = mode == "text";
            let start = Instant::now();
            tracing::dispatcher::with_default(&side.dispatch, || {
                for i in 0..20_000 {
                    session(i, 10, text);
                }
            });
            (side.flush)();
            println!("{:.0}", 220_000.0 / start.elapsed().as_secs_f64());
        }
        "memory" => {
            let side = install(db);
            tracing::dispatcher::with_default(&side.dispatch, || {
                for i in 0..100_000 {
                    session(i, 10, true);
                }
            });
            (side.flush)();
            println!("{}", peak_rss_kib());
        }
        "exit" => {
            let side = install(db);
            // As an application installs it: global, for the life of the process. What
            // `keep` holds is dropped when this returns, as a guard in `main` is.
            tracing::dispatcher::set_global_default(side.dispatch.clone())
                .expect("no other global subscriber");
            for i in 0..10_000 {
                session(i, 1, true);
            }
            drop(side.keep);
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
