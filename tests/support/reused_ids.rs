//! The promise that a session id given again never merges two runs, as a property: scripts
//! of session spans that re-use a few ids, opened and closed in any interleaving, on one
//! thread or many, with no pause between them and with or without flushes; and the check
//! that every run came back as a row of its own, with its own fields, times and steps.
//!
//! Shared by the SQLite test (tests/session_ids.rs) and the PostgreSQL one
//! (tests/postgres.rs): each plays a script into its store and reads the rows back.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use tracing::{Dispatch, Span, info_span};

/// One run: a session span given the id `run-<given>`, with `steps` steps.
#[derive(Clone, Debug)]
pub struct Run {
    pub given: u8,
    pub steps: u8,
}

/// Runs, and how their actions interleave.
#[derive(Clone, Debug)]
pub struct Script {
    pub runs: Vec<Run>,
    /// Which run acts next, each taken modulo the runs that still have actions.
    pub order: Vec<u8>,
    /// A flush after the action of the same index.
    pub flushes: Vec<bool>,
    /// Each run on a thread of its own, all started at once (`order` unused).
    pub threads: bool,
}

/// Scripts of 1 to 6 runs over 2 ids, 0 to 3 steps each.
pub fn scripts() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec((0u8..2, 0u8..4), 1..7),
        prop::collection::vec(any::<u8>(), 40),
        prop::collection::vec(prop::bool::weighted(0.15), 40),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(runs, order, flushes, threads)| Script {
            runs: runs
                .into_iter()
                .map(|(given, steps)| Run { given, steps })
                .collect(),
            order,
            flushes,
            threads,
        })
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Open,
    StepOpen,
    StepClose,
    Close,
}

fn actions(run: &Run) -> VecDeque<Action> {
    let mut all = VecDeque::from([Action::Open]);
    for _ in 0..run.steps {
        all.extend([Action::StepOpen, Action::StepClose]);
    }
    all.push_back(Action::Close);
    all
}

/// The id run `given` is given, in a script whose ids start with `prefix`.
pub fn given_id(prefix: &str, given: u8) -> String {
    format!("{prefix}run-{given}")
}

/// Plays `script` into `dispatch`; `flush` commits what was sent so far.
pub fn play(script: &Script, prefix: &str, dispatch: &Dispatch, flush: &(dyn Fn() + Sync)) {
    if script.threads {
        let start = std::sync::Barrier::new(script.runs.len());
        std::thread::scope(|scope| {
            for (turn, run) in script.runs.iter().enumerate() {
                let start = &start;
                scope.spawn(move || {
                    tracing::dispatcher::with_default(dispatch, || {
                        start.wait();
                        let session = open(prefix, turn, run);
                        for _ in 0..run.steps {
                            drop(step(&session, turn));
                        }
                    })
                });
            }
        });
        return;
    }
    tracing::dispatcher::with_default(dispatch, || {
        let mut left: Vec<VecDeque<Action>> = script.runs.iter().map(actions).collect();
        let mut sessions: Vec<Option<Span>> = vec![None; script.runs.len()];
        let mut steps: Vec<Option<Span>> = vec![None; script.runs.len()];
        let mut choices = script.order.iter().cycle();
        let mut index = 0;
        loop {
            let waiting: Vec<usize> = (0..left.len()).filter(|&r| !left[r].is_empty()).collect();
            if waiting.is_empty() {
                break;
            }
            let choice = usize::from(*choices.next().unwrap_or(&0));
            let turn = waiting[choice % waiting.len()];
            match left[turn].pop_front() {
                Some(Action::Open) => sessions[turn] = Some(open(prefix, turn, &script.runs[turn])),
                Some(Action::StepOpen) => {
                    let session = sessions[turn].as_ref().expect("opened first");
                    steps[turn] = Some(step(session, turn));
                }
                Some(Action::StepClose) => steps[turn] = None,
                Some(Action::Close) => sessions[turn] = None,
                None => {}
            }
            if script.flushes.get(index).copied().unwrap_or(false) {
                flush();
            }
            index += 1;
        }
    });
}

fn open(prefix: &str, turn: usize, run: &Run) -> Span {
    info_span!("session", id = %given_id(prefix, run.given), turn = turn as u64)
}

fn step(session: &Span, turn: usize) -> Span {
    info_span!(parent: session, "step", module = "m", output_summary = turn as u64)
}

/// A `sessions` row as read back: times as `YYYY-MM-DD HH:MM:SS.ffffff` text.
#[derive(Debug)]
pub struct SessionRow {
    pub id: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub attributes: serde_json::Value,
}

/// A `steps` row as read back.
#[derive(Debug)]
pub struct StepRow {
    pub session_id: String,
    pub output_summary: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// Every run of `script` is a session row of its own, whatever the interleaving.
pub fn check(
    script: &Script,
    prefix: &str,
    sessions: &[SessionRow],
    steps: &[StepRow],
) -> Result<(), TestCaseError> {
    let ours: Vec<&SessionRow> = sessions
        .iter()
        .filter(|s| s.id.starts_with(prefix))
        .collect();
    prop_assert_eq!(ours.len(), script.runs.len(), "one row per run: {:?}", ours);
    let mut by_turn: BTreeMap<u64, &SessionRow> = BTreeMap::new();
    for session in &ours {
        let turn = session.attributes["turn"].as_u64();
        prop_assert!(turn.is_some(), "a session without its turn: {:?}", session);
        let turn = turn.unwrap_or_default();
        prop_assert!(
            by_turn.insert(turn, session).is_none(),
            "two rows have turn {}",
            turn
        );
    }
    for (turn, run) in script.runs.iter().enumerate() {
        let given = given_id(prefix, run.given);
        let session = by_turn.get(&(turn as u64));
        prop_assert!(session.is_some(), "run {} has no row", turn);
        let session = session.copied().unwrap();
        if session.id != given {
            prop_assert!(
                session.id.starts_with(&format!("{given}~")),
                "run {} written as {}",
                turn,
                session.id
            );
            prop_assert_eq!(&session.attributes["given_id"], &serde_json::json!(given));
        }
        prop_assert_eq!(session.status.as_str(), "completed");
        let ended = session.ended_at.as_deref().unwrap_or("");
        prop_assert!(!ended.is_empty(), "run {} has no end", turn);
        let own: Vec<&StepRow> = steps
            .iter()
            .filter(|s| s.session_id == session.id)
            .collect();
        prop_assert_eq!(own.len(), usize::from(run.steps), "steps of run {}", turn);
        for step in own {
            prop_assert_eq!(step.output_summary.clone(), Some(turn.to_string()));
            prop_assert!(
                step.started_at >= session.started_at,
                "{:?} {:?}",
                step,
                session
            );
            let step_end = step.ended_at.as_deref().unwrap_or("");
            prop_assert!(
                !step_end.is_empty() && step_end <= ended,
                "{:?} {:?}",
                step,
                session
            );
        }
    }
    // Exactly one run of each id keeps the id as it was given.
    let mut plain: BTreeMap<String, usize> = BTreeMap::new();
    for run in &script.runs {
        plain.insert(given_id(prefix, run.given), 0);
    }
    for session in &ours {
        if let Some(n) = plain.get_mut(&session.id) {
            *n += 1;
        }
    }
    prop_assert!(plain.values().all(|&n| n == 1), "{:?}", plain);
    Ok(())
}
