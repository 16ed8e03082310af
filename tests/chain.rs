//! The tamper-evident chain as written by the layer: every row version chained, read back
//! by `verify` and by the independent Python verifier, and older files sealed on migration.

mod common;

use common::{Audit, assert_chain_intact, run_python_verifier, sqlite3, write_realistic};
use reasonkit_audit::{AuditLayer, FindingKind};
use tracing::info_span;

#[test]
fn every_row_a_realistic_run_writes_is_chained_and_verifies_in_rust_and_in_python() {
    let audit = Audit::with(|b| b.max_field_len(40));
    let rows = write_realistic(&audit, 30);
    let report = assert_chain_intact(&audit.path);
    // Every row of every chained table is covered; rows open across a flush have two
    // leaves; the truncated fields left audit_health rows, chained too.
    let health: u64 = audit
        .one("SELECT count(*) FROM audit_health")
        .parse()
        .unwrap();
    assert!(health > 0, "max_field_len(40) truncates the summaries");
    assert_eq!(report.total_rows(), rows + health);
    assert!(report.entries > report.total_rows(), "{report:?}");
    assert_eq!(
        audit
            .one("SELECT count(*) FROM (SELECT table_name, row_id FROM audit_chain GROUP BY 1, 2)"),
        report.total_rows().to_string()
    );
    let (code, out) = run_python_verifier(&audit.path, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&reasonkit_audit_head(&report)), "{out}");
    let (code, out) = run_python_verifier(&audit.path, &["--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["entries"], report.entries);
    assert_eq!(json["intact"], true);
}

fn reasonkit_audit_head(report: &reasonkit_audit::Report) -> String {
    report.head.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_python_verifier_passes_its_golden_vectors() {
    let out = std::process::Command::new("python3")
        .arg(common::python_verifier())
        .arg("--self-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.trim().ends_with("passed, 0 failed"), "{stdout}");
}

#[test]
fn both_verifiers_name_a_row_changed_with_the_sqlite3_tool() {
    let audit = Audit::new();
    write_realistic(&audit, 5);
    let id = audit.one("SELECT id FROM steps WHERE module = 'proofguard' LIMIT 1");
    sqlite3(
        &audit.path,
        &format!("UPDATE steps SET confidence = 0.99 WHERE id = '{id}'"),
    );
    let report = reasonkit_audit::verify(&audit.path).unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Modified);
    assert_eq!(report.findings[0].row_id.as_deref(), Some(id.as_str()));
    let (code, out) = run_python_verifier(&audit.path, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("modified") && out.contains(&id), "{out}");
}

#[test]
fn an_edit_made_while_a_span_is_open_is_caught_after_it_closes() {
    let audit = Audit::new();
    let session = tracing::dispatcher::with_default(&audit.dispatch, || {
        info_span!("session", id = "long-running", profile = "thorough")
    });
    audit.guard.flush().unwrap();
    // Open: chained as running, and reported as open rather than as tampering.
    let open = assert_chain_intact(&audit.path).open;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].row_id, "long-running");
    // Someone back-dates the session's start while it runs; the close rewrites what
    // changes at close, but its leaf covers the whole row, so the edit shows.
    sqlite3(
        &audit.path,
        "UPDATE sessions SET started_at = '2020-01-01 00:00:00.000000'",
    );
    drop(session);
    audit.guard.flush().unwrap();
    let report = reasonkit_audit::verify(&audit.path).unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Modified);
    assert_eq!(
        audit.one("SELECT count(*) FROM audit_chain WHERE row_id = 'long-running'"),
        "2"
    );
}

#[test]
fn values_that_trip_round_trips_hash_as_stored() {
    // -0.0 (a REAL column reads it back as 0.0), NUL and non-ASCII text, huge numbers.
    let audit = Audit::new();
    audit.run(|| {
        info_span!("session", input = "nul \u{0} and 😀").in_scope(|| {
            info_span!(
                "step",
                module = "m\u{0}x",
                confidence = -0.0,
                tokens_used = i64::MAX
            )
            .in_scope(|| {});
            info_span!("step", module = "inf", confidence = f64::INFINITY).in_scope(|| {});
            info_span!("step", module = "tiny", confidence = 5e-324).in_scope(|| {});
            info_span!("step", module = "int-as-real", confidence = 1_u64).in_scope(|| {});
        });
    });
    assert_chain_intact(&audit.path);
    let (code, out) = run_python_verifier(&audit.path, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_database_without_a_chain_is_unusable_for_verify_not_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    make_version_4_database(&path);
    let error = reasonkit_audit::verify(&path).unwrap_err();
    assert!(
        matches!(error, reasonkit_audit::Error::SchemaTooOld { found: 4, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("migrate"), "{error}");
}

#[test]
fn a_version_4_database_is_sealed_into_the_chain_by_the_migration_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let old_rows = make_version_4_database(&path);
    let (layer, guard) = AuditLayer::builder().path(&path).build().unwrap();
    let audit = Audit {
        dispatch: tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            layer,
        )),
        path: path.clone(),
        guard,
        dir,
    };
    let new_rows = write_realistic(&audit, 3);
    let report = assert_chain_intact(&path);
    assert_eq!(report.total_rows(), old_rows + new_rows + 1, "{report:?}");
    // The chain says what the migration did: one 'sealed' event first, then the old rows.
    assert_eq!(report.events.len(), 1, "{:?}", report.events);
    let (seq, kind, detail) = &report.events[0];
    assert_eq!((*seq, kind.as_str()), (1, "sealed"));
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap();
    assert_eq!(detail["rows"], old_rows);
    assert_eq!(detail["migration"], "0005_audit_chain");
    assert_eq!(
        sqlite3(
            &path,
            "SELECT table_name, row_id FROM audit_chain WHERE seq = 2"
        )
        .trim(),
        "sessions|old-1"
    );
    // Schema 8 gave every sealed entry of a session, step or decision its session.
    assert_eq!(
        sqlite3(
            &path,
            "SELECT count(*) FROM audit_chain WHERE table_name IN ('sessions', 'steps', \
             'decisions') AND session_id IS NULL; \
             SELECT session_id FROM audit_chain WHERE table_name = 'steps' AND row_id = 'old-step-2'"
        )
        .trim(),
        "0\nold-1"
    );
    let (code, out) = run_python_verifier(&path, &[]);
    assert_eq!(code, 0, "{out}");
    // A sealed row changed later is caught like any other.
    sqlite3(
        &path,
        "UPDATE steps SET module = 'forged' WHERE id = 'old-step-2'",
    );
    let report = reasonkit_audit::verify(&path).unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].row_id.as_deref(), Some("old-step-2"));
}

/// A file as release 0.1 (schema version 4) left it: its migrations, then rows as its layer
/// wrote them. Returns how many rows it holds.
fn make_version_4_database(path: &std::path::Path) -> u64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let db = rusqlite::Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    for (version, name) in [
        (1, "0001_initial"),
        (2, "0002_layer_columns"),
        (3, "0003_process_and_health"),
        (4, "0004_search"),
    ] {
        let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap();
        db.execute_batch(&sql).unwrap();
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
             name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .unwrap();
        db.execute(
            "INSERT INTO schema_migrations VALUES (?1, ?2, '2026-11-01 10:00:00.000')",
            (version, name),
        )
        .unwrap();
        db.pragma_update(None, "user_version", version).unwrap();
    }
    db.execute_batch(
        "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, status, input, attributes, pid, host) VALUES
           ('old-1', '2026-11-01 10:00:00.000001', '2026-11-01 10:00:02.500000', 'balanced',
            'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'completed', NULL, '{}', 11, 'old-host'),
           ('old-2', '2026-11-01 11:00:00.000001', NULL, 'quick',
            'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'interrupted', NULL, '{\"user_id\":3}', 12, 'old-host');
         INSERT INTO steps (id, session_id, module, started_at, ended_at, input_summary, output_summary, confidence, tokens_used, error, parent_step_id, attributes) VALUES
           ('old-step-1', 'old-1', 'gigathink', '2026-11-01 10:00:00.1', '2026-11-01 10:00:01.0', 'premises', 'ten ideas', 0.82, 512, NULL, NULL, '{}'),
           ('old-step-2', 'old-1', 'proofguard', '2026-11-01 10:00:01.1', '2026-11-01 10:00:02.0', NULL, NULL, 0.4, NULL, 'contradiction', NULL, '{}'),
           ('old-step-3', 'old-2', 'laserlogic', '2026-11-01 11:00:00.1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}');
         INSERT INTO decisions (id, step_id, decision_type, options_considered, chosen_option, rationale, decided_at, attributes) VALUES
           ('old-d-1', 'old-step-2', 'verdict', '[\"accept\",\"reject\"]', 'reject', 'contradiction found', '2026-11-01 10:00:02.0', '{}');
         INSERT INTO audit_health (recorded_at, pid, host, kind, count, detail) VALUES
           ('2026-11-01 10:00:03.000000', 11, 'old-host', 'truncated_fields', 2, NULL);",
    )
    .unwrap();
    7
}

#[test]
fn verify_reads_one_snapshot_so_a_live_database_verifies_while_the_layer_writes() {
    let audit = Audit::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            tracing::dispatcher::with_default(&audit.dispatch, || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    info_span!("session", n = i).in_scope(|| {
                        for k in 0..5u64 {
                            info_span!("step", module = "live", tokens_used = k).in_scope(|| {});
                        }
                    });
                    i += 1;
                    if i % 50 == 0 {
                        audit.guard.flush().unwrap();
                    }
                }
            });
        });
        for _ in 0..15 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let report = reasonkit_audit::verify(&audit.path).unwrap();
            assert!(
                report.is_intact(),
                "{:?}",
                &report.findings[..report.findings.len().min(5)]
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// docs/chain.md, "What is chained": a span that opens and closes within one batch is
/// written once — one INSERT of its final row, one leaf — while one still open at a commit
/// is inserted `running` (visible after a crash) and chained again when it closes.
#[test]
fn a_span_closed_within_its_batch_is_one_leaf_and_one_open_across_a_commit_is_two() {
    // Batches end only at a flush here: no timer splits what the test puts in one.
    let audit = Audit::with(|b| b.flush_interval(std::time::Duration::from_secs(3_600)));
    let (session, held) = tracing::dispatcher::with_default(&audit.dispatch, || {
        let session = info_span!("session", id = "batched");
        let held = session.in_scope(|| info_span!("step", module = "held"));
        session.in_scope(|| {
            for n in 0..3_u64 {
                info_span!("step", module = "quick", n).in_scope(|| {});
            }
        });
        (session, held)
    });
    audit.guard.flush().unwrap();
    let entries = "SELECT module, ended_at IS NULL, (SELECT count(*) FROM audit_chain c \
                   WHERE c.table_name = 'steps' AND c.row_id = s.id) FROM steps s \
                   ORDER BY module, started_at";
    let sessions = "SELECT status, (SELECT count(*) FROM audit_chain c \
                    WHERE c.table_name = 'sessions' AND c.row_id = s.id) FROM sessions s";
    assert_eq!(
        audit.rows(entries),
        [
            ["held", "1", "1"],
            ["quick", "0", "1"],
            ["quick", "0", "1"],
            ["quick", "0", "1"],
        ]
    );
    assert_eq!(audit.rows(sessions), [["running", "1"]]);
    assert_chain_intact(&audit.path);

    // Closed under their subscriber: the registry releases a closing child's parent
    // through the thread's default subscriber.
    audit.run(|| {
        drop(held);
        drop(session);
    });
    assert_eq!(
        audit.rows(entries),
        [
            ["held", "0", "2"],
            ["quick", "0", "1"],
            ["quick", "0", "1"],
            ["quick", "0", "1"],
        ]
    );
    assert_eq!(audit.rows(sessions), [["completed", "2"]]);
    let report = assert_chain_intact(&audit.path);
    assert_eq!(report.entries, 7);
}
