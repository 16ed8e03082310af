//! ADR-002's three query examples, run verbatim through the real `sqlite3` command-line
//! tool on a database the layer wrote, with their results checked.

mod common;

use common::{Audit, assert_consistent, sqlite3, sqlite3_json};
use serde_json::json;
use tracing::info_span;

/// Copied verbatim from ADR-002 ("Query Examples"); `adr_text_contains_the_queries` checks it.
const LOW_CONFIDENCE_SESSIONS: &str =
    "SELECT DISTINCT s.id, s.started_at, MIN(st.confidence) as min_conf
FROM sessions s
JOIN steps st ON st.session_id = s.id
GROUP BY s.id
HAVING MIN(st.confidence) < 0.7;";

const MODULE_USAGE: &str = "SELECT module, COUNT(*) as uses, AVG(confidence) as avg_conf
FROM steps
WHERE started_at > datetime('now', '-7 days')
GROUP BY module
ORDER BY uses DESC;";

const REPLAY: &str = "SELECT * FROM steps
WHERE session_id = 'sess_abc123'
ORDER BY started_at;";

fn write_runs(audit: &Audit) {
    let step = |module: &str, confidence: f64| {
        info_span!("step", module = module, confidence = confidence).in_scope(|| {
            std::thread::sleep(std::time::Duration::from_millis(2));
        });
    };
    audit.run(|| {
        info_span!("session", id = "sess_abc123", profile = "balanced").in_scope(|| {
            step("gigathink", 0.9);
            step("laserlogic", 0.65);
            step("proofguard", 0.8);
        });
        info_span!("session", id = "sess_good", profile = "quick").in_scope(|| {
            step("gigathink", 0.95);
            step("laserlogic", 0.85);
            step("gigathink", 0.75);
        });
        info_span!("session", id = "sess_empty").in_scope(|| {});
    });
}

#[test]
fn adr_text_contains_the_queries() {
    let adr = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/ADR-002-sqlite-audit-trail.md");
    let Ok(text) = std::fs::read_to_string(&adr) else {
        eprintln!("skipped: {} is not beside this checkout", adr.display());
        return;
    };
    for query in [LOW_CONFIDENCE_SESSIONS, MODULE_USAGE, REPLAY] {
        assert!(text.contains(query), "not verbatim in ADR-002:\n{query}");
    }
}

#[test]
fn low_confidence_sessions_query_finds_the_session_with_a_weak_step() {
    let audit = Audit::new();
    write_runs(&audit);
    let result = sqlite3_json(&audit.path, LOW_CONFIDENCE_SESSIONS);
    let rows = result.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{result}");
    assert_eq!(rows[0]["id"], "sess_abc123");
    assert_eq!(rows[0]["min_conf"], json!(0.65));
    assert_eq!(
        rows[0]["started_at"].as_str().unwrap(),
        audit.one("SELECT started_at FROM sessions WHERE id = 'sess_abc123'")
    );
}

#[test]
fn module_usage_query_counts_recent_steps_per_module() {
    let audit = Audit::new();
    write_runs(&audit);
    // A step from long ago, written the way a years-old run would have been: the
    // seven-day window must leave it out.
    sqlite3(
        &audit.path,
        "PRAGMA foreign_keys = ON;
         INSERT INTO sessions (id, started_at, profile, input_hash, status)
           VALUES ('old', '2020-01-01 00:00:00.000000', 'default', '', 'completed');
         INSERT INTO steps (id, session_id, module, started_at, confidence)
           VALUES ('old-step', 'old', 'laserlogic', '2020-01-01 00:00:01.000000', 0.1);",
    );
    let result = sqlite3_json(&audit.path, MODULE_USAGE);
    let rows = result.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{result}");
    assert_eq!(rows[0]["module"], "gigathink");
    assert_eq!(rows[0]["uses"], 3);
    assert!((rows[0]["avg_conf"].as_f64().unwrap() - (0.9 + 0.95 + 0.75) / 3.0).abs() < 1e-9);
    assert_eq!(rows[1]["module"], "laserlogic");
    assert_eq!(rows[1]["uses"], 2);
    assert!((rows[1]["avg_conf"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    assert_eq!(rows[2]["module"], "proofguard");
    assert_eq!(rows[2]["uses"], 1);
}

#[test]
fn replay_query_returns_the_session_steps_in_execution_order() {
    let audit = Audit::new();
    write_runs(&audit);
    let result = sqlite3_json(&audit.path, REPLAY);
    let modules: Vec<&str> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["module"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["gigathink", "laserlogic", "proofguard"]);
    let first = &result[0];
    assert_eq!(first["session_id"], "sess_abc123");
    assert_eq!(first["confidence"], json!(0.9));
    assert!(first["ended_at"].as_str().unwrap() > first["started_at"].as_str().unwrap());
    assert_consistent(&audit.path);
}
