//! What the command shows, from Rust: `Reader::overview` pages and filters as `sessions`
//! does, `search` finds rows whether or not the index has caught up (and can be asked again
//! on one reader), `module_stats` agrees with SQL over the file, `export` writes every
//! session and row, and `check` finds a step outside its session's time.

mod common;

use common::Audit;
use reasonkit_audit::read::{
    ExportFormat, ExportScope, ExportTable, HitKind, OverviewColumn, Reader, SessionFilter, SortBy,
};
use tracing::info_span;

/// Ten sessions, `run-0` (oldest) to `run-9`, each with two steps and a decision; the
/// step confidence falls with the run's number, and every third run's check fails.
fn ten_runs() -> Audit {
    let audit = Audit::new();
    audit.run(|| {
        for n in 0..10 {
            let _s = info_span!(
                "session",
                id = format!("run-{n}").as_str(),
                profile = "quick"
            )
            .entered();
            info_span!(
                "step",
                module = "gigathink",
                confidence = 1.0 - f64::from(n) / 20.0,
                tokens_used = 10_i64 * i64::from(n + 1),
                output_summary = format!("draft {n} of the quarterly filing").as_str()
            )
            .in_scope(|| {});
            let error = (n % 3 == 0).then_some("the ledger does not balance");
            info_span!("step", module = "proofguard", error, tokens_used = 5_i64).in_scope(|| {
                tracing::info!(name: "decision", decision_type = "verdict",
                    chosen_option = if error.is_some() { "reject" } else { "approve" },
                    rationale = "checked against the annual ledger");
            });
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    audit
}

#[test]
fn overview_pages_through_every_session_newest_first_with_step_totals() {
    let audit = ten_runs();
    let reader = Reader::open(&audit.path).unwrap();
    let mut seen = Vec::new();
    for page in 0..4 {
        let rows = reader
            .overview(&SessionFilter {
                limit: Some(3),
                offset: page * 3,
                ..SessionFilter::default()
            })
            .unwrap();
        seen.extend(
            rows.into_iter()
                .map(|s| (s.id, s.steps, s.tokens, s.errors)),
        );
    }
    let expected: Vec<(String, i64, Option<i64>, i64)> = (0..10)
        .rev()
        .map(|n| {
            let tokens = 10 * (n + 1) + 5;
            (format!("run-{n}"), 2, Some(tokens), i64::from(n % 3 == 0))
        })
        .collect();
    assert_eq!(seen, expected);

    let unsure: Vec<String> = reader
        .overview(&SessionFilter {
            below_confidence: Some(0.7),
            oldest_first: true,
            ..SessionFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    // Confidence 1 - n/20 is below 0.7 from n = 7.
    assert_eq!(unsure, ["run-7", "run-8", "run-9"]);
    // Only the sessions named (what a text filter found), in the list's order.
    let only = |ids: Vec<&str>| {
        reader
            .overview(&SessionFilter {
                only: Some(ids.into_iter().map(str::to_owned).collect()),
                ..SessionFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        only(vec!["run-3", "run-5", "no-such-run"]),
        ["run-5", "run-3"]
    );
    assert!(only(vec![]).is_empty());
    // Ordered by a column: the most tokens first, then the fewest.
    let by = |descending| {
        reader
            .overview(&SessionFilter {
                sort: Some(SortBy {
                    column: OverviewColumn::Tokens,
                    descending,
                }),
                limit: Some(2),
                ..SessionFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(by(true), ["run-9", "run-8"]);
    assert_eq!(by(false), ["run-0", "run-1"]);
    // By a column of the sessions table (the page is picked before the steps are added
    // up): ids from the last, then from the first.
    let by_id = |descending, offset| {
        reader
            .overview(&SessionFilter {
                sort: Some(SortBy {
                    column: OverviewColumn::Id,
                    descending,
                }),
                limit: Some(2),
                offset,
                ..SessionFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.steps))
            .collect::<Vec<_>>()
    };
    assert_eq!(by_id(true, 0), [("run-9".into(), 2), ("run-8".into(), 2)]);
    assert_eq!(by_id(false, 1), [("run-1".into(), 2), ("run-2".into(), 2)]);
    // The same filter selects the same sessions through `sessions`.
    let summaries = reader
        .sessions(&SessionFilter {
            below_confidence: Some(0.7),
            oldest_first: true,
            ..SessionFilter::default()
        })
        .unwrap();
    assert_eq!(
        summaries.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        unsure
    );
}

#[test]
fn search_finds_indexed_and_unindexed_rows_and_can_be_asked_again() {
    let audit = ten_runs();
    let reader = Reader::open(&audit.path).unwrap();
    let hits = reader.search("quarterly filing", 100).unwrap();
    assert_eq!(hits.len(), 10, "{hits:?}");
    assert!(
        hits.iter()
            .all(|h| h.kind == HitKind::Step && h.module == "gigathink")
    );
    // Asked again on the same reader (its in-memory tail tables must not linger).
    let again = reader.search("\"annual ledger\"", 100).unwrap();
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|h| h.kind == HitKind::Decision));
    assert!(
        again[0].snippet.contains("[annual ledger]"),
        "{:?}",
        again[0]
    );
    // Rows written after the reader opened are found too: nothing here is cached.
    audit.run(|| {
        let _s = info_span!("session", id = "late").entered();
        info_span!(
            "step",
            module = "late",
            output_summary = "a quarterly filing, late"
        )
        .in_scope(|| {});
    });
    let late = reader.search("quarterly filing", 100).unwrap();
    assert_eq!(late.len(), 11);
    assert!(late.iter().any(|h| h.session_id == "late"));
    assert!(matches!(
        reader.search("  ", 10),
        Err(reasonkit_audit::Error::Request { .. })
    ));
}

#[test]
fn module_stats_agree_with_sql_over_the_file() {
    let audit = ten_runs();
    let stats = Reader::open(&audit.path)
        .unwrap()
        .module_stats(None)
        .unwrap();
    let by_sql = audit.rows(
        "SELECT module, count(*), avg(confidence), avg(error IS NOT NULL), sum(tokens_used)
         FROM steps GROUP BY module ORDER BY count(*) DESC, module",
    );
    assert_eq!(stats.len(), by_sql.len());
    for (module, row) in stats.iter().zip(&by_sql) {
        assert_eq!(module.module, row[0]);
        assert_eq!(module.uses.to_string(), row[1]);
        assert_eq!(
            module
                .avg_confidence
                .map_or("NULL".to_owned(), |c| c.to_string()),
            row[2]
        );
        assert_eq!(module.failure_rate.to_string(), row[3]);
        assert_eq!(
            module.tokens.map(|t| t.to_string()).as_deref(),
            Some(&*row[4])
        );
        assert!(module.avg_duration_ms.is_some_and(|d| d >= 0.0));
    }
    let days = Reader::open(&audit.path)
        .unwrap()
        .daily_stats(None)
        .unwrap();
    let by_day = audit.rows(
        "SELECT substr(started_at, 1, 10), count(*), sum(error IS NOT NULL) FROM steps
         GROUP BY 1 ORDER BY 1",
    );
    let shown: Vec<Vec<String>> = days
        .iter()
        .map(|d| vec![d.day.clone(), d.steps.to_string(), d.failures.to_string()])
        .collect();
    assert_eq!(shown, by_day);
}

#[test]
fn export_writes_every_session_and_every_row() {
    let audit = ten_runs();
    let reader = Reader::open(&audit.path).unwrap();
    let all = ExportScope::default();
    let mut json = Vec::new();
    assert_eq!(
        reader.export(ExportFormat::Json, &all, &mut json).unwrap(),
        10
    );
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let sessions = json.as_array().unwrap();
    assert_eq!(sessions[0]["id"], "run-0", "oldest first");
    let steps: usize = sessions
        .iter()
        .map(|s| s["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(steps as i64, audit.count("steps"));
    assert_eq!(
        sessions[3]["steps"][1]["decisions"][0]["chosen_option"],
        "reject"
    );

    for (table, name) in [
        (ExportTable::Sessions, "sessions"),
        (ExportTable::Steps, "steps"),
        (ExportTable::Decisions, "decisions"),
    ] {
        let mut csv = Vec::new();
        let rows = reader
            .export(ExportFormat::Csv(table), &all, &mut csv)
            .unwrap();
        assert_eq!(rows as i64, audit.count(name), "{name}");
        let mut parsed = csv::Reader::from_reader(csv.as_slice());
        let columns = audit.rows(&format!("SELECT name FROM pragma_table_info('{name}')"));
        let header: Vec<String> = parsed
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, columns.concat(), "{name}: every column, in order");
        assert_eq!(parsed.records().count() as u64, rows);
    }

    let one = ExportScope {
        session: Some("run-4".into()),
        since: None,
    };
    let mut lines = Vec::new();
    assert_eq!(
        reader
            .export(ExportFormat::JsonLines, &one, &mut lines)
            .unwrap(),
        1
    );
    let record = reader.session_record("run-4").unwrap().unwrap();
    assert_eq!(record.id(), "run-4");
    assert_eq!(record.step_count(), 2);
    let line: serde_json::Value = serde_json::from_slice(&lines).unwrap();
    assert_eq!(line, serde_json::to_value(&record).unwrap());
    // Nothing selected: the CSV still names its columns.
    let none = ExportScope {
        session: Some("no-such-run".into()),
        since: None,
    };
    let mut csv = Vec::new();
    let table = ExportFormat::Csv(ExportTable::Steps);
    assert_eq!(reader.export(table, &none, &mut csv).unwrap(), 0);
    assert!(
        String::from_utf8(csv)
            .unwrap()
            .starts_with("id,session_id,module,")
    );
}

#[test]
fn resolve_takes_a_unique_beginning_and_check_finds_a_step_outside_its_session() {
    let audit = ten_runs();
    let reader = Reader::open(&audit.path).unwrap();
    assert_eq!(reader.resolve("run-7").unwrap().as_deref(), Some("run-7"));
    assert_eq!(reader.resolve("nothing").unwrap(), None);
    let ambiguous = reader.resolve("run-").unwrap_err().to_string();
    assert!(ambiguous.contains("ambiguous"), "{ambiguous}");
    assert!(reader.check().unwrap().is_sound());

    // A step moved before its session began, by hand: the signature of merged runs.
    audit
        .db()
        .execute(
            "UPDATE steps SET started_at = '2000-01-01 00:00:00.000000'
             WHERE id = (SELECT min(id) FROM steps WHERE session_id = 'run-2')",
            [],
        )
        .unwrap();
    let report = reader.check().unwrap();
    assert!(!report.is_sound());
    assert_eq!(report.steps_outside_session.len(), 1);
    assert_eq!(report.integrity, ["ok"]);
}
