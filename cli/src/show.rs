//! `show ID`: the replay view of one session — its steps in execution order as a tree,
//! nested steps indented, decisions under their step.

use std::collections::HashMap;
use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde_json::{Map, Value};

use crate::db::Db;
use crate::export;
use crate::output;
use crate::store;
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

pub fn run(db: &Db, args: &Args) -> Result<Outcome, Failure> {
    let Some(id) = store::resolve_session(db, &args.id)? else {
        eprintln!("reasonkit-audit: no session id starts with '{}'", args.id);
        return Ok(Outcome::NothingFound);
    };
    let session = export::session_json(db, &id)?;
    if args.json {
        output::print_json(&session)?;
    } else {
        print_replay(&session)?;
    }
    Ok(Outcome::Done)
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn print_replay(session: &Value) -> Result<(), Failure> {
    let mut out = anstream::stdout().lock();
    let s = session.as_object().ok_or("session is not an object")?;
    let status = text(s, "status");
    let status_style = match status {
        "completed" => GREEN,
        "failed" | "interrupted" => RED,
        _ => Style::new(),
    };
    writeln!(
        out,
        "{BOLD}session {}{BOLD:#}  profile {}  {status_style}{status}{status_style:#}  started {} UTC  {}",
        text(s, "id"),
        text(s, "profile"),
        text(s, "started_at"),
        output::duration_ms(s.get("duration_ms").and_then(Value::as_f64)),
    )?;
    writeln!(out, "{DIM}input_hash {}{DIM:#}", text(s, "input_hash"))?;
    if let Some(input) = s.get("input").and_then(Value::as_str) {
        writeln!(out, "input: {input}")?;
    }

    let steps = s
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut children: HashMap<Option<String>, Vec<&Value>> = HashMap::new();
    for step in &steps {
        let parent = step
            .get("parent_step_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        children.entry(parent).or_default().push(step);
    }
    // Depth-first, in execution order, without recursion (chains can be very deep).
    let mut stack: Vec<(&Value, usize)> = children
        .get(&None)
        .into_iter()
        .flatten()
        .rev()
        .map(|step| (*step, 0))
        .collect();
    while let Some((step, depth)) = stack.pop() {
        print_step(&mut out, step, depth)?;
        let id = step.get("id").and_then(Value::as_str).map(str::to_owned);
        if let Some(kids) = children.get(&id) {
            stack.extend(kids.iter().rev().map(|kid| (*kid, depth + 1)));
        }
    }
    if steps.is_empty() {
        writeln!(out, "{DIM}(no steps){DIM:#}")?;
    }
    Ok(())
}

fn print_step(out: &mut impl Write, step: &Value, depth: usize) -> Result<(), Failure> {
    let step = step.as_object().ok_or("step is not an object")?;
    let pad = "  ".repeat(depth + 1);
    let mut facts = Vec::new();
    if let Some(c) = step.get("confidence").and_then(Value::as_f64) {
        facts.push(format!("confidence {c:.2}"));
    }
    if let Some(t) = step.get("tokens_used").and_then(Value::as_i64) {
        facts.push(format!("tokens {t}"));
    }
    let duration = output::duration_ms(step.get("duration_ms").and_then(Value::as_f64));
    facts.push(if duration.is_empty() {
        "still open".to_owned()
    } else {
        duration
    });
    writeln!(
        out,
        "{pad}{CYAN}{}{CYAN:#}  {}",
        text(step, "module"),
        facts.join("  ")
    )?;
    for (label, key) in [("in", "input_summary"), ("out", "output_summary")] {
        if let Some(value) = step.get(key).and_then(Value::as_str) {
            writeln!(out, "{pad}  {DIM}{label}:{DIM:#} {value}")?;
        }
    }
    if let Some(error) = step.get("error").and_then(Value::as_str) {
        writeln!(out, "{pad}  {RED}error: {error}{RED:#}")?;
    }
    for decision in step
        .get("decisions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d = decision.as_object().ok_or("decision is not an object")?;
        let options = match d.get("options_considered") {
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
            text(d, "decision_type"),
            d.get("chosen_option")
                .and_then(Value::as_str)
                .unwrap_or("(none chosen)"),
            if options.is_empty() {
                String::new()
            } else {
                format!("  {DIM}of{DIM:#} {options}")
            },
        )?;
        if let Some(rationale) = d.get("rationale").and_then(Value::as_str) {
            writeln!(out, "{pad}    {DIM}because{DIM:#} {rationale}")?;
        }
    }
    Ok(())
}
