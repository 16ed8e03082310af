//! The read API and replays: a recorded session loads back as typed values (its step tree
//! and decisions), filters and streams select what they say, a re-run with `replay_of` is
//! found, and `diff::compare` tells what diverged.

mod common;

use common::Audit;
use reasonkit_audit::diff::{self, StepChange};
use reasonkit_audit::read::{Reader, SessionFilter};
use tracing::info_span;

/// A small reasoning run whose behaviour a "model change" alters: `changed` drops the
/// nested expansion, adds a bedrock step, fails the check, and decides otherwise.
fn reason(input: &str, changed: bool) {
    info_span!(
        "step",
        module = "gigathink",
        confidence = 0.8,
        tokens_used = 100_i64
    )
    .in_scope(|| {
        if !changed {
            info_span!("step", module = "gigathink.expand").in_scope(|| {});
        }
    });
    if changed {
        info_span!("step", module = "bedrock", confidence = 0.7).in_scope(|| {});
    }
    let confidence = if changed { 0.6 } else { 0.9 };
    let tokens = if changed { 140_i64 } else { 120 };
    info_span!(
        "step",
        module = "proofguard",
        confidence,
        tokens_used = tokens
    )
    .in_scope(|| {
        tracing::info!(name: "decision", decision_type = "structure", chosen_option = "deductive");
        let verdict = if changed { "reject" } else { "approve" };
        tracing::info!(
            name: "decision",
            decision_type = "verdict",
            options_considered = ?["approve", "reject"],
            chosen_option = verdict,
            rationale = %format!("input {input}")
        );
        if changed {
            tracing::error!("contradiction found");
        }
    });
}

fn record(audit: &Audit, id: Option<&str>, replay_of: Option<&str>, changed: bool) {
    audit.run(|| {
        let input = "Is the Q3 forecast consistent?";
        let session = match (id, replay_of) {
            (Some(id), _) => info_span!("session", id, profile = "deep", input),
            (None, Some(of)) => info_span!("session", profile = "deep", input, replay_of = of),
            (None, None) => info_span!("session", profile = "quick", input),
        };
        session.in_scope(|| reason(input, changed));
    });
}

#[test]
fn a_session_loads_back_as_its_tree_with_decisions() {
    let audit = Audit::with(|b| b.store_inputs(true));
    record(&audit, Some("orig"), None, false);
    let reader = Reader::open(&audit.path).unwrap();
    let session = reader.session("orig").unwrap().unwrap();
    assert_eq!(session.profile, "deep");
    assert_eq!(session.status, "completed");
    assert_eq!(
        session.input.as_deref(),
        Some("Is the Q3 forecast consistent?")
    );
    assert!(session.ended_at.unwrap() >= session.started_at);
    let modules: Vec<(usize, &str)> = session
        .walk()
        .into_iter()
        .map(|(depth, s)| (depth, s.module.as_str()))
        .collect();
    assert_eq!(
        modules,
        [(0, "gigathink"), (1, "gigathink.expand"), (0, "proofguard")]
    );
    let check = &session.steps[2];
    assert_eq!(session.children(&session.steps[0]).count(), 1);
    assert_eq!(check.confidence, Some(0.9));
    assert_eq!(check.tokens_used, Some(120));
    assert_eq!(check.decisions.len(), 2);
    assert_eq!(check.decisions[1].chosen_option.as_deref(), Some("approve"));
    assert_eq!(
        check.decisions[1].options_considered,
        Some(serde_json::json!(["approve", "reject"]))
    );
    assert_eq!(reader.session("nope").unwrap(), None);
    // The reader never writes: the file is byte for byte what it was.
    let before = std::fs::read(&audit.path).unwrap();
    let _ = reader.sessions(&SessionFilter::default()).unwrap();
    assert_eq!(std::fs::read(&audit.path).unwrap(), before);
}

#[test]
fn filters_and_streams_select_what_they_say() {
    let audit = Audit::new();
    record(&audit, Some("a"), None, false);
    record(&audit, None, None, false);
    record(&audit, None, Some("a"), true);
    let reader = Reader::open(&audit.path).unwrap();
    let all = reader.sessions(&SessionFilter::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].started_at >= all[1].started_at, "newest first");
    let quick = reader
        .sessions(&SessionFilter {
            profile: Some("quick".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(quick.len(), 1);
    let failed = reader
        .sessions(&SessionFilter {
            status: Some("completed".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    let later = reader
        .sessions(&SessionFilter {
            since: Some(all[1].started_at),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(later.len(), 2);
    let oldest = reader
        .sessions(&SessionFilter {
            oldest_first: true,
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(oldest.len(), 2);
    assert_eq!(oldest[0].id, "a");
    assert_eq!(oldest[1].id, all[1].id);
    let streamed: Vec<_> = reader
        .stream(&SessionFilter::default())
        .unwrap()
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(streamed.len(), 3);
    assert!(streamed.iter().all(|s| s.walk().len() >= 3));
    let replays = reader.replays_of("a").unwrap();
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0].replay_of(), Some("a"));
}

#[test]
fn the_comparison_shows_what_a_changed_rerun_did_differently() {
    let audit = Audit::new();
    record(&audit, Some("orig"), None, false);
    record(&audit, None, Some("orig"), true);
    let reader = Reader::open(&audit.path).unwrap();
    let original = reader.session("orig").unwrap().unwrap();
    let replay = reader.replays_of("orig").unwrap().remove(0);
    let rerun = reader.session(&replay.id).unwrap().unwrap();

    let changes = diff::compare(&original, &rerun);
    assert!(changes.same_input);
    assert!(changes.decisions_diverged);
    let summary: Vec<(StepChange, &str)> = changes
        .steps
        .iter()
        .map(|s| (s.change, s.module.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (StepChange::Matched, "gigathink"),
            (StepChange::Removed, "gigathink.expand"),
            (StepChange::Added, "bedrock"),
            (StepChange::Matched, "proofguard"),
        ]
    );
    let check = &changes.steps[3];
    assert!((check.confidence_delta().unwrap() + 0.3).abs() < 1e-9);
    assert_eq!(check.tokens_delta(), Some(20));
    assert!(check.error_changed(), "an error appeared");
    assert_eq!(check.error.1.as_deref(), Some("contradiction found"));
    assert!(check.decisions[0].same, "structure: deductive both times");
    assert!(!check.decisions[1].same);
    assert_eq!(check.decisions[1].original.as_deref(), Some("approve"));
    assert_eq!(check.decisions[1].rerun.as_deref(), Some("reject"));

    // A run compared with an identical re-run: nothing diverged.
    record(&audit, Some("same"), None, false);
    let again = reader.session("same").unwrap().unwrap();
    let none = diff::compare(&original, &again);
    assert!(!none.decisions_diverged);
    assert!(none.steps.iter().all(|s| s.change == StepChange::Matched));
}
