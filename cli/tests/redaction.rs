//! Secrets written through real spans never reach the file, its WAL, or an export.
//!
//! One database gets a secret of every default rule — by field name, inside text, inside a
//! `Debug`-formatted `#[instrument]` argument — and then the raw bytes of the database and
//! its `-wal` (while the layer is open, before any checkpoint folds it in), and the JSON
//! and CSV exports of the real `reasonkit-audit` binary, are searched for each of them.

mod common;

use std::path::Path;
use std::process::Command;

use sha2::Digest;
use tracing::info_span;
use tracing_subscriber::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_reasonkit-audit");

/// Each secret, and the rule that must have removed it.
const SECRETS: [(&str, &str); 10] = [
    (
        "sk-proj-Q7x2LmN9pR4sT6vW8yZ0aB1cD3eF",
        "provider_key (session input)",
    ),
    (
        "sk-ant-api03-Zz9Yy8Xx7Ww6Vv5Uu4Tt3",
        "anthropic_key (input_summary)",
    ),
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key (output_summary)"),
    ("abcDEF123ghiJKL456mno", "bearer_token (error)"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLWJ5dGVz",
        "jwt (rationale)",
    ),
    ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "private_key (options)"),
    ("hunter2-correct-horse", "password field by name"),
    ("tok_live_5f6e7d8c9b0a", "user_token field by name"),
    ("instrumented-arg-key-77", "api_key #[instrument] argument"),
    ("debug-struct-pass-88", "password inside a Debug struct"),
];

#[derive(Debug)]
#[allow(dead_code)]
struct ProviderConfig {
    endpoint: String,
    password: String,
}

#[tracing::instrument(name = "step", fields(module = "toolcall"), skip(prompt))]
fn call_provider(prompt: &str, api_key: &str, config: &ProviderConfig) -> usize {
    prompt.len()
}

fn write_secrets(path: &Path, input: &str) -> reasonkit_audit::AuditGuard {
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(path)
        .store_inputs(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("session", id = "secretive", input = input).in_scope(|| {
            info_span!(
                "step",
                module = "gigathink",
                tokens_used = 321_u64,
                input_summary = "asked with sk-ant-api03-Zz9Yy8Xx7Ww6Vv5Uu4Tt3 in the prompt",
                output_summary = "used AKIAIOSFODNN7EXAMPLE to list the bucket",
                error = "401 for Authorization: Bearer abcDEF123ghiJKL456mno",
                password = "hunter2-correct-horse",
                user_token = "tok_live_5f6e7d8c9b0a",
            )
            .in_scope(|| {
                tracing::info!(
                    name: "decision",
                    decision_type = "tool",
                    options_considered = "[\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\"]",
                    chosen_option = "retry",
                    rationale = "the token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLWJ5dGVz expired",
                );
            });
            call_provider(
                "a prompt",
                "instrumented-arg-key-77",
                &ProviderConfig {
                    endpoint: "https://api.example".into(),
                    password: "debug-struct-pass-88".into(),
                },
            );
        });
    });
    guard
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for (secret, rule) in SECRETS {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{rule}: {secret} found in {what}"
        );
    }
}

fn export(db: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(BIN)
        .arg("export")
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    common::succeeded(&out);
    assert!(!out.stdout.is_empty());
    out.stdout
}

#[test]
fn no_secret_of_any_default_rule_reaches_the_file_its_wal_or_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let input = "Summarise the account; the key is sk-proj-Q7x2LmN9pR4sT6vW8yZ0aB1cD3eF";
    let guard = write_secrets(&db, input);
    guard.flush().unwrap();
    let wal = dir.path().join("audit.db-wal");
    let wal_bytes = std::fs::read(&wal).unwrap();
    assert!(!wal_bytes.is_empty(), "the records are in the WAL");
    assert_no_secret("the -wal file", &wal_bytes);
    assert_no_secret("the database file", &std::fs::read(&db).unwrap());
    let stats = guard.stats();
    guard.shutdown().unwrap();
    assert_no_secret("the database file", &std::fs::read(&db).unwrap());
    if let Ok(bytes) = std::fs::read(&wal) {
        assert_no_secret("the -wal file after shutdown", &bytes);
    }
    assert_no_secret("the JSON export", &export(&db, &["--format", "json"]));
    for table in ["sessions", "steps", "decisions"] {
        let csv = export(&db, &["--format", "csv", "--table", table]);
        assert_no_secret(&format!("the CSV export of {table}"), &csv);
    }

    // Every secret was counted, and the trail says so.
    assert!(
        stats.redactions >= SECRETS.len() as u64,
        "{} redactions",
        stats.redactions
    );
    let conn = reasonkit_audit::open_read_only(&db).unwrap();
    let recorded: i64 = conn
        .query_row(
            "SELECT coalesce(sum(count), 0) FROM audit_health WHERE kind = 'redactions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded as u64, stats.redactions);

    // The input hash is of the real input; the stored input is the redacted one.
    let (hash, stored): (String, String) = conn
        .query_row(
            "SELECT input_hash, input FROM sessions WHERE id = 'secretive'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let real: String = sha2::Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, real);
    assert_eq!(
        stored,
        "Summarise the account; the key is [REDACTED:provider_key]"
    );
    // What is not secret is kept: counts, names, the parts of the text around a secret.
    let (tokens, summary, attributes): (i64, String, String) = conn
        .query_row(
            "SELECT tokens_used, input_summary, attributes FROM steps WHERE module = 'gigathink'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(tokens, 321);
    assert_eq!(summary, "asked with [REDACTED:anthropic_key] in the prompt");
    let attributes: serde_json::Value = serde_json::from_str(&attributes).unwrap();
    assert_eq!(attributes["password"], "[REDACTED:password]");
    assert_eq!(attributes["user_token"], "[REDACTED:token]");
    let config: String = conn
        .query_row(
            "SELECT json_extract(attributes, '$.config') FROM steps WHERE module = 'toolcall'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        config.contains("endpoint: \"https://api.example\"")
            && config.contains("password: \"[REDACTED:password]\""),
        "{config}"
    );
    drop(conn);

    // The chain covers the redacted rows: verify is clean.
    let out = Command::new(BIN)
        .args(["verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn with_redaction_off_values_are_written_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&db)
        .redaction(reasonkit_audit::Redaction::none())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("step", module = "m", password = "kept-as-is").in_scope(|| {});
    });
    assert_eq!(guard.stats().redactions, 0);
    guard.shutdown().unwrap();
    let conn = reasonkit_audit::open_read_only(&db).unwrap();
    let attributes: String = conn
        .query_row("SELECT attributes FROM steps", [], |r| r.get(0))
        .unwrap();
    assert!(attributes.contains("kept-as-is"), "{attributes}");
}
