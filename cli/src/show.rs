//! `show ID`: the replay view of one session — its steps in execution order as a tree,
//! nested steps indented, decisions under their step. The view reads the session through
//! the library's read API; `--json` prints the object `export --format json` gives.

use std::io::Write;
use std::path::Path;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use reasonkit_audit::read::{Reader, Session, Step};
use serde_json::Value;

use crate::output;
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session id, or enough of its beginning to be unique
    id: String,
    /// The session with its steps and decisions as JSON
    #[arg(long)]
    json: bool,
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default();
const GREEN: Style = AnsiColor::Green.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();

pub fn run(store: &Path, args: &Args) -> Result<Outcome, Failure> {
    let reader = Reader::open(store)?;
    let Some(id) = reader.resolve(&args.id)? else {
        return not_found(&args.id);
    };
    if args.json {
        // The same object as `export --format json` gives for this session.
        let Some(record) = reader.session_record(&id)? else {
            return not_found(&args.id);
        };
        output::print_json(&record)?;
        return Ok(Outcome::Done);
    }
    let Some(session) = reader.session(&id)? else {
        return not_found(&args.id);
    };
    let joined = reader.joined_chain(&session.id)?;
    print_replay(&session, &joined)?;
    Ok(Outcome::Done)
}

fn not_found(prefix: &str) -> Result<Outcome, Failure> {
    eprintln!("reasonkit-audit: no session id starts with '{prefix}'");
    Ok(Outcome::NothingFound)
}

/// Milliseconds from `start` to `end`, when it ended.
fn elapsed_ms(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Option<f64> {
    end.map(|end| (end - start).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
}

/// Prints `session`; `joined`: the sessions its `otel.joined_into` leads through to the one
/// holding its steps ([`Reader::joined_chain`]).
fn print_replay(session: &Session, joined: &[String]) -> Result<(), Failure> {
    let mut out = anstream::stdout().lock();
    let status = session.status.as_str();
    let status_style = match status {
        "completed" => GREEN,
        "failed" | "interrupted" => RED,
        _ => Style::new(),
    };
    writeln!(
        out,
        "{BOLD}session {}{BOLD:#}  profile {}  {status_style}{status}{status_style:#}  started {} UTC  {}",
        session.id,
        session.profile,
        session.started_at.format("%Y-%m-%d %H:%M:%S%.6f"),
        output::duration_ms(elapsed_ms(session.started_at, session.ended_at)),
    )?;
    writeln!(out, "{DIM}input_hash {}{DIM:#}", session.input_hash)?;
    if let Some(instructions) = session.instructions() {
        writeln!(out, "{DIM}instructions:{DIM:#} {instructions}")?;
    }
    if let Some(input) = &session.input {
        writeln!(out, "input: {input}")?;
    }
    if let Some(answer) = session.answer() {
        writeln!(out, "answer: {answer}")?;
    }
    if let Some(error) = session.error() {
        writeln!(out, "{RED}error: {error}{RED:#}")?;
    }
    // The read API gives the steps depth first in execution order, without recursion.
    for (depth, step) in session.walk() {
        print_step(&mut out, step, depth)?;
    }
    if let Some(last) = joined.last() {
        // "joined into session A, which joined B, which joined C: its steps are there".
        writeln!(
            out,
            "joined into session {}: its steps are there (reasonkit-audit show {last})",
            joined.join(", which joined ")
        )?;
    } else if session.steps.is_empty() {
        writeln!(out, "{DIM}(no steps){DIM:#}")?;
    }
    Ok(())
}

fn print_step(out: &mut impl Write, step: &Step, depth: usize) -> Result<(), Failure> {
    let pad = "  ".repeat(depth + 1);
    let mut facts = Vec::new();
    if let Some(c) = step.confidence {
        facts.push(format!("confidence {c:.2}"));
    }
    if let Some(t) = step.tokens_used {
        facts.push(format!("tokens {t}"));
    }
    let duration = output::duration_ms(elapsed_ms(step.started_at, step.ended_at));
    facts.push(if duration.is_empty() {
        "still open".to_owned()
    } else {
        duration
    });
    writeln!(
        out,
        "{pad}{CYAN}{}{CYAN:#}  {}",
        step.module,
        facts.join("  ")
    )?;
    for (label, value) in [("in", &step.input_summary), ("out", &step.output_summary)] {
        if let Some(value) = value {
            writeln!(out, "{pad}  {DIM}{label}:{DIM:#} {value}")?;
        }
    }
    if let Some(error) = &step.error {
        writeln!(out, "{pad}  {RED}error: {error}{RED:#}")?;
    }
    for decision in &step.decisions {
        let options = match &decision.options_considered {
            Some(Value::Array(items)) => items
                .iter()
                .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" | "),
            Some(Value::Null) | None => String::new(),
            Some(other) => other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned),
        };
        writeln!(
            out,
            "{pad}  {BOLD}decision {}{BOLD:#}: {}{}",
            decision.decision_type,
            decision.chosen_option.as_deref().unwrap_or("(none chosen)"),
            if options.is_empty() {
                String::new()
            } else {
                format!("  {DIM}of{DIM:#} {options}")
            },
        )?;
        if let Some(rationale) = &decision.rationale {
            writeln!(out, "{pad}    {DIM}because{DIM:#} {rationale}")?;
        }
    }
    Ok(())
}
