//! Rows per second into PostgreSQL: the layer (realistic records, chain on) against a
//! direct binary COPY of the same rows into the same schema, measured in alternation in one
//! run, on the server the PG* variables name (`pg_virtualenv cargo bench --bench postgres`).
//! Each side writes into a database of its own, created for the run and dropped after it.
//! The layer runs with 1 and 4 producer threads in this process, and as 4 producer
//! processes of its own (this binary again, `--producer`), each with its own layer and
//! connection, timed from their start to their exit.
//!
//! Direct COPY: per transaction of ~1,000 rows, one `COPY … FROM STDIN (FORMAT binary)` per
//! table (sessions, steps, decisions, in that order for the foreign keys), the rows made as
//! `shapes::realistic` makes them (UUIDv7 ids, an input hash, 20–200-character summaries, a
//! decision every third step). It writes no chain and no batch record.
//!
//! Both sides connect without TLS, so the ratio is the layer's own cost: the direct COPY
//! connects with `NoTls`, and the layer with `sslmode=disable` (the PG* variables' default,
//! `prefer`, would give the layer TLS against a server that offers it). What TLS adds is a
//! row of its own: the layer with `sslmode=require`, when the server offers TLS.

use std::time::{Instant, SystemTime};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};
use shapes::{realistic, summary};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "../tests/support/pg_env.rs"]
mod pg_env;
#[path = "support/process_cpu.rs"]
mod process_cpu;
#[path = "support/shapes.rs"]
mod shapes;

use pg_env::{admin, config};
use process_cpu::{cpu_seconds, cpu_seconds_of};

const ROUNDS: usize = 7;
const SESSIONS: u64 = 2_000;
/// Sessions per transaction of the direct COPY: 66 of 15 rows, 990 rows, as the issue's
/// baseline (the research measured 1,100 rows per commit).
const DIRECT_PER_TX: u64 = 66;
/// The same with the layer's PostgreSQL batch (4,096 records): 273 sessions, 4,095 rows.
const DIRECT_PER_BATCH: u64 = 273;

/// A direct binary COPY of `sessions` realistic sessions, `per_tx` sessions per transaction.
fn direct_copy(client: &mut Client, first: u64, sessions: u64, per_tx: u64) -> u64 {
    use sha2::Digest;
    let id = || uuid::Uuid::now_v7().hyphenated().to_string();
    let mut rows = 0;
    let mut i = first;
    while i < first + sessions {
        let end = (i + per_tx).min(first + sessions);
        let mut s_rows = Vec::new();
        let mut st_rows = Vec::new();
        let mut d_rows = Vec::new();
        for n in i..end {
            let session = id();
            let input = format!("question {n}: {}", summary(n));
            let hash: String = sha2::Sha256::digest(input.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            s_rows.push((session.clone(), SystemTime::now(), hash));
            for k in 0..10u64 {
                let step = id();
                st_rows.push((
                    session.clone(),
                    step.clone(),
                    ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
                    SystemTime::now(),
                    summary(n * 10 + k),
                    summary(n * 10 + k + 7),
                    0.55 + (k as f64) / 25.0,
                    (120 + k) as i64,
                ));
                if k % 3 == 0 {
                    d_rows.push((
                        session.clone(),
                        id(),
                        step,
                        summary(n + k),
                        SystemTime::now(),
                    ));
                }
            }
        }
        let mut tx = client.transaction().unwrap();
        let empty = serde_json::json!({});
        let sink = tx
            .copy_in("COPY sessions (id, started_at, ended_at, profile, input_hash, status, attributes, pid, host) FROM STDIN (FORMAT binary)")
            .unwrap();
        let mut w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::JSONB,
                Type::INT8,
                Type::TEXT,
            ],
        );
        for (sid, at, hash) in &s_rows {
            w.write(&[
                sid,
                at,
                at,
                &"balanced",
                hash,
                &"completed",
                &empty,
                &1_i64,
                &"host",
            ])
            .unwrap();
        }
        w.finish().unwrap();
        let sink = tx
            .copy_in("COPY steps (session_id, id, module, started_at, ended_at, input_summary, output_summary, confidence, tokens_used, attributes) FROM STDIN (FORMAT binary)")
            .unwrap();
        let mut w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::TEXT,
                Type::FLOAT8,
                Type::INT8,
                Type::JSONB,
            ],
        );
        for (sid, id, module, at, a, b, c, t) in &st_rows {
            w.write(&[sid, id, module, at, at, a, b, c, t, &empty])
                .unwrap();
        }
        w.finish().unwrap();
        let sink = tx
            .copy_in("COPY decisions (session_id, id, step_id, decision_type, options_considered, chosen_option, rationale, decided_at, attributes) FROM STDIN (FORMAT binary)")
            .unwrap();
        let mut w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::JSONB,
            ],
        );
        for (sid, id, step, why, at) in &d_rows {
            w.write(&[
                sid,
                id,
                step,
                &"branch",
                &"[\"deepen\", \"stop\"]",
                &"deepen",
                why,
                at,
                &empty,
            ])
            .unwrap();
        }
        w.finish().unwrap();
        tx.commit().unwrap();
        rows += (s_rows.len() + st_rows.len() + d_rows.len()) as u64;
        i = end;
    }
    rows
}

/// Rows per second through the layer: `threads` producers, until `flush()` returns.
fn through_layer(
    dispatch: &Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    first: u64,
    threads: u64,
) -> f64 {
    let start = Instant::now();
    let rows: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let dispatch = dispatch.clone();
                scope.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        (first + t..first + SESSIONS)
                            .step_by(threads as usize)
                            .map(realistic)
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

/// The `--producer DB FIRST COUNT` mode: one process writing `COUNT` realistic sessions
/// from `FIRST` through a layer of its own into database `DB`, as one of several hosts'
/// processes would, flushed before it exits.
fn producer(args: &[String]) {
    let (Some(name), Some(first), Some(count)) = (
        args.first(),
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        panic!("--producer DB FIRST COUNT");
    };
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .postgres(format!("dbname={name} sslmode=disable"))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        (first..first + count).map(realistic).sum::<u64>()
    });
    guard.shutdown().unwrap();
}

/// Rows per second from `processes` producer processes writing `SESSIONS` sessions
/// between them into database `name`, from their start until the last has exited.
fn through_processes(name: &str, first: u64, processes: u64) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let per = SESSIONS / processes;
    let children: Vec<_> = (0..processes)
        .map(|p| {
            std::process::Command::new(&exe)
                .args(["--producer", name])
                .arg((first + p * per).to_string())
                .arg(per.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a producer failed");
    }
    (per * processes * 15) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--producer") {
        return producer(&args[at + 1..]);
    }
    if std::env::var_os("PGHOST").is_none() && std::env::var_os("PGPORT").is_none() {
        eprintln!("skipped: no PostgreSQL server (run under pg_virtualenv)");
        return;
    }
    let run = std::process::id();
    let names: Vec<String> = ["direct", "one", "four", "procs", "tls", "direct_batch"]
        .iter()
        .map(|n| format!("rk_bench_{n}_{run}"))
        .collect();
    let mut admin = admin();
    for name in &names {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    let layer_with = |name: &str, sslmode: &str| {
        let (layer, guard) = reasonkit_audit::AuditLayer::builder()
            .postgres(format!("dbname={name} sslmode={sslmode}"))
            .build()?;
        Ok::<_, reasonkit_audit::Error>((
            Dispatch::new(tracing_subscriber::registry().with(layer)),
            guard,
        ))
    };
    let layer = |name: &str| layer_with(name, "disable").unwrap();
    // The direct side gets the same schema, created by the layer; so do the processes'.
    drop(layer(&names[0]));
    drop(layer(&names[3]));
    drop(layer(&names[5]));
    let mut direct = config().dbname(&names[0]).connect(NoTls).unwrap();
    let mut direct_batch = config().dbname(&names[5]).connect(NoTls).unwrap();
    let (one, one_guard) = layer(&names[1]);
    let (four, four_guard) = layer(&names[2]);
    let tls = match layer_with(&names[4], "require") {
        Ok(tls) => Some(tls),
        Err(e) => {
            println!("TLS: not measured ({e})");
            None
        }
    };
    let (mut d, mut o, mut f, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut t, mut db) = (Vec::new(), Vec::new());
    // This process's CPU seconds per wall second in each phase: how much of the machine the
    // client side takes (the rest of a busy phase is the server's).
    // The same for the server's processes, when it runs on this machine (0 otherwise).
    let (mut d_cpu, mut o_cpu) = (Vec::new(), Vec::new());
    let (mut d_server, mut o_server) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS as u64 {
        let first = round * SESSIONS;
        let (start, cpu, server) = (Instant::now(), cpu_seconds(), cpu_seconds_of("postgres"));
        let rows = direct_copy(&mut direct, first, SESSIONS, DIRECT_PER_TX);
        let wall = start.elapsed().as_secs_f64();
        d.push(rows as f64 / wall);
        d_cpu.push((cpu_seconds() - cpu) / wall);
        d_server.push((cpu_seconds_of("postgres") - server) / wall);
        let (start, cpu, server) = (Instant::now(), cpu_seconds(), cpu_seconds_of("postgres"));
        o.push(through_layer(&one, &one_guard, first, 1));
        let wall = start.elapsed().as_secs_f64();
        o_cpu.push((cpu_seconds() - cpu) / wall);
        o_server.push((cpu_seconds_of("postgres") - server) / wall);
        f.push(through_layer(&four, &four_guard, first, 4));
        p.push(through_processes(&names[3], first, 4));
        if let Some((dispatch, guard)) = &tls {
            t.push(through_layer(dispatch, guard, first, 1));
        }
        let start = Instant::now();
        let rows = direct_copy(&mut direct_batch, first, SESSIONS, DIRECT_PER_BATCH);
        db.push(rows as f64 / start.elapsed().as_secs_f64());
    }
    drop((one_guard, four_guard, direct, direct_batch, tls));
    // What the search index costs, apart from the writes: `reasonkit-audit index` over
    // everything the 1-thread layer wrote.
    let start = Instant::now();
    let entries = reasonkit_audit::postgres::search::catch_up(&format!(
        "dbname={} sslmode=disable",
        names[1]
    ))
    .unwrap();
    let took = start.elapsed().as_secs_f64();
    println!(
        "search index (reasonkit-audit index) over the 1-thread layer's database: {entries} chain entries in {took:.2} s, {:.0} entries/s",
        entries as f64 / took
    );
    for name in &names {
        let _ = admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"));
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let ratio_to =
        |a: &[f64], base: &[f64]| a.iter().zip(base).map(|(x, y)| x / y).collect::<Vec<_>>();
    let ratio = |a: &[f64]| ratio_to(a, &d);
    let (dm, dl, dh) = median(&d);
    println!(
        "direct binary COPY, realistic rows, 990 per transaction: median {dm:.0} rows/s (range {dl:.0}-{dh:.0} over {ROUNDS} rounds of {} rows)",
        SESSIONS * 15
    );
    let (bm, bl, bh) = median(&db);
    let (rm, rl, rh) = median(&ratio_to(&o, &db));
    println!(
        "direct binary COPY, 4,095 rows per transaction (the layer's batch): median {bm:.0} rows/s (range {bl:.0}-{bh:.0}); layer, 1 thread / this: median ratio {rm:.2} (range {rl:.2}-{rh:.2})"
    );
    println!(
        "CPU seconds per wall second (of {} cores), client / local server: direct COPY {:.2} / {:.2}, layer 1 thread {:.2} / {:.2}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        median(&d_cpu).0,
        median(&d_server).0,
        median(&o_cpu).0,
        median(&o_server).0
    );
    for (name, rates) in [
        ("layer, 1 thread", &o),
        ("layer, 4 threads", &f),
        ("layers of 4 processes", &p),
        ("layer, 1 thread, over TLS", &t),
    ] {
        if rates.is_empty() {
            continue;
        }
        let (m, l, h) = median(rates);
        let (rm, rl, rh) = median(&ratio(rates));
        println!(
            "{name}: median {m:.0} rows/s (range {l:.0}-{h:.0}); / direct COPY: median ratio {rm:.2} (range {rl:.2}-{rh:.2})"
        );
    }
}
