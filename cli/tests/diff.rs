//! `diff A [B]`: the original against its newest replay (or a given session), as text and
//! as JSON; exit 0 when the runs did the same, 1 when they differ in what they did (a step
//! added or removed, an error, a decision), 2 when there is nothing to compare with.

mod common;

use std::path::Path;

use common::{run, text};
use tracing::info_span;

/// Records one run: a planning step, then a verdict whose option depends on `strict`.
fn record(db: &Path, session: impl FnOnce() -> tracing::Span, strict: bool) {
    common::record_with_layer(db, || {
        let _s = session().entered();
        info_span!("step", module = "planner", tokens_used = 50_i64).in_scope(|| {});
        if strict {
            info_span!("step", module = "auditor", error = "missing receipts").in_scope(|| {});
        }
        info_span!(
            "step",
            module = "judge",
            confidence = if strict { 0.55 } else { 0.9 }
        )
        .in_scope(|| {
            let verdict = if strict { "escalate" } else { "pay" };
            tracing::info!(name: "decision", decision_type = "claim", chosen_option = verdict);
        });
    });
}

#[test]
fn a_replay_that_decided_otherwise_exits_1_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    record(
        &db,
        || info_span!("session", id = "claim-1", input = "claim 881"),
        false,
    );
    record(
        &db,
        || info_span!("session", input = "claim 881", replay_of = "claim-1"),
        true,
    );

    let out = run(&db, &["diff", "claim-1"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("+ auditor"), "{shown}");
    assert!(shown.contains("    error: missing receipts"), "{shown}");
    assert!(shown.contains("decision claim: pay → escalate"), "{shown}");
    assert!(shown.contains("conf 0.90 → 0.55 (-0.35)"), "{shown}");
    assert!(shown.contains("decisions diverged: 1 decision(s) differ; 1 step(s) added, 0 removed"));

    let out = run(&db, &["diff", "claim-1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decisions_diverged"], true);
    assert_eq!(json["original"]["id"], "claim-1");
    assert_eq!(json["rerun"]["attributes"]["replay_of"], "claim-1");
    assert_eq!(json["steps"][1]["change"], "added");
    assert_eq!(json["steps"][1]["error"][1], "missing receipts");
}

#[test]
fn the_same_decisions_exit_0_and_nothing_to_compare_with_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    record(
        &db,
        || info_span!("session", id = "a", input = "claim 1"),
        false,
    );
    record(
        &db,
        || info_span!("session", id = "b", input = "claim 2"),
        false,
    );

    let out = run(&db, &["diff", "a", "b"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("the inputs differ"), "{shown}");
    assert!(shown.contains("decisions are the same"), "{shown}");

    let out = run(&db, &["diff", "a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("session a has no replay"),
        "{}",
        text(&out)
    );
    let out = run(&db, &["diff", "zzz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no session id starts with 'zzz'"));
}

#[test]
fn without_b_the_newest_replay_is_compared() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    record(
        &db,
        || info_span!("session", id = "claim-2", input = "claim 5"),
        false,
    );
    // An older replay that decided otherwise, then a newer one that decided the same.
    record(
        &db,
        || info_span!("session", input = "claim 5", replay_of = "claim-2"),
        true,
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    record(
        &db,
        || info_span!("session", input = "claim 5", replay_of = "claim-2"),
        false,
    );
    let out = run(&db, &["diff", "claim-2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let newest = common::sqlite3(
        &db,
        "SELECT id FROM sessions WHERE json_extract(attributes, '$.replay_of') = 'claim-2' \
         ORDER BY started_at DESC LIMIT 1",
    );
    assert_eq!(json["rerun"]["id"], newest.as_str());
}

/// Records one run of a planner and a judge that always pays: `extra` adds a step,
/// `confidence` and `tokens` change only figures.
fn record_figures(db: &Path, id: &str, extra: bool, confidence: f64, tokens: i64) {
    common::record_with_layer(db, || {
        let _s = info_span!("session", id, input = "claim 9").entered();
        info_span!("step", module = "planner", tokens_used = tokens).in_scope(|| {});
        if extra {
            info_span!("step", module = "second-opinion").in_scope(|| {});
        }
        info_span!("step", module = "judge", confidence).in_scope(|| {
            tracing::info!(name: "decision", decision_type = "claim", chosen_option = "pay");
        });
    });
}

#[test]
fn a_step_added_is_a_divergence_and_figures_alone_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    record_figures(&db, "base", false, 0.9, 50);
    record_figures(&db, "figures", false, 0.6, 80);
    record_figures(&db, "longer", true, 0.9, 50);

    // Only confidence and tokens moved: the runs did the same.
    let out = run(&db, &["diff", "base", "figures"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A step more, the same decision: they differ in what they did, as `diff` says of
    // files; --decisions-only keeps the narrower meaning.
    let out = run(&db, &["diff", "base", "longer"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("second-opinion"), "{}", text(&out));
    let out = run(&db, &["diff", "base", "longer", "--decisions-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
