//! Helpers shared by the integration tests: a fresh audit database in a temporary
//! directory, a subscriber around it, and ways to read it back (rusqlite and the real
//! `sqlite3` command-line tool).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reasonkit_audit::{AuditGuard, AuditLayer, AuditLayerBuilder};
use rusqlite::types::Value;
use tracing::{Dispatch, info_span};
use tracing_subscriber::prelude::*;

/// A database in its own temporary directory, with a dispatch that audits into it.
pub struct Audit {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub dispatch: Dispatch,
    pub guard: AuditGuard,
}

impl Audit {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    pub fn with(configure: impl FnOnce(AuditLayerBuilder) -> AuditLayerBuilder) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let (layer, guard) = configure(AuditLayer::builder().path(&path))
            .build()
            .unwrap();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        Audit {
            dir,
            path,
            dispatch,
            guard,
        }
    }

    /// Runs `f` with this audit's subscriber as the thread's default, then flushes.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let out = tracing::dispatcher::with_default(&self.dispatch, f);
        self.guard.flush().unwrap();
        out
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }

    /// Every row of a query, as strings (NULL as "NULL"), via rusqlite.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        rows(&self.path, sql)
    }

    pub fn one(&self, sql: &str) -> String {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "expected one row from {sql}, got {rows:?}");
        rows[0][0].clone()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.one(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    }
}

pub fn rows(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |row| {
        (0..n)
            .map(|i| {
                Ok(match row.get::<_, Value>(i)? {
                    Value::Null => "NULL".to_owned(),
                    Value::Integer(v) => v.to_string(),
                    Value::Real(v) => v.to_string(),
                    Value::Text(v) => v,
                    Value::Blob(v) => format!("{v:?}"),
                })
            })
            .collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Runs SQL through the real `sqlite3` command-line tool, returning its JSON output parsed.
pub fn sqlite3_json(path: &Path, sql: &str) -> serde_json::Value {
    let text = run_sqlite3(path, &["-json"], sql);
    if text.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(&text).unwrap()
}

/// Runs SQL through `sqlite3` in its plain list mode, returning stdout.
pub fn sqlite3(path: &Path, sql: &str) -> String {
    run_sqlite3(path, &[], sql)
}

fn run_sqlite3(path: &Path, options: &[&str], sql: &str) -> String {
    // A busy timeout, as any client of a live audit database needs: the layer's writer
    // holds the write lock while it commits or indexes for search.
    let out = Command::new("sqlite3")
        .args(options)
        .args(["-cmd", ".timeout 10000"])
        .arg(path)
        .arg(sql)
        .output()
        .expect("the sqlite3 command-line tool must be installed (apt-get install sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `PRAGMA integrity_check` is `ok`, `PRAGMA foreign_key_check` finds nothing, and the
/// tamper-evident chain verifies: every row covered, every leaf and link recomputed.
pub fn assert_consistent(path: &Path) {
    assert_eq!(sqlite3(path, "PRAGMA integrity_check").trim(), "ok");
    assert_eq!(sqlite3(path, "PRAGMA foreign_key_check").trim(), "");
    assert_chain_intact(path);
}

/// `reasonkit_audit::verify` finds nothing, and the chain has one entry per row at least.
pub fn assert_chain_intact(path: &Path) -> reasonkit_audit::Report {
    let report = reasonkit_audit::verify(path).unwrap();
    assert!(
        report.is_intact(),
        "{}: {:#?}",
        path.display(),
        &report.findings[..report.findings.len().min(10)]
    );
    assert!(report.entries >= report.total_rows(), "{report:?}");
    report
}

/// Polls until `check` holds, for at most `limit`; for waiting on the writer's own timer.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

/// A binary `cargo test` builds next to the test binaries: `reasoning` or `audit_child`.
pub fn example_binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join(name);
    assert!(
        binary.exists(),
        "{} missing: cargo test builds it (or cargo build --examples)",
        binary.display()
    );
    binary
}

/// Runs the `heavy` child on `path` until it has acknowledged `after` committed sessions,
/// waits `extra` more, and kills it with SIGKILL. Returns how many it acknowledged.
pub fn kill_heavy_child(path: &Path, after: u64, extra: Duration) -> u64 {
    use std::io::{BufRead, BufReader};
    let mut process = child("heavy", path, 0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let mut acknowledged = 0;
    while acknowledged < after {
        let line = lines.next().expect("child ended early").unwrap();
        acknowledged = line.strip_prefix("committed ").unwrap().parse().unwrap();
    }
    std::thread::sleep(extra);
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    acknowledged
}

/// The test helper process (tests/support/audit_child.rs) in `mode`, writing `path`.
pub fn child(mode: &str, path: &Path, n: u64) -> Command {
    let mut command = Command::new(example_binary("audit_child"));
    command.arg(mode).arg(path).arg(n.to_string());
    command
}

/// Writes `sessions` realistic sessions through the layer: each with an input, nested steps
/// with summaries, confidence and tokens, decision events and a decision span, one failing
/// step in every seventh session, and a flush in the middle of every fifth session so that
/// its rows are inserted open and updated when they close (two chain leaves each).
/// Returns the number of rows written: sessions + steps + decisions.
pub fn write_realistic(audit: &Audit, sessions: u64) -> u64 {
    use tracing::info;
    let mut rows = 0;
    tracing::dispatcher::with_default(&audit.dispatch, || {
        for s in 0..sessions {
            let session = info_span!(
                "session",
                profile = ["balanced", "paranoid", "quick"][(s % 3) as usize],
                input = format!("question {s}: is the filing consistent with last year?"),
                user_id = s % 17,
            );
            let _s = session.enter();
            rows += 1;
            for k in 0..10u64 {
                let step = info_span!(
                    "step",
                    module = ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
                    input_summary = format!("premises {s}.{k} about the quarterly numbers"),
                    output_summary = tracing::field::Empty,
                    confidence = 0.5 + (k as f64) / 25.0,
                    tokens_used = 100 + s * 3 + k,
                    error = tracing::field::Empty,
                );
                let _e = step.enter();
                rows += 1;
                if k == 4 {
                    let nested = info_span!("step", module = "sub-check", confidence = -0.0);
                    nested.in_scope(|| {});
                    rows += 1;
                }
                if k % 3 == 0 {
                    info!(
                        name: "decision",
                        decision_type = "branch",
                        options_considered = ?["deepen", "stop", "ask"],
                        chosen_option = "deepen",
                        rationale = format!("confidence {k} below the bar"),
                    );
                    rows += 1;
                }
                if k == 9 {
                    info_span!(
                        "decision",
                        decision_type = "verdict",
                        chosen_option = "accept"
                    )
                    .in_scope(|| {});
                    rows += 1;
                }
                if k == 5 && s % 5 == 0 {
                    audit.guard.flush().unwrap();
                }
                if k == 7 && s % 7 == 0 {
                    step.record("error", "the model timed out \u{0} (retried)");
                }
                step.record(
                    "output_summary",
                    format!("reading {k} of case {s}: café 日本").as_str(),
                );
            }
        }
    });
    audit.guard.flush().unwrap();
    rows
}

/// The `tools/verify_chain.py` script of this repository.
pub fn python_verifier() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify_chain.py")
}

/// Runs the independent Python verifier on `path` with `args`; its exit code and stdout.
pub fn run_python_verifier(path: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("python3")
        .arg(python_verifier())
        .arg(path)
        .args(args)
        .output()
        .expect("python3 must be installed (apt-get install python3)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code != 2,
        "the Python verifier could not use {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout)
}
