//! The `reasonkit-audit` command on a PostgreSQL store the layer wrote: `verify`, `migrate`
//! and `path`, with the server's own tools (`createdb`, `psql`, `dropdb`) around it. Skips
//! with a one-line message without a server (PGHOST/PGPORT unset), unless
//! `REASONKIT_AUDIT_REQUIRE_POSTGRES` is set, as `.ci/run` sets it.

use std::process::{Command, Output};

use tracing::info_span;
use tracing_subscriber::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_reasonkit-audit");

fn tool(name: &str, args: &[&str]) -> Output {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A database of its own, dropped with it.
struct Db(String);

impl Db {
    fn create() -> Option<Db> {
        if std::env::var_os("PGHOST").is_none() && std::env::var_os("PGPORT").is_none() {
            assert!(
                std::env::var_os("REASONKIT_AUDIT_REQUIRE_POSTGRES").is_none(),
                "REASONKIT_AUDIT_REQUIRE_POSTGRES is set but no PostgreSQL server is configured"
            );
            eprintln!(
                "skipped: no PostgreSQL server (set PGHOST/PGPORT, or run under pg_virtualenv)"
            );
            return None;
        }
        let name = format!("rk_cli_{}_{}", std::process::id(), fastrand_suffix());
        tool("createdb", &[&name]);
        Some(Db(name))
    }

    fn url(&self) -> String {
        format!("postgres:///{}", self.0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("dropdb").args(["--force", &self.0]).output();
    }
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007
}

fn cli(db: &Db, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db.url())
        .args(args)
        .output()
        .unwrap()
}

/// Runs the command, which must exit 0; its output.
fn succeeds(db: &Db, args: &[&str]) -> String {
    let out = cli(db, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {text}{error}");
    text
}

#[test]
fn verify_migrate_and_path_work_on_a_postgres_store_and_other_commands_say_they_do_not_yet() {
    let Some(db) = Db::create() else { return };
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .postgres(format!("dbname={}", db.0))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..20 {
            info_span!("session", id = format!("cli-{i}")).in_scope(|| {
                info_span!("step", module = "gigathink", confidence = 0.9).in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "pick", chosen_option = "a");
                });
            });
        }
    });
    guard.shutdown().unwrap();

    let text = succeeds(&db, &["verify"]);
    assert!(
        text.contains("sessions 20, steps 20, decisions 20"),
        "{text}"
    );
    assert!(
        text.contains("postgres://") && text.contains(&db.0),
        "{text}"
    );

    let out = cli(&db, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true);
    assert_eq!(report["entries"], 60);

    let out = cli(&db, &["migrate"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already current"));

    let out = cli(&db, &["path"]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with(&db.0));

    // An edit made with psql is evidence: exit 1, the row named.
    tool(
        "psql",
        &[
            "-X",
            "-d",
            &db.0,
            "-c",
            "UPDATE sessions SET profile = 'edited' WHERE id = 'cli-7'",
        ],
    );
    let out = cli(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli-7"));

    let out = cli(&db, &["sessions"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("does not read PostgreSQL stores yet") && error.lines().count() == 1,
        "{error}"
    );
}

fn count(db: &Db, sql: &str) -> i64 {
    let out = tool("psql", &["-X", "-A", "-t", "-d", &db.0, "-c", sql]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn sqlite_count(file: &std::path::Path, sql: &str) -> i64 {
    let out = tool("sqlite3", &[file.to_str().unwrap(), sql]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn import_copies_the_examples_sqlite_file_keeping_ids_and_times_and_twice_adds_nothing() {
    let Some(db) = Db::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
    // The README's main job writes the file.
    let example = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples")
        .join("reasoning");
    assert!(
        example.exists(),
        "{} missing: cargo test builds it",
        example.display()
    );
    let out = Command::new(&example)
        .env("REASONKIT_AUDIT_DB", &file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    succeeds(&db, &["import", file.to_str().unwrap()]);
    for table in ["sessions", "steps", "decisions"] {
        let n = sqlite_count(&file, &format!("SELECT count(*) FROM {table}"));
        assert!(n > 0);
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM {table}")),
            n,
            "{table}"
        );
    }
    // Ids and times kept: the same (id, started_at) pairs on both sides.
    let pairs = tool(
        "sqlite3",
        &[
            file.to_str().unwrap(),
            "SELECT group_concat(id || '@' || started_at, ',') FROM (SELECT id, started_at FROM steps ORDER BY id)",
        ],
    );
    let stored = tool(
        "psql",
        &[
            "-X",
            "-A",
            "-t",
            "-d",
            &db.0,
            "-c",
            "SELECT string_agg(id || '@' || to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), ',' ORDER BY id) FROM steps",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&pairs.stdout).trim(),
        String::from_utf8_lossy(&stored.stdout).trim()
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_events WHERE kind = 'imported'"
        ),
        1
    );

    // Twice: nothing added, nothing chained, still intact.
    let entries = count(&db, "SELECT count(*) FROM audit_chain");
    let out = cli(&db, &["import", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("added 0 sessions, 0 steps, 0 decisions"),
        "{text}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM audit_chain"), entries);
    assert_eq!(cli(&db, &["verify"]).status.code(), Some(0));

    // A file that does not verify is refused, and nothing of it is copied.
    tool(
        "sqlite3",
        &[
            file.to_str().unwrap(),
            "UPDATE steps SET module = 'forged' WHERE rowid = 1",
        ],
    );
    let out = cli(&db, &["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    assert_eq!(
        count(&db, "SELECT count(*) FROM steps WHERE module = 'forged'"),
        0
    );
}
