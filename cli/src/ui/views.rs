//! The HTML of each page, written in maud: every value is escaped unless marked otherwise,
//! and nothing here marks a recorded value otherwise. No inline style, no script: widths
//! and offsets are SVG attributes, indentation a class, so the Content-Security-Policy can
//! forbid both.

use std::time::SystemTime;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use reasonkit_audit::diff::{Diff, StepChange};
use reasonkit_audit::read::{
    DayStats, Decision, HitKind, ModuleStats, OverviewColumn, SearchHit, Session, SessionOverview,
    SessionSummary, Step,
};

use super::Verdict;
use super::query::SessionsQuery;
use crate::output::{confidence, duration_ms, opt};

/// How often a running session's page reloads itself, in seconds.
const LIVE_EVERY: u32 = 2;

/// A link's query string: names and values encoded, so no recorded id can break out of it.
fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    match serde_urlencoded::to_string(pairs) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

fn session_href(id: &str) -> String {
    href("/session", &[("id", id)])
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

fn layout(title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · reasonkit-audit" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                nav {
                    strong { "reasonkit-audit" }
                    a href="/" { "Sessions" }
                    a href="/search" { "Search" }
                    a href="/stats" { "Stats" }
                    a href="/compare" { "Compare" }
                    a href="/verify" { "Verify" }
                }
                main { (body) }
            }
        }
    }
}

/// An error page.
pub fn failed(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or_default()) }
            p.error-text #message { (message) }
        },
    )
}

fn status_class(status: &str) -> &'static str {
    match status {
        "completed" => "status-completed",
        "failed" | "interrupted" => "status-failed",
        "running" => "status-running",
        _ => "status-other",
    }
}

/// The sessions, newest first, with the filters' form and the pager.
pub fn sessions(
    rows: &[SessionOverview],
    query: &SessionsQuery,
    page: usize,
    more: bool,
) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let status = value(&query.status);
    // A link to this list with the same filters: another page, or another order.
    let link = |page: usize, sort: Option<&str>, dir: Option<&str>| {
        let page = page.to_string();
        let size = query.n.map(|n| n.to_string());
        let (since, profile, below, text) = (
            value(&query.since),
            value(&query.profile),
            value(&query.below),
            value(&query.text),
        );
        let mut pairs: Vec<(&str, &str)> = [
            ("since", since.as_str()),
            ("status", status.as_str()),
            ("profile", profile.as_str()),
            ("below", below.as_str()),
            ("text", text.as_str()),
            ("sort", sort.unwrap_or_default()),
            ("dir", dir.unwrap_or_default()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        if let Some(size) = &size {
            pairs.push(("n", size));
        }
        pairs.push(("page", &page));
        href("/", &pairs)
    };
    let (sort, dir) = (query.sort.as_deref(), query.dir.as_deref());
    let pager = |to: usize| link(to, sort, dir);
    // A column's heading: a link that orders by it, largest first, then the other way.
    let heading = |column: OverviewColumn, label: &str, numeric: bool| {
        let name = column.name();
        let current = sort == Some(name);
        let next = if current && dir != Some("asc") {
            "asc"
        } else {
            "desc"
        };
        let arrow = match (current, dir) {
            (false, _) => "",
            (true, Some("asc")) => " ▲",
            (true, _) => " ▼",
        };
        html! {
            th class=(if numeric { "num" } else { "" }) {
                a.sort data-column=(name) href=(link(0, Some(name), Some(next))) { (label) (arrow) }
            }
        }
    };
    let body = html! {
        h1 { "Sessions" }
        form.filters method="get" action="/" {
            label { "Since " input name="since" placeholder="7d, 24h, 2026-11-30" value=(value(&query.since)); }
            label { "Status "
                select name="status" {
                    @for option in ["", "running", "completed", "failed", "interrupted"] {
                        option value=(option) selected[status == option] {
                            @if option.is_empty() { "any" } @else { (option) }
                        }
                    }
                }
            }
            label { "Profile " input name="profile" value=(value(&query.profile)); }
            label { "Confidence below " input name="below" size="4" value=(value(&query.below)); }
            label { "Text " input name="text" placeholder="words said, or an id" value=(value(&query.text)); }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p.empty { "No session matches." }
        } @else {
            table.sessions {
                thead { tr {
                    (heading(OverviewColumn::Id, "id", false))
                    (heading(OverviewColumn::Started, "started (UTC)", false))
                    (heading(OverviewColumn::Duration, "duration", false))
                    (heading(OverviewColumn::Profile, "profile", false))
                    (heading(OverviewColumn::Status, "status", false))
                    (heading(OverviewColumn::Steps, "steps", true))
                    (heading(OverviewColumn::MinConfidence, "min conf", true))
                    (heading(OverviewColumn::Tokens, "tokens", true))
                    (heading(OverviewColumn::Errors, "errors", true))
                } }
                tbody {
                    @for s in rows {
                        tr data-session-id=(s.id) {
                            td { a href=(session_href(&s.id)) { (s.id) } }
                            td { (time(s.started_at)) }
                            td { (duration_ms(s.duration_ms)) }
                            td { (s.profile) }
                            td class=(status_class(&s.status)) { (s.status) }
                            td.num { (s.steps) }
                            td.num { (confidence(s.min_confidence)) }
                            td.num { (opt(s.tokens)) }
                            td.num { @if s.errors > 0 { span.status-failed { (s.errors) } } @else { "0" } }
                        }
                    }
                }
            }
        }
        p.pager {
            @if page > 0 { a #previous href=(pager(page - 1)) { "← newer" } }
            " page " (page + 1) " "
            @if more { a #next href=(pager(page + 1)) { "older →" } }
        }
    };
    layout("Sessions", None, body)
}

/// What the chain said, and when, for a page's banner.
fn verdict_banner(verdict: Option<&Verdict>) -> Markup {
    let ago = |at: SystemTime| {
        SystemTime::now()
            .duration_since(at)
            .map(|d| format!("{} s ago", d.as_secs()))
            .unwrap_or_default()
    };
    html! {
        @match verdict {
            None => p.banner.pending #evidence {
                "The chain's verdict is not in yet: it is being verified, or only "
                a href="/verify" { "on demand" } "."
            },
            Some(Verdict { evidence: Err(e), at }) => p.banner.findings #evidence {
                "The chain could not be verified (" (ago(*at)) "): " (e)
            },
            Some(Verdict { evidence: Ok(evidence), at }) => p class={ "banner " (if evidence.intact { "intact" } else { "findings" }) } #evidence {
                (evidence.summary) " (verified " (ago(*at)) "; "
                a href="/verify" { "verify now" } ")"
            },
        }
    }
}

/// The mark of a row the chain disagrees with.
fn tampered(verdict: Option<&Verdict>, id: &str) -> Markup {
    let finding = verdict
        .and_then(|v| v.evidence.as_ref().ok())
        .and_then(|e| e.findings.get(id));
    html! {
        @if let Some(finding) = finding {
            " " span.tampered title=(finding) { "✗ " (finding) }
        }
    }
}

/// One session: its header, the waterfall of its steps, their decisions, live while it runs.
/// A session's page. `joined`: the sessions its `otel.joined_into` leads through to the one
/// holding its steps ([`reasonkit_audit::read::Reader::joined_chain`]), empty for most.
pub fn session(
    session: &Session,
    replays: &[SessionSummary],
    joined: &[String],
    verdict: Option<&Verdict>,
) -> Markup {
    let steps = session.walk();
    let micros = |at: DateTime<Utc>| at.timestamp_micros();
    let start = micros(session.started_at);
    let end = steps
        .iter()
        .map(|(_, s)| micros(s.ended_at.unwrap_or(s.started_at)))
        .chain(session.ended_at.map(micros))
        .max()
        .unwrap_or(start);
    let span = (end - start).max(1) as f64;
    let first_failed = steps.iter().position(|(_, s)| s.error.is_some());
    let running = session.status == "running";
    let body = html! {
        h1 { "Session " span.id { (session.id) } (tampered(verdict, &session.id)) }
        (verdict_banner(verdict))
        @if running {
            p.live #live { "Running: this page follows it, reloading every " (LIVE_EVERY) " s." }
        }
        table.header {
            tr { th { "Profile" } td { (session.profile) } }
            tr { th { "Status" } td class=(status_class(&session.status)) #status { (session.status) } }
            tr { th { "Input hash" } td.mono { (session.input_hash) } }
            tr { th { "Started" } td { (time(session.started_at)) " UTC" } }
            tr { th { "Ended" } td { @if let Some(e) = session.ended_at { (time(e)) " UTC" } @else { "—" } } }
            tr { th { "Steps" } td #step-count { (steps.len()) } }
            @if let Some(of) = session.replay_of() {
                tr { th { "Replay of" } td { a href=(session_href(of)) { (of) } } }
            }
            @if let Some((last, through)) = joined.split_last() {
                tr {
                    th { "Joined into" }
                    td {
                        a #joined-into href=(session_href(last)) { (last) } " — its steps are there"
                        @if !through.is_empty() {
                            span #joined-through {
                                " (joined by way of "
                                @for (i, hop) in through.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href=(session_href(hop)) { (hop) }
                                }
                                ")"
                            }
                        }
                    }
                }
            }
            @for (label, text) in [("Instructions", session.instructions()), ("Input", session.input.clone()), ("Answer", session.answer()), ("Error", session.error())] {
                @if let Some(text) = text {
                    tr { th { (label) } td.text { (text) } }
                }
            }
        }
        p.links {
            a href=(href("/session.json", &[("id", &session.id)])) { "JSON export" }
            " · " a #report href=(href("/report", &[("id", &session.id)])) { "report (HTML file)" }
            @if let Some(index) = first_failed {
                " · " a #first-failed href=(format!("#s{index}")) { "first failed step" }
            }
            @for replay in replays {
                " · " a.compare href=(href("/compare", &[("a", &session.id), ("b", &replay.id)])) {
                    "compare with replay " (replay.id)
                }
            }
        }
        ol.waterfall {
            @for (index, (depth, step)) in steps.iter().enumerate() {
                (step_item(index, *depth, step, start, span, verdict))
            }
        }
    };
    layout(
        &format!("Session {}", session.id),
        running.then_some(LIVE_EVERY),
        body,
    )
}

fn step_item(
    index: usize,
    depth: usize,
    step: &Step,
    start: i64,
    span: f64,
    verdict: Option<&Verdict>,
) -> Markup {
    let began = step.started_at.timestamp_micros();
    let duration = step.ended_at.map(|e| (e.timestamp_micros() - began).max(0));
    let left = ((began - start) as f64 / span * 1000.0).clamp(0.0, 1000.0);
    let width = (duration.unwrap_or(0) as f64 / span * 1000.0)
        .clamp(0.0, 1000.0 - left)
        .max(1.0);
    let figures = crate::output::step_figures(step, duration);
    let failed = step.error.is_some();
    html! {
        li id=(format!("s{index}")) class={ "step depth-" (depth.min(9)) @if failed { " error" } } data-step-id=(step.id) {
            div.row {
                span.label {
                    @if failed { span.mark { "✗ " } }
                    span.module { (step.module) }
                    (tampered(verdict, &step.id))
                }
                svg.track viewBox="0 0 1000 10" preserveAspectRatio="none" {
                    rect x=(format!("{left:.2}")) y="0" width=(format!("{width:.2}")) height="10" {}
                }
                span.figures { (figures) }
            }
            @if let Some(summary) = &step.input_summary { p.summary { "in: " (summary) } }
            @if let Some(summary) = &step.output_summary { p.summary { "out: " (summary) } }
            @if let Some(error) = &step.error { p.error-text { "error: " (error) } }
            @for decision in &step.decisions { (decision_item(decision, verdict)) }
        }
    }
}

fn decision_item(decision: &Decision, verdict: Option<&Verdict>) -> Markup {
    let chosen = decision.chosen_option.as_deref();
    let options = decision.options();
    html! {
        div.decision data-decision-id=(decision.id) {
            strong { "Decision " } span.kind { (decision.decision_type) } (tampered(verdict, &decision.id))
            @if !options.is_empty() {
                " — options: "
                @for (i, option) in options.iter().enumerate() {
                    @if i > 0 { ", " }
                    @if Some(option.as_str()) == chosen { span.chosen { (option) } } @else { (option) }
                }
            }
            @if let Some(chosen) = chosen { " — chose " span.chosen { (chosen) } }
            @if let Some(rationale) = &decision.rationale { br; "Rationale: " span.rationale { (rationale) } }
        }
    }
}

/// A search's snippet, the words found (between `[` and `]`) marked.
fn snippet(text: &str) -> Markup {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        parts.push((false, &rest[..open]));
        parts.push((true, &rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    parts.push((false, rest));
    html! {
        @for (found, part) in parts {
            @if found { mark { (part) } } @else { (part) }
        }
    }
}

/// The search form, and its hits.
pub fn search(text: Option<&str>, hits: Option<&[SearchHit]>) -> Markup {
    let body = html! {
        h1 { "Search" }
        form.filters method="get" action="/search" {
            input name="q" size="50" placeholder="words, or a \"quoted phrase\"" value=(text.unwrap_or_default());
            " " button type="submit" { "Search" }
        }
        @if let Some(hits) = hits {
            @if hits.is_empty() {
                p.empty { "Nothing matches." }
            } @else {
                table.hits {
                    thead { tr { th { "session" } th { "kind" } th { "module" } th { "at (UTC)" } th { "match" } } }
                    tbody {
                        @for hit in hits {
                            tr.hit {
                                td { a href=(session_href(&hit.session_id)) { (hit.session_id) } }
                                td { @match hit.kind { HitKind::Step => "step", HitKind::Decision => "decision" } }
                                td { (hit.module) }
                                td { (time(hit.at)) }
                                td.snippet { (snippet(&hit.snippet)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Search", None, body)
}

/// Per-module figures, as a table and as bars.
pub fn stats(stats: &[ModuleStats], days: &[DayStats], since: Option<&str>) -> Markup {
    let most = stats.iter().map(|s| s.uses).max().unwrap_or(1).max(1) as f64;
    let row_height = 22;
    let body = html! {
        h1 { "Stats per module" }
        form.filters method="get" action="/stats" {
            label { "Since " input name="since" placeholder="7d, 24h, 2026-11-30" value=(since.unwrap_or_default()); }
            " " button type="submit" { "Show" }
        }
        @if stats.is_empty() {
            p.empty { "No step recorded." }
        } @else {
            table.stats {
                thead { tr {
                    th { "module" } th.num { "uses" } th.num { "avg conf" } th.num { "avg duration" }
                    th.num { "failure rate" } th.num { "tokens" }
                } }
                tbody {
                    @for s in stats {
                        tr data-module=(s.module) {
                            td { (s.module) }
                            td.num { (s.uses) }
                            td.num { (confidence(s.avg_confidence)) }
                            td.num { (duration_ms(s.avg_duration_ms)) }
                            td.num { (format!("{:.0}%", s.failure_rate * 100.0)) }
                            td.num { (opt(s.tokens)) }
                        }
                    }
                }
            }
            h2 { "Steps a day, and how many failed" }
            (daily_chart(days))
            h2 { "Uses, and the share that failed" }
            svg.chart viewBox=(format!("0 0 1000 {}", stats.len() * row_height)) role="img" {
                @for (i, s) in stats.iter().enumerate() {
                    @let y = i * row_height;
                    @let width = s.uses as f64 / most * 700.0;
                    text x="0" y=(y + 15) { (s.module) }
                    rect.uses x="260" y=(y + 3) width=(format!("{width:.1}")) height="16" {}
                    rect.failed x="260" y=(y + 3) width=(format!("{:.1}", width * s.failure_rate)) height="16" {}
                    text x=(format!("{:.1}", 266.0 + width)) y=(y + 15) { (s.uses) }
                }
            }
        }
    };
    layout("Stats", None, body)
}

/// The days shown at most, the newest.
const DAYS_SHOWN: usize = 90;

/// A column a day: its steps, the failed ones in red, the first and last day named.
fn daily_chart(days: &[DayStats]) -> Markup {
    let days = &days[days.len().saturating_sub(DAYS_SHOWN)..];
    let most = days.iter().map(|d| d.steps).max().unwrap_or(1).max(1) as f64;
    let slot = 1000.0 / days.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let height = 120.0;
    html! {
        svg.chart.daily viewBox="0 0 1000 150" role="img" {
            @for (i, day) in days.iter().enumerate() {
                @let h = day.steps as f64 / most * height;
                @let f = day.failures as f64 / most * height;
                @let x = i as f64 * slot;
                rect.uses data-day=(day.day) x=(format!("{x:.1}")) y=(format!("{:.1}", height - h))
                    width=(format!("{bar:.1}")) height=(format!("{h:.1}")) {
                    title { (day.day) ": " (day.steps) " steps, " (day.failures) " failed" }
                }
                rect.failed x=(format!("{x:.1}")) y=(format!("{:.1}", height - f))
                    width=(format!("{bar:.1}")) height=(format!("{f:.1}")) {}
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x="0" y="145" { (first.day) }
                text x="1000" y="145" text-anchor="end" { (last.day) }
            }
        }
    }
}

/// Two runs side by side, step by step.
pub fn compare(a: Option<&str>, b: Option<&str>, diff: Option<&Diff>) -> Markup {
    let body = html! {
        h1 { "Compare" }
        form.filters method="get" action="/compare" {
            label { "Original " input name="a" value=(a.unwrap_or_default()); }
            label { "Re-run " input name="b" placeholder="newest replay" value=(b.unwrap_or_default()); }
            button type="submit" { "Compare" }
        }
        @if let Some(diff) = diff {
            p #verdict class=(if diff.diverged() { "banner findings" } else { "banner intact" }) {
                @if diff.diverged() { "The runs differ in what they did." } @else { "The runs did the same." }
                @if !diff.same_input { " Their inputs differ." }
            }
            p {
                a href=(session_href(&diff.original.id)) { (diff.original.id) } " → "
                a href=(session_href(&diff.rerun.id)) { (diff.rerun.id) }
            }
            table.diff {
                thead { tr { th { "" } th { "module" } th { "confidence" } th { "tokens" } th { "error" } th { "decisions" } } }
                tbody {
                    @for step in &diff.steps {
                        @let class = match step.change { StepChange::Matched => "matched", StepChange::Added => "added", StepChange::Removed => "removed" };
                        tr class=(class) {
                            td { @match step.change { StepChange::Matched => "", StepChange::Added => "+", StepChange::Removed => "−" } }
                            td { (step.module) }
                            td { (confidence(step.confidence.0)) " → " (confidence(step.confidence.1)) }
                            td { (opt(step.tokens.0)) " → " (opt(step.tokens.1)) }
                            td { @if step.error_changed() {
                                span.error-text { (step.error.0.as_deref().unwrap_or("—")) " → " (step.error.1.as_deref().unwrap_or("—")) }
                            } }
                            td {
                                @for d in &step.decisions {
                                    div class=(if d.same { "same" } else { "changed" }) {
                                        (d.decision_type) ": " (d.original.as_deref().unwrap_or("—")) " → " (d.rerun.as_deref().unwrap_or("—"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Compare", None, body)
}

/// The chain's state.
pub fn verify(verdict: Option<&Verdict>) -> Markup {
    let findings: Vec<(&String, &String)> = verdict
        .and_then(|v| v.evidence.as_ref().ok())
        .map(|e| {
            let mut all: Vec<_> = e.findings.iter().collect();
            all.sort();
            all
        })
        .unwrap_or_default();
    let body = html! {
        h1 { "Verify" }
        (verdict_banner(verdict))
        @if !findings.is_empty() {
            table.findings {
                thead { tr { th { "row" } th { "finding" } } }
                tbody {
                    @for (id, finding) in findings {
                        tr { td.mono { (id) } td { (finding) } }
                    }
                }
            }
        }
    };
    layout("Verify", None, body)
}
