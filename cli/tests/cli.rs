//! The real `reasonkit-audit` binary on databases the layer wrote: every subcommand, every
//! filter, the JSON and CSV output parsed back and compared with the rows, each error case.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tracing::info_span;
use tracing_subscriber::prelude::*;

mod common;

use common::{BIN, run};

/// Three sessions with nested steps, decisions, an error and a failure.
fn write_db(dir: &Path) -> PathBuf {
    let path = dir.join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        info_span!(
            "session",
            id = "sess-alpha-1",
            profile = "balanced",
            input = "alpha question"
        )
        .in_scope(|| {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.9,
                tokens_used = 100_u64,
                input_summary = "alpha question about filings"
            )
            .in_scope(|| {});
            info_span!(
                "step",
                module = "laserlogic",
                confidence = 0.6,
                tokens_used = 50_u64,
                output_summary = "a deductive chain"
            )
            .in_scope(|| {
                info_span!("step", module = "laserlogic.sub", confidence = 0.8).in_scope(|| {});
                tracing::info!(
                    name: "decision",
                    decision_type = "branch",
                    options_considered = ?["x", "y"],
                    chosen_option = "y",
                    rationale = "y is cheaper than x",
                );
            });
            info_span!(
                "step",
                module = "proofguard",
                confidence = 0.75,
                error = "contradiction in the quarterly filing"
            )
            .in_scope(|| {});
        });
        info_span!("session", id = "sess-beta-1", profile = "quick").in_scope(|| {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.95,
                tokens_used = 10_u64
            )
            .in_scope(|| {});
        });
        info_span!("session", id = "sess-gamma-1", profile = "balanced").in_scope(|| {
            info_span!("step", module = "bedrock", confidence = 0.85).in_scope(|| {});
            tracing::error!("the model refused");
        });
    });
    guard.shutdown().unwrap();
    path
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |row| {
        (0..n)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(v) => Value::from(v),
                    rusqlite::types::ValueRef::Real(v) => Value::from(v),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(_) => Value::Null,
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn ids(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect()
}

#[test]
fn sessions_lists_newest_first_with_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let all = json(&run(&db, &["sessions", "--json"]));
    assert_eq!(ids(&all), ["sess-gamma-1", "sess-beta-1", "sess-alpha-1"]);
    let alpha = &all[2];
    assert_eq!(alpha["steps"], 4);
    assert_eq!(alpha["min_confidence"], 0.6);
    assert_eq!(alpha["tokens"], 150);
    assert_eq!(alpha["errors"], 1);
    assert_eq!(alpha["status"], "completed");
    assert!(alpha["duration_ms"].as_f64().unwrap() >= 0.0);

    assert_eq!(
        ids(&json(&run(
            &db,
            &["sessions", "--json", "--status", "failed"]
        ))),
        ["sess-gamma-1"]
    );
    assert_eq!(
        ids(&json(&run(
            &db,
            &["sessions", "--json", "--profile", "balanced"]
        ))),
        ["sess-gamma-1", "sess-alpha-1"]
    );
    assert_eq!(
        ids(&json(&run(&db, &["sessions", "--json", "--below", "0.7"]))),
        ["sess-alpha-1"]
    );
    assert_eq!(
        ids(&json(&run(&db, &["sessions", "--json", "-n", "1"]))),
        ["sess-gamma-1"]
    );
    assert_eq!(
        ids(&json(&run(&db, &["sessions", "--json", "--since", "1h"]))).len(),
        3
    );
    assert_eq!(
        ids(&json(&run(
            &db,
            &["sessions", "--json", "--since", "2000-01-01"]
        )))
        .len(),
        3
    );

    // Nothing found: exit 1, and an empty JSON array for machines.
    let none = run(&db, &["sessions", "--json", "--since", "2099-01-01"]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        serde_json::from_slice::<Value>(&none.stdout).unwrap(),
        serde_json::json!([])
    );
    assert_eq!(
        run(&db, &["sessions", "--status", "nope"]).status.code(),
        Some(1)
    );

    // People get an aligned table: every row has the id column at the same place.
    let table = stdout(&run(&db, &["sessions"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].contains("status") && lines[0].contains("min conf"));
    let status_at = lines[0].chars().count()
        - lines[0].split("status").nth(1).unwrap().chars().count()
        - "status".len();
    let from_status: String = lines[1].chars().skip(status_at).collect();
    assert!(from_status.starts_with("failed"), "{table}");
    assert!(!table.contains('\u{1b}'), "no colour off a terminal");
}

#[test]
fn sessions_since_leaves_out_older_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE sessions SET started_at = '2020-05-01 10:00:00.000000' WHERE id = 'sess-beta-1'",
        [],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        ids(&json(&run(&db, &["sessions", "--json", "--since", "7d"]))),
        ["sess-gamma-1", "sess-alpha-1"]
    );
    assert_eq!(
        ids(&json(&run(
            &db,
            &["sessions", "--json", "--since", "2020-05-01"]
        )))
        .len(),
        3
    );
    let bad = run(&db, &["sessions", "--since", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
}

#[test]
fn show_replays_a_session_as_a_tree_from_a_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let out = run(&db, &["show", "sess-a"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("session sess-alpha-1")
            && lines[0].contains("balanced")
            && lines[0].contains("completed"),
        "{text}"
    );
    let line = |needle: &str| {
        *lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    // Execution order, nesting by indentation.
    let order: Vec<usize> = [
        "  gigathink",
        "  laserlogic ",
        "laserlogic.sub",
        "  proofguard",
    ]
    .iter()
    .map(|m| lines.iter().position(|l| l.contains(m)).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        indent(line("laserlogic.sub")),
        indent(line("  laserlogic ")) + 2
    );
    assert!(
        line("  gigathink").contains("confidence 0.90")
            && line("  gigathink").contains("tokens 100")
    );
    assert!(
        line("decision branch").contains(": y") && line("decision branch").contains("x | y"),
        "{text}"
    );
    assert!(line("because").contains("y is cheaper than x"));
    assert!(line("error:").contains("contradiction in the quarterly filing"));
    assert!(line("in:").contains("alpha question about filings"));

    assert_eq!(run(&db, &["show", "sess-zzz"]).status.code(), Some(1));
    let ambiguous = run(&db, &["show", "sess-"]);
    assert_eq!(ambiguous.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("ambiguous"));
}

#[test]
fn show_json_nests_steps_and_decisions_exactly_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let session = json(&run(&db, &["show", "sess-alpha-1", "--json"]));
    let steps = session["steps"].as_array().unwrap();
    let stored = rows(
        &db,
        "SELECT id, module, confidence, parent_step_id FROM steps WHERE session_id = 'sess-alpha-1' ORDER BY started_at, rowid",
    );
    assert_eq!(steps.len(), stored.len());
    for (step, row) in steps.iter().zip(&stored) {
        assert_eq!(
            [
                &step["id"],
                &step["module"],
                &step["confidence"],
                &step["parent_step_id"]
            ],
            [&row[0], &row[1], &row[2], &row[3]]
        );
    }
    let laserlogic = steps.iter().find(|s| s["module"] == "laserlogic").unwrap();
    assert_eq!(
        laserlogic["decisions"][0]["options_considered"],
        serde_json::json!(["x", "y"])
    );
    assert_eq!(
        laserlogic["decisions"][0]["rationale"],
        "y is cheaper than x"
    );
}

#[test]
fn stats_gives_per_module_figures_matching_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let stats = json(&run(&db, &["stats", "--json"]));
    let by_module = |m: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["module"] == m)
            .unwrap()
            .clone()
    };
    let gigathink = by_module("gigathink");
    assert_eq!(gigathink["uses"], 2);
    assert!((gigathink["avg_confidence"].as_f64().unwrap() - 0.925).abs() < 1e-9);
    assert_eq!(gigathink["tokens"], 110);
    assert_eq!(gigathink["failure_rate"], 0.0);
    assert!(gigathink["avg_duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(by_module("proofguard")["failure_rate"], 1.0);
    assert_eq!(stats[0]["module"], "gigathink", "most used first");
    let table = stdout(&run(&db, &["stats"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(" proofguard") && l.contains("100%")),
        "{table}"
    );
    assert_eq!(
        run(&db, &["stats", "--since", "2099-01-01"]).status.code(),
        Some(1)
    );
}

#[test]
fn search_finds_summaries_errors_and_rationales() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let error = json(&run(&db, &["search", "quarterly contradiction", "--json"]));
    assert_eq!(error.as_array().unwrap().len(), 1);
    assert_eq!(error[0]["module"], "proofguard");
    assert_eq!(error[0]["session_id"], "sess-alpha-1");
    assert!(
        error[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("[contradiction]")
    );
    let rationale = json(&run(&db, &["search", "cheaper", "--json"]));
    assert_eq!(rationale[0]["kind"], "decision");
    assert_eq!(rationale[0]["module"], "laserlogic");
    assert_eq!(
        json(&run(&db, &["search", "deductive", "--json"]))[0]["kind"],
        "step"
    );
    assert_eq!(
        json(&run(&db, &["search", "\"quarterly filing\"", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        run(&db, &["search", "\"filing quarterly\""]).status.code(),
        Some(1)
    );
    // FTS syntax in the user's text is just text.
    assert_eq!(
        run(&db, &["search", "NOT (x OR \"* :"]).status.code(),
        Some(1)
    );
    assert_eq!(run(&db, &["search", "zebra"]).status.code(), Some(1));
}

#[test]
fn export_json_jsonl_and_csv_round_trip_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let all = json(&run(&db, &["export", "--format", "json"]));
    assert_eq!(ids(&all), ["sess-alpha-1", "sess-beta-1", "sess-gamma-1"]);
    let stored_steps = rows(&db, "SELECT count(*) FROM steps")[0][0]
        .as_i64()
        .unwrap();
    let exported_steps: usize = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(exported_steps as i64, stored_steps);
    let stored = rows(
        &db,
        "SELECT id, started_at, ended_at, profile, input_hash, status FROM sessions ORDER BY started_at",
    );
    for (session, row) in all.as_array().unwrap().iter().zip(&stored) {
        for (index, key) in [
            "id",
            "started_at",
            "ended_at",
            "profile",
            "input_hash",
            "status",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(session[key], row[index], "{key}");
        }
    }

    let lines = stdout(&run(
        &db,
        &["export", "--format", "jsonl", "--session", "sess-b"],
    ));
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], "sess-beta-1");
    assert_eq!(lines[0]["steps"][0]["module"], "gigathink");

    let file = dir.path().join("steps.csv");
    let out = run(
        &db,
        &[
            "export",
            "--format",
            "csv",
            "--table",
            "steps",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let stored_columns: Vec<String> = rows(&db, "SELECT name FROM pragma_table_info('steps')")
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(headers, stored_columns);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as i64, stored_steps);
    let error_column = headers.iter().position(|h| h == "error").unwrap();
    assert!(
        records
            .iter()
            .any(|r| &r[error_column] == "contradiction in the quarterly filing")
    );

    let decisions = stdout(&run(
        &db,
        &["export", "--format", "csv", "--table", "decisions"],
    ));
    let mut reader = csv::Reader::from_reader(decisions.as_bytes());
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(&record[3], r#"["x", "y"]"#);

    assert_eq!(
        run(
            &db,
            &["export", "--format", "json", "--since", "2099-01-01"]
        )
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        run(&db, &["export", "--format", "json", "--session", "nope"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&db, &["export", "--format", "xml"]).status.code(),
        Some(2)
    );
}

#[test]
fn export_streams_a_large_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..3_000 {
            info_span!("session", n = i).in_scope(|| {
                for k in 0..5 {
                    info_span!("step", module = "m", k).in_scope(|| {});
                }
            });
        }
    });
    guard.shutdown().unwrap();
    let out = run(&path, &["export", "--format", "jsonl"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3_000);
    assert!(text.lines().all(|l| {
        serde_json::from_str::<Value>(l).unwrap()["steps"]
            .as_array()
            .unwrap()
            .len()
            == 5
    }));
}

#[test]
fn path_migrate_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    assert_eq!(
        stdout(&run(&db, &["path"])).trim(),
        db.display().to_string()
    );
    let env = Command::new(BIN)
        .arg("path")
        .env("REASONKIT_AUDIT_DB", &db)
        .output()
        .unwrap();
    assert_eq!(stdout(&env).trim(), db.display().to_string());
    let home = Command::new(BIN)
        .arg("path")
        .env_remove("REASONKIT_AUDIT_DB")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        stdout(&home).trim(),
        dir.path().join(".reasonkit/audit.db").display().to_string()
    );

    let check = run(&db, &["check"]);
    assert_eq!(check.status.code(), Some(0));
    let text = stdout(&check);
    assert!(
        text.contains("integrity       ok") && text.contains("foreign keys    ok"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "schema version  {}",
        reasonkit_audit::SCHEMA_VERSION
    )));

    assert!(text.contains("step times      ok"), "{text}");

    // A step that ends after its session did — what a run merged into another leaves.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "UPDATE steps SET ended_at = '9999-01-01 00:00:00.000000' \
         WHERE rowid = (SELECT min(rowid) FROM steps)",
    )
    .unwrap();
    let check = run(&db, &["check"]);
    assert_eq!(check.status.code(), Some(2));
    let text = stdout(&check);
    assert!(
        text.contains("step times      1 steps outside their session's time"),
        "{text}"
    );
    assert!(text.contains("foreign keys    ok"), "{text}");

    // A step whose session does not exist: check says so and fails.
    conn.execute_batch("PRAGMA foreign_keys = OFF; INSERT INTO steps (id, session_id, module, started_at) VALUES ('orphan', 'missing', 'm', '2026-01-01 00:00:00.000000');").unwrap();
    drop(conn);
    let check = run(&db, &["check"]);
    assert_eq!(check.status.code(), Some(2));
    assert!(stdout(&check).contains("1 violations"));
}

#[test]
fn an_older_schema_asks_for_migrate_and_migrate_brings_it_current() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let conn = rusqlite::Connection::open(&db).unwrap();
    for file in ["0001_initial.sql", "0002_layer_columns.sql"] {
        conn.execute_batch(&std::fs::read_to_string(migrations.join(file)).unwrap())
            .unwrap();
    }
    conn.execute_batch(
        "PRAGMA user_version = 2;
         INSERT INTO sessions (id, started_at, profile, input_hash, status) VALUES ('old-1', '2026-01-01 00:00:00.000000', 'default', '', 'completed');
         INSERT INTO steps (id, session_id, module, started_at, error) VALUES ('s1', 'old-1', 'm', '2026-01-01 00:00:00.000001', 'an old failure');",
    )
    .unwrap();
    drop(conn);
    let refused = run(&db, &["sessions"]);
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("reasonkit-audit migrate"), "{message}");
    let migrated = run(&db, &["migrate"]);
    assert_eq!(migrated.status.code(), Some(0));
    assert!(stdout(&migrated).contains(&format!(
        "schema version 2 -> {}",
        reasonkit_audit::SCHEMA_VERSION
    )));
    assert_eq!(ids(&json(&run(&db, &["sessions", "--json"]))), ["old-1"]);
    // Rows from before the search index was added are found too.
    assert_eq!(
        json(&run(&db, &["search", "failure", "--json"]))[0]["step_id"],
        "s1"
    );
    assert!(stdout(&run(&db, &["migrate"])).contains("already current"));
    assert_eq!(
        run(&dir.path().join("none.db"), &["migrate"]).status.code(),
        Some(2)
    );
    assert!(
        !dir.path().join("none.db").exists(),
        "migrate never creates a database"
    );
}

#[test]
fn unusable_databases_get_one_line_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(
        &not_sqlite,
        "not a database at all, just some notes\n".repeat(100),
    )
    .unwrap();
    let newer = dir.path().join("newer.db");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA user_version = {}",
            reasonkit_audit::SCHEMA_VERSION + 5
        ))
        .unwrap();
    let cases = [
        (dir.path().join("missing.db"), "no audit database at"),
        (not_sqlite, "not a SQLite database"),
        (newer, "upgrade reasonkit-audit"),
        (dir.path().to_path_buf(), "directory"),
    ];
    for (path, expected) in cases {
        for command in [
            &["sessions"][..],
            &["show", "x"],
            &["stats"],
            &["search", "x"],
            &["export", "--format", "json"],
            &["check"],
            &["verify"],
            &["checkpoint"],
        ] {
            let out = run(&path, command);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command:?} on {}: {stderr}",
                path.display()
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.contains(expected) && stderr.contains(&path.display().to_string()),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
        }
    }
    assert_eq!(
        Command::new(BIN)
            .arg("no-such-command")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn reading_never_changes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let before = sha(&db);
    let out_file = dir.path().join("out.json");
    for command in [
        &["sessions"][..],
        &["sessions", "--json", "--below", "0.9"],
        &["show", "sess-alpha-1"],
        &["stats"],
        &["search", "cheaper"],
        &[
            "export",
            "--format",
            "json",
            "-o",
            out_file.to_str().unwrap(),
        ],
        &["export", "--format", "csv", "--table", "decisions"],
        &["check"],
        &["path"],
        &["datasette-metadata"],
        &["verify"],
        &["verify", "--json"],
        &["checkpoint"],
    ] {
        run(&db, command);
        assert_eq!(sha(&db), before, "{command:?} changed the file");
    }
}

#[test]
fn datasette_metadata_describes_every_table_and_column_and_the_adr_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let file = dir.path().join("metadata.json");
    assert_eq!(
        run(&db, &["datasette-metadata", "-o", file.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let metadata: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(metadata["title"], "ReasonKit audit trail");
    let database = &metadata["databases"]["audit"];
    for table in [
        "sessions",
        "steps",
        "decisions",
        "audit_health",
        "audit_chain",
        "audit_meta",
        "audit_events",
        "search_index_state",
        "schema_migrations",
    ] {
        let described = &database["tables"][table];
        assert!(described["description"].is_string(), "{table}");
        for column in rows(
            &db,
            &format!("SELECT name FROM pragma_table_info('{table}')"),
        ) {
            let column = column[0].as_str().unwrap();
            if table == "audit_health" && column == "id" {
                continue;
            }
            assert!(
                described["columns"][column].is_string(),
                "{table}.{column} undescribed"
            );
        }
    }
    let queries = &database["queries"];
    assert!(
        queries["low_confidence_sessions"]["sql"]
            .as_str()
            .unwrap()
            .contains("HAVING MIN(st.confidence) < 0.7")
    );
    assert!(
        queries["module_usage"]["sql"]
            .as_str()
            .unwrap()
            .contains("datetime('now', '-7 days')")
    );
    assert!(
        queries["replay"]["sql"]
            .as_str()
            .unwrap()
            .contains(":session_id")
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let coloured = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().contains('\u{1b}')
    };
    // Captured output is not a terminal: plain text unless colour is forced.
    assert!(!coloured(&["sessions"]));
    assert!(!coloured(&["show", "sess-alpha-1"]));
    assert!(coloured(&["--color", "always", "sessions"]));
    assert!(coloured(&["--color", "always", "show", "sess-alpha-1"]));
    assert!(!coloured(&["--color", "never", "show", "sess-alpha-1"]));
}

#[test]
fn verify_is_clean_on_a_layer_database_and_names_a_row_changed_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let clean = run(&db, &["verify"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let text = stdout(&clean);
    assert!(text.contains("result       intact"), "{text}");
    assert!(text.contains("checkpoints  none given"), "{text}");
    let report = json(&run(&db, &["verify", "--json"]));
    assert_eq!(report["intact"], true);
    assert_eq!(report["findings"], Value::Array(vec![]));
    let entries = rows(&db, "SELECT count(*) FROM audit_chain")[0][0].clone();
    assert_eq!(report["entries"], entries);

    let step = rows(&db, "SELECT id FROM steps WHERE module = 'proofguard'")[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE steps SET error = NULL WHERE id = ?1", [&step])
        .unwrap();
    conn.execute("DELETE FROM decisions", []).unwrap();
    drop(conn);
    let tampered = run(&db, &["verify"]);
    assert_eq!(tampered.status.code(), Some(1));
    let text = stdout(&tampered);
    assert!(text.contains("TAMPERED: 2 finding(s)"), "{text}");
    assert!(text.contains("modified") && text.contains(&step), "{text}");
    assert!(text.contains("deleted"), "{text}");
    let out = run(&db, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], false);
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["modified", "deleted"]);
    assert_eq!(report["findings"][0]["row_id"], step.as_str());
}

#[test]
fn checkpoint_keygen_and_verify_against_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let keys = dir.path().join("ops");
    let made = Command::new(BIN)
        .args(["keygen", "ops.example", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{:?}", made);
    let secret = keys.with_extension("key");
    let public = keys.with_extension("pub");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the signer key is readable by its owner only"
        );
    }
    assert!(stdout(&made).contains(std::fs::read_to_string(&public).unwrap().trim()));
    // keygen never overwrites a key.
    let again = Command::new(BIN)
        .args(["keygen", "ops.example", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));

    let series = dir.path().join("series.checkpoints");
    let out = run(
        &db,
        &[
            "checkpoint",
            "--sign",
            secret.to_str().unwrap(),
            "--append",
            series.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let note = stdout(&out);
    let lines: Vec<&str> = note.lines().collect();
    let id = rows(
        &db,
        "SELECT value FROM audit_meta WHERE key = 'database_id'",
    )[0][0]
        .clone();
    assert_eq!(
        lines[0],
        format!("reasonkit-audit/{}", id.as_str().unwrap())
    );
    let entries = rows(&db, "SELECT count(*) FROM audit_chain")[0][0].to_string();
    assert_eq!(lines[1], entries);
    assert!(lines[3].starts_with("time "));
    // The tree heads evidence bundles are proven against, then the signature.
    assert!(lines[4].starts_with("tree "), "{note}");
    assert!(lines[5].starts_with("sessions "), "{note}");
    assert!(lines[7].starts_with("\u{2014} ops.example "), "{note}");
    assert_eq!(
        std::fs::read_to_string(&series).unwrap(),
        format!("{note}\n")
    );

    let verify = |args: &[&str]| {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        run(&db, &all)
    };
    let (cp, key) = (series.to_str().unwrap(), public.to_str().unwrap());
    let ok = verify(&["--checkpoint", cp, "--key", key]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("the chain extends it, signed by ops.example"));

    // Another key: refused, in one line, exit 2.
    let other = dir.path().join("other");
    Command::new(BIN)
        .args(["keygen", "other", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    let refused = verify(&[
        "--checkpoint",
        cp,
        "--key",
        other.with_extension("pub").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not signed by key other"), "{stderr}");

    // The last entry and its row cut away: only the checkpoint shows it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM sessions WHERE id = (SELECT row_id FROM audit_chain WHERE table_name = 'sessions' ORDER BY seq DESC LIMIT 1);
         DELETE FROM audit_chain WHERE seq >= (SELECT max(seq) FROM audit_chain WHERE table_name = 'sessions');",
    )
    .unwrap();
    drop(conn);
    let cut = verify(&["--checkpoint", cp, "--key", key]);
    assert_eq!(cut.status.code(), Some(1), "{}", stdout(&cut));
    assert!(stdout(&cut).contains("truncated"), "{}", stdout(&cut));
}

/// Marks the search index as if the writer had never caught up (what a crash before
/// indexing leaves): every row is past the marks and only the tail search can find it.
fn forget_the_index(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "INSERT INTO steps_fts (steps_fts) VALUES ('delete-all');
         INSERT INTO decisions_fts (decisions_fts) VALUES ('delete-all');
         UPDATE search_index_state SET indexed_rowid = 0;",
    )
    .unwrap();
}

#[test]
fn search_finds_rows_the_index_has_not_caught_up_with_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let indexed = json(&run(&db, &["search", "cheaper", "--json"]));
    forget_the_index(&db);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM steps_fts WHERE steps_fts MATCH 'cheaper'"
        )[0][0],
        0
    );
    let before = sha(&db);
    // The same answers from the tail alone: words, accents folded, phrases.
    assert_eq!(json(&run(&db, &["search", "cheaper", "--json"])), indexed);
    let hits = json(&run(&db, &["search", "\"quarterly filing\"", "--json"]));
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["kind"], "step");
    assert_eq!(
        run(&db, &["search", "nowhere-to-be-found"]).status.code(),
        Some(1)
    );
    assert_eq!(sha(&db), before, "search wrote to the database");
}

#[test]
fn a_search_right_after_flush_finds_the_newest_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..50 {
            info_span!("session").in_scope(|| {
                info_span!(
                    "step",
                    module = "m",
                    output_summary = format!("answer number{n} about liquidity").as_str()
                )
                .in_scope(|| {});
            });
            guard.flush().unwrap();
            // Whatever the writer's index has caught up with, the row just committed is found.
            let hits = json(&run(&path, &["search", &format!("number{n}"), "--json"]));
            assert_eq!(hits.as_array().unwrap().len(), 1, "number{n}: {hits}");
        }
    });
    drop(guard);
}

#[test]
fn backup_copies_to_a_new_file_that_verifies_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    let copy = dir.path().join("copy.db");
    let out = run(&db, &["backup", copy.to_str().unwrap()]);
    common::succeeded(&out);
    let text = stdout(&out);
    assert!(text.contains("sessions        3"), "{text}");
    assert!(text.contains("intact"), "{text}");
    // The copy answers like the original.
    let sessions = |path: &Path| stdout(&run(path, &["sessions", "--json"]));
    assert_eq!(sessions(&copy), sessions(&db));
    let again = run(&db, &["backup", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.contains("copy.db"), "{err}");
}
