//! `evidence` and `verify --evidence`: a session taken away as one file, checked offline by
//! both verifiers (ours and the independent `tools/verify_chain.py`), and every tampering the
//! issue names caught with its own finding.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{record_with_layer, run, sqlite3, succeeded, text};
use serde_json::Value;
use tracing::info_span;

/// A trail of three claims; claim-1432 has a failed step, decisions, a real and an integer.
fn write_sessions(db: &Path, ids: &[&str]) {
    record_with_layer(db, || {
        for id in ids {
            info_span!(
                "session",
                id,
                profile = "claims",
                input = "is the water damage covered?"
            )
            .in_scope(|| {
                info_span!(
                    "step",
                    module = "triage",
                    confidence = 0.87,
                    tokens_used = 512_i64,
                    input_summary = "policy 77, photos",
                    output_summary = "water damage"
                )
                .in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "route",
                            chosen_option = "adjuster", rationale = "over the limit");
                });
                let failed = info_span!(
                    "step",
                    module = "lookup",
                    input_summary = "policy 77",
                    error = tracing::field::Empty
                );
                failed.record("error", "ConnectionError: policy service down");
                drop(failed.entered());
                info_span!(
                    "step",
                    module = "answer",
                    confidence = 0.5,
                    output_summary = "covered, up to 2,000"
                )
                .in_scope(|| {
                    tracing::info!(name: "decision", decision_type = "payout",
                            chosen_option = "2000", rationale = "limit of policy 77");
                });
            });
        }
    });
}

struct Trail {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
    /// Checkpoints taken before the last session was written, signed by `ops`.
    before: PathBuf,
}

impl Trail {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn bundle(&self, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let mut args = vec![
            "evidence",
            "--session",
            "claim-1432",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        succeeded(&run(&self.db, &args));
        out
    }
}

fn trail() -> Trail {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let db = path.join("audit.db");
    write_sessions(&db, &["claim-1431", "claim-1432"]);
    for name in ["ops", "other"] {
        let prefix = path.join(name);
        succeeded(&run(
            &db,
            &["keygen", name, "--out", prefix.to_str().unwrap()],
        ));
    }
    let before = path.join("before.checkpoints");
    let key = path.join("ops.key");
    succeeded(&run(
        &db,
        &[
            "checkpoint",
            "--sign",
            key.to_str().unwrap(),
            "--append",
            before.to_str().unwrap(),
        ],
    ));
    write_sessions(&db, &["claim-1433"]);
    Trail {
        _dir: dir,
        dir: path,
        db,
        before,
    }
}

fn verify_bundle(bundle: &Path, extra: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(["verify", "--evidence"])
        .arg(bundle)
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn python_bundle(bundle: &Path, extra: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify_chain.py");
    Command::new("python3")
        .arg(script)
        .arg("--evidence")
        .arg(bundle)
        .args(extra)
        .output()
        .unwrap()
}

/// Both verifiers exit with `code`, and each says `says` (case-insensitively).
fn both(bundle: &Path, extra: &[&str], code: i32, says: &str) {
    for (who, out) in [
        ("reasonkit-audit", verify_bundle(bundle, extra)),
        ("verify_chain.py", python_bundle(bundle, extra)),
    ] {
        assert_eq!(out.status.code(), Some(code), "{who}: {}", text(&out));
        assert!(
            text(&out).to_lowercase().contains(&says.to_lowercase()),
            "{who} should say {says:?}: {}",
            text(&out)
        );
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_sessions_bundle_proves_itself_offline_to_both_verifiers() {
    let t = trail();
    let key = t.path("ops.key");
    t.bundle(
        "b.json",
        &["--sign", arg(&key), "--checkpoint", arg(&t.before)],
    );
    // The store is gone: the auditor has the bundle, a key and a checkpoint, nothing more.
    let away = tempfile::tempdir().unwrap();
    for name in ["b.json", "ops.pub", "before.checkpoints"] {
        std::fs::copy(t.path(name), away.path().join(name)).unwrap();
    }
    drop(t);
    let (bundle, public, before) = (
        away.path().join("b.json"),
        away.path().join("ops.pub"),
        away.path().join("before.checkpoints"),
    );
    assert!(!bundle.with_file_name("audit.db").exists());
    let trusted = ["--key", arg(&public), "--checkpoint", arg(&before)];
    both(&bundle, &trusted, 0, "intact and complete");
    let out = verify_bundle(&bundle, &trusted);
    assert!(text(&out).contains("signed by ops"), "{}", text(&out));

    let json = read_json(&bundle);
    assert_eq!(
        json["manifest"]["scope"],
        serde_json::json!({"sessions": ["claim-1432"]})
    );
    assert_eq!(
        json["manifest"]["counts"],
        serde_json::json!({"sessions": 1, "steps": 3, "decisions": 2, "entries": 6})
    );
    let session = &json["sessions"][0];
    assert_eq!(session["head"]["count"], 6);
    let rows = session["rows"].as_array().unwrap();
    let failed = rows
        .iter()
        .find(|r| r["columns"]["module"] == "lookup")
        .unwrap();
    assert_eq!(
        failed["columns"]["error"],
        "ConnectionError: policy service down"
    );
    let triage = rows
        .iter()
        .find(|r| r["columns"]["module"] == "triage")
        .unwrap();
    assert_eq!(triage["columns"]["confidence"], 0.87);
    assert_eq!(triage["columns"]["tokens_used"], 512);
    // It extends the checkpoint taken before claim-1433 was written, with a real proof.
    assert_eq!(json["extends"].as_array().unwrap().len(), 1);
    assert!(
        !json["extends"][0]["consistency"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Without a key it still checks, and says what it did not check.
    both(&bundle, &[], 0, "no key given");
}

#[test]
fn the_store_still_verifies_against_a_checkpoint_with_tree_heads() {
    let t = trail();
    let public = t.path("ops.pub");
    let out = run(
        &t.db,
        &[
            "verify",
            "--checkpoint",
            arg(&t.before),
            "--key",
            arg(&public),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify_chain.py");
    let python = Command::new("python3")
        .arg(&script)
        .arg(&t.db)
        .args(["--checkpoint", arg(&t.before), "--key", arg(&public)])
        .output()
        .unwrap();
    assert_eq!(python.status.code(), Some(0), "{}", text(&python));
    let checkpoints = std::fs::read_to_string(&t.before).unwrap();
    assert!(checkpoints.contains("\ntree ") && checkpoints.contains("\nsessions 2 "));
    // An entry moved to another session behind the layer's back is caught by `verify`,
    // and so is the checkpoint whose tree heads no longer match.
    sqlite3(
        &t.db,
        "UPDATE audit_chain SET session_id = 'claim-1431' WHERE seq = \
         (SELECT max(seq) FROM audit_chain WHERE table_name = 'steps' AND session_id = 'claim-1432')",
    );
    let python = Command::new("python3")
        .arg(&script)
        .arg(&t.db)
        .args(["--checkpoint", arg(&t.before)])
        .output()
        .unwrap();
    for out in [
        run(&t.db, &["verify", "--checkpoint", arg(&t.before)]),
        python,
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains("the entry's session was changed"), "{said}");
        assert!(
            said.contains("tree heads that are not this chain's"),
            "{said}"
        );
    }
}

/// Applies `change` to a copy of the bundle and checks both verifiers exit 1 saying `says`.
fn tampered(t: &Trail, good: &Path, name: &str, says: &str, change: impl FnOnce(&mut Value)) {
    let mut json = read_json(good);
    change(&mut json);
    let path = t.path(name);
    write_json(&path, &json);
    let public = t.path("ops.pub");
    both(
        &path,
        &["--key", arg(&public), "--checkpoint", arg(&t.before)],
        1,
        says,
    );
}

fn rows(json: &mut Value) -> &mut Vec<Value> {
    json["sessions"][0]["rows"].as_array_mut().unwrap()
}

fn step_id(json: &Value, module: &str) -> String {
    json["sessions"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["columns"]["module"] == module)
        .unwrap()["columns"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn drop_entries_of(json: &mut Value, row_id: &str) {
    json["sessions"][0]["entries"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["row_id"] != row_id);
}

#[test]
fn every_tampering_of_a_bundle_is_caught_by_both_verifiers() {
    let t = trail();
    let key = t.path("ops.key");
    let good = t.bundle(
        "good.json",
        &["--sign", arg(&key), "--checkpoint", arg(&t.before)],
    );
    let public = t.path("ops.pub");
    both(
        &good,
        &["--key", arg(&public), "--checkpoint", arg(&t.before)],
        0,
        "intact",
    );

    tampered(&t, &good, "value.json", "a value was changed", |json| {
        let row = rows(json)
            .iter_mut()
            .find(|r| r["columns"]["module"] == "answer")
            .unwrap();
        row["columns"]["output_summary"] = "not covered".into();
    });
    tampered(&t, &good, "real.json", "a value was changed", |json| {
        let row = rows(json)
            .iter_mut()
            .find(|r| r["columns"]["module"] == "triage")
            .unwrap();
        row["columns"]["confidence"] = 0.97.into();
    });
    // The failed step taken out, row and entries: the session's head counts it.
    tampered(&t, &good, "removed.json", "entries were left out", |json| {
        let id = step_id(json, "lookup");
        rows(json).retain(|r| r["columns"]["id"] != id.as_str());
        drop_entries_of(json, &id);
        json["manifest"]["counts"]["steps"] = 2.into();
        json["manifest"]["counts"]["entries"] = 5.into();
    });
    // Only its row left out: its entry says it was there.
    tampered(
        &t,
        &good,
        "row-left-out.json",
        "is left out of the bundle",
        |json| {
            let id = step_id(json, "lookup");
            rows(json).retain(|r| r["columns"]["id"] != id.as_str());
            json["manifest"]["counts"]["steps"] = 2.into();
        },
    );
    // The exporter hides the failed step and fixes the head's count to match: the head
    // is then not the one the checkpoint committed to.
    tampered(
        &t,
        &good,
        "omitted.json",
        "not in the checkpoint's sessions tree",
        |json| {
            let id = step_id(json, "lookup");
            rows(json).retain(|r| r["columns"]["id"] != id.as_str());
            drop_entries_of(json, &id);
            json["sessions"][0]["head"]["count"] = 5.into();
            json["manifest"]["counts"]["steps"] = 2.into();
            json["manifest"]["counts"]["entries"] = 5.into();
        },
    );
    tampered(&t, &good, "forged.json", "a forged row", |json| {
        let mut forged = rows(json)
            .iter()
            .find(|r| r["columns"]["module"] == "answer")
            .unwrap()
            .clone();
        forged["columns"]["id"] = "0190a6f2-3b4c-7d5e-8f60-000000000099".into();
        forged["columns"]["output_summary"] = "approved by the manager".into();
        rows(json).push(forged);
        json["manifest"]["counts"]["steps"] = 4.into();
    });
    // A forged step with a forged entry: the entry is not in the chain's tree.
    tampered(
        &t,
        &good,
        "forged-entry.json",
        "is not what the chain holds",
        |json| {
            // At the chain's last seq, which is claim-1433's.
            let size: u64 = json["checkpoint"]
                .as_str()
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let mut entry = json["sessions"][0]["entries"][1].clone();
            entry["seq"] = size.into();
            json["sessions"][0]["entries"]
                .as_array_mut()
                .unwrap()
                .push(entry);
            json["manifest"]["counts"]["entries"] = 7.into();
        },
    );
    // claim-1432 relabelled as claim-1431.
    tampered(&t, &good, "relabelled.json", "session claim-1431", |json| {
        let text = serde_json::to_string(json)
            .unwrap()
            .replace("claim-1432", "claim-1431");
        *json = serde_json::from_str(&text).unwrap();
    });
    tampered(&t, &good, "scope.json", "the manifest's scope", |json| {
        json["manifest"]["scope"] = serde_json::json!({"sessions": ["claim-1431"]});
    });
}

#[test]
fn a_checkpoint_or_key_from_elsewhere_is_caught() {
    let t = trail();
    let key = t.path("ops.key");
    let good = t.bundle(
        "good.json",
        &["--sign", arg(&key), "--checkpoint", arg(&t.before)],
    );
    // A checkpoint of another database.
    let other_db = t.path("other.db");
    write_sessions(&other_db, &["claim-1432"]);
    let elsewhere = t.path("elsewhere.checkpoints");
    succeeded(&run(
        &other_db,
        &["checkpoint", "--append", arg(&elsewhere)],
    ));
    both(
        &good,
        &["--checkpoint", arg(&elsewhere)],
        1,
        "of another database",
    );
    // A signature from another key: the bundle signed by `other`, the auditor trusts `ops`.
    let other_key = t.path("other.key");
    let signed_elsewhere = t.bundle("other-signed.json", &["--sign", arg(&other_key)]);
    let public = t.path("ops.pub");
    both(
        &signed_elsewhere,
        &["--key", arg(&public)],
        1,
        "not signed by a key you gave",
    );
    // The checkpoint's text changed after signing (a size made larger).
    let mut json = read_json(&good);
    let forged = json["checkpoint"]
        .as_str()
        .unwrap()
        .replacen("\n", "\n1", 1);
    json["checkpoint"] = forged.into();
    let path = t.path("resized.json");
    write_json(&path, &json);
    both(
        &path,
        &["--key", arg(&public)],
        1,
        "not signed by a key you gave",
    );
}

/// Rewrites the store as a tamperer with the file would: the failed step and its entries
/// deleted, and the whole chain recomputed so that the file alone verifies.
fn rewrite_without_the_failed_step(db: &Path) {
    sqlite3(
        db,
        "DELETE FROM audit_chain WHERE row_id IN (SELECT id FROM steps WHERE module = 'lookup' \
         AND session_id = 'claim-1432'); \
         DELETE FROM steps WHERE module = 'lookup' AND session_id = 'claim-1432';",
    );
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
    let script = "import sqlite3, sys\n\
        sys.path.insert(0, sys.argv[1])\n\
        import verify_chain as v\n\
        c = sqlite3.connect(sys.argv[2])\n\
        (db_id,) = c.execute(\"SELECT value FROM audit_meta WHERE key = 'database_id'\").fetchone()\n\
        prev = v.genesis_hash(db_id)\n\
        rows = c.execute('SELECT seq, leaf_hash FROM audit_chain ORDER BY seq').fetchall()\n\
        c.execute('UPDATE audit_chain SET seq = -seq')\n\
        for n, (old, leaf) in enumerate(rows, 1):\n\
        \x20   prev = v.link_hash(prev, n, leaf)\n\
        \x20   c.execute('UPDATE audit_chain SET seq = ?, chain_hash = ? WHERE seq = ?', (n, prev, -old))\n\
        c.commit()\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&tools)
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_bundle_from_a_store_rewritten_after_a_checkpoint_is_caught() {
    let t = trail();
    rewrite_without_the_failed_step(&t.db);
    // The file alone verifies: the rewrite is complete.
    let out = run(&t.db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Asked to extend the earlier checkpoint, the exporter cannot.
    let key = t.path("ops.key");
    let out = run(
        &t.db,
        &[
            "evidence",
            "--session",
            "claim-1432",
            "-o",
            arg(&t.path("x.json")),
            "--checkpoint",
            arg(&t.before),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("rewritten after it was taken"),
        "{}",
        text(&out)
    );
    // Made without it (and signed: the tamperer holds the key), the auditor holding the
    // checkpoint catches it.
    let bundle = t.bundle("rewritten.json", &["--sign", arg(&key)]);
    let public = t.path("ops.pub");
    let trusted = ["--key", arg(&public), "--checkpoint", arg(&t.before)];
    both(
        &bundle,
        &trusted,
        1,
        "does not prove that it extends your checkpoint",
    );
    // Nor can it borrow the checkpoint with a made-up proof.
    let mut json = read_json(&bundle);
    let before = std::fs::read_to_string(&t.before).unwrap();
    let size = json["checkpoint"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    json["extends"] = serde_json::json!([{
        "checkpoint": before.trim_end().to_owned() + "\n",
        "consistency": [json["sessions"][0]["head"]["proof"][0].clone()],
    }]);
    let path = t.path("borrowed.json");
    write_json(&path, &json);
    both(&path, &trusted, 1, "rewritten after it was taken");
    assert_ne!(size, "0");
}

#[test]
fn a_bundle_that_cannot_be_checked_as_asked_is_unusable() {
    let t = trail();
    let bundle = t.bundle("early.json", &[]);
    // A checkpoint taken after the bundle was made.
    write_sessions(&t.db, &["claim-1434"]);
    let later = t.path("later.checkpoints");
    succeeded(&run(&t.db, &["checkpoint", "--append", arg(&later)]));
    both(
        &bundle,
        &["--checkpoint", arg(&later)],
        2,
        "before your checkpoint",
    );
    // Not a bundle at all.
    let junk = t.path("junk.json");
    std::fs::write(&junk, "{\"evidence\": 3").unwrap();
    for out in [verify_bundle(&junk, &[]), python_bundle(&junk, &[])] {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
    // A session the store does not hold.
    let out = run(
        &t.db,
        &[
            "evidence",
            "--session",
            "claim-9",
            "-o",
            arg(&t.path("n.json")),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no session claim-9"), "{}", text(&out));
}

#[test]
fn a_store_of_the_schema_before_sessions_in_the_chain_is_migrated_and_its_bundles_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_sessions(&db, &["claim-1432"]);
    // The file as schema 7 left it: no session in the chain.
    sqlite3(
        &db,
        "ALTER TABLE audit_chain DROP COLUMN session_id; \
         DELETE FROM schema_migrations WHERE version = 8; PRAGMA user_version = 7;",
    );
    let refused = run(&db, &["evidence", "--session", "claim-1432", "-o", "-"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("migrate"), "{}", text(&refused));
    succeeded(&run(&db, &["migrate"]));
    assert_eq!(
        sqlite3(
            &db,
            "SELECT count(*) FROM audit_chain WHERE table_name IN ('sessions', 'steps', \
             'decisions') AND session_id IS NOT 'claim-1432'"
        ),
        "0"
    );
    let bundle = dir.path().join("b.json");
    succeeded(&run(
        &db,
        &["evidence", "--session", "claim-1432", "-o", arg(&bundle)],
    ));
    both(&bundle, &[], 0, "intact and complete");
    let out = run(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// When a session was first committed to the chain.
fn first_committed(db: &Path, id: &str) -> String {
    sqlite3(
        db,
        &format!("SELECT min(committed_at) FROM audit_chain WHERE session_id = '{id}'"),
    )
}

#[test]
fn a_periods_bundle_holds_every_session_of_it_and_proves_none_is_left_out() {
    let t = trail();
    write_sessions(&t.db, &["claim-1434", "claim-1435"]);
    write_sessions(&t.db, &["claim-1436"]);
    // The period from claim-1433's first commit up to claim-1436's: 1433, 1434, 1435.
    let since = first_committed(&t.db, "claim-1433");
    let until = first_committed(&t.db, "claim-1436");
    let key = t.path("ops.key");
    let good = t.path("q3.json");
    succeeded(&run(
        &t.db,
        &[
            "evidence",
            "--since",
            &since,
            "--until",
            &until,
            "--sign",
            arg(&key),
            "--checkpoint",
            arg(&t.before),
            "-o",
            arg(&good),
        ],
    ));
    let json = read_json(&good);
    assert_eq!(
        json["manifest"]["scope"]["sessions"],
        serde_json::json!(["claim-1433", "claim-1434", "claim-1435"])
    );
    assert_eq!(json["manifest"]["counts"]["steps"], 9);
    assert!(
        json["bounds"]["before"]["session_id"]
            .as_str()
            .unwrap()
            .starts_with("claim-143")
    );
    assert_eq!(json["bounds"]["after"]["session_id"], "claim-1436");
    let public = t.path("ops.pub");
    let trusted = ["--key", arg(&public), "--checkpoint", arg(&t.before)];
    both(&good, &trusted, 0, "intact and complete");

    // A session of the period taken out, with everything that named it.
    tampered(
        &t,
        &good,
        "period-dropped.json",
        "sessions were left out",
        |json| {
            json["sessions"].as_array_mut().unwrap().remove(1);
            json["manifest"]["scope"]["sessions"] = serde_json::json!(["claim-1433", "claim-1435"]);
            json["manifest"]["counts"] =
                serde_json::json!({"sessions": 2, "steps": 6, "decisions": 4, "entries": 12});
        },
    );
    // The neighbour that closes the period removed, as if the period ran to the tree's end.
    tampered(
        &t,
        &good,
        "period-open.json",
        "sessions were left out",
        |json| {
            json["bounds"]["after"] = Value::Null;
        },
    );
    // The neighbour moved inside: a head claimed to be before the period that is not.
    tampered(
        &t,
        &good,
        "period-neighbour.json",
        "before the period",
        |json| {
            json["bounds"]["before"]["head"]["first_committed_at"] = since.clone().into();
        },
    );
    // The period told as longer than it is.
    tampered(
        &t,
        &good,
        "period-widened.json",
        "outside the period",
        |json| {
            json["manifest"]["scope"]["since"] = until.clone().into();
        },
    );

    // An empty period proves it is empty: its two neighbours are adjacent.
    let empty = t.path("empty.json");
    let just_after = first_committed(&t.db, "claim-1436");
    succeeded(&run(
        &t.db,
        &[
            "evidence",
            "--since",
            &since,
            "--until",
            &since,
            "-o",
            arg(&empty),
        ],
    ));
    assert_eq!(read_json(&empty)["sessions"], serde_json::json!([]));
    both(&empty, &[], 0, "intact and complete");
    // Up to the head: the last session is in, and nothing comes after it.
    let tail = t.path("tail.json");
    succeeded(&run(
        &t.db,
        &["evidence", "--since", &just_after, "-o", arg(&tail)],
    ));
    let json = read_json(&tail);
    assert_eq!(
        json["manifest"]["scope"]["sessions"],
        serde_json::json!(["claim-1436"])
    );
    assert!(
        json["bounds"].get("after").is_none_or(Value::is_null),
        "{}",
        json["bounds"]
    );
    both(&tail, &[], 0, "intact and complete");
}

#[test]
fn an_erased_sessions_bundle_proves_its_rows_and_the_erasure() {
    let t = trail();
    succeeded(&run(
        &t.db,
        &[
            "erase",
            "--session",
            "claim-1432",
            "--reason",
            "GDPR request 77",
        ],
    ));
    let bundle = t.bundle("erased.json", &[]);
    let json = read_json(&bundle);
    assert_eq!(json["sessions"][0]["erasures"].as_array().unwrap().len(), 1);
    let text_of = serde_json::to_string(&json).unwrap();
    assert!(
        !text_of.contains("ConnectionError"),
        "erased content is not in the bundle"
    );
    both(&bundle, &[], 0, "intact and complete");
    let out = verify_bundle(&bundle, &[]);
    assert!(
        text(&out).contains("6 row(s) whose content a chained erasure replaced"),
        "{}",
        text(&out)
    );
    let py = python_bundle(&bundle, &[]);
    assert!(text(&py).contains("erased    6 row(s)"), "{}", text(&py));
    // Content put back into an erased row is not the erased row.
    let mut back = json.clone();
    let row = back["sessions"][0]["rows"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["columns"]["module"] == "lookup")
        .unwrap();
    row["columns"]["error"] = "ConnectionError: policy service down".into();
    let path = t.path("put-back.json");
    write_json(&path, &back);
    both(&path, &[], 1, "a value was changed");
    // Without the erasure's event, the tombstones are unexplained.
    let mut hidden = json.clone();
    hidden["sessions"][0]["erasures"] = serde_json::json!([]);
    hidden["manifest"]["counts"]["entries"] =
        (json["manifest"]["counts"]["entries"].as_u64().unwrap() - 1).into();
    let path = t.path("no-event.json");
    write_json(&path, &hidden);
    both(&path, &[], 1, "a value was changed");
}

#[test]
fn a_profiles_bundle_holds_its_sessions_and_proves_the_others_are_of_another() {
    let t = trail();
    record_with_layer(&t.db, || {
        info_span!(
            "session",
            id = "inv-1",
            profile = "billing",
            input = "invoice 99 for ACME"
        )
        .in_scope(|| {
            info_span!(
                "step",
                module = "ledger",
                output_summary = "ACME owes 4,200"
            )
            .in_scope(|| {});
        });
    });
    let bundle = t.path("claims.json");
    succeeds_bundle(&t, &["--profile", "claims", "-o", arg(&bundle)]);
    both(&bundle, &[], 0, "intact and complete");
    let out = verify_bundle(&bundle, &[]);
    assert!(text(&out).contains("of profile claims"), "{}", text(&out));
    let json = read_json(&bundle);
    let whole: Vec<&str> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("other_profile").is_none())
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(whole, ["claim-1431", "claim-1432", "claim-1433"]);
    let other = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "inv-1")
        .unwrap();
    assert_eq!(
        other["other_profile"]["row"]["columns"]["profile"],
        "billing"
    );
    assert_eq!(other["rows"], serde_json::json!([]));
    let file = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        !file.contains("ACME"),
        "another profile's content stays out"
    );

    let inv = |json: &mut Value| -> usize {
        json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .position(|s| s["id"] == "inv-1")
            .unwrap()
    };
    // The other session said to be of the profile, yet withheld; or of yet another
    // profile, which is not what was committed.
    for (name, profile, says) in [
        ("withheld.json", "claims", "yet its rows were withheld"),
        (
            "relabelled-profile.json",
            "quick",
            "is not what was committed",
        ),
    ] {
        tampered(&t, &bundle, name, says, |json| {
            let i = inv(json);
            json["sessions"][i]["other_profile"]["row"]["columns"]["profile"] = profile.into();
        });
    }
    // Left out altogether: the period's sessions are counted.
    tampered(
        &t,
        &bundle,
        "no-other.json",
        "sessions were left out",
        |json| {
            let i = inv(json);
            let entries = json["sessions"][i]["entries"].as_array().unwrap().len() as u64;
            json["sessions"].as_array_mut().unwrap().remove(i);
            let scope = json["manifest"]["scope"]["sessions"]
                .as_array_mut()
                .unwrap();
            scope.retain(|s| s != "inv-1");
            let total = json["manifest"]["counts"]["entries"].as_u64().unwrap();
            json["manifest"]["counts"]["entries"] = (total - entries).into();
        },
    );
}

fn succeeds_bundle(t: &Trail, args: &[&str]) {
    let mut all = vec!["evidence"];
    all.extend_from_slice(args);
    succeeded(&run(&t.db, &all));
}
