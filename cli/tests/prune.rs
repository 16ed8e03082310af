//! `prune`: half of 10,000 sessions go, and the trail still proves what it holds.
//!
//! The real binary prunes a database the layer wrote: `verify` (ours and the independent
//! Python one) is clean and says what was pruned; a checkpoint taken before still
//! verifies; the archive re-hashes to the SHA-256 the chained event recorded; the file
//! shrinks; a running session stays; and a change to a remaining row, a row deleted and
//! passed off as pruned, are each still found.

use std::path::{Path, PathBuf};

use sha2::Digest;
mod common;

use common::{python_verify, run, sqlite3, text};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const SESSIONS: u64 = 10_000;

fn bytes(db: &Path) -> u64 {
    let mut wal = PathBuf::from(db);
    wal.as_mut_os_string().push("-wal");
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// 10,000 closed sessions of 2 steps and a decision each, and one session still running
/// (started before all of them): the layer stays open, as a service's would while it is
/// pruned.
fn write_db(
    dir: &Path,
) -> (
    PathBuf,
    reasonkit_audit::AuditGuard,
    tracing::Span,
    tracing::Dispatch,
) {
    let db = dir.join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let running = tracing::dispatcher::with_default(&dispatch, || {
        let running = info_span!("session", id = "still-running");
        for i in 0..SESSIONS {
            info_span!(
                "session",
                id = format!("s{i:05}"),
                input = format!("question {i}")
            )
            .in_scope(|| {
                for k in 0..2 {
                    info_span!("step", module = "gigathink", input_summary = "premises", k)
                        .in_scope(|| {
                            tracing::info!(name: "decision", decision_type = "branch",
                                    chosen_option = "deepen", rationale = "cheaper");
                        });
                }
            });
        }
        running
    });
    guard.flush().unwrap();
    (db, guard, running, dispatch)
}

#[test]
fn pruning_half_of_ten_thousand_sessions_keeps_the_trail_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, guard, running, dispatch) = write_db(dir.path());
    // The cut: the end of the 5,001st session to end; every session that ended before it
    // goes.
    let cut = sqlite3(
        &db,
        "SELECT ended_at FROM sessions WHERE ended_at IS NOT NULL ORDER BY ended_at LIMIT 1 OFFSET 5000",
    );
    let expected: u64 = sqlite3(
        &db,
        &format!("SELECT count(*) FROM sessions WHERE status != 'running' AND ended_at < '{cut}'"),
    )
    .parse()
    .unwrap();
    assert!((4_900..=5_000).contains(&expected), "{expected}");

    // A checkpoint taken before the prune.
    let checkpoint = dir.path().join("before.checkpoint");
    let out = run(
        &db,
        &["checkpoint", "--append", checkpoint.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));

    // --dry-run says what would go and changes nothing.
    let digest = |p: &Path| sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec();
    sqlite3(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    let before_bytes = bytes(&db);
    let file_before = digest(&db);
    let out = run(&db, &["prune", "--before", &cut, "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "would prune {expected} sessions ({} steps, {} decisions)",
            expected * 2,
            expected * 2
        )),
        "{}",
        text(&out)
    );
    assert_eq!(digest(&db), file_before, "a dry run changes nothing");

    let archive = dir.path().join("pruned.jsonl");
    let out = run(
        &db,
        &[
            "prune",
            "--before",
            &cut,
            "--archive",
            archive.to_str().unwrap(),
            "--reason",
            "retention test",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("pruned {expected} sessions")),
        "{}",
        text(&out)
    );
    let remaining: u64 = sqlite3(&db, "SELECT count(*) FROM sessions")
        .parse()
        .unwrap();
    assert_eq!(remaining, SESSIONS + 1 - expected);
    assert_eq!(
        sqlite3(&db, "SELECT count(*) FROM audit_pruned")
            .parse::<u64>()
            .unwrap(),
        expected * 5
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT status FROM sessions WHERE id = 'still-running'"
        ),
        "running",
        "a running session is never pruned"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM steps WHERE session_id NOT IN (SELECT id FROM sessions)"
        ),
        "0"
    );
    // The layer goes on writing after the prune, and stops; the running session with it.
    tracing::dispatcher::with_default(&dispatch, || {
        info_span!("session", id = "after-the-prune").in_scope(|| {});
    });
    drop(running);
    guard.shutdown().unwrap();
    drop(dispatch);
    // The archive holds the pruned sessions, and re-hashes to what the event recorded.
    let archived = std::fs::read_to_string(&archive).unwrap();
    assert_eq!(archived.lines().count() as u64, expected);
    let first: serde_json::Value = serde_json::from_str(archived.lines().next().unwrap()).unwrap();
    assert_eq!(first["steps"].as_array().unwrap().len(), 2);
    let recorded = sqlite3(
        &db,
        "SELECT json_extract(detail, '$.archive.sha256') FROM audit_events WHERE kind = 'pruned'",
    );
    let rehashed: String = sha2::Sha256::digest(archived.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(recorded, rehashed);

    // Both verifiers: clean, the pruning accounted for, the old checkpoint extended.
    let out = run(
        &db,
        &["verify", "--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let pruned_rows = expected * 5;
    assert!(
        text(&out).contains(&format!("{pruned_rows} rows pruned")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("pruned"), "{}", text(&out));
    let out = python_verify(&db);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{pruned_rows} rows pruned")),
        "{}",
        text(&out)
    );

    // A change to a remaining row is still found, by id.
    let victim = sqlite3(&db, "SELECT id FROM steps ORDER BY rowid LIMIT 1");
    let tampered = dir.path().join("tampered.db");
    std::fs::copy(&db, &tampered).unwrap();
    sqlite3(
        &tampered,
        &format!("UPDATE steps SET module = 'forged' WHERE id = '{victim}'"),
    );
    let out = run(&tampered, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&victim), "{}", text(&out));
    assert_eq!(python_verify(&tampered).status.code(), Some(1));

    // A row deleted and listed as pruned does not pass: the event's digest does not hold.
    let passed_off = dir.path().join("passed_off.db");
    std::fs::copy(&db, &passed_off).unwrap();
    sqlite3(
        &passed_off,
        &format!(
            "INSERT INTO audit_pruned SELECT 'decisions', id, \
               (SELECT id FROM audit_events WHERE kind = 'pruned') FROM decisions WHERE step_id = '{victim}'; \
             DELETE FROM decisions WHERE step_id = '{victim}'; \
             INSERT INTO audit_pruned VALUES ('steps', '{victim}', \
               (SELECT id FROM audit_events WHERE kind = 'pruned')); \
             DELETE FROM steps WHERE id = '{victim}';"
        ),
    );
    let out = run(&passed_off, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("prune_altered"), "{}", text(&out));
    let out = python_verify(&passed_off);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("prune_altered"), "{}", text(&out));

    // The freed pages are reused: the next 2,000 sessions do not grow the file.
    sqlite3(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    let pruned_bytes = bytes(&db);
    let free: u64 = sqlite3(&db, "PRAGMA freelist_count").parse().unwrap();
    assert!(free > 100, "{free} free pages after the prune");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..2_000 {
            info_span!("session", id = format!("later-{i}")).in_scope(|| {
                info_span!("step", module = "gigathink", input_summary = "premises")
                    .in_scope(|| {});
            });
        }
    });
    guard.shutdown().unwrap();
    sqlite3(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_eq!(bytes(&db), pruned_bytes, "written into the freed pages");
    assert!(
        sqlite3(&db, "PRAGMA freelist_count")
            .parse::<u64>()
            .unwrap()
            < free
    );

    // --vacuum gives the rest back to the file system, and search still finds every row.
    let cut_now = sqlite3(
        &db,
        "SELECT max(ended_at) FROM sessions WHERE id LIKE 'later-%'",
    );
    let out = run(
        &db,
        &[
            "prune",
            "--before",
            &cut_now,
            "--vacuum",
            "--reason",
            "vacuum test",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    sqlite3(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
    // (The search index rebuilt after the VACUUM leaves a few pages of its old segments.)
    let left: u64 = sqlite3(&db, "PRAGMA freelist_count").parse().unwrap();
    assert!(left < 100, "{left} free pages after --vacuum");
    assert!(
        bytes(&db) < pruned_bytes,
        "{pruned_bytes} -> {} bytes",
        bytes(&db)
    );
    assert!(bytes(&db) < before_bytes);
    assert_eq!(
        sqlite3(
            &db,
            "INSERT INTO steps_fts (steps_fts, rank) VALUES ('integrity-check', 1); SELECT 'ok'"
        ),
        "ok",
        "the search index matches the renumbered rows"
    );
    let out = run(&db, &["search", "premises"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn nothing_old_enough_prunes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("session", id = "recent").in_scope(|| {});
    });
    guard.shutdown().unwrap();
    let out = run(&db, &["prune", "--before", "2000-01-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no session pruned"), "{}", text(&out));
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM audit_events WHERE kind = 'pruned'"
        ),
        "0"
    );
}
