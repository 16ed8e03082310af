//! The web UI under a store of a million rows: how long the sessions page and a session of
//! 1,000 steps take to render (p50, p95 over sequential requests), and 50 concurrent
//! clients for 10 s on 127.0.0.1 (errors, p99). A benchmark, not a test: it prints.
//!
//! `cargo bench -p reasonkit-audit-cli --bench ui` (ROWS=… to change the store's size).
//! With PGHOST/PGPORT set (e.g. under `pg_virtualenv`), the same on PostgreSQL, the file
//! imported into a fresh database.

#[path = "../tests/common/server.rs"]
#[allow(dead_code)]
mod server;
#[path = "../../benches/support/shapes.rs"]
mod shapes;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use server::{Ui, get};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_reasonkit-audit");

/// Writes realistic sessions (15 rows each: steps with summaries, decisions, inputs) up
/// to `rows`, and one session of 1,000 steps; returns that session's id.
fn write_store(db: &Path, rows: u64) -> String {
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(db)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        let mut written = 0;
        let mut i = 0;
        while written < rows {
            written += shapes::realistic(i);
            i += 1;
        }
        info_span!("session", id = "big-1000", profile = "deep").in_scope(|| {
            for k in 0..1000u64 {
                info_span!("step", module = "gigathink", confidence = 0.8, tokens_used = k,
                    output_summary = %shapes::summary(k))
                .in_scope(|| {});
            }
        });
    });
    guard.shutdown().unwrap();
    "big-1000".into()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Sequential requests to `target`: p50 and p95.
fn sequential(ui: &Ui, target: &str, n: usize) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let (code, _, _) = get(&ui.addr(), target, &[]);
            assert_eq!(code, 200, "{target}");
            start.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

/// `clients` threads requesting the sessions page and sessions for `seconds`.
fn concurrent(ui: &Ui, ids: &[String], clients: usize, seconds: u64) -> (usize, usize, Duration) {
    let errors = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let addr = ui.addr();
            let ids = ids.to_vec();
            let errors = errors.clone();
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut k = c;
                while Instant::now() < until {
                    let target = if k % 2 == 0 {
                        format!("/?page={}", k % 5)
                    } else {
                        format!("/session?id={}", ids[k % ids.len()])
                    };
                    let start = Instant::now();
                    let (code, _, _) = get(&addr, &target, &[]);
                    times.push(start.elapsed());
                    if code != 200 {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    k += 7;
                }
                times
            })
        })
        .collect();
    let mut times: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    times.sort();
    (
        times.len(),
        errors.load(Ordering::Relaxed),
        percentile(&times, 0.99),
    )
}

fn measure(store: &Path, label: &str) {
    let ui = Ui::start(store, &[]);
    // The first verification of the chain runs at start; wait for it, as a user's later
    // visits would.
    let started = Instant::now();
    while get(&ui.addr(), "/session?id=big-1000", &[])
        .2
        .contains("verdict is not in yet")
        && started.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "{label}: first verification done after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (_, _, list) = get(&ui.addr(), "/", &[]);
    let ids: Vec<String> = list
        .split("data-session-id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect();
    let (p50, p95) = sequential(&ui, "/", 100);
    println!(
        "{label}: sessions page        p50 {}, p95 {}",
        ms(p50),
        ms(p95)
    );
    let (p50, p95) = sequential(&ui, "/session?id=big-1000", 50);
    println!(
        "{label}: session, 1,000 steps p50 {}, p95 {}",
        ms(p50),
        ms(p95)
    );
    let (requests, errors, p99) = concurrent(&ui, &ids, 50, 10);
    println!(
        "{label}: 50 clients for 10 s  {requests} requests, {errors} errors, p99 {}",
        ms(p99)
    );
}

fn main() {
    let rows: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let start = Instant::now();
    write_store(&db, rows);
    println!(
        "wrote {rows} rows and a session of 1,000 steps in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    measure(&db, "SQLite");

    if std::env::var_os("PGHOST").is_some() || std::env::var_os("PGPORT").is_some() {
        let name = format!("rk_ui_bench_{}", std::process::id());
        assert!(
            Command::new("createdb")
                .arg(&name)
                .status()
                .unwrap()
                .success()
        );
        let url = format!("postgres:///{name}");
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(["--db", &url, "import"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "imported into PostgreSQL in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        measure(Path::new(&url), "PostgreSQL");
        let _ = Command::new("dropdb").args(["--force", &name]).status();
    }
}
