//! The mapping of spans, events and fields onto rows: every rule of the crate docs' table.

mod common;

use common::Audit;
use tracing::field::Empty;
use tracing::{Level, Span, info_span, instrument};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn a_session_span_becomes_one_sessions_row_with_its_fields() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", profile = "paranoid", input = "What is 2+2?").in_scope(|| {});
    });
    let row = &audit
        .rows("SELECT id, profile, input_hash, status, input, ended_at IS NOT NULL FROM sessions")
        [0];
    let id = uuid::Uuid::parse_str(&row[0]).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(row[0], row[0].to_lowercase());
    assert_eq!(row[1], "paranoid");
    // sha256("What is 2+2?")
    assert_eq!(row[2], reasonkit_audit_sha256("What is 2+2?"));
    assert_eq!(row[3], "completed");
    assert_eq!(row[4], "NULL", "raw input is not stored unless opted in");
    assert_eq!(row[5], "1");
}

fn reasonkit_audit_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn session_defaults_profile_and_hashes_the_empty_input() {
    let audit = Audit::new();
    audit.run(|| info_span!("session").in_scope(|| {}));
    assert_eq!(audit.one("SELECT profile FROM sessions"), "default");
    assert_eq!(audit.one("SELECT input_hash FROM sessions"), EMPTY_SHA256);
}

#[test]
fn an_explicit_id_and_input_hash_are_stored_as_given() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!(
            "session",
            id = "sess_abc123",
            input_hash = "cafe",
            input = "ignored for the hash"
        )
        .in_scope(|| info_span!("step", module = "m").in_scope(|| {}));
    });
    assert_eq!(
        audit.one("SELECT id || ' ' || input_hash FROM sessions"),
        "sess_abc123 cafe"
    );
    assert_eq!(audit.one("SELECT session_id FROM steps"), "sess_abc123");
}

#[test]
fn store_inputs_keeps_the_raw_input_text() {
    let audit = Audit::with(|b| b.store_inputs(true));
    audit.run(|| info_span!("session", input = "the prompt").in_scope(|| {}));
    assert_eq!(audit.one("SELECT input FROM sessions"), "the prompt");
}

#[test]
fn timestamps_are_utc_text_that_sqlite_date_functions_read() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| info_span!("step", module = "m").in_scope(|| {}))
    });
    let started = audit.one("SELECT started_at FROM sessions");
    assert_eq!(
        started.len(),
        "YYYY-MM-DD HH:MM:SS.ffffff".len(),
        "{started}"
    );
    chrono::NaiveDateTime::parse_from_str(&started, "%Y-%m-%d %H:%M:%S%.6f").unwrap();
    // SQLite reads it, and the ADR-002 comparison against datetime('now', ...) holds.
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE started_at > datetime('now', '-7 days')"),
        "1"
    );
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE started_at > datetime('now', '+1 minute')"),
        "0"
    );
    assert_eq!(
        audit.one("SELECT julianday(ended_at) >= julianday(started_at) FROM sessions"),
        "1"
    );
}

#[test]
fn a_session_is_running_from_creation_until_it_closes() {
    let audit = Audit::new();
    let session = tracing::dispatcher::with_default(&audit.dispatch, || info_span!("session"));
    audit.guard.flush().unwrap();
    assert_eq!(
        audit.one("SELECT status || ' ' || (ended_at IS NULL) FROM sessions"),
        "running 1"
    );
    drop(session);
    audit.guard.flush().unwrap();
    assert_eq!(
        audit.one("SELECT status || ' ' || (ended_at IS NULL) FROM sessions"),
        "completed 0"
    );
}

#[derive(Debug)]
struct Failure;
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the model refused")
    }
}
impl std::error::Error for Failure {}

#[instrument(name = "session", err)]
fn failing_session() -> Result<(), Failure> {
    Err(Failure)
}

#[instrument(name = "session", fields(status = Empty), err)]
fn session_with_status() -> Result<(), Failure> {
    Span::current().record("status", "needs_review");
    Err(Failure)
}

#[test]
fn session_status_is_failed_on_error_and_follows_a_recorded_status() {
    let audit = Audit::new();
    audit.run(|| {
        let _ = failing_session();
        info_span!("session", id = "by_field", error = "bad input").in_scope(|| {});
        info_span!("session", id = "by_event").in_scope(|| tracing::error!("gave up"));
        let _ = session_with_status();
        // An error inside a step that was handled does not fail the session.
        info_span!("session", id = "recovered").in_scope(|| {
            info_span!("step", module = "m").in_scope(|| tracing::error!("retrying"));
        });
    });
    let statuses = audit.rows("SELECT id, status FROM sessions ORDER BY started_at");
    let statuses: Vec<&str> = statuses.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        statuses,
        ["failed", "failed", "failed", "needs_review", "completed"]
    );
    assert_eq!(
        audit.one("SELECT json_extract(attributes, '$.error') FROM sessions WHERE id = 'by_field'"),
        "bad input"
    );
}

#[test]
fn step_fields_fill_their_columns_and_the_rest_goes_to_attributes() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            info_span!(
                "step",
                module = "laserlogic",
                input_summary = "premises",
                output_summary = "conclusion",
                confidence = 0.87,
                tokens_used = 1234_u64,
                error = Empty,
                temperature = 0.2,
                model = "local",
            )
            .in_scope(|| {});
        });
    });
    let row = &audit.rows(
        "SELECT module, input_summary, output_summary, confidence, tokens_used, error, attributes,
                typeof(confidence), typeof(tokens_used), parent_step_id FROM steps",
    )[0];
    assert_eq!(
        row[..6],
        [
            "laserlogic",
            "premises",
            "conclusion",
            "0.87",
            "1234",
            "NULL"
        ]
    );
    let attributes: serde_json::Value = serde_json::from_str(&row[6]).unwrap();
    assert_eq!(
        attributes,
        serde_json::json!({"temperature": 0.2, "model": "local"})
    );
    assert_eq!(row[7..], ["real", "integer", "NULL"]);
}

#[test]
fn a_step_without_module_takes_its_target() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            tracing::span!(target: "reasoning::bedrock", Level::INFO, "step").in_scope(|| {});
            info_span!("step").in_scope(|| {});
        });
    });
    let modules = audit.rows("SELECT module FROM steps ORDER BY started_at");
    assert_eq!(modules, [["reasoning::bedrock"], ["mapping"]]);
}

#[test]
fn fields_recorded_later_with_span_record_reach_the_row() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            let step = info_span!(
                "step",
                module = "m",
                confidence = Empty,
                tokens_used = Empty,
                output_summary = Empty,
                note = Empty
            );
            step.record("confidence", 0.42);
            step.record("tokens_used", 77_i64);
            step.record("output_summary", "later");
            step.record("note", "kept");
            step.record("confidence", 0.43); // the last value wins
        });
    });
    let row =
        &audit.rows("SELECT confidence, tokens_used, output_summary, attributes FROM steps")[0];
    assert_eq!(row[..3], ["0.43", "77", "later"]);
    assert_eq!(row[3], r#"{"note":"kept"}"#);
}

#[instrument(name = "step", fields(module = "gigathink"), ret)]
fn think(question: &str, depth: u32) -> String {
    format!("{depth} ideas about {question}")
}

#[instrument(name = "step", skip_all, fields(module = "proofguard"), err)]
fn check(claim: &str) -> Result<String, Failure> {
    if claim.is_empty() {
        Err(Failure)
    } else {
        Ok(claim.to_owned())
    }
}

#[instrument(
    name = "step",
    skip_all,
    fields(module = "bedrock", output_summary = "explicit"),
    ret,
    err
)]
fn explicit(secret: &str) -> Result<u32, Failure> {
    Ok(secret.len() as u32)
}

#[test]
fn instrument_ret_err_and_skip_all_map_onto_steps() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            think("why \"sky\" is blue", 3);
            let _ = check("");
            let _ = check("fine");
            let _ = explicit("password");
        });
    });
    let rows = audit
        .rows("SELECT module, output_summary, error, attributes FROM steps ORDER BY started_at");
    // ret: the Debug of a String is stored without its quotes; arguments go to attributes.
    assert_eq!(
        rows[0][..3],
        ["gigathink", "3 ideas about why \"sky\" is blue", "NULL"]
    );
    let attributes: serde_json::Value = serde_json::from_str(&rows[0][3]).unwrap();
    assert_eq!(
        attributes,
        serde_json::json!({"question": "why \"sky\" is blue", "depth": 3})
    );
    // err: the error's Display; skip_all keeps arguments out.
    assert_eq!(
        rows[1][..4],
        ["proofguard", "NULL", "the model refused", "{}"]
    );
    assert_eq!(rows[2][..4], ["proofguard", "NULL", "NULL", "{}"]);
    // An explicit output_summary wins over ret; the return value stays nowhere else.
    assert_eq!(rows[3][..4], ["bedrock", "explicit", "NULL", "{}"]);
}

#[test]
fn gen_ai_token_counts_sum_into_tokens_used_when_it_is_not_given() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            let s = info_span!(
                "step",
                module = "a",
                gen_ai.usage.input_tokens = 100_u64,
                gen_ai.usage.output_tokens = Empty
            );
            s.record("gen_ai.usage.output_tokens", 23_u64);
            drop(s);
            info_span!("step", module = "b", gen_ai.usage.input_tokens = 100_u64).in_scope(|| {});
            info_span!(
                "step",
                module = "c",
                tokens_used = 5_u64,
                gen_ai.usage.input_tokens = 100_u64
            )
            .in_scope(|| {});
        });
    });
    let rows = audit.rows("SELECT module, tokens_used, json_extract(attributes, '$.\"gen_ai.usage.input_tokens\"') FROM steps ORDER BY module");
    assert_eq!(
        rows,
        [["a", "123", "100"], ["b", "100", "100"], ["c", "5", "100"]]
    );
}

#[test]
fn nested_steps_record_their_parent_step() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            info_span!("step", module = "outer").in_scope(|| {
                info_span!("step", module = "middle").in_scope(|| {
                    info_span!("step", module = "inner").in_scope(|| {});
                });
            });
            info_span!("step", module = "sibling").in_scope(|| {});
        });
    });
    let rows = audit.rows(
        "SELECT s.module, coalesce(p.module, 'NULL') FROM steps s LEFT JOIN steps p ON p.id = s.parent_step_id ORDER BY s.started_at",
    );
    assert_eq!(
        rows,
        [
            ["outer", "NULL"],
            ["middle", "outer"],
            ["inner", "middle"],
            ["sibling", "NULL"]
        ]
    );
    assert_eq!(
        audit.one("SELECT count(DISTINCT session_id) FROM steps"),
        "1"
    );
}

#[test]
fn decision_spans_and_events_become_decisions_rows() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session").in_scope(|| {
            info_span!("step", module = "laserlogic").in_scope(|| {
                let d = info_span!(
                    "decision",
                    decision_type = "branch",
                    options_considered = ?vec!["a", "b"],
                    chosen_option = Empty,
                    rationale = Empty,
                );
                d.record("chosen_option", "b");
                d.record("rationale", "b is cheaper");
                drop(d);
                tracing::event!(
                    name: "decision",
                    Level::INFO,
                    options_considered = "plain text, not JSON",
                    chosen_option = "x",
                    weight = 3,
                );
            });
        });
    });
    let rows = audit.rows(
        "SELECT d.decision_type, d.options_considered, d.chosen_option, d.rationale, d.attributes,
                d.decided_at IS NOT NULL, s.module
         FROM decisions d JOIN steps s ON s.id = d.step_id ORDER BY d.decided_at",
    );
    assert_eq!(
        rows[0],
        [
            "branch",
            r#"["a", "b"]"#,
            "b",
            "b is cheaper",
            "{}",
            "1",
            "laserlogic"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "unspecified",
            r#""plain text, not JSON""#,
            "x",
            "NULL",
            r#"{"weight":3}"#,
            "1",
            "laserlogic"
        ]
    );
    assert_eq!(audit.one("SELECT json_array_length(options_considered) FROM decisions WHERE decision_type = 'branch'"), "2");
}

#[test]
fn an_open_decision_span_is_visible_without_decided_at() {
    let audit = Audit::new();
    let (session, step, decision) = tracing::dispatcher::with_default(&audit.dispatch, || {
        let session = info_span!("session");
        let step = info_span!(parent: &session, "step", module = "m");
        let decision = info_span!(parent: &step, "decision", decision_type = "pending");
        (session, step, decision)
    });
    audit.guard.flush().unwrap();
    assert_eq!(
        audit.one("SELECT decision_type || ' ' || (decided_at IS NULL) FROM decisions"),
        "pending 1"
    );
    assert_eq!(
        audit.one("SELECT count(*) FROM steps WHERE ended_at IS NULL"),
        "1"
    );
    drop((decision, step, session));
    audit.guard.flush().unwrap();
    assert_eq!(audit.one("SELECT decided_at IS NULL FROM decisions"), "0");
}

#[test]
fn spans_and_events_with_other_names_write_nothing() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("request", user = "u").in_scope(|| {
            tracing::info!(answer = 42, "unrelated event");
            info_span!("Session").in_scope(|| {}); // names are case-sensitive
        });
    });
    for table in ["sessions", "steps", "decisions"] {
        assert_eq!(audit.count(table), 0, "{table}");
    }
}

#[test]
fn a_step_outside_every_session_gets_an_implicit_session_of_its_own() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("step", module = "lonely").in_scope(|| {});
        let _ = check(""); // fails: its implicit session is failed too
    });
    let rows = audit.rows(
        "SELECT s.profile, s.status, s.attributes, st.module, s.ended_at IS NOT NULL
         FROM steps st JOIN sessions s ON s.id = st.session_id ORDER BY st.started_at",
    );
    assert_eq!(
        rows[0],
        [
            "implicit",
            "completed",
            r#"{"implicit":true}"#,
            "lonely",
            "1"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "implicit",
            "failed",
            r#"{"implicit":true}"#,
            "proofguard",
            "1"
        ]
    );
    assert_eq!(audit.count("sessions"), 2);
}

#[test]
fn a_decision_outside_every_step_gets_an_implicit_step() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "s1").in_scope(|| {
            tracing::info!(name: "decision", decision_type = "in_session");
        });
        tracing::info!(name: "decision", decision_type = "nowhere");
        info_span!("decision", decision_type = "span_nowhere").in_scope(|| {});
    });
    let rows = audit.rows(
        "SELECT d.decision_type, st.module, st.attributes, s.id = 's1', s.profile, st.ended_at IS NOT NULL
         FROM decisions d JOIN steps st ON st.id = d.step_id JOIN sessions s ON s.id = st.session_id
         ORDER BY d.decided_at",
    );
    assert_eq!(
        rows[0],
        [
            "in_session",
            "implicit",
            r#"{"implicit":true}"#,
            "1",
            "default",
            "1"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "nowhere",
            "implicit",
            r#"{"implicit":true}"#,
            "0",
            "implicit",
            "1"
        ]
    );
    assert_eq!(
        rows[2],
        [
            "span_nowhere",
            "implicit",
            r#"{"implicit":true}"#,
            "0",
            "implicit",
            "1"
        ]
    );
    common::assert_consistent(&audit.path);
}

#[test]
fn a_given_session_id_already_in_the_file_is_written_under_a_new_id_with_its_steps() {
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", id = "rerun")
            .in_scope(|| info_span!("step", module = "first").in_scope(|| {}));
    });
    // The re-run stays open across a commit, so its close is an UPDATE of the renamed row.
    let second = tracing::dispatcher::with_default(&audit.dispatch, || {
        let session = info_span!("session", id = "rerun", profile = "again");
        info_span!(parent: &session, "step", module = "second").in_scope(|| {});
        session
    });
    audit.guard.flush().unwrap();
    tracing::dispatcher::with_default(&audit.dispatch, || {
        info_span!(parent: &second, "step", module = "third").in_scope(|| {});
        drop(second);
    });
    audit.guard.flush().unwrap();
    let sessions = audit.rows(
        "SELECT id, profile, status, json_extract(attributes, '$.given_id') FROM sessions ORDER BY started_at",
    );
    assert_eq!(sessions[0], ["rerun", "default", "completed", "NULL"]);
    let renamed = &sessions[1][0];
    assert!(renamed.starts_with("rerun~"), "{renamed}");
    assert_eq!(sessions[1][1..], ["again", "completed", "rerun"]);
    let steps = audit.rows("SELECT module, session_id FROM steps ORDER BY started_at");
    assert_eq!(steps[0], ["first", "rerun"]);
    assert_eq!(steps[1], ["second", renamed.as_str()]);
    assert_eq!(steps[2], ["third", renamed.as_str()]);
    assert_eq!(audit.guard.stats().write_errors, 0);
    common::assert_consistent(&audit.path);
}
