//! The PostgreSQL store against a real server: the tests run when the PG* environment
//! variables name one (`pg_virtualenv cargo test` gives a throwaway cluster), and skip with
//! a one-line message otherwise — unless `REASONKIT_AUDIT_REQUIRE_POSTGRES` is set, as
//! `.ci/run` sets it, which turns the skip into a failure.
//!
//! Each test works in a database of its own, created for it and dropped after it.

use std::path::Path;
use std::process::Stdio;

mod common;
#[path = "support/pg_env.rs"]
mod pg_env;
#[path = "support/reused_ids.rs"]
mod reused_ids;
#[cfg(feature = "otlp")]
#[allow(dead_code)]
#[path = "support/otlp_scripts.rs"]
mod scripts;

use pg_env::{admin, config};

use postgres::{Client, NoTls};
use reasonkit_audit::AuditLayer;
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// A database of its own for one test, dropped with it.
struct TestDb {
    name: String,
}

impl TestDb {
    /// `None` (after saying so) when no server is configured.
    fn create() -> Option<TestDb> {
        if std::env::var_os("PGHOST").is_none() && std::env::var_os("PGPORT").is_none() {
            assert!(
                std::env::var_os("REASONKIT_AUDIT_REQUIRE_POSTGRES").is_none(),
                "REASONKIT_AUDIT_REQUIRE_POSTGRES is set but no PostgreSQL server is configured \
                 (PGHOST/PGPORT unset): run the tests under pg_virtualenv"
            );
            eprintln!(
                "skipped: no PostgreSQL server (set PGHOST/PGPORT, or run under pg_virtualenv)"
            );
            return None;
        }
        let name = format!("rk_test_{}", uuid_like());
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        Some(TestDb { name })
    }

    /// The same, in a server encoding other than the default (`LATIN1`, say).
    fn create_encoded(encoding: &str) -> Option<TestDb> {
        let db = TestDb::create()?;
        let mut admin = admin();
        admin
            .batch_execute(&format!("DROP DATABASE {}", db.name))
            .expect("DROP DATABASE");
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' \
                 TEMPLATE template0",
                db.name
            ))
            .expect("CREATE DATABASE");
        Some(db)
    }

    /// The connection string the layer gets: the database only, the rest from PG*.
    fn conninfo(&self) -> String {
        format!("dbname={}", self.name)
    }

    /// The same as a URL, for `REASONKIT_AUDIT_DB`.
    fn url(&self) -> String {
        format!("postgres:///{}", self.name)
    }

    /// A layer writing to this database.
    fn layer(&self) -> (AuditLayer, reasonkit_audit::AuditGuard) {
        AuditLayer::builder()
            .postgres(self.conninfo())
            .build()
            .unwrap()
    }

    /// A layer writing to this database, keeping raw inputs (`store_inputs(true)`).
    fn layer_storing_inputs(&self) -> (AuditLayer, reasonkit_audit::AuditGuard) {
        AuditLayer::builder()
            .postgres(self.conninfo())
            .store_inputs(true)
            .build()
            .unwrap()
    }

    fn client(&self) -> Client {
        config()
            .dbname(&self.name)
            .connect(NoTls)
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A name no other test's database has: the process id, and the random keys the standard
/// library gives each `RandomState`.
fn uuid_like() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(0_u8);
    format!("{:x}{random:x}", std::process::id())
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).expect(sql).get(0)
}

/// The test helper process in `mode`, writing the store `url` names through
/// REASONKIT_AUDIT_DB (as an application that never heard of it would), its output piped.
fn child_writing(mode: &str, url: &str, n: u64) -> std::process::Command {
    let mut command = common::child(mode, Path::new(url), n);
    command
        .env("REASONKIT_AUDIT_DB", url)
        .stdout(Stdio::piped());
    command
}

/// The `heavy` child, and how many sessions it has said are committed.
struct Heavy {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    acknowledged: u64,
}

impl Heavy {
    fn start(mut command: std::process::Command) -> Heavy {
        use std::io::BufRead;
        let mut child = command.spawn().unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Heavy {
            child,
            lines,
            acknowledged: 0,
        }
    }

    /// Reads its output until it has acknowledged at least `n` sessions.
    fn until(&mut self, n: u64) {
        while self.acknowledged < n {
            let line = self.lines.next().expect("child ended early").unwrap();
            self.acknowledged = line.strip_prefix("committed ").unwrap().parse().unwrap();
        }
    }

    /// Kills it (SIGKILL); how many sessions it had acknowledged.
    fn kill(mut self) -> u64 {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.acknowledged
    }
}

/// How many rows `sql` counts among the first `n` sessions the heavy child writes
/// (`$1`: their ids).
fn among_acknowledged(client: &mut Client, sql: &str, n: u64) -> i64 {
    let ids: Vec<String> = (0..n).map(|i| format!("s{i:07}")).collect();
    client.query_one(sql, &[&ids]).expect(sql).get(0)
}

/// Every session the heavy child acknowledged is there, closed, with its five steps.
fn assert_acknowledged_present(client: &mut Client, acknowledged: u64) {
    let present = among_acknowledged(
        client,
        "SELECT count(*) FROM sessions WHERE id = ANY($1) AND status = 'completed'",
        acknowledged,
    );
    assert_eq!(
        present, acknowledged as i64,
        "every acknowledged session, closed"
    );
    let steps = among_acknowledged(
        client,
        "SELECT count(*) FROM steps WHERE session_id = ANY($1)",
        acknowledged,
    );
    assert_eq!(steps, acknowledged as i64 * 5, "every step once");
}

/// The chain is dense from 1 and covers every row of the record tables.
fn assert_chain_covers_everything(client: &mut Client) {
    let (entries, max): (i64, Option<i64>) = {
        let row = client
            .query_one("SELECT count(*), max(seq) FROM audit_chain", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(Some(entries), max.or(Some(0)), "seq is dense from 1");
    for table in ["sessions", "steps", "decisions", "audit_health"] {
        let uncovered = count(
            client,
            &format!(
                "SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_chain c \
                 WHERE c.table_name = '{table}' AND c.row_id = t.id::text)"
            ),
        );
        assert_eq!(uncovered, 0, "{table} rows without a chain entry");
    }
}

#[test]
fn the_layer_writes_the_adr_tables_in_postgres_with_open_rows_visible() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let session = info_span!(
            "session",
            id = "pg-s1",
            profile = "deep",
            input = "Is 7 prime?"
        );
        let _s = session.enter();
        for k in 0..3 {
            let step = info_span!(
                "step",
                module = "laserlogic",
                confidence = 0.75,
                tokens_used = 10 + k,
                input_summary = "premises\0with a NUL",
                k
            );
            let _e = step.enter();
            tracing::info!(name: "decision", decision_type = "verdict", chosen_option = "prime",
                rationale = "no divisor below its root");
        }
        guard.flush().unwrap();
        // The session is still open: its row is visible, running.
        let mut client = db.client();
        let status: String = client
            .query_one("SELECT status FROM sessions WHERE id = 'pg-s1'", &[])
            .unwrap()
            .get(0);
        assert_eq!(status, "running");
    });
    guard.shutdown().unwrap();

    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT status, profile, input_hash, ended_at IS NOT NULL, attributes->>'n' IS NULL \
             FROM sessions WHERE id = 'pg-s1'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    assert_eq!(row.get::<_, String>(1), "deep");
    assert_eq!(row.get::<_, String>(2).len(), 64);
    assert!(row.get::<_, bool>(3));
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM steps WHERE session_id = 'pg-s1'"
        ),
        3
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM decisions WHERE session_id = 'pg-s1' AND chosen_option = 'prime'"
        ),
        3
    );
    let (module, confidence, tokens, summary, k): (String, f64, i64, String, String) = {
        let r = client
            .query_one(
                "SELECT module, confidence, tokens_used, input_summary, attributes->>'k' \
                 FROM steps ORDER BY started_at LIMIT 1",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    };
    assert_eq!(
        (module.as_str(), confidence, tokens),
        ("laserlogic", 0.75, 10)
    );
    assert_eq!(
        summary, "premises\u{FFFD}with a NUL",
        "NUL stored by the documented rule"
    );
    assert_eq!(k, "0");
    assert_chain_covers_everything(&mut client);
    assert_intact(&db);

    // Tampering is found: one edited summary, one deleted decision.
    client
        .batch_execute(
            "UPDATE steps SET output_summary = 'edited' WHERE id = (SELECT min(id) FROM steps); \
             DELETE FROM decisions WHERE id = (SELECT min(id) FROM decisions)",
        )
        .unwrap();
    let report = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["modified", "deleted"], "{:?}", report.findings);
}

/// `verify` finds nothing wrong, and reports no span still open.
fn assert_intact(db: &TestDb) -> reasonkit_audit::Report {
    let report = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);
    assert!(report.entries > 0);
    report
}

#[test]
fn four_processes_writing_one_database_at_once_lose_nothing_and_keep_one_chain() {
    let Some(db) = TestDb::create() else { return };
    const PER_PROCESS: u64 = 5_000;
    let children: Vec<_> = (0..4)
        .map(|_| {
            child_writing("multi", &db.url(), PER_PROCESS)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "done 0");
    }
    let mut client = db.client();
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        ),
        20_000
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM steps"), 20_000);
    assert_eq!(count(&mut client, "SELECT count(*) FROM decisions"), 20_000);
    assert_eq!(
        count(&mut client, "SELECT count(DISTINCT pid) FROM sessions"),
        4
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"
        ),
        0,
        "no deadlock or serialization failure, even retried"
    );
    assert_chain_covers_everything(&mut client);
    let report = assert_intact(&db);
    assert!(report.open.is_empty(), "{:?}", report.open);
}

#[test]
fn a_backend_terminated_mid_writing_loses_no_acknowledged_record_and_writes_none_twice() {
    let Some(db) = TestDb::create() else { return };
    let mut heavy = Heavy::start(child_writing("heavy", &db.url(), 0));
    let mut admin = admin();
    for round in 1..=3 {
        heavy.until(round * 100);
        let killed = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'reasonkit-audit'",
                &[&db.name],
            )
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(killed, 1, "the writer's one connection");
    }
    // The writer reconnects and goes on: more is acknowledged after the last termination.
    heavy.until(400);
    let acknowledged = heavy.kill();

    let mut client = db.client();
    assert_acknowledged_present(&mut client, acknowledged);
    let decisions = among_acknowledged(
        &mut client,
        "SELECT count(*) FROM decisions WHERE session_id = ANY($1)",
        acknowledged,
    );
    assert_eq!(decisions, acknowledged as i64 * 5, "every decision once");
    let entries_per_row = count(
        &mut client,
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM audit_chain \
         WHERE table_name = 'decisions' GROUP BY row_id) AS c",
    );
    assert_eq!(entries_per_row, 1, "no decision chained twice");
    assert!(
        count(
            &mut client,
            "SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"
        ) >= 3,
        "each lost connection is on the record"
    );
    // What the record says names the store, never its password.
    if let Ok(password) = std::env::var("PGPASSWORD") {
        let details: Vec<String> = client
            .query("SELECT coalesce(detail, '') FROM audit_health", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(details.iter().any(|d| d.contains(&db.name)), "{details:?}");
        assert!(
            details.iter().all(|d| !d.contains(&password)),
            "{details:?}"
        );
    }
    let report = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);

    // The session the killed process left open is visible as running, and the next layer
    // to connect from this host marks it interrupted, chained.
    let status = |client: &mut Client| -> String {
        client
            .query_one(
                "SELECT status FROM sessions WHERE id = 'open-at-crash'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(status(&mut client), "running");
    let (_layer, guard) = AuditLayer::builder()
        .postgres(db.conninfo())
        .build()
        .unwrap();
    guard.shutdown().unwrap();
    assert_eq!(status(&mut client), "interrupted");
    assert_intact(&db);
}

#[test]
fn a_session_open_at_shutdown_is_interrupted_a_taken_given_id_is_renamed_and_nul_in_json_is_kept() {
    let Some(db) = TestDb::create() else { return };
    let write = |open_at_shutdown: bool| {
        let (layer, guard) = AuditLayer::builder()
            .postgres(db.conninfo())
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        let kept = tracing::subscriber::with_default(subscriber, || {
            let session = info_span!("session", id = "given-1", note = "a\0b");
            {
                let _s = session.enter();
                info_span!("step", module = "bedrock").in_scope(|| {});
            }
            open_at_shutdown.then_some(session)
        });
        guard.shutdown().unwrap();
        drop(kept);
    };
    write(false);
    write(true);
    let mut client = db.client();
    let rows = client
        .query(
            "SELECT id, status, attributes->>'given_id', attributes->>'note', \
             (SELECT count(*) FROM steps st WHERE st.session_id = s.id) \
             FROM sessions s ORDER BY started_at",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (first, second) = (&rows[0], &rows[1]);
    assert_eq!(first.get::<_, String>(0), "given-1");
    assert_eq!(first.get::<_, String>(1), "completed");
    assert_eq!(
        first.get::<_, Option<String>>(3).as_deref(),
        Some("a\u{FFFD}b")
    );
    // The second run's session: renamed, its given id kept, its step following it, and
    // marked interrupted since it was still open when its guard dropped.
    let renamed: String = second.get(0);
    assert!(renamed.starts_with("given-1~"), "{renamed}");
    assert_eq!(second.get::<_, String>(1), "interrupted");
    assert_eq!(
        second.get::<_, Option<String>>(2).as_deref(),
        Some("given-1")
    );
    assert_eq!(second.get::<_, i64>(4), 1);
    assert_intact(&db);
}

/// The property of tests/session_ids.rs on a PostgreSQL store: every script in one
/// database (each case's ids start with its own prefix), through both write paths (COPY,
/// and the statements when an id is taken).
#[test]
fn a_reused_id_never_merges_runs_on_postgres_whatever_the_interleaving() {
    use proptest::test_runner::{Config, TestRunner};
    let Some(db) = TestDb::create() else { return };
    let client = std::cell::RefCell::new(db.client());
    let case = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let result = runner.run(&reused_ids::scripts(), |script| {
        let prefix = format!(
            "c{}-",
            case.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (layer, guard) = db.layer();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let flush = || guard.flush().unwrap();
        reused_ids::play(&script, &prefix, &dispatch, &flush);
        guard.flush().unwrap();
        let time = |column: &str| {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
        };
        let sessions = client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT id, status, {}, {}, attributes::text FROM sessions",
                    time("started_at"),
                    time("ended_at")
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| reused_ids::SessionRow {
                id: r.get(0),
                status: r.get(1),
                started_at: r.get(2),
                ended_at: r.get(3),
                attributes: serde_json::from_str(r.get(4)).unwrap(),
            })
            .collect::<Vec<_>>();
        let steps = client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT session_id, output_summary, {}, {} FROM steps",
                    time("started_at"),
                    time("ended_at")
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| reused_ids::StepRow {
                session_id: r.get(0),
                output_summary: r.get(1),
                started_at: r.get(2),
                ended_at: r.get(3),
            })
            .collect::<Vec<_>>();
        reused_ids::check(&script, &prefix, &sessions, &steps)
    });
    result.unwrap();
    assert_eq!(
        count(
            &mut client.borrow_mut(),
            "SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"
        ),
        0
    );
    assert_intact(&db);
}

#[test]
fn a_wrong_password_is_one_line_naming_host_and_database_without_the_password() {
    let Some(db) = TestDb::create() else { return };
    let secret = "not-the-password-Zq81";
    let error = AuditLayer::builder()
        .postgres(format!("{} password={secret}", db.conninfo()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(!error.contains(secret), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(&db.name), "{error}");
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "localhost".into());
    assert!(error.contains(&host), "{error}");
    assert!(error.contains("password authentication failed"), "{error}");
    // And the right password, from PGPASSWORD, never shows in the guard's description.
    let (_layer, guard) = AuditLayer::builder()
        .postgres(db.conninfo())
        .build()
        .unwrap();
    let shown = guard.path().display().to_string();
    if let Ok(password) = std::env::var("PGPASSWORD") {
        assert!(!shown.contains(&password), "{shown}");
    }
    assert!(
        shown.starts_with("postgres://") && shown.ends_with(&db.name),
        "{shown}"
    );
}

#[test]
fn two_processes_migrating_an_empty_database_at_once_both_succeed_and_a_newer_schema_is_refused() {
    let Some(db) = TestDb::create() else { return };
    let children: Vec<_> = (0..2)
        .map(|_| child_writing("build", &db.url(), 0).spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "built");
    }
    let mut client = db.client();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM reasonkit_schema"),
        reasonkit_audit::postgres::PG_SCHEMA_VERSION,
        "each migration applied once"
    );
    client
        .batch_execute("INSERT INTO reasonkit_schema (version) VALUES (99)")
        .unwrap();
    let before = count(
        &mut client,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    let error = AuditLayer::builder()
        .postgres(db.conninfo())
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("schema version 99, newer"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    let after = count(
        &mut client,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(before, after, "left untouched");
}

/// The `sql` block after `marker` in the PostgreSQL guide, as its statements.
fn guide_queries(marker: &str) -> Vec<String> {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/postgres-guide.md"
    ))
    .unwrap();
    let after = &guide[guide
        .find(marker)
        .expect("marker in docs/postgres-guide.md")..];
    let start = after.find("```sql\n").unwrap() + "```sql\n".len();
    let block = &after[start..start + after[start..].find("```").unwrap()];
    block
        .split(';')
        .map(|q| {
            q.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|q| !q.trim().is_empty())
        .collect()
}

fn psql(db: &TestDb, query: &str) -> Vec<String> {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-F",
            "|",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &db.name,
            "-c",
            query,
        ])
        .output()
        .expect("psql (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_adr_queries_in_the_readme_answer_from_what_the_layer_wrote() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for (session, confidences) in [("sess_abc123", [0.9, 0.5]), ("sess_sure", [0.8, 0.95])] {
            let s = info_span!("session", id = session);
            let _s = s.enter();
            for (k, confidence) in confidences.into_iter().enumerate() {
                let module = if k == 0 { "gigathink" } else { "laserlogic" };
                info_span!("step", module, confidence, k).in_scope(|| {});
            }
        }
    });
    guard.shutdown().unwrap();
    let queries = guide_queries("ADR-002's queries in PostgreSQL");
    assert_eq!(queries.len(), 3);
    let low = psql(&db, &queries[0]);
    assert_eq!(low.len(), 1, "{low:?}");
    assert!(
        low[0].starts_with("sess_abc123|") && low[0].ends_with("|0.5"),
        "{low:?}"
    );
    let usage = psql(&db, &queries[1]);
    assert_eq!(usage.len(), 2, "{usage:?}");
    assert!(
        usage.iter().any(|l| l.starts_with("gigathink|2|")),
        "{usage:?}"
    );
    let replay = psql(&db, &queries[2]);
    assert_eq!(replay.len(), 2, "{replay:?}");
    assert!(
        replay[0].contains("|gigathink|") && replay[1].contains("|laserlogic|"),
        "{replay:?}"
    );
}

/// A PostgreSQL server of the test's own, on a Unix socket in a temporary directory, for
/// tests that restart it: never someone else's. As root (CI), the server runs as the
/// `postgres` user, since PostgreSQL refuses to run as root.
struct OwnServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// Server options beyond the socket directory and port.
    extra: String,
    /// Its port: the Unix socket's name, and on TCP if `extra` listens there.
    port: u16,
}

impl OwnServer {
    fn start() -> OwnServer {
        Self::start_with(|_, _| String::new())
    }

    /// Starts a server with the options `extra` gives for its directory (written into
    /// first, e.g. certificates).
    fn start_with(extra: impl FnOnce(&Path, u16) -> String) -> OwnServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL server under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let root = rustix::process::geteuid().is_root();
        if root {
            std::process::Command::new("chown")
                .args(["postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
        }
        // A port free on loopback now, for the socket's name and TCP alike.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let extra = extra(dir.path(), port);
        if root {
            std::process::Command::new("chown")
                .args(["-R", "postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
        }
        let server = OwnServer {
            dir,
            bin,
            extra,
            port,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.ctl("start");
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if rustix::process::geteuid().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let options = format!(
            "-k {} -p {} -c listen_addresses= {}",
            self.dir.path().display(),
            self.port,
            self.extra
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-m",
                "fast",
                "-o",
                &options,
                action,
            ],
        );
    }

    fn url(&self) -> String {
        format!(
            "postgresql:///postgres?host={}&port={}&user=postgres",
            self.dir.path().display(),
            self.port
        )
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

#[test]
fn the_server_restarted_in_the_middle_of_heavy_writing_loses_no_acknowledged_record() {
    // Only where the shared-server tests run too: it needs Debian's server binaries.
    if TestDb::create().is_none() {
        return;
    }
    let server = OwnServer::start();
    let mut command = child_writing("heavy", &server.url(), 0);
    for name in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"] {
        command.env_remove(name);
    }
    let mut heavy = Heavy::start(command);
    heavy.until(100);
    server.ctl("restart");
    heavy.until(heavy.acknowledged + 200);
    let acknowledged = heavy.kill();

    let verified = reasonkit_audit::postgres::verify(&server.url(), &Default::default()).unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    let mut client = postgres::Config::new()
        .host_path(server.dir.path())
        .port(server.port)
        .user("postgres")
        .dbname("postgres")
        .connect(NoTls)
        .unwrap();
    assert_acknowledged_present(&mut client, acknowledged);
    let write_errors: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_health WHERE kind = 'write_errors'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(write_errors >= 1, "the outage is on the record");
}

#[test]
fn a_postgres_url_given_as_the_path_is_the_store_never_a_file_named_like_it() {
    let Some(db) = TestDb::create() else { return };
    // A relative path like postgres:///db would be created under the working directory.
    let cwd = std::env::current_dir().unwrap();
    let (_layer, guard) = AuditLayer::builder().path(db.url()).build().unwrap();
    assert!(
        guard
            .path()
            .display()
            .to_string()
            .starts_with("postgres://")
    );
    guard.shutdown().unwrap();
    assert!(
        !cwd.join("postgres:").exists(),
        "a file named like the URL in {}",
        cwd.display()
    );
    assert_eq!(
        count(&mut db.client(), "SELECT count(*) FROM reasonkit_schema"),
        reasonkit_audit::postgres::PG_SCHEMA_VERSION
    );
}

/// A CA, and a server certificate it signs for `localhost` only, made with `openssl`.
fn make_certificates(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = format!("{name}-ca");
    let curve = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (ca_key, ca_pem) = (format!("{ca}.key"), format!("{ca}.pem"));
    let subject = format!("/CN={ca}");
    run(&[
        &["req", "-x509"][..],
        &curve,
        &[
            "-days", "2", "-subj", &subject, "-keyout", &ca_key, "-out", &ca_pem,
        ],
    ]
    .concat());
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    run(&[
        &["req"][..],
        &curve,
        &["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr],
    ]
    .concat());
    std::fs::write(dir.join(&ext), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &pem,
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Whether the layer's connection to `server` is encrypted, seen from the server.
fn layer_connection_is_encrypted(server: &OwnServer) -> bool {
    let mut client = postgres::Config::new()
        .host_path(server.dir.path())
        .port(server.port)
        .user("postgres")
        .dbname("postgres")
        .connect(NoTls)
        .unwrap();
    client
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'reasonkit-audit'",
            &[],
        )
        .unwrap()
        .get::<_, Option<bool>>(0)
        .expect("the layer is connected")
}

#[test]
fn tls_modes_mean_what_libpq_says_verify_full_checks_the_certificate_and_the_host_name() {
    if TestDb::create().is_none() {
        return;
    }
    let server = OwnServer::start_with(|dir, _| {
        make_certificates(dir, "server");
        make_certificates(dir, "other");
        format!(
            "-c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key \
             -c listen_addresses=127.0.0.1",
            dir.display()
        )
    });
    let dir = server.dir.path().display().to_string();
    let port = server.port;
    let conn = |host: &str, rest: &str| {
        format!("host={host} port={port} user=postgres dbname=postgres {rest}")
    };
    let builds = |c: String| AuditLayer::builder().postgres(c).build();
    let ca = format!("sslrootcert={dir}/server-ca.pem");

    // verify-full against the CA that signed the certificate, by the name it carries.
    let (_l, guard) = builds(conn("localhost", &format!("sslmode=verify-full {ca}"))).unwrap();
    assert!(layer_connection_is_encrypted(&server));
    drop(guard);
    // The same certificate reached by an address it does not name: refused by verify-full,
    // accepted by verify-ca, which checks the chain only.
    let error = builds(conn("127.0.0.1", &format!("sslmode=verify-full {ca}")))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("127.0.0.1") && !error.contains('\n'),
        "{error}"
    );
    let (_l, guard) = builds(conn("127.0.0.1", &format!("sslmode=verify-ca {ca}"))).unwrap();
    drop(guard);
    // Another CA: refused by both verifying modes.
    for mode in ["verify-full", "verify-ca"] {
        let other = format!("sslmode={mode} sslrootcert={dir}/other-ca.pem");
        let error = builds(conn("localhost", &other)).unwrap_err().to_string();
        assert!(
            error.to_lowercase().contains("certificate"),
            "{mode}: {error}"
        );
    }
    // verify-* without a root file says where to put one.
    let error = builds(conn("localhost", "sslmode=verify-full"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("sslrootcert"), "{error}");
    // require: encrypted, the certificate not checked (libpq's meaning); disable: plain.
    let (_l, guard) = builds(conn("localhost", "sslmode=require")).unwrap();
    assert!(layer_connection_is_encrypted(&server));
    drop(guard);
    let (_l, guard) = builds(conn("localhost", "sslmode=disable")).unwrap();
    assert!(!layer_connection_is_encrypted(&server));
    drop(guard);
}

#[test]
fn checkpoints_of_a_postgres_store_catch_a_cut_tail() {
    let Some(db) = TestDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.checkpoints");
    let (layer, guard) = AuditLayer::builder()
        .postgres(db.conninfo())
        .checkpoints(&file)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..50 {
            info_span!("session", n = i).in_scope(|| {
                info_span!("step", module = "bedrock").in_scope(|| {});
            });
        }
    });
    guard.shutdown().unwrap();
    let written =
        reasonkit_audit::Checkpoint::parse_all(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(written.len() >= 2, "one at start, one at shutdown");
    let options = reasonkit_audit::VerifyOptions {
        checkpoints: written.clone(),
        keys: Vec::new(),
    };
    let report = reasonkit_audit::postgres::verify(&db.conninfo(), &options).unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);
    assert!(report.checkpoints.iter().all(|c| c.extended));
    assert_eq!(written.last().unwrap().size, report.entries);

    // The last two steps and their chain entries removed: only the checkpoint can tell.
    db.client()
        .batch_execute(
            "DELETE FROM steps WHERE id IN (SELECT row_id FROM audit_chain ORDER BY seq DESC LIMIT 2); \
             DELETE FROM audit_chain WHERE seq > (SELECT max(seq) - 2 FROM audit_chain)",
        )
        .unwrap();
    let without = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(
        without.is_intact(),
        "a cut tail alone looks intact: {:?}",
        without.findings
    );
    let with = reasonkit_audit::postgres::verify(&db.conninfo(), &options).unwrap();
    let kinds: Vec<&str> = with.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["truncated"], "{:?}", with.findings);
}

#[test]
fn under_the_drop_policy_every_record_is_written_or_counted() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = AuditLayer::builder()
        .postgres(db.conninfo())
        .queue_capacity(64)
        .overflow(reasonkit_audit::OverflowPolicy::Drop)
        .build()
        .unwrap();
    const STEPS: u64 = 20_000;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let session = info_span!("session", id = "drop-policy");
        let _s = session.enter();
        for k in 0..STEPS {
            info_span!("step", module = "gigathink", k).in_scope(|| {});
        }
    });
    guard.flush().unwrap();
    let stats = guard.stats();
    guard.shutdown().unwrap();
    let mut client = db.client();
    let rows = count(
        &mut client,
        "SELECT (SELECT count(*) FROM steps) + (SELECT count(*) FROM sessions)",
    ) as u64;
    let closed = count(
        &mut client,
        "SELECT (SELECT count(*) FROM steps WHERE ended_at IS NOT NULL) \
         + (SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL)",
    ) as u64;
    assert!(stats.dropped_records > 0, "the queue of 64 overflowed");
    // Every span is two records (open, close): the rows, the closes they got, the closes
    // whose opening was dropped and the drops account for every one.
    assert_eq!(
        rows + closed + stats.closes_without_open + stats.dropped_records,
        2 * (STEPS + 1),
        "rows {rows}, closed {closed}, {stats:?}"
    );
    let dropped: i64 = count(
        &mut client,
        "SELECT coalesce(sum(count), 0)::bigint FROM audit_health WHERE kind = 'dropped_records'",
    );
    assert_eq!(dropped as u64, stats.dropped_records, "audit_health agrees");
    let report = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);
}

/// Flushes until a flush succeeds: the writer has recovered from a fault it reported.
fn flush_until_recovered(guard: &reasonkit_audit::AuditGuard) {
    let mut failures = 0;
    while let Err(e) = guard.flush() {
        failures += 1;
        assert!(failures < 1_000, "the writer never recovered: {e}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A TCP relay to the test server that, once armed, passes the client's next `COMMIT` on
/// and then cuts the connection before the server's answer reaches the client: the commit
/// lands, and the client cannot know that it did.
struct CommitAnswerCut {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitAnswerCut {
    /// The simple-protocol message `Transaction::commit` sends: `Q`, its length, the query.
    const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

    fn start() -> CommitAnswerCut {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let server = format!(
            "{}:{}",
            std::env::var("PGHOST").unwrap_or_else(|_| "localhost".into()),
            std::env::var("PGPORT").unwrap_or_else(|_| "5432".into())
        );
        let (a, c) = (armed.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = std::net::TcpStream::connect(&server).unwrap();
                Self::relay(client, upstream, a.clone(), c.clone());
            }
        });
        CommitAnswerCut { port, armed, cuts }
    }

    fn relay(
        client: std::net::TcpStream,
        server: std::net::TcpStream,
        armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
        cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::io::{Read, Write};
        use std::net::Shutdown;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let commit_sent = Arc::new(AtomicBool::new(false));
        let (mut from_client, mut to_server) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let sent = commit_sent.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = from_client.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = &buf[..n];
                let is_commit = chunk.windows(Self::COMMIT.len()).any(|w| w == Self::COMMIT);
                if is_commit && armed.swap(false, Ordering::SeqCst) {
                    sent.store(true, Ordering::SeqCst);
                }
                if to_server.write_all(chunk).is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown(Shutdown::Both);
        });
        let (mut from_server, mut to_client) = (server, client);
        std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = from_server.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if commit_sent.load(Ordering::SeqCst) {
                    // The server has answered the COMMIT: it landed. The answer does not.
                    cuts.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if to_client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = from_server.shutdown(Shutdown::Both);
        });
    }

    /// The layer's connection string through the relay (user and password from PG*).
    fn conninfo(&self, db: &TestDb) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={} sslmode=disable",
            self.port, db.name
        )
    }
}

#[test]
fn a_commit_whose_answer_is_lost_is_written_once_and_the_loss_is_on_the_record() {
    let Some(db) = TestDb::create() else { return };
    let cut = CommitAnswerCut::start();
    let (layer, guard) = AuditLayer::builder()
        .postgres(cut.conninfo(&db))
        .build()
        .unwrap();
    let steps = |session: &str| {
        let span = info_span!("session", id = session);
        let _s = span.enter();
        for k in 0..10 {
            info_span!("step", module = "laserlogic", input_summary = "premises", k).in_scope(|| {
                tracing::info!(name: "decision", decision_type = "verdict", chosen_option = "a");
            });
        }
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        steps("before-the-cut");
        guard.flush().unwrap();
        cut.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        steps("cut-answer");
        // The writer learns of the loss and tells this flush; it then sends the batch
        // again on a new connection, finds it landed, and the next flush succeeds.
        assert!(guard.flush().is_err(), "the lost answer is reported");
        flush_until_recovered(&guard);
    });
    guard.shutdown().unwrap();
    assert_eq!(cut.cuts.load(std::sync::atomic::Ordering::SeqCst), 1);

    let mut client = db.client();
    for (sql, expected) in [
        ("SELECT count(*) FROM sessions", 2),
        ("SELECT count(*) FROM steps WHERE ended_at IS NOT NULL", 20),
        ("SELECT count(*) FROM decisions", 20),
    ] {
        assert_eq!(count(&mut client, sql), expected, "{sql}");
    }
    let chained_twice = count(
        &mut client,
        "SELECT count(*) FROM (SELECT 1 FROM audit_chain GROUP BY table_name, row_id, leaf_hash \
         HAVING count(*) > 1) AS d",
    );
    assert_eq!(chained_twice, 0, "no row image chained twice");
    assert_chain_covers_everything(&mut client);
    let detail: String = client
        .query_one(
            "SELECT string_agg(detail, ' | ') FROM audit_health WHERE kind = 'write_errors'",
            &[],
        )
        .unwrap()
        .get::<_, Option<String>>(0)
        .expect("the lost answer is on the record");
    assert!(detail.contains(&db.name), "{detail}");
    assert_intact(&db);
}

#[test]
fn statements_prepared_before_a_schema_change_are_prepared_again() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer();
    let step = |k: u64| {
        info_span!("step", module = "laserlogic", k).in_scope(|| {});
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let session = info_span!("session", id = "schema-changed");
        let _s = session.enter();
        step(0);
        guard.flush().unwrap();
        // A column's type changed by a DBA: the statement the writer prepared for steps
        // now returns another type, and the server refuses to run it as prepared.
        db.client()
            .batch_execute("ALTER TABLE steps ALTER COLUMN module TYPE varchar(200)")
            .unwrap();
        step(1);
        flush_until_recovered(&guard);
    });
    guard.shutdown().unwrap();
    let mut client = db.client();
    assert_eq!(count(&mut client, "SELECT count(*) FROM steps"), 2);
    assert_intact(&db);
}

#[test]
fn pruning_a_postgres_store_keeps_it_verifiable_and_a_deletion_passed_off_is_found() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..200 {
            info_span!("session", id = format!("pg-old-{i:03}")).in_scope(|| {
                info_span!("step", module = "gigathink").in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "branch", chosen_option = "a");
                });
            });
        }
    });
    guard.shutdown().unwrap();
    let mut client = db.client();
    let cut: String = client
        .query_one(
            "SELECT to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') \
             FROM sessions ORDER BY ended_at OFFSET 100 LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let expected = count(
        &mut client,
        &format!("SELECT count(*) FROM sessions WHERE ended_at < ('{cut}' || '+00')::timestamptz"),
    );
    let dry = reasonkit_audit::postgres::prune(
        &db.conninfo(),
        &reasonkit_audit::Prune::before_text(cut.clone()).dry_run(true),
    )
    .unwrap();
    assert_eq!(dry.sessions as i64, expected);
    assert_eq!(count(&mut client, "SELECT count(*) FROM sessions"), 200);
    let rows = "(SELECT count(*) FROM steps) + (SELECT count(*) FROM decisions)";
    reasonkit_audit::postgres::search::catch_up(&db.conninfo()).unwrap();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM search_terms"),
        count(&mut client, &format!("SELECT {rows}"))
    );
    let report = reasonkit_audit::postgres::prune(
        &db.conninfo(),
        &reasonkit_audit::Prune::before_text(cut).reason("pg retention"),
    )
    .unwrap();
    assert_eq!(report.sessions as i64, expected);
    assert_eq!(report.steps, report.sessions);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM sessions"),
        200 - expected
    );
    // The pruned rows' words went with them, and only theirs.
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM search_terms"),
        count(&mut client, &format!("SELECT {rows}"))
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM search_terms t WHERE NOT EXISTS \
             (SELECT 1 FROM sessions s WHERE s.id = t.session_id)"
        ),
        0
    );
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    assert_eq!(verified.pruned_rows as i64, expected * 3);

    // A step deleted and listed as pruned: the event's digest no longer holds.
    client
        .batch_execute(
            "WITH victim AS (SELECT session_id, id FROM steps ORDER BY id LIMIT 1), \
             gone_d AS (DELETE FROM decisions d USING victim v WHERE d.step_id = v.id RETURNING d.id), \
             listed AS (INSERT INTO audit_pruned SELECT 'decisions', id, \
                 (SELECT id FROM audit_events WHERE kind = 'pruned') FROM gone_d) \
             SELECT 1",
        )
        .unwrap();
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    let kinds: Vec<&str> = verified.findings.iter().map(|f| f.kind.as_str()).collect();
    assert!(kinds.contains(&"prune_altered"), "{kinds:?}");
    assert!(kinds.contains(&"deleted"), "{kinds:?}");
}

#[test]
fn erasing_in_a_postgres_store_replaces_the_content_and_verify_checks_the_rest() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer_storing_inputs();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for (id, user) in [("pg-alice", "u-1"), ("pg-bob", "u-2")] {
            info_span!(
                "session",
                id,
                user_id = user,
                input = "my personal question"
            )
            .in_scope(|| {
                info_span!(
                    "step",
                    module = "gigathink",
                    input_summary = "personal note"
                )
                .in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "branch",
                                rationale = "personal reasons");
                });
            });
        }
    });
    guard.shutdown().unwrap();
    let mut client = db.client();
    let words = |client: &mut Client, session: &str| {
        count(
            client,
            &format!(
                "SELECT count(*) FROM search_terms WHERE session_id = '{session}' \
                 AND terms @@ to_tsquery('simple', 'personal')"
            ),
        )
    };
    reasonkit_audit::postgres::search::catch_up(&db.conninfo()).unwrap();
    assert_eq!(words(&mut client, "pg-alice"), 2, "indexed");
    let report = reasonkit_audit::postgres::erase(
        &db.conninfo(),
        &reasonkit_audit::Erase::attribute("user_id", "u-1").reason("request 9"),
    )
    .unwrap();
    assert_eq!((report.sessions, report.rows), (1, 3));
    assert_eq!(
        words(&mut client, "pg-alice"),
        0,
        "erased from the index too"
    );
    assert_eq!(words(&mut client, "pg-bob"), 2);
    let row = client
        .query_one(
            "SELECT s.input_hash, s.input IS NULL, s.attributes::text, st.input_summary IS NULL, \
             d.rationale IS NULL, st.module FROM sessions s JOIN steps st ON st.session_id = s.id \
             JOIN decisions d ON d.session_id = s.id WHERE s.id = 'pg-alice'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "erased");
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(3) && row.get::<_, bool>(4));
    assert_eq!(row.get::<_, String>(2), "{}");
    assert_eq!(row.get::<_, String>(5), "gigathink", "structure stays");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM steps WHERE input_summary = 'personal note'"
        ),
        1,
        "the other session keeps its content"
    );
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    assert_eq!(verified.erased_rows, 3);

    // A change to an erased row's structure is still found.
    client
        .batch_execute("UPDATE steps SET module = 'forged' WHERE session_id = 'pg-alice'")
        .unwrap();
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert_eq!(verified.findings.len(), 1, "{:?}", verified.findings);
    assert_eq!(verified.findings[0].kind.as_str(), "modified");
}

/// The writers never index for search (it would cost the writes more than writing did);
/// `search::catch_up` indexes what they wrote, round after round, the newest rows
/// included, and says how many chain entries it covered.
#[test]
fn writers_leave_the_search_index_to_catch_up_which_keeps_up_with_new_rows() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut client = db.client();
    let lag = "SELECT coalesce(max(seq), 0) - (SELECT value::bigint FROM audit_meta \
               WHERE key = 'search_indexed') FROM audit_chain";
    let rows = "(SELECT count(*) FROM steps) + (SELECT count(*) FROM decisions)";
    for round in 0..3 {
        tracing::dispatcher::with_default(&dispatch, || {
            for n in 0..400 {
                info_span!("session", profile = "catch-up").in_scope(|| {
                    info_span!(
                        "step",
                        module = "gigathink",
                        input_summary = format!("round{round} item{n} zebra"),
                    )
                    .in_scope(|| {
                        tracing::info!(name: "decision", decision_type = "branch",
                                       rationale = format!("because{round}x{n}"));
                    });
                });
            }
        });
        guard.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let behind = count(&mut client, lag);
        assert!(
            behind >= 1_200,
            "round {round}: the writer indexed ({behind} behind)"
        );
        let covered = reasonkit_audit::postgres::search::catch_up(&db.conninfo()).unwrap();
        assert_eq!(covered as i64, behind, "round {round}");
        assert_eq!(count(&mut client, lag), 0);
        assert_eq!(
            count(&mut client, "SELECT count(*) FROM search_terms"),
            count(&mut client, &format!("SELECT {rows}")),
            "round {round}"
        );
        let newest = format!(
            "SELECT count(*) FROM search_terms WHERE terms @@ \
             to_tsquery('simple', 'round{round} & item399')"
        );
        assert_eq!(count(&mut client, &newest), 1, "round {round}");
    }
    assert_eq!(count(&mut client, &format!("SELECT {rows}")), 2_400);
    assert_eq!(
        reasonkit_audit::postgres::search::catch_up(&db.conninfo()).unwrap(),
        0
    );
    guard.shutdown().unwrap();
}

/// A store whose encoding is not UTF8 (which the writer leaves to the statements, since it
/// converts text on the way in) is written, gives back text of its repertoire as written,
/// and verifies.
#[test]
fn a_latin1_store_is_written_by_the_statements_and_verifies() {
    let Some(db) = TestDb::create_encoded("LATIN1") else {
        return;
    };
    let (layer, guard) = db.layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for n in 0..20 {
            info_span!("session", profile = "café", note = "naïve").in_scope(|| {
                info_span!(
                    "step",
                    module = "crème",
                    input_summary = format!("résumé {n}")
                )
                .in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "branch",
                                       rationale = "déjà vu");
                });
            });
        }
    });
    guard.shutdown().unwrap();
    let mut client = db.client();
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM steps WHERE module = 'crème' AND input_summary LIKE 'résumé %'"
        ),
        20
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM sessions WHERE profile = 'café' AND attributes->>'note' = 'naïve'"
        ),
        20
    );
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
    assert_eq!(verified.entries, 60);
}

#[test]
fn secrets_are_redacted_before_they_reach_a_postgres_store() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer_storing_inputs();
    let key = "sk-proj-Q7x2LmN9pR4sT6vW8yZ0aB1cD3eF";
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("session", id = "pg-secret", input = format!("use {key}")).in_scope(|| {
            info_span!(
                "step",
                module = "toolcall",
                api_key = "plain-value-77",
                error = "401: Authorization: Bearer abcDEF123ghiJKL456mno"
            )
            .in_scope(|| {});
        });
    });
    guard.flush().unwrap();
    let stats = guard.stats();
    guard.shutdown().unwrap();
    assert!(stats.redactions >= 3, "{stats:?}");
    let mut client = db.client();
    let dump: String = client
        .query_one(
            "SELECT (SELECT string_agg(s::text, ' ') FROM sessions s) || \
             (SELECT string_agg(st::text, ' ') FROM steps st)",
            &[],
        )
        .unwrap()
        .get(0);
    for secret in [key, "plain-value-77", "abcDEF123ghiJKL456mno"] {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
    assert!(dump.contains("[REDACTED:provider_key]"), "{dump}");
    assert_eq!(
        count(
            &mut client,
            "SELECT coalesce(sum(count), 0)::bigint FROM audit_health WHERE kind = 'redactions'"
        ) as u64,
        stats.redactions
    );
    let verified = reasonkit_audit::postgres::verify(&db.conninfo(), &Default::default()).unwrap();
    assert!(verified.is_intact(), "{:?}", verified.findings);
}

#[test]
fn the_read_api_and_the_comparison_read_a_postgres_store_like_a_file() {
    let Some(db) = TestDb::create() else { return };
    let (layer, guard) = db.layer_storing_inputs();
    let run = |id: Option<&str>, verdict: &str| {
        let session = match id {
            Some(id) => info_span!("session", id, profile = "deep", input = "claim 9"),
            None => info_span!(
                "session",
                profile = "deep",
                input = "claim 9",
                replay_of = "pg-orig"
            ),
        };
        session.in_scope(|| {
            info_span!(
                "step",
                module = "planner",
                confidence = 0.75,
                tokens_used = 12_i64
            )
            .in_scope(|| {
                info_span!("step", module = "planner.detail").in_scope(|| {});
                tracing::info!(name: "decision", decision_type = "claim", chosen_option = verdict);
            });
        });
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run(Some("pg-orig"), "pay");
        run(None, "escalate");
    });
    guard.flush().unwrap();
    guard.shutdown().unwrap();

    let reader = reasonkit_audit::read::Reader::open(db.url()).unwrap();
    let original = reader.session("pg-orig").unwrap().unwrap();
    assert_eq!(original.input.as_deref(), Some("claim 9"));
    assert_eq!(original.status, "completed");
    let walked: Vec<(usize, &str)> = original
        .walk()
        .into_iter()
        .map(|(d, s)| (d, s.module.as_str()))
        .collect();
    assert_eq!(walked, [(0, "planner"), (1, "planner.detail")]);
    assert_eq!(original.steps[0].confidence, Some(0.75));
    assert_eq!(original.steps[0].tokens_used, Some(12));
    let replays = reader.replays_of("pg-orig").unwrap();
    assert_eq!(replays.len(), 1);
    let rerun = reader.session(&replays[0].id).unwrap().unwrap();
    let diff = reasonkit_audit::diff::compare(&original, &rerun);
    assert!(diff.decisions_diverged);
    assert_eq!(
        diff.steps[0].decisions[0].rerun.as_deref(),
        Some("escalate")
    );
    let since = reader
        .sessions(&reasonkit_audit::read::SessionFilter {
            since: Some(original.started_at),
            profile: Some("deep".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(since.len(), 2);
    let oldest = reader
        .sessions(&reasonkit_audit::read::SessionFilter {
            oldest_first: true,
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(oldest.len(), 1);
    assert_eq!(oldest[0].id, "pg-orig");
}

/// Every session of `store` as a reader sees it, with its steps (by id) and their
/// decisions; a pointer's end left out (the clock's, when its trace joined another).
#[cfg(feature = "otlp")]
fn every_session(store: &str) -> Vec<reasonkit_audit::read::Session> {
    let reader = reasonkit_audit::read::Reader::open(store).unwrap();
    let mut summaries = reader.sessions(&Default::default()).unwrap();
    summaries.sort_by(|a, b| a.id.cmp(&b.id));
    summaries
        .iter()
        .map(|summary| {
            let mut session = reader.session(&summary.id).unwrap().unwrap();
            session.steps.sort_by(|a, b| a.id.cmp(&b.id));
            if session.status == "joined" {
                session.summary.ended_at = None;
            }
            session
        })
        .collect()
}

#[cfg(feature = "otlp")]
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    /// The OTLP receiver writes the same sessions, steps and decisions into PostgreSQL as
    /// into a SQLite file, whatever the spans, their order, the retries and the restarts
    /// (random scripts of conversations, links between traces, handoffs, failing tools
    /// and decisions): the statements that move a joined trace's steps, adopt a row a
    /// receiver before wrote, and rewrite a conversation are each store's own.
    #[test]
    fn the_receiver_writes_the_same_sessions_in_postgresql_as_in_a_file(
        script in scripts::client_script()
    ) {
        same_in_both(&script);
    }
}

/// Plays `script` into a SQLite file and into PostgreSQL, and reads back the same
/// sessions from both, each store sound.
#[cfg(feature = "otlp")]
fn same_in_both(script: &[scripts::Step]) {
    let Some(db) = TestDb::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
    scripts::play(script, || {
        let (layer, guard) = AuditLayer::builder().path(&file).build().unwrap();
        let reader = reasonkit_audit::read::Reader::open(&file).unwrap();
        (reasonkit_audit::otlp::Receiver::new(&layer, reader), guard)
    });
    scripts::play(script, || {
        let (layer, guard) = db.layer();
        let reader = reasonkit_audit::read::Reader::open(db.url()).unwrap();
        (reasonkit_audit::otlp::Receiver::new(&layer, reader), guard)
    });
    let in_file = every_session(file.to_str().unwrap());
    assert!(!in_file.is_empty());
    assert_eq!(in_file, every_session(&db.url()));
    assert_intact(&db);
    common::assert_consistent(&file);
}

#[cfg(feature = "otlp")]
#[test]
fn a_run_closed_after_its_turn_joined_another_trace_is_closed_on_postgres() {
    use scripts::{Planned, Step};
    let p = |trace, id, parent, conversation, follows, kind| Planned {
        trace,
        id,
        parent,
        conversation,
        follows,
        kind,
    };
    same_in_both(&[
        Step::Send(vec![p(1, 19, 18, None, None, 0)]),
        Step::Send(vec![
            p(1, 18, 17, None, None, 5),
            p(2, 34, 33, None, None, 5),
        ]),
        Step::Send(vec![
            p(2, 35, 34, Some("conv-b"), None, 4),
            p(1, 17, 0, None, Some(2), 3),
        ]),
        Step::Send(vec![p(2, 33, 0, Some("conv-b"), None, 3)]),
    ]);
}

#[cfg(feature = "otlp")]
#[test]
fn a_span_naming_a_step_that_its_own_batch_moved_lands_on_postgres() {
    use scripts::{Planned, Step};
    let p = |id, parent, conversation, kind| Planned {
        trace: 1,
        id,
        parent,
        conversation,
        follows: None,
        kind,
    };
    // Span 20 opens its trace's session and the placeholder of 17; span 18 names the
    // conversation, which moves them; span 21 names 18, after the move: one batch.
    same_in_both(&[
        Step::Send(vec![
            p(20, 17, None, 5),
            p(21, 18, Some("conv-a"), 0),
            p(18, 17, Some("conv-a"), 1),
        ]),
        Step::Send(vec![p(17, 0, Some("conv-a"), 3)]),
        Step::Send(vec![p(19, 18, Some("conv-a"), 1)]),
    ]);
}
