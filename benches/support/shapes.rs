//! The record shapes the end-to-end benches produce, public API only (so that
//! `compare_commits.sh` can build them against an earlier commit too).
#![allow(dead_code)]

use tracing::{info, info_span};

/// A session of ten text-free steps: 11 rows.
pub fn text_free(i: u64) -> u64 {
    info_span!("session", profile = "bench", input = "a question").in_scope(|| {
        for k in 0..10u64 {
            info_span!(
                "step",
                module = "gigathink",
                confidence = 0.8,
                tokens_used = k,
                n = i
            )
            .in_scope(|| {});
        }
    });
    11
}

const WORDS: [&str; 12] = [
    "premises",
    "quarterly",
    "filing",
    "revenue",
    "contradiction",
    "forecast",
    "vendor",
    "evidence",
    "triage",
    "confidence",
    "deduction",
    "assumption",
];

/// Text of 20 to 200 characters, varying with `seed`.
pub fn summary(seed: u64) -> String {
    let target = 20 + (seed.wrapping_mul(2_654_435_761) % 181) as usize;
    let mut text = String::with_capacity(target + 16);
    let mut k = seed;
    while text.len() < target {
        text.push_str(WORDS[(k % 12) as usize]);
        text.push(' ');
        k = k
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 7;
    }
    text.truncate(target);
    text
}

/// A session of ten realistic steps with a decision every third step: 15 rows.
pub fn realistic(i: u64) -> u64 {
    let input = format!("question {i}: {}", summary(i));
    info_span!("session", profile = "balanced", input = %input).in_scope(|| {
        for k in 0..10u64 {
            info_span!(
                "step",
                module = ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
                input_summary = %summary(i * 10 + k),
                output_summary = %summary(i * 10 + k + 7),
                confidence = 0.55 + (k as f64) / 25.0,
                tokens_used = 120 + k,
            )
            .in_scope(|| {
                if k % 3 == 0 {
                    info!(
                        name: "decision",
                        decision_type = "branch",
                        options_considered = ?["deepen", "stop"],
                        chosen_option = "deepen",
                        rationale = %summary(i + k),
                    );
                }
            });
        }
    });
    15
}

fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// The rows [`realistic`] makes (UUIDv7 ids, UTC timestamps, SHA-256 input hash, the same
/// columns and text), inserted straight into the layer's schema with rusqlite: cached
/// prepared statements, 1,000 rows per transaction. The baseline "direct rusqlite, no
/// full-text index, no chain" of the benches. Returns the rows written.
pub fn direct_realistic(conn: &mut rusqlite::Connection, first: u64, sessions: u64) -> u64 {
    use sha2::Digest;
    let id = || uuid::Uuid::now_v7().hyphenated().to_string();
    let mut tx = conn.transaction().unwrap();
    let mut rows = 0;
    for i in first..first + sessions {
        let session = id();
        let input = format!("question {i}: {}", summary(i));
        let hash: String = sha2::Sha256::digest(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let begun = now_text();
        tx.prepare_cached(
            "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, status, attributes, pid, host)
             VALUES (?1, ?2, ?3, 'balanced', ?4, 'completed', '{}', 1, 'host')",
        )
        .unwrap()
        .execute((&session, &begun, &begun, &hash))
        .unwrap();
        for k in 0..10u64 {
            let step = id();
            let at = now_text();
            tx.prepare_cached(
                "INSERT INTO steps (id, session_id, module, started_at, ended_at, input_summary,
                 output_summary, confidence, tokens_used, attributes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}')",
            )
            .unwrap()
            .execute((
                &step,
                &session,
                ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
                &at,
                &at,
                summary(i * 10 + k),
                summary(i * 10 + k + 7),
                0.55 + (k as f64) / 25.0,
                (120 + k) as i64,
            ))
            .unwrap();
            if k % 3 == 0 {
                tx.prepare_cached(
                    "INSERT INTO decisions (id, step_id, decision_type, options_considered,
                     chosen_option, rationale, decided_at, attributes)
                     VALUES (?1, ?2, 'branch', '[\"deepen\", \"stop\"]', 'deepen', ?3, ?4, '{}')",
                )
                .unwrap()
                .execute((id(), &step, summary(i + k), &at))
                .unwrap();
                rows += 1;
            }
            rows += 1;
        }
        rows += 1;
        if rows % 1_000 < 15 {
            tx.commit().unwrap();
            tx = conn.transaction().unwrap();
        }
    }
    tx.commit().unwrap();
    rows
}

/// One session's rows, made before the clock: what [`direct_prepared`] inserts.
pub struct SessionRows {
    id: String,
    at: String,
    input_hash: String,
    attributes: &'static str,
    steps: Vec<StepRow>,
}

struct StepRow {
    id: String,
    module: &'static str,
    at: String,
    input: Option<String>,
    output: Option<String>,
    confidence: f64,
    tokens: i64,
    attributes: String,
    decision: Option<(String, String)>,
}

/// The rows [`realistic`] makes for sessions `first..first + sessions`, with their ids,
/// times, hashes and texts made now, so that [`direct_prepared`] times SQLite alone.
pub fn prepare_realistic(first: u64, sessions: u64) -> Vec<SessionRows> {
    prepare(first, sessions, |i, k| StepRow {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        module: ["gigathink", "laserlogic", "bedrock", "proofguard"][(k % 4) as usize],
        at: now_text(),
        input: Some(summary(i * 10 + k)),
        output: Some(summary(i * 10 + k + 7)),
        confidence: 0.55 + (k as f64) / 25.0,
        tokens: (120 + k) as i64,
        attributes: "{}".to_owned(),
        decision: (k % 3 == 0).then(|| {
            (
                uuid::Uuid::now_v7().hyphenated().to_string(),
                summary(i + k),
            )
        }),
    })
}

/// The rows [`text_free`] makes, as [`prepare_realistic`] does for realistic ones.
pub fn prepare_text_free(first: u64, sessions: u64) -> Vec<SessionRows> {
    prepare(first, sessions, |i, k| StepRow {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        module: "gigathink",
        at: now_text(),
        input: None,
        output: None,
        confidence: 0.8,
        tokens: k as i64,
        attributes: format!("{{\"n\":{i}}}"),
        decision: None,
    })
}

fn prepare(first: u64, sessions: u64, step: impl Fn(u64, u64) -> StepRow) -> Vec<SessionRows> {
    use sha2::Digest;
    (first..first + sessions)
        .map(|i| {
            let input = format!("question {i}: {}", summary(i));
            SessionRows {
                id: uuid::Uuid::now_v7().hyphenated().to_string(),
                at: now_text(),
                input_hash: sha2::Sha256::digest(input.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                attributes: "{}",
                steps: (0..10).map(|k| step(i, k)).collect(),
            }
        })
        .collect()
}

/// The storage limit: `sessions`' rows, made before the clock, inserted one INSERT per
/// row with cached statements, 1,000 rows per transaction — no chain, no search index,
/// nothing computed. What SQLite itself does with these rows in WAL mode,
/// `synchronous=NORMAL`. Returns the rows written.
pub fn direct_prepared(conn: &mut rusqlite::Connection, sessions: &[SessionRows]) -> u64 {
    direct_prepared_with(conn, sessions, false)
}

/// [`direct_prepared`] and, after each row, its `audit_chain` entry as the writer shapes
/// it (table, row id, two 32-byte hashes, commit time, session), every value made before
/// the clock: what SQLite itself does with the rows and the chain's second row per row.
pub fn direct_prepared_chained(conn: &mut rusqlite::Connection, sessions: &[SessionRows]) -> u64 {
    direct_prepared_with(conn, sessions, true)
}

fn direct_prepared_with(
    conn: &mut rusqlite::Connection,
    sessions: &[SessionRows],
    chained: bool,
) -> u64 {
    let (leaf_hash, chain_hash, committed_at) = ([7u8; 32], [9u8; 32], now_text());
    let mut seq: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM audit_chain", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut tx = conn.transaction().unwrap();
    let mut entry = |tx: &rusqlite::Transaction<'_>, table: &str, id: &str, session: &str| {
        if chained {
            seq += 1;
            tx.prepare_cached(
                "INSERT INTO audit_chain (seq, table_name, row_id, leaf_hash, chain_hash, \
                 committed_at, session_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .unwrap()
            .execute((
                seq,
                table,
                id,
                &leaf_hash[..],
                &chain_hash[..],
                &committed_at,
                session,
            ))
            .unwrap();
        }
    };
    let mut rows = 0u64;
    let mut in_tx = 0u64;
    for session in sessions {
        tx.prepare_cached(
            "INSERT INTO sessions (id, started_at, ended_at, profile, input_hash, status, attributes, pid, host)
             VALUES (?1, ?2, ?2, 'balanced', ?3, 'completed', ?4, 1, 'host')",
        )
        .unwrap()
        .execute((&session.id, &session.at, &session.input_hash, session.attributes))
        .unwrap();
        entry(&tx, "sessions", &session.id, &session.id);
        rows += 1;
        for step in &session.steps {
            tx.prepare_cached(
                "INSERT INTO steps (id, session_id, module, started_at, ended_at, input_summary,
                 output_summary, confidence, tokens_used, attributes)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .unwrap()
            .execute((
                &step.id,
                &session.id,
                step.module,
                &step.at,
                &step.input,
                &step.output,
                step.confidence,
                step.tokens,
                &step.attributes,
            ))
            .unwrap();
            entry(&tx, "steps", &step.id, &session.id);
            rows += 1;
            if let Some((id, rationale)) = &step.decision {
                tx.prepare_cached(
                    "INSERT INTO decisions (id, step_id, decision_type, options_considered,
                     chosen_option, rationale, decided_at, attributes)
                     VALUES (?1, ?2, 'branch', '[\"deepen\", \"stop\"]', 'deepen', ?3, ?4, '{}')",
                )
                .unwrap()
                .execute((id, &step.id, rationale, &step.at))
                .unwrap();
                entry(&tx, "decisions", id, &session.id);
                rows += 1;
            }
        }
        in_tx += 1 + session.steps.len() as u64;
        if in_tx >= 1_000 {
            tx.commit().unwrap();
            tx = conn.transaction().unwrap();
            in_tx = 0;
        }
    }
    tx.commit().unwrap();
    rows
}
