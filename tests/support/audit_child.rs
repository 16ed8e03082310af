//! A child process for the resilience tests (not an example for users): it writes an
//! audit database the way an application would, then ends the way a test asks — a panic
//! out of `main`, `std::process::exit`, an endless run to be killed, a fault to recover
//! from. Built by `cargo test` as the example `audit_child`.
//!
//! Usage: audit_child MODE PATH [N]

use std::io::Write;
use std::time::Duration;

use reasonkit_audit::AuditLayer;
use tracing::info_span;
use tracing_subscriber::prelude::*;

fn session(i: u64, steps: u64) {
    info_span!("session", id = format!("s{i:07}"), n = i).in_scope(|| {
        for k in 0..steps {
            let premises = format!("premises of session {i}");
            info_span!("step", module = "child", k, confidence = 0.5, input_summary = %premises)
                .in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "pick", chosen_option = "a");
                });
        }
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    let path = &args[2];
    let n: u64 = args.get(3).map_or(0, |a| a.parse().expect("N"));
    // A postgres:// URL is not given to the builder: it reaches the layer through
    // REASONKIT_AUDIT_DB, as it would reach an application that never heard of it.
    let builder = if path.starts_with("postgres://") || path.starts_with("postgresql://") {
        AuditLayer::builder()
    } else {
        AuditLayer::builder().path(path)
    };
    let builder = match mode {
        "heavy" => builder.flush_interval(Duration::from_millis(20)),
        "fsize" => builder.busy_timeout(Duration::from_millis(100)),
        _ => builder,
    };
    let (layer, guard) = builder.build().unwrap_or_else(|e| {
        say(&format!("build error: {e}"));
        std::process::exit(2);
    });
    tracing_subscriber::registry().with(layer).init();

    match mode {
        // Everything sent before a panic unwinds out of main is committed by the guard's drop.
        "panic" => {
            (0..n).for_each(|i| session(i, 1));
            panic!("deliberate panic with the guard alive");
        }
        // process::exit runs no destructors: the documented way is to flush first.
        "exit" => {
            (0..n).for_each(|i| session(i, 1));
            guard.flush().expect("flush");
            std::process::exit(3);
        }
        // Writes until killed, saying after each flush how many sessions are committed. A
        // flush that fails (a PostgreSQL connection lost, say) is asked again until the
        // writer's retries have committed everything.
        "heavy" => {
            let open = info_span!("session", id = "open-at-crash");
            let open_step = info_span!(parent: &open, "step", module = "never-closed");
            for i in 0.. {
                session(i, 5);
                if i % 25 == 24 {
                    while guard.flush().is_err() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    say(&format!("committed {}", i + 1));
                }
            }
            drop((open_step, open));
        }
        // One of several processes writing the same file at once.
        "multi" => {
            (0..n).for_each(|i| session(i + std::process::id() as u64 * 1_000_000, 1));
            guard.flush().expect("flush");
            let stats = guard.stats();
            guard.shutdown().expect("shutdown");
            say(&format!(
                "done {}",
                stats.dropped_records + stats.unwritten_at_shutdown
            ));
        }
        // Started with a low soft RLIMIT_FSIZE (and SIGXFSZ ignored): writes until a commit
        // fails with an I/O error, then lifts the limit and expects everything committed.
        "fsize" => {
            let mut i = 0;
            while guard.stats().write_errors == 0 {
                session(i, 3);
                i += 1;
                let _ = guard.flush();
                assert!(i < 100_000, "never hit the file size limit");
            }
            let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize);
            rustix::process::setrlimit(
                rustix::process::Resource::Fsize,
                rustix::process::Rlimit {
                    current: limit.maximum,
                    maximum: limit.maximum,
                },
            )
            .expect("raise RLIMIT_FSIZE");
            // The writer retries with back-off; flush until it reports success.
            let mut flushed = guard.flush();
            for _ in 0..50 {
                if flushed.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                flushed = guard.flush();
            }
            flushed.expect("records committed once the limit is lifted");
            say(&format!(
                "sessions {i} write_errors {}",
                guard.stats().write_errors
            ));
        }
        // Only opens the database (build() failing exits 2 above).
        "build" => say("built"),
        other => panic!("unknown mode {other}"),
    }
}
