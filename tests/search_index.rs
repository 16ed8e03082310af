//! The search index kept in batches by the writer: it catches up after a crash, and an
//! index built incrementally — including rows indexed while open and updated when they
//! closed — is exactly the index SQLite rebuilds from scratch.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Audit, eventually, rows, sqlite3, write_realistic};

/// The rows past each table's mark: 0 once the index has caught up.
fn unindexed(path: &Path) -> i64 {
    rows(
        path,
        "SELECT (SELECT count(*) FROM steps WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'steps'))
              + (SELECT count(*) FROM decisions WHERE rowid > (SELECT indexed_rowid FROM search_index_state WHERE name = 'decisions'))",
    )[0][0]
        .parse()
        .unwrap()
}

/// Every (term, row, column, offset) in the file's index, in order.
fn index_entries(path: &Path) -> Vec<Vec<String>> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut all = Vec::new();
    for fts in ["steps_fts", "decisions_fts"] {
        db.execute_batch(&format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab_{fts} USING fts5vocab(main, {fts}, 'instance')"
        ))
        .unwrap();
        let mut stmt = db
            .prepare(&format!(
                "SELECT term, doc, col, offset FROM temp.vocab_{fts} ORDER BY term, doc, col, offset"
            ))
            .unwrap();
        let found: Vec<Vec<String>> = stmt
            .query_map([], |r| {
                Ok(vec![
                    fts.to_owned(),
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?.to_string(),
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?.to_string(),
                ])
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        all.extend(found);
    }
    all
}

/// The index equals the one SQLite rebuilds from the rows, and passes FTS5's own check of
/// index against content.
fn assert_index_is_the_rebuilt_one(path: &Path) {
    for fts in ["steps_fts", "decisions_fts"] {
        sqlite3(
            path,
            &format!("INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)"),
        );
    }
    let incremental = index_entries(path);
    assert!(!incremental.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("rebuilt.db");
    std::fs::copy(path, &copy).unwrap();
    sqlite3(
        &copy,
        "INSERT INTO steps_fts (steps_fts) VALUES ('rebuild');
         INSERT INTO decisions_fts (decisions_fts) VALUES ('rebuild');",
    );
    assert_eq!(incremental, index_entries(&copy));
}

#[test]
fn an_index_built_in_batches_with_rows_updated_after_indexing_equals_a_rebuilt_one() {
    let audit = Audit::new();
    // write_realistic flushes in the middle of every fifth session: the writer, idle then,
    // indexes steps still open, which close later with their output summary and error.
    write_realistic(&audit, 40);
    assert!(
        eventually(Duration::from_secs(30), || unindexed(&audit.path) == 0),
        "the writer never caught up while idle"
    );
    let path = audit.path.clone();
    audit.guard.shutdown().unwrap();
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM steps WHERE output_summary LIKE '%café%'"
        )
        .trim(),
        sqlite3(
            &path,
            "SELECT count(*) FROM steps_fts WHERE steps_fts MATCH 'cafe'"
        )
        .trim(),
        "every closed step's output summary is found, accents folded"
    );
    assert_index_is_the_rebuilt_one(&path);
}

#[test]
fn after_a_sigkill_the_index_catches_up_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    common::kill_heavy_child(&path, 300, Duration::ZERO);
    let rows_with_text: i64 = sqlite3(
        &path,
        "SELECT count(*) FROM steps WHERE input_summary IS NOT NULL",
    )
    .trim()
    .parse()
    .unwrap();
    assert!(rows_with_text >= 1_500);

    let (_layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || unindexed(&path) == 0),
        "{} rows still unindexed",
        unindexed(&path)
    );
    guard.shutdown().unwrap();
    assert_index_is_the_rebuilt_one(&path);
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM steps_fts WHERE steps_fts MATCH 'premises'"
        )
        .trim(),
        rows_with_text.to_string()
    );
}

#[test]
fn a_short_run_is_indexed_by_the_time_its_guard_drops_and_no_trigger_indexes_inserts() {
    let audit = Audit::new();
    write_realistic(&audit, 3);
    let path = audit.path.clone();
    audit.guard.shutdown().unwrap();
    assert_eq!(unindexed(&path), 0);
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '%fts_insert'"
        )
        .trim(),
        "0",
        "no trigger indexes inserts any more"
    );
    assert_index_is_the_rebuilt_one(&path);
}

#[test]
fn the_index_catches_up_while_the_writer_is_idle_and_its_guard_alive() {
    let audit = Audit::new();
    write_realistic(&audit, 40);
    audit.guard.flush().unwrap();
    // Quiet from here on: the writer builds the index a chunk at a time, without a
    // shutdown or another record to prompt it.
    assert!(
        eventually(Duration::from_secs(20), || unindexed(&audit.path) == 0),
        "{} rows still unindexed after 20 s of quiet",
        unindexed(&audit.path)
    );
    let path = audit.path.clone();
    audit.guard.shutdown().unwrap();
    assert_index_is_the_rebuilt_one(&path);
}
