//! The layer's retention: a writer given `.retention(keep)` prunes closed sessions older
//! than `keep` when it is idle, chained, and never a running one.

use std::time::Duration;

use tracing::info_span;

mod common;

#[test]
fn a_writer_with_a_retention_prunes_closed_sessions_when_idle_and_the_chain_verifies() {
    // A first run leaves 20 closed sessions of 3 steps each.
    let first = common::Audit::new();
    first.run(|| {
        for i in 0..20 {
            info_span!("session", id = format!("old-{i}")).in_scope(|| {
                for k in 0..3 {
                    info_span!("step", module = "gigathink", k).in_scope(|| {});
                }
            });
        }
    });
    let path = first.path.clone();
    let dir = first.dir;
    first.guard.shutdown().unwrap();

    // The next run keeps nothing closed: at its first idle moment its writer prunes them,
    // but not the session it is running itself.
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .retention(Duration::ZERO)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        layer,
    ));
    let running =
        tracing::dispatcher::with_default(&dispatch, || info_span!("session", id = "current"));
    guard.flush().unwrap();
    assert!(
        common::eventually(Duration::from_secs(30), || common::rows(
            &path,
            "SELECT count(*) FROM sessions WHERE id LIKE 'old-%'"
        ) == [["0"]]),
        "the closed sessions were pruned"
    );
    assert_eq!(
        common::rows(&path, "SELECT status FROM sessions"),
        [["running"]]
    );
    let detail = common::sqlite3(
        &path,
        "SELECT json_extract(detail, '$.sessions') || ' ' || json_extract(detail, '$.steps') \
         || ' ' || json_extract(detail, '$.reason') FROM audit_events WHERE kind = 'pruned';",
    );
    assert_eq!(detail.trim(), "20 60 retention: keep 0 s");
    drop(running);
    guard.shutdown().unwrap();
    let report = common::assert_chain_intact(&path);
    assert_eq!(report.pruned_rows, 80);
    let (code, out) = common::run_python_verifier(&path, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("80 rows pruned"), "{out}");
    drop(dir);
}
