//! `reasonkit-audit ui`, driven like a person would drive it: the real binary serving a
//! real audit file on 127.0.0.1, and Debian's Chromium driven through chromedriver
//! (WebDriver) — filter the sessions, open one, follow its failed step, search, compare it
//! with its replay, watch a running one grow. Also: recorded markup stays text and runs
//! nothing; the token is asked for; no page writes to the file.
//!
//! The browser tests skip with one line on a machine without chromium and chromedriver; CI
//! installs both and sets REASONKIT_AUDIT_REQUIRE_CHROMIUM, which makes the skip a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::server::{Ui, get};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use sha2::{Digest, Sha256};
use tracing::info_span;

/// Chromium and chromedriver, where installed.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| {
                names.iter().find_map(|n| {
                    Command::new("which")
                        .arg(n)
                        .output()
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
                })
            })
    };
    let chromium = find(&["/usr/bin/chromium", "chromium", "chromium-browser"])?;
    let driver = find(&["/usr/bin/chromedriver", "chromedriver"])?;
    Some((chromium, driver))
}

/// A headless Chromium under chromedriver, both stopped when dropped.
struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Browser {
    async fn start() -> Option<Browser> {
        let Some((chromium, driver)) = browser_tools() else {
            assert!(
                std::env::var_os("REASONKIT_AUDIT_REQUIRE_CHROMIUM").is_none(),
                "REASONKIT_AUDIT_REQUIRE_CHROMIUM is set but chromium or chromedriver is missing"
            );
            eprintln!(
                "skipped: no chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1300,1000"],
            }),
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("chromedriver did not answer on port {port}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Browser {
            driver,
            client: Some(client),
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Opens the page of session `id` on `ui`.
    async fn open_session(&self, ui: &Ui, id: &str) {
        self.client()
            .goto(&session_url(ui, id))
            .await
            .unwrap_or_else(|e| panic!("opening session {id}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The text of `css`, or `None` while the page is being replaced.
    async fn try_text(&self, css: &str) -> Option<String> {
        self.client()
            .find(Locator::Css(css))
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// Clicks `css`, then waits until the address holds `expected` and the new page is in.
    async fn click_to(&self, css: &str, expected: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
            .click()
            .await
            .unwrap();
        let arrived = wait_for(|| async {
            let url = self.client().current_url().await.map(|u| u.to_string());
            url.is_ok_and(|u| u.contains(expected)) && self.try_text("main").await.is_some()
        })
        .await;
        assert!(arrived, "clicking {css} did not lead to {expected}");
    }

    async fn count(&self, css: &str) -> usize {
        self.client()
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .len()
    }

    async fn stop(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A claim, its replay that decided otherwise after a failed audit, and a quick run.
fn write_claims(db: &Path) {
    let run = |session: tracing::Span, strict: bool| {
        let _s = session.entered();
        info_span!(
            "step",
            module = "planner",
            tokens_used = 50_i64,
            output_summary = "read the claim and its receipts"
        )
        .in_scope(|| {});
        if strict {
            info_span!(
                "step",
                module = "auditor",
                error = "missing receipts for the hotel"
            )
            .in_scope(|| {});
        }
        info_span!(
            "step",
            module = "judge",
            confidence = if strict { 0.55 } else { 0.9 }
        )
        .in_scope(|| {
            tracing::info!(name: "decision", decision_type = "claim",
                    options_considered = ?["pay", "escalate"],
                    chosen_option = if strict { "escalate" } else { "pay" },
                    rationale = "weighed against the travel policy");
        });
    };
    common::record_with_layer(db, || {
        run(
            info_span!(
                "session",
                id = "claim-1",
                profile = "deep",
                input = "claim 1"
            ),
            false,
        );
        std::thread::sleep(Duration::from_millis(5));
        run(
            info_span!(
                "session",
                id = "claim-1-replay",
                profile = "deep",
                input = "claim 1",
                replay_of = "claim-1"
            ),
            true,
        );
        std::thread::sleep(Duration::from_millis(5));
        run(
            info_span!(
                "session",
                id = "quick-2",
                profile = "quick",
                input = "claim 2"
            ),
            false,
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_filters_opens_follows_a_failure_searches_and_compares() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_claims(&db);
    let ui = Ui::start(&db, &[]);
    let c = browser.client();

    c.goto(&ui.url).await.unwrap();
    assert_eq!(browser.count("tr[data-session-id]").await, 3);
    // Filter by profile through the form.
    c.find(Locator::Css("input[name=profile]"))
        .await
        .unwrap()
        .send_keys("deep")
        .await
        .unwrap();
    browser
        .click_to("form.filters button", "profile=deep")
        .await;
    assert_eq!(browser.count("tr[data-session-id]").await, 2);

    // The text filter: the session whose steps said it.
    c.find(Locator::Css("input[name=text]"))
        .await
        .unwrap()
        .send_keys("hotel")
        .await
        .unwrap();
    browser.click_to("form.filters button", "text=hotel").await;
    assert_eq!(browser.count("tr[data-session-id]").await, 1);
    assert_eq!(browser.text("tbody td:first-child").await, "claim-1-replay");
    c.goto(&format!("{}/?profile=deep", ui.base()))
        .await
        .unwrap();

    // Order by steps, most first, by clicking the heading; again for fewest first.
    browser
        .click_to("a.sort[data-column=steps]", "sort=steps")
        .await;
    let first = browser.text("tbody tr:first-child td:first-child").await;
    assert_eq!(first, "claim-1-replay", "the run with 3 steps first");
    browser
        .click_to("a.sort[data-column=steps]", "dir=asc")
        .await;
    assert_ne!(
        browser.text("tbody tr:first-child td:first-child").await,
        "claim-1-replay"
    );

    // Into the replay, and to its failed step.
    browser
        .click_to(
            "tr[data-session-id='claim-1-replay'] a",
            "id=claim-1-replay",
        )
        .await;
    assert!(browser.text("h1").await.contains("claim-1-replay"));
    assert_eq!(browser.count("li.step").await, 3);
    assert_eq!(browser.text("#status").await, "completed");
    let decision = browser.text(".decision").await;
    assert!(decision.contains("chose escalate"), "{decision}");
    assert!(
        decision.contains("weighed against the travel policy"),
        "{decision}"
    );
    browser.click_to("#first-failed", "#s").await;
    let url = c.current_url().await.unwrap();
    let target = url.fragment().unwrap().to_owned();
    let failed = c.find(Locator::Id(&target)).await.unwrap();
    assert!(
        failed
            .attr("class")
            .await
            .unwrap()
            .unwrap()
            .contains("error")
    );
    assert!(
        failed
            .text()
            .await
            .unwrap()
            .contains("missing receipts for the hotel")
    );

    // The original links to its replay's comparison.
    c.goto(&format!("{}/session?id=claim-1", ui.base()))
        .await
        .unwrap();
    browser.click_to("a.compare", "/compare?").await;
    assert!(
        browser
            .text("#verdict")
            .await
            .contains("differ in what they did")
    );
    assert_eq!(browser.count("table.diff tr.added").await, 1);
    assert!(browser.text("table.diff").await.contains("pay → escalate"));

    // Search, with the words found marked.
    c.goto(&format!("{}/search", ui.base())).await.unwrap();
    c.find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys("\"missing receipts\"")
        .await
        .unwrap();
    browser.click_to("form.filters button", "q=").await;
    assert_eq!(browser.count("tr.hit").await, 1);
    assert_eq!(browser.text("tr.hit mark").await, "missing receipts");

    // Stats and the chain's verdict.
    c.goto(&format!("{}/stats", ui.base())).await.unwrap();
    assert_eq!(browser.count("tr[data-module]").await, 3);
    assert!(
        browser
            .text("tr[data-module=judge]")
            .await
            .contains("judge 3")
    );
    // A column a day (one, or two if the run crossed midnight UTC): the 7 steps recorded,
    // one of them failed.
    let mut steps = 0;
    let mut failed = 0;
    for title in c
        .find_all(Locator::Css("svg.daily rect.uses title"))
        .await
        .unwrap()
    {
        let text = title.html(true).await.unwrap();
        let figures: Vec<u64> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .skip(3) // the date's year, month and day
            .map(|n| n.parse().unwrap())
            .collect();
        steps += figures[0];
        failed += figures[1];
    }
    assert_eq!((steps, failed), (7, 1));
    c.goto(&format!("{}/verify", ui.base())).await.unwrap();
    assert!(
        browser
            .text("#evidence")
            .await
            .contains("the chain verifies")
    );
    browser.stop().await;
}

/// What model output can hold, meant to run in a page that shows it.
const PAYLOADS: [&str; 4] = [
    "<script>document.title='pwned'</script>",
    "\"><img src=x onerror=\"document.title='pwned'\">",
    "javascript:document.title='pwned'",
    "</textarea><svg onload=\"document.title='pwned'\">",
];

/// The address of session `id`'s page on `ui`.
fn session_url(ui: &Ui, id: &str) -> String {
    format!(
        "{}/session?{}",
        ui.base(),
        serde_urlencoded::to_string([("id", id)]).unwrap()
    )
}

/// A run received over OTLP, and a turn (its own trace) that follows it: the turn's own
/// session becomes the pointer to the run's. Returns (the run's session, the pointer).
fn write_joined_run(db: &Path) -> (String, String) {
    let (run, pointer, _) = write_joined_runs(db, false);
    (run, pointer)
}

/// [`write_joined_run`]; with `earlier`, the run itself follows an earlier run (trace 9),
/// which comes last, so that the run's session joins the earlier run's after the turn
/// joined it. Returns (the session holding the steps, the turn's pointer, the run's own
/// session: a pointer too when `earlier`).
fn write_joined_runs(db: &Path, earlier: bool) -> (String, String, String) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Link};
    // `follows`: the trace (and root span) this root follows, or 0.
    let span = |trace: u8, id: u8, parent: u8, name: &str, follows: u8| Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        start_time_unix_nano: 1_750_000_000_000_000_000 + u64::from(id) * 1_000_000,
        end_time_unix_nano: 1_750_000_001_000_000_000 - u64::from(id) * 1_000_000,
        links: if follows > 0 {
            vec![Link {
                trace_id: vec![follows; 16],
                span_id: vec![follows; 8],
                ..Link::default()
            }]
        } else {
            Vec::new()
        },
        ..Span::default()
    };
    let request = |spans: Vec<Span>| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(db)
        .build()
        .unwrap();
    let receiver = reasonkit_audit::otlp::Receiver::new(
        &layer,
        reasonkit_audit::read::Reader::open(db).unwrap(),
    );
    // The turn's chat first, then the turn (which says whom it follows), then the run.
    receiver
        .export(request(vec![span(2, 3, 2, "chat", 0)]))
        .unwrap();
    receiver
        .export(request(vec![span(2, 2, 0, "turn", 1)]))
        .unwrap();
    receiver
        .export(request(vec![span(
            1,
            1,
            0,
            "run",
            if earlier { 9 } else { 0 },
        )]))
        .unwrap();
    if earlier {
        receiver
            .export(request(vec![span(9, 9, 0, "earlier run", 0)]))
            .unwrap();
    }
    guard.shutdown().unwrap();
    let one = |sql: &str| common::sqlite3(db, sql);
    let own = |trace: u8| {
        one(&format!(
            "SELECT id FROM sessions WHERE json_extract(attributes, '$.\"otel.trace_id\"') = '{}'",
            format!("{trace:02x}").repeat(16)
        ))
    };
    (
        one("SELECT id FROM sessions WHERE status = 'completed'"),
        own(2),
        own(1),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_turns_page_leads_to_the_run_where_its_steps_are() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (run, pointer) = write_joined_run(&db);
    let ui = Ui::start(&db, &[]);
    browser.open_session(&ui, &pointer).await;
    assert_eq!(browser.text("#status").await, "joined");
    assert_eq!(browser.text("#step-count").await, "0");
    assert_eq!(browser.text("#joined-into").await, run);
    browser.click_to("#joined-into", &run).await;
    assert_eq!(browser.text("h1 .id").await, run);
    assert_eq!(browser.text("#step-count").await, "3");
    let modules: Vec<String> = {
        let mut found = Vec::new();
        for element in browser
            .client()
            .find_all(Locator::Css("span.module"))
            .await
            .unwrap()
        {
            found.push(element.text().await.unwrap());
        }
        found
    };
    assert_eq!(modules, ["run", "turn", "chat"]);
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_whose_run_joined_an_earlier_run_leads_to_where_its_steps_are_now() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (earlier, pointer, run) = write_joined_runs(&db, true);
    let ui = Ui::start(&db, &[]);
    browser.open_session(&ui, &pointer).await;
    // The turn joined the run, and the run joined the earlier run after: the page names
    // the run it went by way of, and leads to the earlier run, which holds every step.
    assert_eq!(browser.text("#joined-into").await, earlier);
    assert_eq!(
        browser.text("#joined-through").await,
        format!("(joined by way of {run})")
    );
    browser.click_to("#joined-into", &earlier).await;
    assert_eq!(browser.text("h1 .id").await, earlier);
    assert_eq!(browser.text("#step-count").await, "4");
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_markup_is_shown_as_text_and_runs_nothing() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    common::record_with_layer(&db, || {
        let _s = info_span!(
            "session",
            id = PAYLOADS[0],
            profile = PAYLOADS[1],
            input = PAYLOADS[2]
        )
        .entered();
        info_span!(
            "step",
            module = PAYLOADS[1],
            output_summary = PAYLOADS[0],
            error = PAYLOADS[3]
        )
        .in_scope(|| {
            tracing::info!(name: "decision", decision_type = PAYLOADS[3],
                chosen_option = PAYLOADS[2], rationale = PAYLOADS[0]);
        });
    });
    let ui = Ui::start(&db, &[]);
    let c = browser.client();
    let session = session_url(&ui, PAYLOADS[0]);
    for page in [
        ui.url.clone(),
        session.clone(),
        format!("{}/search?q=pwned", ui.base()),
        format!("{}/stats", ui.base()),
    ] {
        c.goto(&page).await.unwrap();
        // A payload that ran would have made the title exactly "pwned".
        assert_ne!(
            c.title().await.unwrap().trim(),
            "pwned",
            "a script ran on {page}"
        );
        assert_eq!(
            browser.count("main img, main script, main textarea").await,
            0,
            "{page}"
        );
        assert_eq!(browser.count("main svg[onload]").await, 0, "{page}");
        let shown = browser.text("main").await;
        assert!(shown.contains("document.title='pwned'"), "{page}: {shown}");
    }
    // On the session page, each payload is the text of the element that holds it.
    c.goto(&session).await.unwrap();
    assert_eq!(browser.text("h1 .id").await, PAYLOADS[0]);
    assert_eq!(browser.text("span.module").await, PAYLOADS[1]);
    assert!(
        browser
            .text("li.step .error-text")
            .await
            .contains(PAYLOADS[3])
    );
    assert_eq!(browser.text(".decision .rationale").await, PAYLOADS[0]);
    // No link leads anywhere a recorded value says.
    for link in c.find_all(Locator::Css("a")).await.unwrap() {
        let href = link.attr("href").await.unwrap().unwrap_or_default();
        assert!(!href.starts_with("javascript:"), "{href}");
    }
    browser.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_session_grows_on_its_page_while_another_process_writes() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    use tracing_subscriber::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    // This test's process writes; the server, another process, reads.
    let session = tracing::dispatcher::with_default(&dispatch, || {
        let session = info_span!("session", id = "live-1");
        session.in_scope(|| info_span!("step", module = "first").in_scope(|| {}));
        session
    });
    guard.flush().unwrap();
    let ui = Ui::start(&db, &[]);
    let c = browser.client();
    c.goto(&format!("{}/session?id=live-1", ui.base()))
        .await
        .unwrap();
    assert_eq!(browser.text("#status").await, "running");
    assert_eq!(browser.text("#step-count").await, "1");

    tracing::dispatcher::with_default(&dispatch, || {
        session.in_scope(|| info_span!("step", module = "second").in_scope(|| {}));
    });
    guard.flush().unwrap();
    // The page reloads itself; no one touches the browser.
    let grew =
        wait_for(|| async { browser.try_text("#step-count").await.as_deref() == Some("2") }).await;
    assert!(grew, "the page did not show the second step");

    tracing::dispatcher::with_default(&dispatch, || drop(session));
    guard.flush().unwrap();
    let closed =
        wait_for(|| async { browser.try_text("#status").await.as_deref() == Some("completed") })
            .await;
    assert!(closed, "the page did not show the session completed");
    assert_eq!(browser.count("#live").await, 0);
    guard.shutdown().unwrap();
    browser.stop().await;
}

/// Polls `check` for up to 20 s.
async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[test]
fn with_a_token_every_request_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_claims(&db);
    let token = "a-token-of-thirty-two-characters";
    let ui = Ui::start(&db, &["--token", token]);
    assert!(ui.url.ends_with(&format!("?token={token}")), "{}", ui.url);
    let addr = ui.addr();

    for target in ["/", "/session?id=claim-1", "/style.css", "/nowhere"] {
        let (code, head, _) = get(&addr, target, &[]);
        assert_eq!(code, 401, "{target}");
        assert!(head.contains("content-security-policy"), "{target}");
        let (code, _, _) = get(
            &addr,
            target,
            &["Authorization: Bearer wrong-token-wrong-token"],
        );
        assert_eq!(code, 401, "{target}");
    }
    let (code, _, body) = get(&addr, "/", &[&format!("Authorization: Bearer {token}")]);
    assert_eq!(code, 200);
    assert!(body.contains("claim-1"));
    // The address printed opens in a browser: ?token= once, then the cookie it sets.
    let (code, head, _) = get(&addr, &format!("/?token={token}"), &[]);
    assert_eq!(code, 200);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie");
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let (code, _, _) = get(&addr, "/stats", &[&format!("Cookie: {pair}")]);
    assert_eq!(code, 200);

    // A token too short to be one is refused at start.
    let out = common::run(&db, &["ui", "--listen", "127.0.0.1:0", "--token", "short"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::text(&out).contains("at least 16"));
}

/// The SHA-256 of the database's file and of its WAL. A reader of a WAL database may leave
/// an empty WAL behind (SQLite makes one to read through): empty is counted as none.
fn fingerprint(db: &Path) -> Vec<(String, String)> {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let bytes = std::fs::read(&path).ok().filter(|b| !b.is_empty())?;
            Some((suffix.to_string(), format!("{:x}", Sha256::digest(&bytes))))
        })
        .collect()
}

#[test]
fn crawling_every_page_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_claims(&db);
    let before = fingerprint(&db);
    let ui = Ui::start(&db, &[]);
    let addr = ui.addr();
    // Every page, with every kind of argument, good and bad.
    let (_, _, list) = get(&addr, "/", &[]);
    let mut targets: Vec<String> = list
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with('/'))
        .map(|href| href.replace("&amp;", "&"))
        .collect();
    targets.extend(
        [
            "/session?id=claim-1",
            "/session.json?id=claim-1",
            "/session?id=nobody",
            "/session",
            "/search?q=receipts",
            "/search?q=",
            "/stats?since=7d",
            "/stats?since=yesterday",
            "/compare?a=claim-1",
            "/compare?a=claim-1&b=quick-2",
            "/compare?a=nobody",
            "/verify",
            "/?status=completed&profile=deep&below=0.6&page=0&n=2",
            "/?below=not-a-number",
            "/?sort=tokens&dir=asc",
            "/?sort=nonsense",
            "/?text=hotel",
            "/report?id=claim-1",
            "/report?id=nobody",
            "/?n=100000&page=99999999999",
            "/style.css",
            "/no-such-page",
        ]
        .map(str::to_owned),
    );
    let mut codes = Vec::new();
    for target in &targets {
        let (code, head, _) = get(&addr, target, &[]);
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{target}"
        );
        codes.push((target.clone(), code));
    }
    let code = |t: &str| codes.iter().find(|(x, _)| x == t).map(|(_, c)| *c);
    assert_eq!(code("/session?id=claim-1"), Some(200));
    assert_eq!(code("/session.json?id=claim-1"), Some(200));
    assert_eq!(code("/session?id=nobody"), Some(404));
    assert_eq!(code("/session"), Some(400));
    assert_eq!(code("/stats?since=yesterday"), Some(400));
    assert_eq!(code("/?below=not-a-number"), Some(400));
    assert_eq!(code("/?sort=tokens&dir=asc"), Some(200));
    assert_eq!(code("/?sort=nonsense"), Some(400));
    assert_eq!(code("/?text=hotel"), Some(200));
    assert_eq!(code("/report?id=nobody"), Some(404));
    // The report: the self-contained HTML file, to download, with no script either.
    let (status, head, body) = get(&addr, "/report?id=claim-1", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-disposition: attachment; filename=\"report-claim-1.html\""));
    assert!(body.contains("Audit report: session claim-1"));
    assert!(!body.contains("<script"));
    assert_eq!(code("/?n=100000&page=99999999999"), Some(200));
    assert_eq!(code("/no-such-page"), Some(404));
    // An id or a text longer than a page would ever need is refused, not looked up.
    let (status, _, _) = get(&addr, &format!("/session?id={}", "x".repeat(2000)), &[]);
    assert_eq!(status, 400);
    assert!(codes.iter().all(|(_, c)| *c != 500), "{codes:?}");
    drop(ui);
    assert_eq!(fingerprint(&db), before, "a page changed the database");
    // And the store is still what the layer wrote.
    assert_eq!(common::sqlite3(&db, "PRAGMA integrity_check"), "ok");
}

#[test]
fn clients_that_never_finish_their_request_stall_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_claims(&db);
    let ui = Ui::start(&db, &[]);
    let addr = ui.addr();
    // Twenty connections that send half a request and then nothing (slowloris), and
    // twenty that connect and send nothing at all; bounded, on loopback.
    let mut stalled = Vec::new();
    for i in 0..40 {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        stalled.push(stream);
    }
    // Everyone else is still served, page after page.
    for target in ["/", "/session?id=claim-1", "/stats", "/search?q=receipts"] {
        let (code, _, body) = get(&addr, target, &[]);
        assert_eq!(code, 200, "{target}");
        assert!(body.contains("</html>"), "{target}");
    }
    drop(stalled);
}

#[test]
fn a_request_never_finished_is_cut_off_so_capped_connections_free_up() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_claims(&db);
    let ui = Ui::start(&db, &["--max-connections", "4"]);
    let addr = ui.addr();
    // Four connections take every slot and never finish a request.
    let mut stalled: Vec<std::net::TcpStream> = (0..4)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            stream
        })
        .collect();
    // A fifth client is served once the server has cut them off (10 s to send headers).
    let (code, _, body) = get(&addr, "/", &[]);
    assert_eq!(code, 200);
    assert!(body.contains("claim-1"));
    // Each of the four was closed by the server: end of stream, perhaps after a 408.
    for stream in &mut stalled {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        let said = String::from_utf8_lossy(&rest);
        assert!(
            rest.is_empty() || said.starts_with("HTTP/1.1 408"),
            "{said}"
        );
    }
}

#[test]
fn a_port_already_taken_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    common::record_with_layer(&db, || info_span!("session").in_scope(|| {}));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = common::run(&db, &["ui", "--listen", &taken]);
    let said = common::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("ui: cannot listen on {taken}"))
            && said.contains(
                "another program listens there; stop it, or choose another \
                              address with --listen"
            ),
        "{said}"
    );
}
