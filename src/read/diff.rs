//! Comparing two runs of the same reasoning: an original session and a re-run (a replay with
//! the same input, after a model or prompt change), step by step.
//!
//! Steps are aligned on their module and nesting depth, in execution order, with Myers'
//! diff (the `similar` crate): a step in both runs is *matched* and compared (confidence,
//! tokens, error, decisions); a step only in the original was *removed*, one only in the
//! re-run *added*. The runs' decisions *diverged* when a matched step's decisions differ in
//! kind or in the option chosen, or when a step with decisions was added or removed — the
//! question after every change: did the reasoning decide the same things?
//!
//! ```
//! use reasonkit_audit::diff;
//! use reasonkit_audit::read::Reader;
//! use tracing_subscriber::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("audit.db");
//! let (audit, guard) = reasonkit_audit::AuditLayer::builder()
//!     .path(&path)
//!     .store_inputs(true)
//!     .build()?;
//! // The reasoning under test: the same input, and a threshold that changed.
//! fn reason(input: &str, threshold: f64) -> &'static str {
//!     let _step = tracing::info_span!("step", module = "proofguard", confidence = 0.8).entered();
//!     let verdict = if 0.8 >= threshold { "approve" } else { "reject" };
//!     tracing::info!(name: "decision", decision_type = "verdict", chosen_option = verdict);
//!     verdict
//! }
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
//!     let _s = tracing::info_span!("session", id = "run-1", input = "Q3 filing").entered();
//!     reason("Q3 filing", 0.7);
//! });
//! guard.flush()?;
//!
//! // A replay harness: load what was recorded, run the same input again as a replay.
//! let reader = Reader::open(&path)?;
//! let original = reader.session("run-1")?.expect("recorded");
//! let input = original.input.clone().expect("stored with store_inputs(true)");
//! let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
//!     let _s = tracing::info_span!("session", input = %input, replay_of = "run-1").entered();
//!     reason(&input, 0.9);
//! });
//! guard.flush()?;
//!
//! let replay = &reader.replays_of("run-1")?[0];
//! let rerun = reader.session(&replay.id)?.expect("recorded");
//! let changes = diff::compare(&original, &rerun);
//! assert!(changes.decisions_diverged);
//! assert_eq!(changes.steps[0].decisions[0].original.as_deref(), Some("approve"));
//! assert_eq!(changes.steps[0].decisions[0].rerun.as_deref(), Some("reject"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;
use similar::{Algorithm, DiffOp, capture_diff_slices};

use crate::read::{Decision, Session, SessionSummary, Step};

/// How two runs differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// The original run.
    pub original: SessionSummary,
    /// The re-run.
    pub rerun: SessionSummary,
    /// Whether both runs had the same input (equal `input_hash`).
    pub same_input: bool,
    /// Every step of either run, aligned, in execution order.
    pub steps: Vec<StepDiff>,
    /// Whether the runs decided differently (see the module docs).
    pub decisions_diverged: bool,
}

impl Diff {
    /// Whether the runs differ in what they did, as Unix `diff` says files differ: a step
    /// added or removed (a step whose module changed is one removed and one added), an
    /// error that appeared, went away or changed, or a decision that changed. Confidence
    /// and token deltas alone are not a divergence.
    pub fn diverged(&self) -> bool {
        self.decisions_diverged
            || self
                .steps
                .iter()
                .any(|s| s.change != StepChange::Matched || s.error_changed())
    }

    /// Steps only in the re-run.
    pub fn added(&self) -> impl Iterator<Item = &StepDiff> {
        self.steps.iter().filter(|s| s.change == StepChange::Added)
    }

    /// Steps only in the original.
    pub fn removed(&self) -> impl Iterator<Item = &StepDiff> {
        self.steps
            .iter()
            .filter(|s| s.change == StepChange::Removed)
    }
}

/// What happened to one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepChange {
    /// In both runs.
    Matched,
    /// Only in the re-run.
    Added,
    /// Only in the original.
    Removed,
}

/// One aligned step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepDiff {
    /// Matched, added or removed.
    pub change: StepChange,
    /// The module.
    pub module: String,
    /// Its nesting depth (0 for a top-level step).
    pub depth: usize,
    /// The step's id in the original, when there.
    pub original_id: Option<String>,
    /// The step's id in the re-run, when there.
    pub rerun_id: Option<String>,
    /// Confidence in the original and in the re-run.
    pub confidence: (Option<f64>, Option<f64>),
    /// Tokens in the original and in the re-run.
    pub tokens: (Option<i64>, Option<i64>),
    /// The error in the original and in the re-run.
    pub error: (Option<String>, Option<String>),
    /// The step's decisions, aligned by kind in order.
    pub decisions: Vec<DecisionDiff>,
}

impl StepDiff {
    /// Re-run minus original confidence, when both have one.
    pub fn confidence_delta(&self) -> Option<f64> {
        Some(self.confidence.1? - self.confidence.0?)
    }

    /// Re-run minus original tokens, when both have a count.
    pub fn tokens_delta(&self) -> Option<i64> {
        Some(self.tokens.1? - self.tokens.0?)
    }

    /// Whether an error appeared in the re-run or went away.
    pub fn error_changed(&self) -> bool {
        self.error.0.is_some() != self.error.1.is_some()
    }
}

/// One decision of an aligned step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionDiff {
    /// Its `decision_type`.
    pub decision_type: String,
    /// The option the original chose; `None` when the decision is only in the re-run.
    pub original: Option<String>,
    /// The option the re-run chose; `None` when the decision is only in the original.
    pub rerun: Option<String>,
    /// Whether it is in both runs with the same choice.
    pub same: bool,
}

/// Compares `original` with `rerun`, step by step.
pub fn compare(original: &Session, rerun: &Session) -> Diff {
    let a = original.walk();
    let b = rerun.walk();
    let key = |(depth, step): &(usize, &Step)| (*depth, step.module.clone());
    let keys_a: Vec<_> = a.iter().map(key).collect();
    let keys_b: Vec<_> = b.iter().map(key).collect();
    let mut steps = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &keys_a, &keys_b) {
        match op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                for i in 0..len {
                    steps.push(matched(a[old_index + i], b[new_index + i]));
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                for &(depth, step) in &a[old_index..old_index + old_len] {
                    steps.push(one_sided(StepChange::Removed, depth, step));
                }
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for &(depth, step) in &b[new_index..new_index + new_len] {
                    steps.push(one_sided(StepChange::Added, depth, step));
                }
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                for &(depth, step) in &a[old_index..old_index + old_len] {
                    steps.push(one_sided(StepChange::Removed, depth, step));
                }
                for &(depth, step) in &b[new_index..new_index + new_len] {
                    steps.push(one_sided(StepChange::Added, depth, step));
                }
            }
        }
    }
    let decisions_diverged = steps.iter().any(|s| s.decisions.iter().any(|d| !d.same));
    Diff {
        original: original.summary.clone(),
        rerun: rerun.summary.clone(),
        same_input: original.input_hash == rerun.input_hash,
        steps,
        decisions_diverged,
    }
}

fn matched(a: (usize, &Step), b: (usize, &Step)) -> StepDiff {
    let (depth, a) = a;
    let (_, b) = b;
    StepDiff {
        change: StepChange::Matched,
        module: a.module.clone(),
        depth,
        original_id: Some(a.id.clone()),
        rerun_id: Some(b.id.clone()),
        confidence: (a.confidence, b.confidence),
        tokens: (a.tokens_used, b.tokens_used),
        error: (a.error.clone(), b.error.clone()),
        decisions: decisions(&a.decisions, &b.decisions),
    }
}

fn one_sided(change: StepChange, depth: usize, step: &Step) -> StepDiff {
    let original = change == StepChange::Removed;
    StepDiff {
        change,
        module: step.module.clone(),
        depth,
        original_id: original.then(|| step.id.clone()),
        rerun_id: (!original).then(|| step.id.clone()),
        confidence: sides(original, step.confidence),
        tokens: sides(original, step.tokens_used),
        error: sides(original, step.error.clone()),
        decisions: step
            .decisions
            .iter()
            .map(|d| one_run(d, original))
            .collect(),
    }
}

/// A value of one run only, on its side of the pair.
fn sides<T>(original: bool, value: Option<T>) -> (Option<T>, Option<T>) {
    if original {
        (value, None)
    } else {
        (None, value)
    }
}

/// A decision made in one run only (the original's when `original`).
fn one_run(decision: &Decision, original: bool) -> DecisionDiff {
    let (original, rerun) = sides(original, decision.chosen_option.clone());
    DecisionDiff {
        decision_type: decision.decision_type.clone(),
        original,
        rerun,
        same: false,
    }
}

/// Decisions of a matched step, aligned by `decision_type` in order.
fn decisions(a: &[Decision], b: &[Decision]) -> Vec<DecisionDiff> {
    let kinds_a: Vec<&str> = a.iter().map(|d| d.decision_type.as_str()).collect();
    let kinds_b: Vec<&str> = b.iter().map(|d| d.decision_type.as_str()).collect();
    let mut out = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &kinds_a, &kinds_b) {
        let (old, new) = (op.old_range(), op.new_range());
        match op {
            DiffOp::Equal { .. } => {
                for (x, y) in a[old].iter().zip(&b[new]) {
                    out.push(DecisionDiff {
                        decision_type: x.decision_type.clone(),
                        original: x.chosen_option.clone(),
                        rerun: y.chosen_option.clone(),
                        same: x.chosen_option == y.chosen_option,
                    });
                }
            }
            _ => {
                out.extend(a[old].iter().map(|d| one_run(d, true)));
                out.extend(b[new].iter().map(|d| one_run(d, false)));
            }
        }
    }
    out
}
