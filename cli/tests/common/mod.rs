//! Helpers of the command's lifecycle tests: the real binary, the real `sqlite3` and the
//! independent Python verifier, run on a database.
#![allow(dead_code)]

pub mod server;

use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_reasonkit-audit");

/// `reasonkit-audit --db DB ARGS…`, without colour.
pub fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Standard output and standard error, together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a command succeeded, showing what it said on standard error when not.
pub fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sqlite3 DB SQL`, which must succeed; its output, trimmed.
pub fn sqlite3(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `tools/verify_chain.py DB`.
pub fn python_verify(db: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify_chain.py");
    Command::new("python3")
        .arg(script)
        .arg(db)
        .output()
        .unwrap()
}

/// Runs `f` with an audit layer writing to `db` as the thread's subscriber, then flushes
/// and stops the writer.
pub fn record_with_layer(db: &Path, f: impl FnOnce()) {
    use tracing_subscriber::prelude::*;
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(db)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, f);
    guard.flush().unwrap();
    guard.shutdown().unwrap();
}
