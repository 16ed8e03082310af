//! `erase`: a person's data leaves the trail — its rows' content, the file's bytes, the
//! search index — while both verifiers still check that nothing else changed.

use std::path::{Path, PathBuf};

mod common;

use common::{python_verify, run, sqlite3, text};
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// Text that belongs to the person whose data is erased.
const PERSONAL: [&str; 4] = [
    "Alice Liddell, born 1852",
    "alice-private-note",
    "alice-rationale-words",
    "alice-error-detail",
];

/// Alice's session (user_id alice), two of Bob's, each with steps and decisions; Alice's
/// text is indexed for search before the erasure.
fn write_db(dir: &Path) -> PathBuf {
    let db = dir.join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .store_inputs(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for (id, user, input) in [
            ("alice-1", "u-4711", PERSONAL[0]),
            ("bob-1", "u-0815", "bob's question"),
            ("bob-2", "u-0815", "bob's other question"),
        ] {
            info_span!("session", id, user_id = user, input).in_scope(|| {
                let note = if user == "u-4711" {
                    PERSONAL[1]
                } else {
                    "bob note"
                };
                info_span!(
                    "step",
                    module = "gigathink",
                    confidence = 0.8,
                    input_summary = note
                )
                .in_scope(|| {
                    let why = if user == "u-4711" {
                        PERSONAL[2]
                    } else {
                        "bob words"
                    };
                    tracing::info!(name: "decision", decision_type = "branch",
                            chosen_option = "deepen", rationale = why);
                });
                let error = if user == "u-4711" {
                    PERSONAL[3]
                } else {
                    "bob error"
                };
                info_span!("step", module = "proofguard", error).in_scope(|| {});
            });
        }
    });
    guard.shutdown().unwrap();
    db
}

fn bytes_hold(db: &Path, needle: &str) -> bool {
    let mut wal = PathBuf::from(db);
    wal.as_mut_os_string().push("-wal");
    [db.to_path_buf(), wal].iter().any(|p| {
        std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

#[test]
fn erasing_a_session_removes_its_content_everywhere_and_verify_checks_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    // The file and the search index hold Alice's words before.
    for needle in PERSONAL {
        assert!(bytes_hold(&db, needle), "{needle:?} was written");
    }
    assert!(text(&run(&db, &["search", "alice-private-note"])).contains("alice-1"));
    let structure = |db: &Path| {
        sqlite3(
            db,
            "SELECT group_concat(id || module || started_at || coalesce(ended_at, '') || \
             coalesce(confidence, '') || session_id, ';') FROM steps ORDER BY rowid",
        )
    };
    let before = structure(&db);

    let out = run(&db, &["erase", "--session", "alice-1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a reason is required: {}",
        text(&out)
    );
    let out = run(
        &db,
        &[
            "erase",
            "--session",
            "alice-1",
            "--reason",
            "GDPR Art. 17 request 2026-118",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("erased the content of 4 rows of 1 sessions"),
        "{}",
        text(&out)
    );

    // The content is gone: from the rows, the file's bytes, the search index.
    assert_eq!(
        sqlite3(
            &db,
            "SELECT input_hash, coalesce(input, 'NULL'), attributes FROM sessions WHERE id = 'alice-1'"
        ),
        "erased|NULL|{}"
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM steps WHERE session_id = 'alice-1' AND (input_summary IS NOT NULL \
             OR error IS NOT NULL OR attributes != '{}')"
        ),
        "0"
    );
    for needle in PERSONAL {
        assert!(
            !bytes_hold(&db, needle),
            "{needle:?} is still in the file's bytes"
        );
    }
    assert_eq!(
        run(&db, &["search", "alice-private-note"]).status.code(),
        Some(1)
    );
    // What is not content stays: ids, times, modules, confidence, the tree; Bob's rows.
    assert_eq!(structure(&db), before);
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM steps WHERE input_summary = 'bob note'"
        ),
        "2"
    );

    // Both verifiers: clean, the erasure accounted for.
    let out = run(&db, &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("4 rows erased"), "{}", text(&out));
    assert!(
        text(&out).contains("GDPR Art. 17 request 2026-118"),
        "{}",
        text(&out)
    );
    let out = python_verify(&db);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("4 rows erased"), "{}", text(&out));

    // A change to an erased row's structure is found, and so is content put back.
    for (what, sql) in [
        (
            "structure",
            "UPDATE steps SET module = 'forged' WHERE session_id = 'alice-1' AND module = 'gigathink'",
        ),
        (
            "content put back",
            "UPDATE steps SET input_summary = 'alice-private-note' WHERE session_id = 'alice-1' \
             AND module = 'gigathink'",
        ),
        (
            "a time",
            "UPDATE sessions SET started_at = '2020-01-01 00:00:00.000000' WHERE id = 'alice-1'",
        ),
    ] {
        let copy = dir.path().join(format!("{}.db", what.replace(' ', "_")));
        std::fs::copy(&db, &copy).unwrap();
        sqlite3(&copy, sql);
        let out = run(&copy, &["verify"]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        assert!(text(&out).contains("modified"), "{what}: {}", text(&out));
        assert_eq!(python_verify(&copy).status.code(), Some(1), "{what}");
    }
}

#[test]
fn erasing_by_attribute_takes_every_session_with_it_and_refuses_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let out = run(
        &db,
        &[
            "erase",
            "--attribute",
            "user_id=u-0815",
            "--reason",
            "request 7",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bob-1, bob-2"), "{}", text(&out));
    // The event names the attribute, never its value (which may be the personal data).
    let detail = sqlite3(&db, "SELECT detail FROM audit_events WHERE kind = 'erased'");
    assert!(
        detail.contains("attribute user_id") && !detail.contains("u-0815"),
        "{detail}"
    );
    assert!(run(&db, &["verify"]).status.success());
    let out = run(
        &db,
        &["erase", "--attribute", "user_id=nobody", "--reason", "r"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no session matches"), "{}", text(&out));

    // A running session is refused, and nothing changes.
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let open = tracing::dispatcher::with_default(&dispatch, || info_span!("session", id = "open"));
    guard.flush().unwrap();
    let out = run(&db, &["erase", "--session", "open", "--reason", "r"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("still running"), "{}", text(&out));
    drop(open);
    guard.shutdown().unwrap();
}
