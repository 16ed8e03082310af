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

    let out = cli(&db, &["verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
