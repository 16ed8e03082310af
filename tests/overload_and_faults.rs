//! Overload (a full queue, under both policies), faults while running (disk full, a lock
//! held too long, an I/O error) and several processes writing one file: every record ends
//! up in the database or counted, nothing panics, and no error reaches instrumented code.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Audit, assert_consistent, child, sqlite3};
use reasonkit_audit::OverflowPolicy;
use tracing::info_span;

#[test]
fn a_burst_of_a_million_steps_from_four_threads_is_all_in_the_database_or_counted() {
    let audit = Audit::with(|b| b.overflow(OverflowPolicy::Drop).queue_capacity(1_024));
    let threads = 4;
    let per_thread = 250_000;
    // The sessions open on a quiet queue, so every step has its session row to point to.
    let sessions: Vec<_> = tracing::dispatcher::with_default(&audit.dispatch, || {
        (0..threads)
            .map(|t| info_span!("session", id = format!("burst-{t}")))
            .collect()
    });
    audit.guard.flush().unwrap();
    let handles: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|session| {
            let dispatch = audit.dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for k in 0..per_thread {
                        info_span!(parent: &session, "step", module = "burst", k).in_scope(|| {});
                    }
                })
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    drop(sessions);
    audit.guard.flush().unwrap();

    // Each span sends two records, its opening and its close. Each opening that arrived is
    // a row; each close that arrived set ended_at or is counted as a close without opening.
    let sent = 2 * (threads + threads * per_thread);
    let opened_rows: u64 = audit
        .one("SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM steps)")
        .parse()
        .unwrap();
    let closed_rows: u64 = audit
        .one("SELECT (SELECT count(ended_at) FROM sessions) + (SELECT count(ended_at) FROM steps)")
        .parse()
        .unwrap();
    let stats = audit.guard.stats();
    assert!(
        stats.dropped_records > 0,
        "the burst should overflow a 1,024-record queue"
    );
    assert_eq!(
        opened_rows + closed_rows + stats.closes_without_open + stats.dropped_records,
        sent,
        "{stats:?}"
    );
    assert_eq!(stats.write_errors, 0);
    // The database itself says how many were dropped.
    assert_eq!(
        audit.one("SELECT sum(count) FROM audit_health WHERE kind = 'dropped_records'"),
        stats.dropped_records.to_string()
    );
    // ... and every one of those health rows is chained, so a drop cannot be hidden.
    assert_eq!(
        audit.one(
            "SELECT count(*) FROM audit_health h WHERE h.kind = 'dropped_records' AND NOT EXISTS \
             (SELECT 1 FROM audit_chain c WHERE c.table_name = 'audit_health' \
              AND c.row_id = CAST(h.id AS TEXT))"
        ),
        "0"
    );
    assert_consistent(&audit.path);
}

#[test]
fn under_the_default_block_policy_a_tiny_queue_loses_nothing() {
    let audit = Audit::with(|b| b.queue_capacity(1));
    audit.run(|| {
        info_span!("session").in_scope(|| {
            for k in 0..5_000 {
                info_span!("step", module = "m", k).in_scope(|| {});
            }
        })
    });
    assert_eq!(audit.one("SELECT count(ended_at) FROM steps"), "5000");
    assert_eq!(audit.guard.stats(), reasonkit_audit::AuditStats::default());
}

#[test]
fn a_full_disk_keeps_the_records_until_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    // A migrated file with ballast that an operator can later delete to free space.
    drop(
        reasonkit_audit::AuditLayer::builder()
            .path(&path)
            .build()
            .unwrap(),
    );
    sqlite3(
        &path,
        "CREATE TABLE ballast (b BLOB); INSERT INTO ballast SELECT zeroblob(4000) FROM generate_series(1, 100);",
    );
    let size = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(dir.path().join("small.db-wal")).map_or(0, |m| m.len());
    let audit_size = size + 64 * 1024;
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .max_db_size(audit_size)
        .busy_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        layer,
    ));
    let mut written = 0;
    tracing::dispatcher::with_default(&dispatch, || {
        while guard.stats().write_errors == 0 {
            info_span!("session", n = written, filler = "x".repeat(500)).in_scope(|| {});
            written += 1;
            if written % 20 == 0 {
                let _ = guard.flush();
            }
            assert!(written < 10_000, "never filled the capped database");
        }
    });
    // Full: a flush says so, and the records are kept, not lost.
    let error = guard.flush().unwrap_err();
    assert!(
        matches!(error, reasonkit_audit::Error::Write { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("database or disk is full"),
        "{error}"
    );
    assert!(
        sqlite3(&path, "SELECT count(*) FROM sessions")
            .trim()
            .parse::<u64>()
            .unwrap()
            < written
    );
    // Another process frees space; the writer's retry commits everything it kept.
    sqlite3(&path, "DELETE FROM ballast");
    assert!(common::eventually(Duration::from_secs(30), || guard
        .flush()
        .is_ok()));
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM sessions").trim(),
        written.to_string()
    );
    assert!(
        sqlite3(
            &path,
            "SELECT detail FROM audit_health WHERE kind = 'write_errors'"
        )
        .contains("full"),
        "the health table records the fault once it can write again"
    );
    assert_consistent(&path);
}

#[test]
fn a_lock_held_by_another_process_past_the_busy_timeout_delays_but_loses_nothing() {
    let audit = Audit::with(|b| b.busy_timeout(Duration::from_millis(100)));
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN IMMEDIATE')\n\
                  print('locked', flush=True)\n\
                  sys.stdin.readline()\n\
                  c.execute('COMMIT')\n";
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&audit.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut said = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "locked");

    tracing::dispatcher::with_default(&audit.dispatch, || {
        for i in 0..100 {
            info_span!("session", n = i).in_scope(|| {});
        }
    });
    let error = audit.guard.flush().unwrap_err();
    assert!(error.to_string().contains("locked"), "{error}");

    writeln!(holder.stdin.take().unwrap()).unwrap();
    assert!(holder.wait().unwrap().success());
    assert!(common::eventually(Duration::from_secs(30), || audit
        .guard
        .flush()
        .is_ok()));
    assert_eq!(audit.count("sessions"), 100);
    assert!(audit.guard.stats().write_errors > 0);
    assert_eq!(audit.one("SELECT count(*) > 0 FROM audit_health WHERE kind = 'write_errors' AND detail LIKE '%locked%'"), "1");
}

#[cfg(unix)]
#[test]
fn an_io_error_is_retried_and_the_records_committed_once_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("io.db");
    // The child starts with a 256 KiB soft file-size limit and SIGXFSZ ignored, so writes
    // past it fail with EFBIG; it then lifts the limit itself.
    let child_binary = common::example_binary("audit_child");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -S -f 256; exec "$0" fsize "$1""#)
        .arg(&child_binary)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("I/O error"),
        "the fault is reported on stderr:\n{stderr}"
    );
    let sessions: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM sessions").trim(),
        sessions.to_string()
    );
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM steps").trim(),
        (sessions * 3).to_string()
    );
    assert!(
        sqlite3(
            &path,
            "SELECT detail FROM audit_health WHERE kind = 'write_errors'"
        )
        .contains("I/O error")
    );
    assert_consistent(&path);
}

#[test]
fn four_processes_writing_one_file_at_once_lose_nothing_and_see_no_busy_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let children: Vec<_> = (0..4)
        .map(|_| {
            child("multi", &path, 5_000)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for process in children {
        let out = process.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "done 0");
    }
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*), count(DISTINCT pid), sum(status = 'completed') FROM sessions"
        )
        .trim(),
        "20000|4|20000"
    );
    assert_eq!(
        sqlite3(&path, "SELECT count(*), count(ended_at) FROM steps").trim(),
        "20000|20000"
    );
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM decisions").trim(),
        "20000"
    );
    // One chain for all four: dense (checked by verify), each row version once.
    assert_consistent(&path);
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) = max(seq), count(DISTINCT table_name || row_id) >= 60000 FROM audit_chain"
        )
        .trim(),
        "1|1"
    );
}
