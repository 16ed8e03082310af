//! A real Datasette, on loopback, serving a database the layer wrote with the metadata
//! `reasonkit-audit datasette-metadata` generates: the tables, the foreign-key links from
//! steps to sessions and from decisions to steps, and each canned query answer as expected.
//!
//! Datasette comes from PyPI: `.ci/run` installs it into `target/datasette-venv`. Elsewhere
//! set `DATASETTE=/path/to/datasette`, or have `datasette` on the PATH; without any of
//! these the test says it is skipped and why.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info_span;
use tracing_subscriber::prelude::*;

fn datasette() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DATASETTE") {
        return Some(path.into());
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/datasette-venv/bin/datasette");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("datasette")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "datasette".into())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    // HTTP/1.0: the body comes whole, not chunked, and the connection closes after it.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path).unwrap_or_else(|| panic!("no answer for {path}"));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
fn datasette_serves_the_tables_links_and_canned_queries() {
    let Some(datasette) = datasette() else {
        eprintln!(
            "SKIPPED: Datasette is not installed (run .ci/run, or set DATASETTE=/path/to/datasette)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("session", id = "sess_abc123", profile = "balanced").in_scope(|| {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.9,
                input_summary = "the quarterly filing"
            )
            .in_scope(|| {});
            info_span!("step", module = "laserlogic", confidence = 0.55).in_scope(|| {
                tracing::info!(name: "decision", decision_type = "branch", chosen_option = "b", rationale = "cheaper");
            });
        });
        info_span!("session", id = "sess_fine", profile = "quick").in_scope(|| {
            info_span!("step", module = "gigathink", confidence = 0.95).in_scope(|| {});
        });
    });
    guard.shutdown().unwrap();

    let metadata = dir.path().join("metadata.json");
    let made = Command::new(env!("CARGO_BIN_EXE_reasonkit-audit"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "datasette-metadata",
            "-o",
            metadata.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new(&datasette)
            .arg("serve")
            .arg(&db)
            .arg("--metadata")
            .arg(&metadata)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start datasette"),
    );
    let started = Instant::now();
    while get(port, "/-/versions.json").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Datasette did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let served = get_json(port, "/-/metadata.json");
    assert_eq!(served["title"], "ReasonKit audit trail");

    let database = get_json(port, "/audit.json");
    let table = |name: &str| {
        database["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(table("sessions")["count"], 2);
    assert_eq!(table("steps")["count"], 3);
    assert_eq!(table("decisions")["count"], 1);
    let links = |name: &str| {
        table(name)["foreign_keys"]["outgoing"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(links("steps").iter().any(|l| l["other_table"] == "sessions"
        && l["column"] == "session_id"
        && l["other_column"] == "id"));
    assert!(
        links("decisions")
            .iter()
            .any(|l| l["other_table"] == "steps"
                && l["column"] == "step_id"
                && l["other_column"] == "id")
    );

    // Datasette follows the link: each step row is labelled with its session.
    let steps = get_json(
        port,
        "/audit/steps.json?_shape=array&_labels=on&_sort=started_at",
    );
    assert_eq!(steps[0]["session_id"]["value"], "sess_abc123");

    // Datasette's full-text search, through the index the writer built (by the time the
    // guard dropped) and the fts_table the metadata names.
    let found = get_json(port, "/audit/steps.json?_search=quarterly&_shape=array");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["module"], "gigathink");
    let found = get_json(port, "/audit/decisions.json?_search=cheaper&_shape=array");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");

    let low = get_json(port, "/audit/low_confidence_sessions.json?_shape=array");
    assert_eq!(low.as_array().unwrap().len(), 1);
    assert_eq!(low[0]["id"], "sess_abc123");
    assert_eq!(low[0]["min_conf"], 0.55);

    let usage = get_json(port, "/audit/module_usage.json?_shape=array");
    assert_eq!(usage[0]["module"], "gigathink");
    assert_eq!(usage[0]["uses"], 2);
    assert_eq!(usage[1]["module"], "laserlogic");

    let replay = get_json(
        port,
        "/audit/replay.json?session_id=sess_abc123&_shape=array",
    );
    let modules: Vec<&str> = replay
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["module"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["gigathink", "laserlogic"]);
}
