//! `diff A [B]`: how a re-run differs from the original, step by step — steps added or
//! removed, options chosen that changed, confidence and token deltas, errors that appeared
//! or went away. B defaults to the newest replay of A (a session recorded with
//! `replay_of = A`). Exit as Unix `diff` does: 0 when the runs did the same, 1 when they
//! differ in what they did — a step added or removed, an error that appeared or went away,
//! a decision that changed ([`Diff::diverged`]); confidence and token deltas alone are not
//! a divergence. `--decisions-only`: 1 only when a decision changed.
//!
//! Built on the library's read API ([`reasonkit_audit::read`]) and its alignment
//! ([`reasonkit_audit::diff::compare`]), so a harness in Rust gets the same answer.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use reasonkit_audit::diff::{Diff, StepChange, StepDiff};
use reasonkit_audit::read::Reader;

use crate::output;
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The original session (an id, or enough of its beginning to be unique)
    original: String,
    /// The re-run to compare with it; default: the newest replay of the original
    rerun: Option<String>,
    /// The comparison as JSON
    #[arg(long)]
    json: bool,
    /// Exit 1 only when a decision changed (steps added or removed, or errors, do not count)
    #[arg(long)]
    decisions_only: bool,
}

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();

/// The one session whose id is `prefix` or starts with it.
fn resolve(reader: &Reader, prefix: &str) -> Result<String, Failure> {
    reader
        .resolve(prefix)?
        .ok_or_else(|| format!("no session id starts with '{prefix}'").into())
}

pub fn run(reader: &Reader, args: &Args) -> Result<Outcome, Failure> {
    let original_id = resolve(reader, &args.original)?;
    let rerun_id = match &args.rerun {
        Some(prefix) => resolve(reader, prefix)?,
        None => match reader.replays_of(&original_id)?.into_iter().next() {
            Some(replay) => replay.id,
            None => {
                return Err(format!(
                    "session {original_id} has no replay (a session recorded with \
                     replay_of = \"{original_id}\"); give the session to compare with"
                )
                .into());
            }
        },
    };
    let load = |id: &str| -> Result<_, Failure> {
        reader
            .session(id)?
            .ok_or_else(|| format!("session {id} is gone").into())
    };
    let diff = reasonkit_audit::diff::compare(&load(&original_id)?, &load(&rerun_id)?);
    if args.json {
        let value = serde_json::to_value(&diff).map_err(|e| e.to_string())?;
        output::print_json(&value)?;
    } else {
        print(&diff)?;
    }
    let differ = if args.decisions_only {
        diff.decisions_diverged
    } else {
        diff.diverged()
    };
    Ok(if differ {
        Outcome::NothingFound
    } else {
        Outcome::Done
    })
}

/// `label a` when both runs agree, `label a → b (delta)` when they differ, nothing when
/// neither has a value; `show` formats a value, `delta` the difference.
fn compared<T: PartialEq + Copy>(
    label: &str,
    (a, b): (Option<T>, Option<T>),
    show: impl Fn(T) -> String,
    delta: Option<String>,
) -> Option<String> {
    let show = |v: Option<T>| v.map_or_else(|| "—".to_owned(), &show);
    match (a, b) {
        (None, None) => None,
        _ if a == b => Some(format!("{label} {}", show(a))),
        _ => Some(format!(
            "{label} {} → {}{}",
            show(a),
            show(b),
            delta.map(|d| format!(" ({d})")).unwrap_or_default()
        )),
    }
}

fn figures(step: &StepDiff) -> String {
    [
        compared(
            "conf",
            step.confidence,
            |v| format!("{v:.2}"),
            step.confidence_delta().map(|d| format!("{d:+.2}")),
        ),
        compared(
            "tokens",
            step.tokens,
            |v| v.to_string(),
            step.tokens_delta().map(|d| format!("{d:+}")),
        ),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("  ")
}

fn print(diff: &Diff) -> Result<(), Failure> {
    let mut out = anstream::stdout().lock();
    let describe = |s: &reasonkit_audit::read::SessionSummary| {
        format!(
            "{} ({}, {}, started {} UTC)",
            s.id,
            s.profile,
            s.status,
            s.started_at.format("%Y-%m-%d %H:%M:%S")
        )
    };
    let io = |e: std::io::Error| e.to_string();
    writeln!(out, "{BOLD}original{BOLD:#}  {}", describe(&diff.original)).map_err(io)?;
    writeln!(out, "{BOLD}re-run{BOLD:#}    {}", describe(&diff.rerun)).map_err(io)?;
    if !diff.same_input {
        writeln!(
            out,
            "{YELLOW}the inputs differ{YELLOW:#} (input_hash {} vs {})",
            diff.original.input_hash, diff.rerun.input_hash
        )
        .map_err(io)?;
    }
    writeln!(out).map_err(io)?;
    for step in &diff.steps {
        let indent = "  ".repeat(step.depth);
        let (mark, style) = match step.change {
            StepChange::Added => ("+", GREEN),
            StepChange::Removed => ("-", RED),
            StepChange::Matched
                if step.decisions.iter().any(|d| !d.same) || step.error_changed() =>
            {
                ("~", YELLOW)
            }
            StepChange::Matched => ("=", Style::new()),
        };
        let what = match step.change {
            StepChange::Added => "  added".to_owned(),
            StepChange::Removed => "  removed".to_owned(),
            StepChange::Matched => String::new(),
        };
        let line = format!("{indent}{:<24}{what}  {}", step.module, figures(step));
        writeln!(out, "{style}{mark}{style:#} {}", line.trim_end()).map_err(io)?;
        match (&step.error.0, &step.error.1) {
            (None, Some(e)) if step.change == StepChange::Matched => {
                writeln!(out, "    {indent}{RED}error appeared:{RED:#} {e}").map_err(io)?;
            }
            (Some(e), None) if step.change == StepChange::Matched => {
                writeln!(out, "    {indent}{GREEN}error went away:{GREEN:#} {e}").map_err(io)?;
            }
            (Some(e), _) | (_, Some(e)) if step.change != StepChange::Matched => {
                writeln!(out, "    {indent}error: {e}").map_err(io)?;
            }
            _ => {}
        }
        for decision in &step.decisions {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
            let line = match (&decision.original, &decision.rerun, decision.same) {
                (_, _, true) => format!(
                    "decision {}: {}",
                    decision.decision_type,
                    show(&decision.original)
                ),
                _ => format!(
                    "{YELLOW}decision {}: {} → {}{YELLOW:#}",
                    decision.decision_type,
                    show(&decision.original),
                    show(&decision.rerun)
                ),
            };
            writeln!(out, "    {indent}{line}").map_err(io)?;
        }
    }
    let added = diff.added().count();
    let removed = diff.removed().count();
    let changed = diff
        .steps
        .iter()
        .flat_map(|s| &s.decisions)
        .filter(|d| !d.same)
        .count();
    writeln!(out).map_err(io)?;
    if diff.decisions_diverged {
        writeln!(
            out,
            "{RED}decisions diverged{RED:#}: {changed} decision(s) differ; {added} step(s) added, {removed} removed"
        )
        .map_err(io)?;
    } else {
        writeln!(
            out,
            "{GREEN}decisions are the same{GREEN:#}; {added} step(s) added, {removed} removed"
        )
        .map_err(io)?;
    }
    Ok(())
}
