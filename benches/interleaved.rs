//! The performance targets as ratios, with the two sides of each ratio measured in
//! alternation — A, B, A, B, … — so that the load other tenants put on this shared machine
//! falls on both sides alike. Criterion (`caller`, `throughput`) measures one side after the
//! other, and on a shared 2-core machine its ratios drift with the neighbours' load.
//!
//! Prints, for each target, the median of the per-round ratios and their range.
//! Run: `cargo bench --bench interleaved` (`-- --caller` for targets 1 and 2 only). Target
//! 1 also times the floor layer (`support/floor.rs`): the least any layer that records a
//! span's fields and times off the caller's thread pays, to tell the audit layer's share
//! from what tracing's registry and the queue cost everyone.

use std::time::{Duration, Instant};

use support::{ROWS_PER_SESSION, other_span, step_span};
use tracing::{Dispatch, info_span};
use tracing_subscriber::prelude::*;

mod support;

const ROUNDS: usize = 15;

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn report(name: &str, goal: &str, ratios: Vec<f64>) {
    let (mid, low, high) = median(ratios);
    println!(
        "{name}: median ratio {mid:.2} (range {low:.2}–{high:.2} over {ROUNDS} rounds); goal {goal}"
    );
}

/// Nanoseconds per span over ten bursts of 2,000, draining between bursts, untimed.
fn per_span(dispatch: &Dispatch, span: fn(u64), in_session: bool, drain: &dyn Fn()) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let session = in_session.then(|| info_span!("session"));
        let _s = session.as_ref().map(|s| s.enter());
        let mut total = Duration::ZERO;
        for _ in 0..10 {
            let start = Instant::now();
            for i in 0..2_000 {
                span(i);
            }
            total += start.elapsed();
            drain();
        }
        total.as_nanos() as f64 / 20_000.0
    })
}

/// Rows per second through the layer (see `support::produce`).
fn layer_rows_per_sec(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    sessions: u64,
    threads: u64,
) -> f64 {
    let elapsed = support::produce(dispatch, guard, sessions, threads);
    (sessions * ROWS_PER_SESSION) as f64 / elapsed.as_secs_f64()
}

/// Rows per second straight into the same schema (see `support::direct_sessions`).
fn direct_rows_per_sec(conn: &mut rusqlite::Connection, sessions: u64) -> f64 {
    let start = Instant::now();
    support::direct_sessions(conn, sessions);
    (sessions * ROWS_PER_SESSION) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audited = |name: &str| {
        let (layer, guard) = reasonkit_audit::AuditLayer::builder()
            .path(dir.path().join(name))
            .build()
            .unwrap();
        (
            Dispatch::new(tracing_subscriber::registry().with(layer)),
            guard,
        )
    };

    // Targets 1 and 2: the caller's cost.
    let (dispatch, guard) = audited("caller.db");
    let bare = Dispatch::new(tracing_subscriber::registry());
    let flush = || guard.flush().unwrap();
    let nothing = || {};
    let (floor_layer, floor_drain) =
        support::floor::floor_layer(reasonkit_audit::DEFAULT_QUEUE_CAPACITY);
    let floor = Dispatch::new(tracing_subscriber::registry().with(floor_layer));
    let drain_floor = || floor_drain.wait();
    let (mut step, mut other) = (Vec::new(), Vec::new());
    let (mut over_floor, mut floor_over_bare) = (Vec::new(), Vec::new());
    let (mut step_ns, mut bare_ns, mut floor_ns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let b = per_span(&bare, step_span, true, &nothing);
        let a = per_span(&dispatch, step_span, true, &flush);
        let f = per_span(&floor, step_span, true, &drain_floor);
        step.push(a / b);
        over_floor.push(a / f);
        floor_over_bare.push(f / b);
        step_ns.push(a);
        bare_ns.push(b);
        floor_ns.push(f);
        let b = per_span(&bare, other_span, false, &nothing);
        let a = per_span(&dispatch, other_span, false, &flush);
        other.push(a / b);
    }
    report(
        "1. step span, audit layer / bare registry",
        "<= 2.5 (issue #21)",
        step,
    );
    println!(
        "   step span: median {:.0} ns with the audit layer, {:.0} ns on the bare registry, \
         {:.0} ns with the floor layer (benches/support/floor.rs)",
        median(step_ns).0,
        median(bare_ns).0,
        median(floor_ns).0
    );
    report(
        "   step span, floor layer / bare registry",
        "(the least any layer recording the span's fields and times pays)",
        floor_over_bare,
    );
    report(
        "   step span, audit layer / floor layer",
        "(what the audit layer adds to the least a recording layer does)",
        over_floor,
    );
    report(
        "2. other span, audit layer / bare registry",
        "<= 1.1",
        other,
    );
    if std::env::args().any(|a| a == "--caller") {
        return;
    }

    // Targets 3 and 4: rows per second against direct rusqlite.
    let (one, one_guard) = audited("one.db");
    let (four, four_guard) = audited("four.db");
    let mut conn = support::direct_connection(&dir.path().join("direct.db"));
    let (mut single, mut multi, mut direct_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let d = direct_rows_per_sec(&mut conn, 2_000);
        let a = layer_rows_per_sec(&one, &one_guard, 2_000, 1);
        let m = layer_rows_per_sec(&four, &four_guard, 2_000, 4);
        single.push(a / d);
        multi.push(m / d);
        direct_rates.push(d);
    }
    let (direct_mid, _, _) = median(direct_rates);
    println!("direct rusqlite: median {:.0} rows/s", direct_mid);
    report(
        "3. rows/s, audit layer 1 thread / direct rusqlite",
        ">= 0.7",
        single,
    );
    report(
        "4. rows/s, audit layer 4 threads / direct rusqlite",
        "no collapse",
        multi,
    );
}
