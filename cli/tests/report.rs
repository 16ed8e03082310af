//! `report`: one self-contained HTML file, checked as text everywhere and rendered in
//! headless Chromium where it is installed (CI installs Debian's `chromium` and sets
//! REASONKIT_AUDIT_REQUIRE_CHROMIUM, which turns the skip into a failure).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{run, sqlite3, text};
use tracing::info_span;

/// Writes one session whose steps last known, very different times: a 30 ms step with a
/// nested 90 ms step, a failing 10 ms step with a decision, and a 60 ms step.
fn write_session(db: &Path) -> String {
    common::record_with_layer(db, || {
        let session = info_span!(
            "session",
            id = "report-1",
            profile = "deep",
            input = "Is 7 prime?"
        );
        let _s = session.enter();
        info_span!(
            "step",
            module = "gigathink",
            confidence = 0.81,
            tokens_used = 120_i64
        )
        .in_scope(|| {
            std::thread::sleep(Duration::from_millis(30));
            info_span!(
                "step",
                module = "laserlogic",
                input_summary = "<b>7</b> & 1 divide it"
            )
            .in_scope(|| std::thread::sleep(Duration::from_millis(90)));
        });
        info_span!(
            "step",
            module = "proofguard",
            error = "counterexample not found"
        )
        .in_scope(|| {
            tracing::info!(
                name: "decision",
                decision_type = "verdict",
                options_considered = ?["prime", "composite"],
                chosen_option = "prime",
                rationale = "no divisor between 2 and 6"
            );
            std::thread::sleep(Duration::from_millis(10));
        });
        info_span!("step", module = "bedrock", output_summary = "prime")
            .in_scope(|| std::thread::sleep(Duration::from_millis(60)));
    });
    "report-1".into()
}

fn report(db: &Path, args: &[&str]) -> (PathBuf, String) {
    let out = db.with_file_name("report.html");
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let result = run(db, &all);
    assert!(result.status.success(), "report failed: {}", text(&result));
    let html = std::fs::read_to_string(&out).unwrap();
    (out, html)
}

/// `(id, width %, duration µs)` of every bar, from the markup.
fn bars(html: &str) -> Vec<(String, f64, f64)> {
    html.split("<li class=\"step")
        .skip(1)
        .map(|li| {
            let attr = |name: &str| {
                let start = li.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                li[start..start + li[start..].find('"').unwrap()].to_owned()
            };
            let width_at = li.find("width:").unwrap() + 6;
            let width: f64 = li[width_at..width_at + li[width_at..].find('%').unwrap()]
                .parse()
                .unwrap();
            (
                attr("data-step-id"),
                width,
                attr("data-duration-us").parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_report_is_one_file_with_every_step_and_decision_drawn_to_scale() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let session = write_session(&db);
    let (_, html) = report(&db, &["--session", "report"]);

    // Self-contained: no script, no external asset of any kind.
    for banned in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(banned), "the report contains {banned}");
    }
    assert!(html.contains("Session report-1"));
    assert!(html.contains("<td>deep</td>"));
    assert!(html.contains("status-completed"));
    let input_hash = sqlite3(&db, "SELECT input_hash FROM sessions");
    assert!(html.contains(input_hash.trim()));
    assert!(html.contains("the chain verifies"), "banner: intact chain");

    // Every step and decision of the database is in it, once.
    let step_ids = sqlite3(
        &db,
        &format!("SELECT id FROM steps WHERE session_id = '{session}'"),
    );
    for id in step_ids.lines() {
        assert_eq!(
            html.matches(&format!("data-step-id=\"{id}\"")).count(),
            1,
            "{id}"
        );
    }
    let decision = sqlite3(&db, "SELECT id FROM decisions");
    assert!(html.contains(&format!("data-decision-id=\"{}\"", decision.trim())));
    assert!(html.contains("<span class=\"chosen\">prime</span>"));
    assert!(html.contains("Rationale: no divisor between 2 and 6"));
    // Recorded text is escaped, errors are marked.
    assert!(html.contains("&lt;b&gt;7&lt;/b&gt; &amp; 1 divide it"));
    assert!(html.contains("class=\"step error\""));
    assert!(html.contains("error: counterexample not found"));
    assert!(
        html.contains("data-depth=\"1\""),
        "the nested step is indented"
    );

    // Widths in proportion to durations: the same factor for every bar.
    let bars = bars(&html);
    assert_eq!(bars.len(), 4);
    let (_, longest_width, longest_us) = bars
        .iter()
        .cloned()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap();
    for (id, width, us) in &bars {
        let expected = longest_width * us / longest_us;
        assert!(
            (width - expected).abs() < 0.01,
            "{id}: width {width}%, expected {expected}%"
        );
    }
    assert!(
        longest_width > 40.0,
        "the 120 ms step spans most of the session"
    );
}

#[test]
fn a_tampered_row_is_marked_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_session(&db);
    sqlite3(
        &db,
        "UPDATE steps SET confidence = 0.99 WHERE module = 'gigathink'",
    );
    let (_, html) = report(&db, &["--session", "report-1"]);
    assert!(html.contains("class=\"banner findings\""));
    let li = html
        .split("<li class=\"step")
        .find(|li| li.contains("gigathink"))
        .unwrap();
    assert!(
        li.contains("class=\"tampered\""),
        "the altered step is marked: {li}"
    );
    let untouched = html
        .split("<li class=\"step")
        .find(|li| li.contains("bedrock"))
        .unwrap();
    assert!(!untouched.contains("class=\"tampered\""));
}

#[test]
fn a_period_reports_every_session_in_it_and_an_empty_one_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_session(&db);
    write_session(&db); // the same id again: written as report-1~<uuid>
    let (_, html) = report(&db, &["--since", "1h"]);
    assert!(html.contains("<title>Audit report: 2 sessions</title>"));
    let sections: Vec<&str> = html
        .split("<section class=\"session\" data-session-id=\"")
        .skip(1)
        .collect();
    assert_eq!(sections.len(), 2);
    assert!(sections[0].starts_with("report-1\""), "oldest first");
    assert!(sections[1].starts_with("report-1~"));
    let nothing = run(&db, &["report", "--since", "2999-01-01"]);
    assert_eq!(nothing.status.code(), Some(1), "{}", text(&nothing));
    let neither = run(&db, &["report"]);
    assert_eq!(neither.status.code(), Some(2), "needs --session or --since");
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
    }
    None
}

/// The browser, or `None` with the one-line skip message (a failure when CI requires it).
fn browser_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("REASONKIT_AUDIT_REQUIRE_CHROMIUM").is_none(),
            "REASONKIT_AUDIT_REQUIRE_CHROMIUM is set but no chromium is installed"
        );
        eprintln!("skipped: no chromium on this machine (Debian: apt-get install chromium)");
    }
    found
}

#[test]
fn printed_each_session_starts_a_page_of_its_own() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_session(&db);
    write_session(&db);
    let (page, _) = report(&db, &["--since", "1h"]);
    let pdf = dir.path().join("report.pdf");
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    common::succeeded(&out);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    // The page tree's count: two short sessions, a page each.
    let text = String::from_utf8_lossy(&bytes);
    let counts: Vec<&str> = text
        .match_indices("/Count ")
        .map(|(at, _)| {
            text[at + 7..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, ["2"], "pages in the printed report");
}

#[test]
fn headless_chromium_draws_every_step_with_widths_in_proportion() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_session(&db);
    let (page, html) = report(&db, &["--session", "report-1"]);
    let expected = bars(&html);

    // A page beside the report measures it as laid out: each bar's width in pixels against
    // its track's, and the visible text of every step and decision.
    let probe = dir.path().join("probe.html");
    std::fs::write(
        &probe,
        r#"<!DOCTYPE html><html><body><iframe id="r" src="report.html" style="width:1200px;height:900px"></iframe>
<pre id="out">pending</pre>
<script>
document.getElementById('r').onload = function () {
  var d = this.contentDocument;
  var steps = [].map.call(d.querySelectorAll('li.step'), function (li) {
    var bar = li.querySelector('.bar'), track = li.querySelector('.track');
    return { id: li.getAttribute('data-step-id'),
             bar: bar.getBoundingClientRect().width, track: track.getBoundingClientRect().width,
             label: li.querySelector('.label').innerText };
  });
  var decisions = [].map.call(d.querySelectorAll('.decision'), function (e) { return e.innerText; });
  document.getElementById('out').textContent = JSON.stringify({ steps: steps, decisions: decisions });
};
</script></body></html>"#,
    )
    .unwrap();
    let dom = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", probe.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dom.stderr).into_owned();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let start = dom
        .find("<pre id=\"out\">")
        .unwrap_or_else(|| panic!("no probe output; chromium said: {stderr}"))
        + 14;
    let json = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let json = json
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let measured: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));

    let steps = measured["steps"].as_array().unwrap();
    assert_eq!(steps.len(), expected.len());
    let longest = expected.iter().map(|b| b.2).fold(0.0, f64::max);
    let longest_px = steps
        .iter()
        .zip(&expected)
        .find(|(_, e)| e.2 == longest)
        .map(|(s, _)| s["bar"].as_f64().unwrap())
        .unwrap();
    assert!(
        longest_px > 100.0,
        "the longest bar is drawn wide: {longest_px}px"
    );
    for (step, (id, _, us)) in steps.iter().zip(&expected) {
        assert_eq!(step["id"], id.as_str());
        let px = step["bar"].as_f64().unwrap();
        let want = longest_px * us / longest;
        assert!(
            (px - want).abs() <= 1.5,
            "{id}: {px}px drawn, {want}px in proportion"
        );
        assert!(!step["label"].as_str().unwrap().is_empty());
    }
    let decisions = measured["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    assert!(decisions[0].as_str().unwrap().contains("chose prime"));

    // And a screenshot, kept beside the report (under target/ when run by cargo).
    let shot = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_owned())
        .join("report.png");
    let status = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    common::succeeded(&status);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "a real picture, {} bytes", png.len());
}

/// A rig run keeps its preamble and answer in GenAI attributes, and a failed run its error:
/// `show` and `report` print them in the session's header (escaped in the report).
#[test]
fn show_and_report_print_the_instructions_answer_and_error_kept_in_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    common::record_with_layer(&db, || {
        use tracing::field::Empty;
        let run = info_span!(
            "invoke_agent",
            id = "rig-run",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "calculator",
            gen_ai.system_instructions = "You add <numbers>.",
            gen_ai.completion = Empty,
        );
        run.record("gen_ai.completion", "2 + 3 = 5");
        drop(run);
        let failed = info_span!("session", id = "failed-run");
        failed.in_scope(|| tracing::error!(error = "503 Service Unavailable", "the run failed"));
    });
    let shown = text(&run(&db, &["show", "rig-run"]));
    assert!(
        shown.contains("instructions: You add <numbers>."),
        "{shown}"
    );
    assert!(shown.contains("answer: 2 + 3 = 5"), "{shown}");
    let shown = text(&run(&db, &["show", "failed-run"]));
    assert!(shown.contains("error: 503 Service Unavailable"), "{shown}");

    let (_, html) = report(&db, &["--session", "rig-run"]);
    assert!(
        html.contains("<tr><th>Instructions</th><td>You add &lt;numbers&gt;.</td></tr>"),
        "{html}"
    );
    assert!(html.contains("<tr><th>Answer</th><td>2 + 3 = 5</td></tr>"));
    let (_, html) = report(&db, &["--session", "failed-run"]);
    assert!(html.contains("<td class=\"error-text\">503 Service Unavailable</td>"));
}
