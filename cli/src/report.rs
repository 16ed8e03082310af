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
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, Utc};
use reasonkit_audit::read::{Decision, Reader, Session, SessionFilter, Step};

use crate::since::Since;
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
#[derive(Clone, Debug)]
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

pub fn run(reader: &Reader, args: &Args, evidence: Evidence) -> Result<Outcome, Failure> {
    // One session, or a period's: counted first (rows only), then loaded one at a time as
    // the file is written, so a long period is reported in the memory of one session.
    let (title, ids) = match &args.session {
        Some(prefix) => match reader.resolve(prefix)? {
            Some(id) => (format!("Audit report: session {id}"), vec![id]),
            None => {
                eprintln!("reasonkit-audit: no session id starts with '{prefix}'");
                return Ok(Outcome::NothingFound);
            }
        },
        None => {
            let since = args
                .since
                .as_ref()
                .and_then(|s| NaiveDateTime::parse_from_str(&s.0, "%Y-%m-%d %H:%M:%S%.f").ok())
                .map(|t| t.and_utc());
            let filter = SessionFilter {
                since,
                oldest_first: true,
                ..SessionFilter::default()
            };
            let ids: Vec<String> = reader
                .sessions(&filter)?
                .into_iter()
                .map(|s| s.id)
                .collect();
            (format!("Audit report: {} sessions", ids.len()), ids)
        }
    };
    if ids.is_empty() {
        eprintln!("reasonkit-audit: no session started in that period");
        return Ok(Outcome::NothingFound);
    }
    let failed = |e: std::io::Error| -> Failure {
        match &args.output {
            Some(path) => format!("cannot write the report to {}: {e}", path.display()).into(),
            None => format!("cannot write the report: {e}").into(),
        }
    };
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(match &args.output {
        Some(path) => Box::new(File::create(path).map_err(failed)?),
        None => Box::new(std::io::stdout().lock()),
    });
    write(reader, &title, &ids, &evidence, &mut out).map_err(|e| -> Failure {
        match &args.output {
            Some(path) => format!("{}: {e}", path.display()).into(),
            None => e,
        }
    })?;
    out.flush().map_err(failed)?;
    Ok(Outcome::Done)
}

/// Writes the report of the sessions `ids` to `out`, one session in memory at a time (the
/// `report` command, and the web UI's download of it).
pub fn write(
    reader: &Reader,
    title: &str,
    ids: &[String],
    evidence: &Evidence,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let failed = |e: std::io::Error| -> Failure { format!("cannot write the report: {e}").into() };
    out.write_all(head(title, evidence, reader.store_name()).as_bytes())
        .map_err(failed)?;
    for id in ids {
        let Some(session) = reader.session(id)? else {
            continue; // pruned or erased since it was listed
        };
        let mut html = String::new();
        render_session(&mut html, &session, evidence);
        out.write_all(html.as_bytes()).map_err(failed)?;
    }
    out.write_all(b"</body>\n</html>\n").map_err(failed)?;
    Ok(())
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

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
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

/// The document up to the first session: title, styles, source, and the chain's verdict.
fn head(title: &str, evidence: &Evidence, source: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p class=\"meta\">From {source}, written {now} UTC by reasonkit-audit {version}.</p>\n\
         <p class=\"banner {class}\" id=\"evidence\">{summary}</p>\n",
        title = escape(title),
        source = escape(source),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
        version = env!("CARGO_PKG_VERSION"),
        class = if evidence.intact {
            "intact"
        } else {
            "findings"
        },
        summary = escape(&evidence.summary),
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string()
}

fn tampered(evidence: &Evidence, id: &str) -> String {
    evidence
        .findings
        .get(id)
        .map(|f| format!(" <span class=\"tampered\">✗ {}</span>", escape(f)))
        .unwrap_or_default()
}

fn render_session(html: &mut String, session: &Session, evidence: &Evidence) {
    let steps = session.walk();
    // The waterfall's scale: from the session's start to its end (or its last step's end,
    // for a session still running or interrupted).
    let start = micros(session.started_at);
    let last_end = steps
        .iter()
        .map(|(_, s)| micros(s.ended_at.unwrap_or(s.started_at)))
        .max();
    let end = session
        .ended_at
        .map(micros)
        .into_iter()
        .chain(last_end)
        .max()
        .unwrap_or(start);
    let span = (end - start).max(1) as f64;
    let duration = session
        .ended_at
        .map(|e| crate::output::duration_ms(Some((micros(e) - start) as f64 / 1000.0)));

    let _ = write!(
        html,
        "<section class=\"session\" data-session-id=\"{id}\">\n<h2>Session {id}{mark}</h2>\n\
         <table class=\"header\">\n\
         <tr><th>Profile</th><td>{profile}</td></tr>\n\
         <tr><th>Status</th><td class=\"status-{status}\">{status}</td></tr>\n\
         <tr><th>Input hash</th><td>{input_hash}</td></tr>\n\
         <tr><th>Started</th><td>{started}</td></tr>\n\
         <tr><th>Ended</th><td>{ended}</td></tr>\n\
         <tr><th>Duration</th><td>{duration}</td></tr>\n\
         <tr><th>Steps</th><td>{count}</td></tr>\n{replay}{texts}</table>\n",
        id = escape(&session.id),
        mark = tampered(evidence, &session.id),
        profile = escape(&session.profile),
        status = escape(&session.status),
        input_hash = escape(&session.input_hash),
        started = time(session.started_at),
        ended = session.ended_at.map_or_else(|| "—".into(), time),
        duration = duration.unwrap_or_else(|| "—".into()),
        count = steps.len(),
        replay = session
            .replay_of()
            .map(|of| format!("<tr><th>Replay of</th><td>{}</td></tr>\n", escape(of)))
            .unwrap_or_default(),
        texts = [
            ("Instructions", session.instructions(), ""),
            ("Input", session.input.clone(), ""),
            ("Answer", session.answer(), ""),
            ("Error", session.error(), " class=\"error-text\""),
        ]
        .into_iter()
        .filter_map(|(label, text, class)| {
            text.map(|t| format!("<tr><th>{label}</th><td{class}>{}</td></tr>\n", escape(&t)))
        })
        .collect::<String>(),
    );
    html.push_str("<ol class=\"waterfall\">\n");
    for (depth, step) in steps {
        render_step(html, step, depth, start, span, evidence);
    }
    html.push_str("</ol>\n</section>\n");
}

fn render_step(
    html: &mut String,
    step: &Step,
    level: usize,
    start: i64,
    span: f64,
    evidence: &Evidence,
) {
    let began = micros(step.started_at);
    let duration = step.ended_at.map(|f| (micros(f) - began).max(0));
    let left = ((began - start) as f64 / span * 100.0).clamp(0.0, 100.0);
    let width = (duration.unwrap_or(0) as f64 / span * 100.0).clamp(0.0, 100.0 - left);
    let figures = crate::output::step_figures(step, duration);
    let failed = step.error.is_some();
    let _ = write!(
        html,
        "<li class=\"step{error_class}\" data-step-id=\"{id}\" data-duration-us=\"{duration_us}\" \
         data-depth=\"{level}\">\n<div class=\"row\">\
         <span class=\"label\" style=\"padding-left:{indent}rem\">{mark}{module}{tampered}</span>\
         <span class=\"track\"><span class=\"bar\" style=\"left:{left:.4}%;width:{width:.4}%\"></span></span>\
         <span class=\"figures\">{figures}</span></div>\n",
        error_class = if failed { " error" } else { "" },
        id = escape(&step.id),
        duration_us = duration.unwrap_or(0),
        indent = level as f64 * 1.25,
        mark = if failed {
            "<span class=\"mark\">✗ </span>"
        } else {
            ""
        },
        module = escape(&step.module),
        tampered = tampered(evidence, &step.id),
        figures = escape(&figures),
    );
    let indent = level as f64 * 1.25 + 1.0;
    for (summary, label) in [(&step.input_summary, "in"), (&step.output_summary, "out")] {
        if let Some(summary) = summary {
            let _ = writeln!(
                html,
                "<p class=\"summary\" style=\"margin-left:{indent}rem\">{label}: {}</p>",
                escape(summary)
            );
        }
    }
    if let Some(error) = &step.error {
        let _ = writeln!(
            html,
            "<p class=\"error-text\" style=\"margin-left:{indent}rem\">error: {}</p>",
            escape(error)
        );
    }
    for decision in &step.decisions {
        render_decision(html, decision, indent, evidence);
    }
    html.push_str("</li>\n");
}

fn render_decision(html: &mut String, decision: &Decision, indent: f64, evidence: &Evidence) {
    let chosen = decision.chosen_option.as_deref();
    let options = decision
        .options()
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
        id = escape(&decision.id),
        kind = escape(&decision.decision_type),
        tampered = tampered(evidence, &decision.id),
        options = if options.is_empty() {
            String::new()
        } else {
            format!(" — options: {options}")
        },
        chosen = chosen
            .map(|c| format!(" — chose <span class=\"chosen\">{}</span>", escape(c)))
            .unwrap_or_default(),
        rationale = decision
            .rationale
            .as_deref()
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
}
