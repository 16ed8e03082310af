//! Rows committed per second, end to end, for the two record shapes users run: text-free
//! steps, and realistic ones (steps with 20–200-character summaries, module, confidence and
//! tokens, a decision every third step, sessions with an input). Prints, per shape and
//! producer count, the median over rounds of rows per wall-clock second (what users see)
//! and of rows per CPU second of the whole process (what the audit trail costs the
//! machine; less at the mercy of the neighbours' load).
//!
//! Beside them, two baselines measured in the same rounds: direct rusqlite writing the
//! realistic rows (ids, times and hashes made as it goes), and the storage limit — the
//! rows of each shape made before the clock, then one INSERT each, 1,000 a transaction:
//! what SQLite alone does with them; and the same with each row's chain entry inserted
//! after it, the floor for a writer that chains every row.
//!
//! Self-contained (public API only; the shapes in `support/shapes.rs`), so that the same
//! files build against an earlier commit and the two builds can be run in alternation on one machine:
//! `benches/compare_commits.sh <commit>` does that. Alone: `cargo bench --bench rows`.

use std::time::{Duration, Instant};

use shapes::{
    direct_prepared, direct_prepared_chained, direct_realistic, prepare_realistic,
    prepare_text_free, realistic, text_free,
};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "support/process_cpu.rs"]
mod process_cpu;
#[path = "support/shapes.rs"]
mod shapes;

use process_cpu::cpu_seconds;

/// Rounds per run, unless `--rounds N` says otherwise.
const ROUNDS: usize = 7;
const SESSIONS: u64 = 1_500;

/// A case: its name, the session shape it produces, and how many producer threads.
type Case = (&'static str, fn(u64) -> u64, u64);

/// Rows per wall-clock second and per CPU second of one run of `shape`.
fn produce(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    shape: fn(u64) -> u64,
    threads: u64,
) -> (f64, f64) {
    let cpu = cpu_seconds();
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
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu).max(0.01);
    (rows as f64 / wall, rows as f64 / cpu)
}

/// Rows of the file at `path` that the search index has not caught up with.
fn unindexed(path: &std::path::Path) -> i64 {
    let reader = rusqlite::Connection::open(path).unwrap();
    reader
        .query_row(
            "SELECT (SELECT count(*) FROM steps WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'steps'))
                  + (SELECT count(*) FROM decisions WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'decisions'))",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

/// Waits until the writer of `path` has indexed every row for search. The writer indexes
/// when it has been idle for a while, so without this wait one case's indexing would run
/// while the next case (or the baselines) is timed, on the same two cores.
fn wait_for_the_index(path: &std::path::Path) {
    while unindexed(path) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Realistic sessions without a pause, so that the writer is never idle: it indexes for
/// search after a commit whenever 65,536 rows wait. Prints rows/s until `flush()` returns,
/// and how long after that the index has caught up; returns rows/s until `flush()` and
/// until the index has caught up.
fn sustained(dir: &tempfile::TempDir) -> (f64, f64) {
    let path = dir.path().join("sustained.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let start = Instant::now();
    let rows: u64 =
        tracing::dispatcher::with_default(&dispatch, || (0..20_000).map(realistic).sum());
    guard.flush().unwrap();
    let written = start.elapsed();
    let at_flush = unindexed(&path);
    wait_for_the_index(&path);
    println!(
        "sustained, realistic, 1 thread: {rows} rows, {:.0} rows/s until flush(); {at_flush} rows \
         waiting for the index then, all indexed {:.2} s later",
        rows as f64 / written.as_secs_f64(),
        (start.elapsed() - written).as_secs_f64()
    );
    (
        rows as f64 / written.as_secs_f64(),
        rows as f64 / start.elapsed().as_secs_f64(),
    )
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
    let mut per_cpu = vec![Vec::new(); cases.len()];
    // The baseline for realistic records: the same rows straight into the schema, with no
    // full-text index and no chain, measured in the same rounds.
    let direct_path = dir.path().join("direct.db");
    drop(
        reasonkit_audit::AuditLayer::builder()
            .path(&direct_path)
            .build()
            .unwrap(),
    );
    let mut direct = rusqlite::Connection::open(&direct_path).unwrap();
    direct.pragma_update(None, "journal_mode", "WAL").unwrap();
    direct.pragma_update(None, "synchronous", "NORMAL").unwrap();
    direct.pragma_update(None, "foreign_keys", "ON").unwrap();
    direct
        .execute_batch(
            "DROP TRIGGER IF EXISTS steps_fts_insert; DROP TRIGGER IF EXISTS decisions_fts_insert;",
        )
        .unwrap();
    let (mut direct_rates, mut versus) = (Vec::new(), Vec::new());
    // The storage limit: the same rows made before the clock, one INSERT each (realistic,
    // then text-free), in the same rounds.
    let (mut limit_realistic, mut limit_text_free) = (Vec::new(), Vec::new());
    let (mut versus_limit_realistic, mut versus_limit_text_free) = (Vec::new(), Vec::new());
    // The same with each row's chain entry inserted too: where the floor is for a writer
    // that chains every row.
    let (mut chained_realistic, mut chained_text_free) = (Vec::new(), Vec::new());
    let (mut versus_chained_realistic, mut versus_chained_text_free) = (Vec::new(), Vec::new());
    let mut next = 0;
    for _ in 0..rounds {
        for (n, (_, shape, threads)) in cases.iter().enumerate() {
            let (wall, cpu) = produce(&audited[n].0, &audited[n].1, *shape, *threads);
            rates[n].push(wall);
            per_cpu[n].push(cpu);
            wait_for_the_index(&dir.path().join(format!("{n}.db")));
        }
        let start = Instant::now();
        let rows = direct_realistic(&mut direct, next, SESSIONS);
        next += SESSIONS;
        let d = rows as f64 / start.elapsed().as_secs_f64();
        direct_rates.push(d);
        versus.push(rates[1].last().copied().unwrap_or(0.0) / d);
        for (prepare, limits, ratios, case, chained) in [
            (
                prepare_realistic as fn(u64, u64) -> Vec<shapes::SessionRows>,
                &mut limit_realistic,
                &mut versus_limit_realistic,
                1,
                false,
            ),
            (
                prepare_text_free,
                &mut limit_text_free,
                &mut versus_limit_text_free,
                0,
                false,
            ),
            (
                prepare_realistic,
                &mut chained_realistic,
                &mut versus_chained_realistic,
                1,
                true,
            ),
            (
                prepare_text_free,
                &mut chained_text_free,
                &mut versus_chained_text_free,
                0,
                true,
            ),
        ] {
            let prepared = prepare(next, SESSIONS);
            next += SESSIONS;
            let start = Instant::now();
            let rows = if chained {
                direct_prepared_chained(&mut direct, &prepared)
            } else {
                direct_prepared(&mut direct, &prepared)
            };
            let limit = rows as f64 / start.elapsed().as_secs_f64();
            limits.push(limit);
            ratios.push(rates[case].last().copied().unwrap_or(0.0) / limit);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (d, _, _) = median(direct_rates);
    let (m, lo, hi) = median(versus);
    println!(
        "direct rusqlite, realistic rows, no index, no chain: median {d:.0} rows/s; \
         realistic 1 thread / direct: median ratio {m:.2} (range {lo:.2}-{hi:.2})"
    );
    let realistic_limit = median(limit_realistic.clone()).0;
    let limit = (
        "storage limit",
        "made before the clock, one INSERT each, 1,000 a transaction",
    );
    let chained = (
        "limit with chain entries",
        "as for the storage limit, and one audit_chain INSERT per row",
    );
    for ((what, how), name, limits, ratios) in [
        (limit, "realistic", limit_realistic, versus_limit_realistic),
        (limit, "text-free", limit_text_free, versus_limit_text_free),
        (
            chained,
            "realistic",
            chained_realistic,
            versus_chained_realistic,
        ),
        (
            chained,
            "text-free",
            chained_text_free,
            versus_chained_text_free,
        ),
    ] {
        let (l, _, _) = median(limits);
        let (m, lo, hi) = median(ratios);
        println!(
            "{what}, {name} rows {how}: median {l:.0} rows/s; {name} 1 thread / {what}: median \
             ratio {m:.2} (range {lo:.2}-{hi:.2})"
        );
    }
    if args.iter().any(|a| a == "--sustained") {
        let (flushed, indexed) = sustained(&dir);
        println!(
            "sustained / realistic limit: {:.2} until flush(), {:.2} until indexed for search",
            flushed / realistic_limit,
            indexed / realistic_limit
        );
    }
    for (n, (name, _, _)) in cases.iter().enumerate() {
        let mut r = rates[n].clone();
        r.sort_by(f64::total_cmp);
        let mut c = per_cpu[n].clone();
        c.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.0} rows/s (range {:.0}–{:.0} over {rounds} rounds), {:.0} rows per CPU second",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1],
            c[c.len() / 2]
        );
    }
}
