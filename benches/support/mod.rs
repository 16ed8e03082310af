//! What the benches share: the spans they time and the direct-rusqlite baseline.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::SystemTime;

use tracing::info_span;

pub mod floor;
pub mod shapes;

/// A `step` span with five fields, entered and closed: what a caller pays per step.
pub fn step_span(i: u64) {
    let span = info_span!(
        "step",
        module = "laserlogic",
        input_summary = "premises about the quarterly filing",
        confidence = 0.87,
        tokens_used = i,
        attempt = 1_u64,
    );
    let _entered = span.enter();
    black_box(&span);
}

/// A span the audit layer does not record.
pub fn other_span(i: u64) {
    let span = info_span!("http_request", method = "GET", n = i);
    let _entered = span.enter();
    black_box(&span);
}

/// Rows one `session` writes: the session and its steps.
pub const ROWS_PER_SESSION: u64 = 11;

/// A session of ten text-free steps, as the end-to-end benches produce them.
pub fn session(i: u64) {
    shapes::text_free(i);
}

/// Produces `sessions` sessions from `threads` threads as fast as they can, then waits
/// for `guard.flush()`: the time until every row is committed.
pub fn produce(
    dispatch: &tracing::Dispatch,
    guard: &reasonkit_audit::AuditGuard,
    sessions: u64,
    threads: u64,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in (t..sessions).step_by(threads as usize) {
                        session(i);
                    }
                })
            });
        }
    });
    guard.flush().unwrap();
    start.elapsed()
}

fn timestamp(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// A connection to a fresh file with the layer's schema, set up as the baseline asks:
/// WAL, synchronous=NORMAL, foreign keys on.
pub fn direct_connection(path: &std::path::Path) -> rusqlite::Connection {
    drop(
        reasonkit_audit::AuditLayer::builder()
            .path(path)
            .build()
            .unwrap(),
    );
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

/// The same rows as [`session`] makes (UUIDv7 ids, timestamps, the same columns), inserted
/// straight into the schema: cached prepared statements, 1,000 rows per transaction.
pub fn direct_sessions(conn: &mut rusqlite::Connection, sessions: u64) {
    let mut tx = conn.transaction().unwrap();
    let mut in_tx = 0;
    for i in 0..sessions {
        let session_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let begun = timestamp(SystemTime::now());
        tx.prepare_cached(
            "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, status, attributes, pid, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .unwrap()
        .execute((&session_id, &begun, &begun, "bench", "e3b0c442", "completed", "{}", 1, "host"))
        .unwrap();
        for k in 0..(ROWS_PER_SESSION - 1) as i64 {
            let now = timestamp(SystemTime::now());
            tx.prepare_cached(
                "INSERT INTO steps (id, session_id, parent_step_id, module, started_at, ended_at,
                 input_summary, output_summary, confidence, tokens_used, error, attributes)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL, NULL, ?6, ?7, NULL, ?8)",
            )
            .unwrap()
            .execute((
                uuid::Uuid::now_v7().hyphenated().to_string(),
                &session_id,
                "gigathink",
                &now,
                &now,
                0.8,
                k,
                format!("{{\"n\":{i}}}"),
            ))
            .unwrap();
        }
        in_tx += ROWS_PER_SESSION;
        if in_tx >= 1_000 {
            tx.commit().unwrap();
            tx = conn.transaction().unwrap();
            in_tx = 0;
        }
    }
    tx.commit().unwrap();
}
