//! `report`: one self-contained HTML file for reviewers and auditors — a session (or every
//! session of a period) with its header, a waterfall of its steps drawn to scale, each
//! step's confidence and tokens, its decisions with their options and rationale, errors
//! marked, and what the tamper-evident chain says about the rows shown.
//!
//! The file has no external assets and no JavaScript: styles are inline, bars are plain
//! boxes positioned in percent of the session's duration, so it reads in any browser, in a
//! mail client's preview, and prints (one session a page).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::db::Db;
use crate::export;
use crate::since::Since;
use crate::store;
use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session to report (an id, or enough of its beginning to be unique)
    #[arg(long, required_unless_present = "since", conflicts_with = "since")]
    session: Option<String>,
    /// Every session started since: 30m, 24h, 7d, 2w, or a date
    #[arg(long)]
    since: Option<Since>,
    /// Write the HTML here instead of to standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// What the chain says, for the report's banner and each row's mark.
pub struct Evidence {
    /// One sentence: intact, or how many findings.
    pub summary: String,
    /// Whether the whole chain verified.
    pub intact: bool,
    /// The rows a finding names, by id, with the finding's sentence.
    pub findings: HashMap<String, String>,
}

impl Evidence {
    /// The evidence of a verification report.
    pub fn of(report: &reasonkit_audit::Report) -> Self {
        let intact = report.findings.is_empty();
        let summary = if intact {
            format!(
                "Tamper evidence: the chain verifies — {} entries, head {}.",
                report.entries,
                crate::verify::hex(&report.head)
            )
        } else {
            format!(
                "Tamper evidence: {} finding(s) — the rows marked below disagree with the chain.",
                report.findings.len()
            )
        };
        let findings = report
            .findings
            .iter()
            .filter_map(|f| Some((f.row_id.clone()?, f.detail.clone())))
            .collect();
        Evidence {
            summary,
            intact,
            findings,
        }
    }
}

pub fn run(db: &Db, args: &Args, source: &str, evidence: Evidence) -> Result<Outcome, Failure> {
    let sessions = match &args.session {
        Some(prefix) => match store::resolve_session(db, prefix)? {
            Some(id) => vec![export::session_json(db, &id)?],
            None => {
                eprintln!("reasonkit-audit: no session id starts with '{prefix}'");
                return Ok(Outcome::NothingFound);
            }
        },
        None => export::sessions_json(db, args.since.as_ref().map(|s| s.0.as_str()))?,
    };
    if sessions.is_empty() {
        eprintln!("reasonkit-audit: no session started in that period");
        return Ok(Outcome::NothingFound);
    }
    let html = render(&sessions, &evidence, source);
    match &args.output {
        Some(path) => std::fs::write(path, html)
            .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))?,
        None => print!("{html}"),
    }
    Ok(Outcome::Done)
}

/// Text made safe for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn number(object: &Map<String, Value>, key: &str) -> Option<f64> {
    object.get(key).and_then(Value::as_f64)
}

/// Microseconds since the epoch of a stored timestamp (`YYYY-MM-DD HH:MM:SS.ffffff`).
fn micros(at: Option<&str>) -> Option<i64> {
    let at = NaiveDateTime::parse_from_str(at?, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(at.and_utc().timestamp_micros())
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 2rem auto; max-width: 68rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ccd; padding-bottom: .25rem; }
.meta { color: #556; }
.banner { padding: .6rem .8rem; border-radius: 4px; margin: 1rem 0; }
.banner.intact { background: #e7f6ea; border: 1px solid #7bc68a; }
.banner.findings { background: #fdeaea; border: 1px solid #d77; }
table.header { border-collapse: collapse; margin: .5rem 0 1rem; }
table.header th { text-align: left; font-weight: 600; padding: .15rem 1rem .15rem 0; color: #445; }
table.header td { padding: .15rem 0; font-family: ui-monospace, monospace; font-size: 13px; }
.status-completed { color: #16794a; font-weight: 600; }
.status-failed, .status-interrupted { color: #b3261e; font-weight: 600; }
ol.waterfall { list-style: none; padding: 0; margin: 0; }
li.step { border-top: 1px solid #eef; padding: .3rem 0; break-inside: avoid; }
.row { display: flex; align-items: center; gap: .75rem; }
.label { flex: 0 0 17rem; box-sizing: border-box; overflow-wrap: anywhere; }
.track { flex: 1 1 auto; position: relative; height: 1rem; background: #f3f4f8; }
.bar { position: absolute; top: 0; bottom: 0; background: #4a6fd1; min-width: 1px; }
li.error .bar { background: #c62828; }
.figures { flex: 0 0 13rem; color: #445; font-size: 13px; text-align: right; }
.error-text { color: #b3261e; margin: .2rem 0 0 1rem; }
.summary { color: #445; margin: .1rem 0 0 1rem; font-size: 13px; overflow-wrap: anywhere; }
.decision { margin: .3rem 0 .2rem 1rem; padding: .3rem .6rem; border-left: 3px solid #8a6fd1; background: #f7f5fd; }
.decision .chosen { font-weight: 700; }
.tampered { color: #b3261e; font-weight: 700; }
.mark { font-weight: 700; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  section.session { break-after: page; }
  .bar, .track, .banner { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The whole report: one document, one section per session.
pub fn render(sessions: &[Value], evidence: &Evidence, source: &str) -> String {
    let mut html = String::new();
    let title = match sessions {
        [one] => format!(
            "Audit report: session {}",
            one.get("id").and_then(Value::as_str).unwrap_or_default()
        ),
        many => format!("Audit report: {} sessions", many.len()),
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p class=\"meta\">From {source}, written {now} UTC by reasonkit-audit {version}.</p>\n\
         <p class=\"banner {class}\" id=\"evidence\">{summary}</p>\n",
        title = escape(&title),
        source = escape(source),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
        version = env!("CARGO_PKG_VERSION"),
        class = if evidence.intact {
            "intact"
        } else {
            "findings"
        },
        summary = escape(&evidence.summary),
    );
    for session in sessions {
        if let Some(session) = session.as_object() {
            render_session(&mut html, session, evidence);
        }
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn render_session(html: &mut String, session: &Map<String, Value>, evidence: &Evidence) {
    let id = text(session, "id").unwrap_or_default();
    let status = text(session, "status").unwrap_or_default();
    let started = text(session, "started_at");
    let ended = text(session, "ended_at");
    let steps: Vec<&Map<String, Value>> = session
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();

    // The waterfall's scale: from the session's start to its end (or its last step's end,
    // for a session still running or interrupted).
    let start = micros(started).unwrap_or(0);
    let last_end = steps
        .iter()
        .filter_map(|s| micros(text(s, "ended_at")).or_else(|| micros(text(s, "started_at"))))
        .max();
    let end = micros(ended)
        .into_iter()
        .chain(last_end)
        .max()
        .unwrap_or(start);
    let span = (end - start).max(1) as f64;

    let tampered = evidence.findings.get(id);
    let _ = write!(
        html,
        "<section class=\"session\" data-session-id=\"{id_attr}\">\n<h2>Session {id_text}{mark}</h2>\n\
         <table class=\"header\">\n\
         <tr><th>Profile</th><td>{profile}</td></tr>\n\
         <tr><th>Status</th><td class=\"status-{status_attr}\">{status_text}</td></tr>\n\
         <tr><th>Input hash</th><td>{input_hash}</td></tr>\n\
         <tr><th>Started</th><td>{started} UTC</td></tr>\n\
         <tr><th>Ended</th><td>{ended}</td></tr>\n\
         <tr><th>Duration</th><td>{duration}</td></tr>\n\
         <tr><th>Steps</th><td>{steps}</td></tr>\n</table>\n",
        id_attr = escape(id),
        id_text = escape(id),
        mark = tampered
            .map(|f| format!(" <span class=\"tampered\">✗ {}</span>", escape(f)))
            .unwrap_or_default(),
        profile = escape(text(session, "profile").unwrap_or_default()),
        status_attr = escape(status),
        status_text = escape(status),
        input_hash = escape(text(session, "input_hash").unwrap_or_default()),
        started = escape(started.unwrap_or_default()),
        ended = ended
            .map(|e| format!("{} UTC", escape(e)))
            .unwrap_or_else(|| "—".into()),
        duration = number(session, "duration_ms")
            .map(format_ms)
            .unwrap_or_else(|| "—".into()),
        steps = steps.len(),
    );

    // Depth of each step from its parent links (parents come before children: steps are in
    // start order).
    let mut depth: HashMap<&str, usize> = HashMap::new();
    html.push_str("<ol class=\"waterfall\">\n");
    for step in &steps {
        let step_id = text(step, "id").unwrap_or_default();
        let level = text(step, "parent_step_id")
            .and_then(|p| depth.get(p))
            .map_or(0, |d| d + 1);
        depth.insert(step_id, level);
        render_step(html, step, level, start, span, evidence);
    }
    html.push_str("</ol>\n</section>\n");
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

fn render_step(
    html: &mut String,
    step: &Map<String, Value>,
    level: usize,
    start: i64,
    span: f64,
    evidence: &Evidence,
) {
    let id = text(step, "id").unwrap_or_default();
    let error = text(step, "error");
    let began = micros(text(step, "started_at")).unwrap_or(start);
    let finished = micros(text(step, "ended_at"));
    let duration = finished.map(|f| (f - began).max(0));
    let left = ((began - start) as f64 / span * 100.0).clamp(0.0, 100.0);
    let width = (duration.unwrap_or(0) as f64 / span * 100.0).clamp(0.0, 100.0 - left);
    let mut figures = Vec::new();
    figures.push(match duration {
        Some(us) => format_ms(us as f64 / 1000.0),
        None => "open".into(),
    });
    if let Some(c) = number(step, "confidence") {
        figures.push(format!("conf {c:.2}"));
    }
    if let Some(t) = step.get("tokens_used").and_then(Value::as_i64) {
        figures.push(format!("{t} tok"));
    }
    let _ = write!(
        html,
        "<li class=\"step{error_class}\" data-step-id=\"{id}\" data-duration-us=\"{duration_us}\" \
         data-depth=\"{level}\">\n<div class=\"row\">\
         <span class=\"label\" style=\"padding-left:{indent}rem\">{mark}{module}{tampered}</span>\
         <span class=\"track\"><span class=\"bar\" style=\"left:{left:.4}%;width:{width:.4}%\"></span></span>\
         <span class=\"figures\">{figures}</span></div>\n",
        error_class = if error.is_some() { " error" } else { "" },
        id = escape(id),
        duration_us = duration.unwrap_or(0),
        indent = level as f64 * 1.25,
        mark = if error.is_some() {
            "<span class=\"mark\">✗ </span>"
        } else {
            ""
        },
        module = escape(text(step, "module").unwrap_or_default()),
        tampered = evidence
            .findings
            .get(id)
            .map(|f| format!(" <span class=\"tampered\">✗ {}</span>", escape(f)))
            .unwrap_or_default(),
        figures = escape(&figures.join(" · ")),
    );
    let indent = level as f64 * 1.25 + 1.0;
    for (key, label) in [("input_summary", "in"), ("output_summary", "out")] {
        if let Some(summary) = text(step, key) {
            let _ = writeln!(
                html,
                "<p class=\"summary\" style=\"margin-left:{indent}rem\">{label}: {}</p>",
                escape(summary)
            );
        }
    }
    if let Some(error) = error {
        let _ = writeln!(
            html,
            "<p class=\"error-text\" style=\"margin-left:{indent}rem\">error: {}</p>",
            escape(error)
        );
    }
    for decision in step
        .get("decisions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        render_decision(html, decision, indent, evidence);
    }
    html.push_str("</li>\n");
}

fn render_decision(
    html: &mut String,
    decision: &Map<String, Value>,
    indent: f64,
    evidence: &Evidence,
) {
    let id = text(decision, "id").unwrap_or_default();
    let chosen = text(decision, "chosen_option");
    let options: Vec<String> = match decision.get("options_considered") {
        Some(Value::Array(options)) => options
            .iter()
            .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
            .collect(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(options)) => options
                .iter()
                .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
                .collect(),
            _ => vec![text.clone()],
        },
        _ => Vec::new(),
    };
    let options = options
        .iter()
        .map(|o| {
            if Some(o.as_str()) == chosen {
                format!("<span class=\"chosen\">{}</span>", escape(o))
            } else {
                escape(o)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        html,
        "<div class=\"decision\" data-decision-id=\"{id}\" style=\"margin-left:{indent}rem\">\
         <strong>Decision</strong> {kind}{tampered}{options}{chosen}{rationale}</div>",
        id = escape(id),
        kind = escape(text(decision, "decision_type").unwrap_or_default()),
        tampered = evidence
            .findings
            .get(id)
            .map(|f| format!(" <span class=\"tampered\">✗ {}</span>", escape(f)))
            .unwrap_or_default(),
        options = if options.is_empty() {
            String::new()
        } else {
            format!(" — options: {options}")
        },
        chosen = chosen
            .map(|c| format!(" — chose <span class=\"chosen\">{}</span>", escape(c)))
            .unwrap_or_default(),
        rationale = text(decision, "rationale")
            .map(|r| format!("<br>Rationale: {}", escape(r)))
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_recorded_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn stored_timestamps_are_read_to_the_microsecond() {
        let a = micros(Some("2026-12-01 10:00:00.000250")).unwrap();
        let b = micros(Some("2026-12-01 10:00:01.000000")).unwrap();
        assert_eq!(b - a, 999_750);
        assert_eq!(micros(Some("yesterday")), None);
    }
}
