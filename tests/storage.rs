//! Opening the database: schema and migrations, pragmas, and every way a path can be
//! unusable — each refused with an error that names it, leaving the file untouched.

mod common;

use std::fs;
use std::time::Duration;

use common::{Audit, sqlite3};
use reasonkit_audit::{AuditLayer, Error, SCHEMA_VERSION};
use tracing::info_span;

/// (name, type, notnull, pk) of each column, as `PRAGMA table_info` reports it.
fn columns(path: &std::path::Path, table: &str) -> Vec<String> {
    common::rows(
        path,
        &format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')"),
    )
    .into_iter()
    .map(|r| r.join(" "))
    .collect()
}

#[test]
fn the_schema_has_adr_002_tables_exactly_plus_the_layer_columns() {
    let audit = Audit::new();
    let path = &audit.path;
    assert_eq!(
        columns(path, "sessions"),
        [
            "id TEXT 0 1",
            "started_at TEXT 1 0",
            "ended_at TEXT 0 0",
            "profile TEXT 1 0",
            "input_hash TEXT 1 0",
            "status TEXT 1 0",
            "input TEXT 0 0",
            "attributes TEXT 0 0",
            "pid INTEGER 0 0",
            "host TEXT 0 0",
        ]
    );
    assert_eq!(
        columns(path, "steps"),
        [
            "id TEXT 0 1",
            "session_id TEXT 1 0",
            "module TEXT 1 0",
            "started_at TEXT 1 0",
            "ended_at TEXT 0 0",
            "input_summary TEXT 0 0",
            "output_summary TEXT 0 0",
            "confidence REAL 0 0",
            "tokens_used INTEGER 0 0",
            "error TEXT 0 0",
            "parent_step_id TEXT 0 0",
            "attributes TEXT 0 0",
        ]
    );
    assert_eq!(
        columns(path, "decisions"),
        [
            "id TEXT 0 1",
            "step_id TEXT 1 0",
            "decision_type TEXT 1 0",
            "options_considered TEXT 0 0",
            "chosen_option TEXT 0 0",
            "rationale TEXT 0 0",
            "decided_at TEXT 0 0",
            "attributes TEXT 0 0",
        ]
    );
    let foreign_keys = sqlite3(
        path,
        "SELECT m.name, f.\"from\", f.\"table\", f.\"to\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f ORDER BY 1, 2",
    );
    assert_eq!(
        foreign_keys,
        "audit_pruned|event_id|audit_events|id\ndecisions|step_id|steps|id\n\
         steps|parent_step_id|steps|id\nsteps|session_id|sessions|id\n"
    );
    let indexes = sqlite3(
        path,
        "SELECT name || ' ' || tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name",
    );
    for expected in [
        "idx_sessions_started sessions",
        "idx_steps_module steps",
        "idx_steps_confidence steps",
        "idx_steps_session steps",
        "idx_steps_parent steps",
        "idx_decisions_step decisions",
    ] {
        assert!(
            indexes.lines().any(|l| l == expected),
            "missing {expected} in\n{indexes}"
        );
    }
    // The ADR's own indexes are on exactly its columns.
    assert_eq!(
        sqlite3(
            path,
            "SELECT name FROM pragma_index_info('idx_steps_confidence')"
        )
        .trim(),
        "confidence"
    );
    assert_eq!(
        sqlite3(
            path,
            "SELECT name FROM pragma_index_info('idx_sessions_started')"
        )
        .trim(),
        "started_at"
    );
    assert_eq!(
        sqlite3(
            path,
            "SELECT name FROM pragma_index_info('idx_steps_module')"
        )
        .trim(),
        "module"
    );
}

#[test]
fn the_schema_version_and_each_migration_are_recorded() {
    let audit = Audit::new();
    assert_eq!(
        sqlite3(&audit.path, "PRAGMA user_version").trim(),
        SCHEMA_VERSION.to_string()
    );
    assert_eq!(
        sqlite3(
            &audit.path,
            "SELECT version || ' ' || name FROM schema_migrations ORDER BY version"
        ),
        "1 0001_initial\n2 0002_layer_columns\n3 0003_process_and_health\n4 0004_search\n\
         5 0005_audit_chain\n6 0006_deferred_search\n7 0007_lifecycle\n8 0008_chain_sessions\n"
    );
    assert_eq!(sqlite3(&audit.path, "PRAGMA journal_mode").trim(), "wal");
}

#[test]
fn reopening_keeps_the_records_and_applies_nothing_twice() {
    let audit = Audit::new();
    audit.run(|| info_span!("session", id = "kept").in_scope(|| {}));
    let path = audit.path.clone();
    drop(audit.guard);
    let (_layer, _guard) = AuditLayer::builder().path(&path).build().unwrap();
    assert_eq!(sqlite3(&path, "SELECT id FROM sessions").trim(), "kept");
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM schema_migrations").trim(),
        SCHEMA_VERSION.to_string()
    );
}

#[test]
fn many_layers_opening_one_new_file_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || AuditLayer::builder().path(path).build().map(|(_, g)| g))
        })
        .collect();
    for handle in handles {
        drop(handle.join().unwrap().unwrap());
    }
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM schema_migrations").trim(),
        SCHEMA_VERSION.to_string()
    );
}

#[test]
fn parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/audit.db");
    let (_layer, _guard) = AuditLayer::builder().path(&path).build().unwrap();
    assert!(path.is_file());
}

fn sha_of(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(fs::read(path).unwrap()).to_vec()
}

#[test]
fn a_schema_newer_than_the_crate_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    sqlite3(
        &path,
        &format!(
            "CREATE TABLE sessions (x); PRAGMA user_version = {}",
            SCHEMA_VERSION + 1
        ),
    );
    let before = sha_of(&path);
    let error = AuditLayer::builder().path(&path).build().unwrap_err();
    assert!(
        matches!(error, Error::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("upgrade reasonkit-audit"), "{message}");
    assert_eq!(sha_of(&path), before);
    assert!(!dir.path().join("future.db-wal").exists());
    assert_eq!(sqlite3(&path, "PRAGMA journal_mode").trim(), "delete");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    let before = sha_of(&path);
    let error = AuditLayer::builder().path(&path).build().unwrap_err();
    assert!(matches!(error, Error::NotADatabase { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
    assert_eq!(sha_of(&path), before);
}

#[test]
fn a_directory_in_the_way_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let error = AuditLayer::builder().path(dir.path()).build().unwrap_err();
    assert!(matches!(error, Error::IsDirectory { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string())
    );
}

#[test]
fn a_path_under_a_file_is_refused_with_its_path_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("plain-file");
    fs::write(&blocker, "x").unwrap();
    let path = blocker.join("audit.db");
    let error = AuditLayer::builder().path(&path).build().unwrap_err();
    assert!(
        error.to_string().contains(&blocker.display().to_string()),
        "{error}"
    );
}

#[test]
fn records_are_committed_within_the_flush_interval_without_a_flush() {
    let audit = Audit::with(|b| b.flush_interval(Duration::from_millis(50)));
    let session =
        tracing::dispatcher::with_default(&audit.dispatch, || info_span!("session", id = "timely"));
    // No flush: the writer's own timer commits it. The wait is generous so this is not a
    // timing test; how fast it happens is measured by the benchmarks.
    assert!(common::eventually(Duration::from_secs(10), || {
        sqlite3(&audit.path, "SELECT count(*) FROM sessions").trim() == "1"
    }));
    drop(session);
}

#[test]
fn dropping_the_guard_commits_everything_queued() {
    let audit = Audit::with(|b| b.flush_interval(Duration::from_secs(3600)));
    tracing::dispatcher::with_default(&audit.dispatch, || {
        for i in 0..2_000 {
            info_span!("session", n = i)
                .in_scope(|| info_span!("step", module = "m").in_scope(|| {}));
        }
    });
    let path = audit.path.clone();
    drop(audit.guard);
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        )
        .trim(),
        "2000"
    );
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM steps WHERE ended_at IS NOT NULL"
        )
        .trim(),
        "2000"
    );
    common::assert_consistent(&path);
}
