//! The `reasonkit-audit` command on a PostgreSQL store the layer wrote: `verify`, `migrate`
//! and `path`, with the server's own tools (`createdb`, `psql`, `dropdb`) around it. Skips
//! with a one-line message without a server (PGHOST/PGPORT unset), unless
//! `REASONKIT_AUDIT_REQUIRE_POSTGRES` is set, as `.ci/run` sets it.

mod common;

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
fn verify_migrate_and_path_work_on_a_postgres_store_and_file_only_commands_say_so() {
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

    let out = cli(&db, &["checkpoint"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("works on SQLite files") && error.lines().count() == 1,
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

/// The file the README's main job (the `reasoning` example) writes, in a temporary folder.
fn example_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
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
    common::succeeded(&out);
    (dir, file)
}

#[test]
fn import_copies_the_examples_sqlite_file_keeping_ids_and_times_and_twice_adds_nothing() {
    let Some(db) = Db::create() else { return };
    let (_dir, file) = example_file();

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

#[test]
fn every_read_command_answers_on_postgres_as_on_the_file_it_was_imported_from() {
    let Some(db) = Db::create() else { return };
    let (_dir, file) = example_file();
    succeeds(&db, &["import", file.to_str().unwrap()]);
    let on_file = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json = |text: String| -> serde_json::Value { serde_json::from_str(&text).unwrap() };
    // Averages are summed in another order by each server: equal to the last few digits.
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    for args in [
        &["sessions", "--json"][..],
        &["sessions", "--json", "--below", "0.8"],
        &["stats", "--json"],
        &["export", "--format", "json"],
    ] {
        let (pg, file) = (json(succeeds(&db, args)), json(on_file(args)));
        assert!(same(&pg, &file), "{args:?}:\n{pg}\n{file}");
    }
    // The tables, CSV and the replay view print the same text.
    for args in [
        &["sessions"][..],
        &["stats"],
        &["export", "--format", "csv", "--table", "sessions"],
        &["export", "--format", "csv", "--table", "steps"],
        &["export", "--format", "csv", "--table", "decisions"],
    ] {
        assert_eq!(succeeds(&db, args), on_file(args), "{args:?}");
    }
    let sessions = json(on_file(&["sessions", "--json"]));
    let first = sessions[0]["id"].as_str().unwrap().to_owned();
    // A prefix long enough to be unique (ids made in the same millisecond share 13).
    let prefix = &first[..30];
    let (pg, on) = (
        json(succeeds(&db, &["show", prefix, "--json"])),
        json(on_file(&["show", prefix, "--json"])),
    );
    assert!(same(&pg, &on), "show:\n{pg}\n{on}");
    assert_eq!(succeeds(&db, &["show", prefix]), on_file(&["show", prefix]));
    // Search: the same matches (ranked by another scorer, so compared as a set).
    let found = |text: String| {
        let mut v: Vec<(String, String, String)> = json(text)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                (s("kind"), s("session_id"), s("step_id"))
            })
            .collect();
        v.sort();
        v
    };
    let mut matched = 0;
    for words in [
        "revenue",
        "\"risk view\"",
        "premise claims",
        "perspectives",
        "nowhere-to-be-found",
    ] {
        let args = ["search", words, "--json", "-n", "100"];
        let on_pg = Command::new(BIN)
            .arg("--db")
            .arg(db.url())
            .args(args)
            .output()
            .unwrap();
        let on_sqlite = Command::new(BIN)
            .arg("--db")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(on_pg.status.code(), on_sqlite.status.code(), "{words}");
        if on_sqlite.status.code() == Some(0) {
            matched += 1;
            assert_eq!(
                found(String::from_utf8_lossy(&on_pg.stdout).into_owned()),
                found(String::from_utf8_lossy(&on_sqlite.stdout).into_owned()),
                "{words}"
            );
        }
    }
    assert_eq!(
        matched, 4,
        "four of the searches find something on both sides"
    );
    let check = succeeds(&db, &["check"]);
    assert!(check.contains("foreign keys    ok"), "{check}");
    assert!(check.contains("step times      ok"), "{check}");
    // diff and the report, built on the library's read API, read both stores alike.
    let second = sessions[1]["id"].as_str().unwrap()[..30].to_owned();
    let both = |args: &[&str]| {
        let run = |target: &std::ffi::OsStr| {
            let out = Command::new(BIN)
                .arg("--db")
                .arg(target)
                .args(args)
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        (run(db.url().as_ref()), run(file.as_os_str()))
    };
    let (pg, on) = both(&["diff", prefix, &second, "--json"]);
    assert!(matches!(pg.0, Some(0 | 1)), "diff: {pg:?}");
    assert_eq!(pg.0, on.0);
    assert!(same(&json(pg.1), &json(on.1)), "diff on both stores");
    let (pg, on) = both(&["report", "--session", prefix]);
    assert_eq!((pg.0, on.0), (Some(0), Some(0)));
    let body = |html: &str| html[html.find("<section").unwrap()..].to_owned();
    assert_eq!(body(&pg.1), body(&on.1), "report sections on both stores");
    assert!(pg.1.contains("the chain verifies"), "{}", pg.1);
}

/// `search` on PostgreSQL answers the same whether the rows are found through the index,
/// read from the tail past its mark, or both: with everything indexed (as `import` leaves
/// it), with the mark moved back half-way (the rows past it have stale index entries, which
/// must not count twice), and with the index emptied and its mark at 0 (every row read).
#[test]
fn search_finds_the_same_through_the_index_the_tail_or_both() {
    let Some(db) = Db::create() else { return };
    let (_dir, file) = example_file();
    succeeds(&db, &["import", file.to_str().unwrap()]);
    let psql = |sql: &str| tool("psql", &["-X", "-q", "-d", &db.0, "-c", sql]);
    let head = "(SELECT max(seq) FROM audit_chain)";
    assert_eq!(
        count(
            &db,
            &format!("SELECT {head} - value::bigint FROM audit_meta WHERE key = 'search_indexed'")
        ),
        0,
        "import indexes what it imports"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM search_terms"),
        count(
            &db,
            "SELECT (SELECT count(*) FROM steps) + (SELECT count(*) FROM decisions)"
        )
    );
    let words = ["revenue", "\"risk view\"", "premise claims", "perspectives"];
    let answers = || -> Vec<String> {
        words
            .iter()
            .map(|w| succeeds(&db, &["search", w, "--json", "-n", "100"]))
            .collect()
    };
    let indexed = answers();
    assert!(
        indexed.iter().all(|a| a.contains("session_id")),
        "{indexed:?}"
    );
    psql(&format!(
        "UPDATE audit_meta SET value = ({head} / 2)::text WHERE key = 'search_indexed'"
    ));
    assert_eq!(
        answers(),
        indexed,
        "half through the index, half from the tail"
    );
    psql("UPDATE audit_meta SET value = '0' WHERE key = 'search_indexed'");
    assert_eq!(answers(), indexed, "every index entry stale");
    psql("DELETE FROM search_terms");
    assert_eq!(answers(), indexed, "no index at all");
    // `index` rebuilds it; the answers stay the same.
    let said = succeeds(&db, &["index"]);
    assert!(said.contains("chain entries indexed for search"), "{said}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM search_terms"),
        count(
            &db,
            "SELECT (SELECT count(*) FROM steps) + (SELECT count(*) FROM decisions)"
        )
    );
    assert_eq!(answers(), indexed, "rebuilt by index");
    // A store of the schema before the index (version 2): every row is read.
    psql("DROP TABLE search_terms");
    assert_eq!(answers(), indexed, "a store without the index");
    // On a file, index says what it is for.
    let out = Command::new(BIN)
        .arg("--db")
        .arg(&file)
        .arg("index")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL stores"));
}

/// The part of a page that shows the trail: `<main>` without the chain's banner (whose
/// figures are each store's own chain).
fn shown(page: &str) -> String {
    let main = page
        .split("<main>")
        .nth(1)
        .and_then(|m| m.split("</main>").next())
        .unwrap_or_default();
    // The banner's `<p …id="evidence"…>`, whatever the order of its attributes (its text
    // may also say the verdict is not in yet on one server and in on the other).
    let banner = main
        .find("id=\"evidence\"")
        .and_then(|at| main[..at].rfind("<p"));
    match (banner, main.find("<table class=\"header\">")) {
        (Some(start), Some(end)) if start < end => format!("{}{}", &main[..start], &main[end..]),
        _ => main.to_owned(),
    }
}

#[test]
fn the_web_ui_shows_a_postgres_store_as_it_shows_the_file_it_was_imported_from() {
    use common::server::{Ui, get};
    let Some(db) = Db::create() else { return };
    let (_dir, file) = example_file();
    succeeds(&db, &["import", file.to_str().unwrap()]);
    let on_file = Ui::start(&file, &[]);
    let url = db.url();
    let on_postgres = Ui::start(std::path::Path::new(&url), &[]);
    let failed = tool(
        "sqlite3",
        &[
            file.to_str().unwrap(),
            "SELECT session_id FROM steps WHERE error IS NOT NULL LIMIT 1",
        ],
    );
    let failed = String::from_utf8_lossy(&failed.stdout).trim().to_owned();
    let pages = [
        "/".to_owned(),
        "/?sort=tokens&dir=asc".to_owned(),
        "/?text=revenue".to_owned(),
        format!("/session?id={failed}"),
        "/stats".to_owned(),
    ];
    for page in &pages {
        let (code_file, _, file_page) = get(&on_file.addr(), page, &[]);
        let (code_pg, head, pg_page) = get(&on_postgres.addr(), page, &[]);
        assert_eq!((code_file, code_pg), (200, 200), "{page}: {pg_page}");
        assert!(head.contains("content-security-policy"), "{page}");
        assert_eq!(shown(&pg_page), shown(&file_page), "{page}");
    }
    // Search finds the same rows; snippets and rank are each engine's own (FTS5's, and
    // ts_headline's and ts_rank's).
    let hits = |ui: &Ui| {
        let (code, _, page) = get(&ui.addr(), "/search?q=revenue", &[]);
        assert_eq!(code, 200);
        let mut rows: Vec<String> = page
            .split("<tr class=\"hit\">")
            .skip(1)
            .map(|row| {
                row.split("<td class=\"snippet\">")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        rows.sort();
        rows
    };
    let found = hits(&on_file);
    assert!(!found.is_empty());
    assert_eq!(hits(&on_postgres), found);
    let (code, _, verdict) = get(&on_postgres.addr(), "/verify", &[]);
    assert_eq!(code, 200);
    assert!(verdict.contains("the chain verifies"), "{verdict}");
    // Reading wrote nothing: the store's chain is as long as before.
    let entries = count(&db, "SELECT count(*) FROM audit_chain");
    let (code, _, _) = get(
        &on_postgres.addr(),
        &format!("/session.json?id={failed}"),
        &[],
    );
    assert_eq!(code, 200);
    assert_eq!(count(&db, "SELECT count(*) FROM audit_chain"), entries);
}

/// One span of trace 7 as an OTLP/HTTP protobuf body: `id` under `parent` (0: the root).
fn otlp_span(id: u8, parent: u8) -> Vec<u8> {
    otlp_span_of(7, id, parent, None)
}

/// One span of trace `trace`, `id` under `parent` (0: the root), following span `.1` of
/// trace `.0` when given (a link).
fn otlp_span_of(trace: u8, id: u8, parent: u8, follows: Option<(u8, u8)>) -> Vec<u8> {
    otlp_span_with(trace, id, parent, follows, None, &[])
}

/// [`otlp_span_of`], named `name` (else `level <id>`) and with these string attributes.
fn otlp_span_with(
    trace: u8,
    id: u8,
    parent: u8,
    follows: Option<(u8, u8)>,
    name: Option<&str>,
    attributes: &[(&str, &str)],
) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Link};
    use prost::Message;
    let depth = u64::from(id);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![trace; 16],
                    span_id: vec![id; 8],
                    parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
                    name: name.map_or_else(|| format!("level {id}"), str::to_owned),
                    attributes: attributes
                        .iter()
                        .map(|(key, value)| KeyValue {
                            key: (*key).into(),
                            value: Some(AnyValue {
                                value: Some(Value::StringValue((*value).into())),
                            }),
                            ..KeyValue::default()
                        })
                        .collect(),
                    start_time_unix_nano: 1_750_000_000_000_000_000 + depth * 1_000_000,
                    end_time_unix_nano: 1_750_000_001_000_000_000 - depth * 1_000_000,
                    links: follows
                        .map(|(trace, span)| Link {
                            trace_id: vec![trace; 16],
                            span_id: vec![span; 8],
                            ..Link::default()
                        })
                        .into_iter()
                        .collect(),
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn collect_joins_a_trace_that_follows_another_into_its_session_on_postgres() {
    let Some(db) = Db::create() else { return };
    let url = db.url();
    let collector =
        common::server::Collector::start(std::path::Path::new(&url), "127.0.0.1:0", "off", &[]);
    // Trace 8 (a turn) follows trace 7's root (the run). Its two nested spans come first,
    // written into its own session; its root then says whom it follows, and they move, with
    // the reference between them, in one statement. The run comes last.
    for body in [
        otlp_span_of(8, 0x13, 0x12, None),
        otlp_span_of(8, 0x12, 0x11, None),
        otlp_span_of(8, 0x11, 0, Some((7, 1))),
        otlp_span_of(7, 1, 0, None),
    ] {
        let (code, head, answer) = common::server::request(
            &collector.http,
            "POST",
            "/v1/traces",
            &["Content-Type: application/x-protobuf"],
            &body,
        );
        assert_eq!(code, 200, "{head}{}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sessions WHERE status = 'joined' \
             AND attributes->>'otel.joined_into' = \
               (SELECT id FROM sessions WHERE status = 'completed')"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM steps WHERE session_id = \
               (SELECT id FROM sessions WHERE status = 'completed')"
        ),
        4,
        "the run and the turn's three spans, in the run's session"
    );
    assert_eq!(
        count(
            &db,
            "WITH RECURSIVE chain(id, depth) AS ( \
               SELECT id, 1 FROM steps WHERE module = 'level 17' \
               UNION ALL SELECT s.id, c.depth + 1 FROM steps s JOIN chain c ON s.parent_step_id = c.id) \
             SELECT max(depth) FROM chain"
        ),
        3
    );
    // Each of the turn's steps names its own trace: the session's is the run's.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM steps WHERE attributes->>'otel.trace_id' = repeat('08', 16)"
        ),
        3
    );
    for command in ["verify", "check"] {
        let out = cli(&db, &[command]);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn collect_gathers_a_conversations_traces_into_one_session_on_postgres_across_a_restart() {
    let Some(db) = Db::create() else { return };
    let url = db.url();
    // Two turns of one conversation, each a trace whose root names it; the collector is
    // stopped and started again between them, and reads the conversation back.
    for (trace, start) in [(0x21u8, 0u8), (0x22, 40)] {
        let collector =
            common::server::Collector::start(std::path::Path::new(&url), "127.0.0.1:0", "off", &[]);
        // Each turn's agent hands off (a decision), before its root names the conversation.
        let handoff = [("output.value", "Payments"), ("input.value", "Triage")];
        let conversation = [("gen_ai.conversation.id", "pg-conversation")];
        for body in [
            otlp_span_with(
                trace,
                start + 2,
                start + 1,
                None,
                Some("handoff to Payments"),
                &handoff,
            ),
            otlp_span_with(trace, start + 1, 0, None, None, &conversation),
        ] {
            let (code, head, answer) = common::server::request(
                &collector.http,
                "POST",
                "/v1/traces",
                &["Content-Type: application/x-protobuf"],
                &body,
            );
            assert_eq!(code, 200, "{head}{}", String::from_utf8_lossy(&answer));
        }
        assert_eq!(collector.stop().code(), Some(0));
    }
    let conversation =
        "(SELECT id FROM sessions WHERE attributes->>'otel.conversation' = 'pg-conversation')";
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM steps WHERE session_id = {conversation}")
        ),
        4,
        "both turns, each with its child, in the conversation's session"
    );
    // Each handoff is its turn's decision, once, in the conversation's session.
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM decisions d JOIN steps s ON s.id = d.step_id \
                 WHERE d.decision_type = 'handoff' AND d.chosen_option = 'Payments' \
                 AND s.parent_step_id IS NULL AND s.session_id = {conversation}"
            )
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM sessions WHERE status = 'joined' \
                 AND attributes->>'otel.joined_into' = {conversation}"
            )
        ),
        2
    );
    // The first turn started first and, deeper spans ending sooner here, also ended last:
    // the session runs from its start to its end only if the second collector read the
    // first turn back.
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM sessions WHERE id = {conversation} AND status = 'completed' \
                 AND started_at = to_timestamp(1750000000.001) \
                 AND ended_at = to_timestamp(1750000000.999)"
            )
        ),
        1
    );
    for command in ["verify", "check"] {
        let out = cli(&db, &[command]);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn collect_writes_a_trace_sent_deepest_first_into_a_postgres_store_once() {
    let Some(db) = Db::create() else { return };
    let url = db.url();
    let collector =
        common::server::Collector::start(std::path::Path::new(&url), "127.0.0.1:0", "off", &[]);
    // A chain of 8 spans, each alone, deepest first: every parent is a placeholder when its
    // child comes, completed (start and enclosing step corrected) by an UPDATE later. Each
    // request is sent twice, as an exporter's retry would.
    for id in (1..=8u8).rev() {
        for _ in 0..2 {
            let (code, head, body) = common::server::request(
                &collector.http,
                "POST",
                "/v1/traces",
                &["Content-Type: application/x-protobuf"],
                &otlp_span(id, id - 1),
            );
            assert_eq!(code, 200, "{head}{}", String::from_utf8_lossy(&body));
        }
    }
    assert_eq!(collector.stop().code(), Some(0));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        ),
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM steps WHERE ended_at IS NOT NULL"),
        8
    );
    assert_eq!(
        count(
            &db,
            "WITH RECURSIVE chain(id, depth) AS ( \
               SELECT id, 1 FROM steps WHERE parent_step_id IS NULL \
               UNION ALL SELECT s.id, c.depth + 1 FROM steps s JOIN chain c ON s.parent_step_id = c.id) \
             SELECT max(depth) FROM chain"
        ),
        8
    );
    // Each step starts where its span started, not where its first child did.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM steps WHERE started_at = \
             to_timestamp(1750000000) + (substr(module, 7)::int * interval '1 millisecond')"
        ),
        8
    );
    let out = cli(&db, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `verify --evidence` by both verifiers, offline: its exit code and what it printed.
fn check_bundle(bundle: &std::path::Path) -> Vec<(Option<i32>, String)> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify_chain.py");
    [
        Command::new(BIN)
            .args(["verify", "--evidence"])
            .arg(bundle)
            .output()
            .unwrap(),
        Command::new("python3")
            .arg(script)
            .arg("--evidence")
            .arg(bundle)
            .output()
            .unwrap(),
    ]
    .into_iter()
    .map(|out| (out.status.code(), common::text(&out)))
    .collect()
}

#[test]
fn evidence_bundles_from_a_postgres_store_prove_themselves_written_or_imported() {
    let Some(db) = Db::create() else { return };
    // Written by the layer into the store, and a file imported into it.
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .postgres(format!("dbname={}", db.0))
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("session", id = "pg-claim").in_scope(|| {
            info_span!(
                "step",
                module = "triage",
                confidence = 0.87,
                tokens_used = 512_i64
            )
            .in_scope(|| {
                tracing::info!(name: "decision", decision_type = "route",
                        chosen_option = "adjuster", rationale = "over the limit");
            });
            info_span!("step", module = "lookup", error = "ConnectionError: down").in_scope(|| {});
        });
    });
    guard.shutdown().unwrap();
    let (dir, file) = example_file();
    succeeds(&db, &["import", file.to_str().unwrap()]);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_chain WHERE table_name IN ('sessions', 'steps', \
             'decisions') AND session_id IS NULL"
        ),
        0,
        "every entry of a row names its session"
    );
    let imported = tool(
        "sqlite3",
        &[
            file.to_str().unwrap(),
            "SELECT id FROM sessions WHERE profile = 'paranoid'",
        ],
    );
    let imported = String::from_utf8_lossy(&imported.stdout).trim().to_owned();

    for (name, session, steps) in [
        ("written", "pg-claim", 2),
        ("imported", imported.as_str(), 7),
    ] {
        let bundle = dir.path().join(format!("{name}.json"));
        succeeds(
            &db,
            &[
                "evidence",
                "--session",
                session,
                "-o",
                bundle.to_str().unwrap(),
            ],
        );
        for (code, said) in check_bundle(&bundle) {
            assert_eq!(code, Some(0), "{name}: {said}");
            assert!(said.contains("intact and complete"), "{name}: {said}");
        }
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
        assert_eq!(json["manifest"]["counts"]["steps"], steps, "{name}");
        // A value changed is caught, as for a file's bundle.
        let row = json["sessions"][0]["rows"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["table"] == "steps")
            .unwrap();
        row["columns"]["module"] = "forged".into();
        let forged = dir.path().join(format!("{name}-forged.json"));
        std::fs::write(&forged, json.to_string()).unwrap();
        for (code, said) in check_bundle(&forged) {
            assert_eq!(code, Some(1), "{name}: {said}");
        }
    }
    // A period over the whole store: every session, none left out.
    let all = dir.path().join("all.json");
    succeeds(
        &db,
        &[
            "evidence",
            "--since",
            "2000-01-01",
            "-o",
            all.to_str().unwrap(),
        ],
    );
    for (code, said) in check_bundle(&all) {
        assert_eq!(code, Some(0), "{said}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&all).unwrap()).unwrap();
    assert_eq!(
        json["manifest"]["scope"]["sessions"]
            .as_array()
            .unwrap()
            .len() as i64,
        count(&db, "SELECT count(*) FROM sessions")
    );

    // A store of schema 3 (no session in its chain) is brought up by `migrate`, which gives
    // every entry its session; its bundles then verify.
    tool(
        "psql",
        &[
            "-X",
            "-d",
            &db.0,
            "-c",
            "ALTER TABLE audit_chain DROP COLUMN session_id; \
             DELETE FROM reasonkit_schema WHERE version = 4",
        ],
    );
    let out = cli(&db, &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    let again = dir.path().join("migrated.json");
    succeeds(
        &db,
        &[
            "evidence",
            "--session",
            "pg-claim",
            "-o",
            again.to_str().unwrap(),
        ],
    );
    for (code, said) in check_bundle(&again) {
        assert_eq!(code, Some(0), "{said}");
    }

    // The bundle's checkpoint carries the store's tree heads: `verify` on the store agrees,
    // and catches an entry's session changed behind the writer's back.
    let checkpoint = dir.path().join("checkpoint.txt");
    std::fs::write(&checkpoint, json["checkpoint"].as_str().unwrap()).unwrap();
    let text = succeeds(
        &db,
        &["verify", "--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert!(text.contains("the chain extends it"), "{text}");
    tool(
        "psql",
        &[
            "-X",
            "-d",
            &db.0,
            "-c",
            "UPDATE audit_chain SET session_id = 'someone-else' WHERE seq = \
             (SELECT max(seq) FROM audit_chain WHERE table_name = 'steps' AND session_id = 'pg-claim')",
        ],
    );
    let out = cli(
        &db,
        &["verify", "--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let said = common::text(&out);
    assert!(said.contains("the entry's session was changed"), "{said}");
    assert!(
        said.contains("tree heads that are not this chain's"),
        "{said}"
    );
}
