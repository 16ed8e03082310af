//! The performance targets as ratios, with the two sides of each ratio measured in
//! alternation — A, B, A, B, … — so that the load other tenants put on this shared machine
//! falls on both sides alike. Criterion (`caller`, `throughput`) measures one side after the
//! other, and on a shared 2-core machine its ratios drift with the neighbours' load.
//!
//! Prints, for each target, the median of the per-round ratios and their range.
//! Run: `cargo bench --bench interleaved`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use tracing::{Dispatch, info_span};
use tracing_subscriber::prelude::*;

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

fn step_span(i: u64) {
    let span = info_span!(
        "step",
        module = "laserlogic",
        input_summary = "premises about the quarterly filing",
        confidence = 0.87,
        tokens_used = i,
        attempt = 1_u64,
    );
    let _entered = span.enter();
    black_box(&span);
}

fn other_span(i: u64) {
    let span = info_span!("http_request", method = "GET", n = i);
    let _entered = span.enter();
    black_box(&span);
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

fn session(i: u64) {
    info_span!("session", profile = "bench", input = "a question").in_scope(|| {
        for k in 0..10_u64 {
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

fn timestamp(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// Rows per second through the layer, `threads` producers, until flush returns.
fn layer_rows_per_sec(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    sessions: u64,
    threads: u64,
) -> f64 {
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
    (sessions * 11) as f64 / start.elapsed().as_secs_f64()
}

/// Rows per second straight into the same schema: cached statements, 1,000 rows per
/// transaction, WAL, synchronous=NORMAL.
fn direct_rows_per_sec(conn: &mut rusqlite::Connection, sessions: u64) -> f64 {
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
        for k in 0..10_i64 {
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
                k,
                format!("{{\"n\":{i}}}"),
            ))
            .unwrap();
        }
        in_tx += 11;
        if in_tx >= 1_000 {
            tx.commit().unwrap();
            tx = conn.transaction().unwrap();
            in_tx = 0;
        }
    }
    tx.commit().unwrap();
    (sessions * 11) as f64 / start.elapsed().as_secs_f64()
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
    let (mut step, mut other) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let b = per_span(&bare, step_span, true, &nothing);
        let a = per_span(&dispatch, step_span, true, &flush);
        step.push(a / b);
        let b = per_span(&bare, other_span, false, &nothing);
        let a = per_span(&dispatch, other_span, false, &flush);
        other.push(a / b);
    }
    report("1. step span, audit layer / bare registry", "<= 2.0", step);
    report(
        "2. other span, audit layer / bare registry",
        "<= 1.1",
        other,
    );

    // Targets 3 and 4: rows per second against direct rusqlite.
    let (one, one_guard) = audited("one.db");
    let (four, four_guard) = audited("four.db");
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
