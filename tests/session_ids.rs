//! A session id given again — by a re-run, or a chat app that keeps one conversation id
//! across fast turns — is a new row each time (`<id>~<uuidv7>`), with its own fields, hash,
//! times and steps, however close together the runs are and however they interleave.

mod common;
#[path = "support/reused_ids.rs"]
mod reused_ids;

use common::Audit;
use proptest::prelude::*;
use reused_ids::{SessionRow, StepRow};

/// The rows of a file, as the property reads them.
fn stored(audit: &Audit) -> (Vec<SessionRow>, Vec<StepRow>) {
    let db = audit.db();
    let sessions = db
        .prepare("SELECT id, status, started_at, ended_at, attributes FROM sessions")
        .unwrap()
        .query_map([], |r| {
            Ok(SessionRow {
                id: r.get(0)?,
                status: r.get(1)?,
                started_at: r.get(2)?,
                ended_at: r.get(3)?,
                attributes: serde_json::from_str(&r.get::<_, String>(4)?).unwrap(),
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let steps = db
        .prepare("SELECT session_id, output_summary, started_at, ended_at FROM steps")
        .unwrap()
        .query_map([], |r| {
            Ok(StepRow {
                session_id: r.get(0)?,
                output_summary: r.get(1)?,
                started_at: r.get(2)?,
                ended_at: r.get(3)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (sessions, steps)
}

#[test]
fn three_fast_turns_of_one_conversation_are_three_sessions_each_with_its_own_step() {
    let audit = Audit::new();
    audit.run(|| {
        for turn in 1..=3 {
            let s = tracing::info_span!("session", id = "run-1", turn = turn);
            s.in_scope(|| {
                tracing::info_span!("step", module = "m", output_summary = turn).in_scope(|| ())
            });
            drop(s);
        }
    });
    let rows = audit.rows(
        "SELECT s.id, json_extract(s.attributes, '$.turn'), \
         json_extract(s.attributes, '$.given_id'), st.output_summary \
         FROM sessions s JOIN steps st ON st.session_id = s.id ORDER BY s.started_at",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], ["run-1", "1", "NULL", "1"]);
    for (row, turn) in rows[1..].iter().zip(["2", "3"]) {
        assert!(row[0].starts_with("run-1~"), "{row:?}");
        assert_eq!(row[1..], [turn, "run-1", turn]);
    }
    assert_ne!(rows[1][0], rows[2][0]);
    // Nothing was lost, so nothing says so.
    assert_eq!(
        audit.one("SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"),
        "0"
    );
}

#[test]
fn a_conversation_id_kept_across_turns_gives_each_turn_its_own_input_hash_and_times() {
    let audit = Audit::new();
    audit.run(|| {
        for prompt in ["first question", "second question"] {
            let _run = tracing::info_span!(
                "invoke_agent",
                gen_ai.operation.name = "invoke_agent",
                gen_ai.conversation.id = "chat-42",
                gen_ai.prompt = prompt,
            )
            .entered();
        }
    });
    let rows =
        audit.rows("SELECT id, input_hash, started_at, ended_at FROM sessions ORDER BY started_at");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], "chat-42");
    assert!(rows[1][0].starts_with("chat-42~"));
    assert_ne!(rows[0][1], rows[1][1], "each turn hashes its own prompt");
    assert!(
        rows[0][3] <= rows[1][2],
        "the first ended before the second began"
    );
}

#[test]
fn two_sessions_open_at_once_under_one_id_keep_their_own_later_changes() {
    let audit = Audit::new();
    audit.run(|| {
        let first = tracing::info_span!("session", id = "job", status = tracing::field::Empty);
        let second = tracing::info_span!("session", id = "job", status = tracing::field::Empty);
        first.record("status", "first-done");
        second.record("status", "second-done");
        drop(first);
        drop(second);
    });
    let rows = audit.rows("SELECT id = 'job', status FROM sessions ORDER BY started_at");
    assert_eq!(rows, [["1", "first-done"], ["0", "second-done"]]);
    assert_eq!(
        audit.one("SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"),
        "0"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_reused_id_never_merges_runs_whatever_the_interleaving(script in reused_ids::scripts()) {
        let audit = Audit::new();
        let flush = || audit.guard.flush().unwrap();
        reused_ids::play(&script, "", &audit.dispatch, &flush);
        audit.guard.flush().unwrap();
        let (sessions, steps) = stored(&audit);
        reused_ids::check(&script, "", &sessions, &steps)?;
        prop_assert_eq!(
            audit.one("SELECT count(*) FROM audit_health WHERE kind = 'write_errors'"),
            "0"
        );
        let report = reasonkit_audit::verify(&audit.path).unwrap();
        prop_assert!(report.is_intact(), "{:?}", report.findings);
    }
}
