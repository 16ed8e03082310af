//! Checkpoints: the anchor outside the file. What the chain alone cannot show — a cut
//! tail, an older copy put back, a chain recomputed from scratch — a checkpoint taken
//! earlier shows; signatures that do not verify are refused; the layer writes its own.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Audit, eventually, run_python_verifier, sqlite3, write_realistic};
use reasonkit_audit::{
    AuditLayer, Checkpoint, Error, FindingKind, SignerKey, VerifyOptions, verify, verify_with,
};

fn checkpoint_of(path: &Path) -> Checkpoint {
    let (id, head) = reasonkit_audit::chain_head(path).unwrap();
    Checkpoint::of_head(&id, &head)
}

fn with(checkpoints: &[&Checkpoint]) -> VerifyOptions {
    VerifyOptions {
        checkpoints: checkpoints.iter().map(|c| (*c).clone()).collect(),
        keys: Vec::new(),
    }
}

fn kinds(report: &reasonkit_audit::Report) -> Vec<FindingKind> {
    report.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn a_checkpoint_catches_a_cut_tail_that_the_chain_alone_cannot() {
    let audit = Audit::new();
    write_realistic(&audit, 4);
    let early = checkpoint_of(&audit.path);
    write_realistic(&audit, 4);
    let late = checkpoint_of(&audit.path);
    assert!(late.size > early.size);
    // Cut the tail consistently: the last entries and the rows only they cover.
    sqlite3(
        &audit.path,
        &format!(
            "PRAGMA foreign_keys = OFF;
             DELETE FROM audit_chain WHERE seq > {};
             DELETE FROM decisions WHERE id NOT IN (SELECT row_id FROM audit_chain WHERE table_name = 'decisions');
             DELETE FROM steps WHERE id NOT IN (SELECT row_id FROM audit_chain WHERE table_name = 'steps');
             DELETE FROM sessions WHERE id NOT IN (SELECT row_id FROM audit_chain WHERE table_name = 'sessions');",
            early.size
        ),
    );
    // Without a checkpoint this cannot be seen: the README says so, and here it is.
    assert!(verify(&audit.path).unwrap().is_intact());
    let report = verify_with(&audit.path, &with(&[&early, &late])).unwrap();
    assert_eq!(kinds(&report), vec![FindingKind::Truncated]);
    assert_eq!(report.findings[0].seq, Some(late.size));
    assert!(report.checkpoints[0].extended && !report.checkpoints[1].extended);
}

#[test]
fn a_checkpoint_catches_an_older_copy_put_back() {
    let audit = Audit::new();
    write_realistic(&audit, 3);
    let older = audit.dir.path().join("older.db");
    sqlite3(&audit.path, &format!("VACUUM INTO '{}'", older.display()));
    write_realistic(&audit, 3);
    let checkpoint = checkpoint_of(&audit.path);
    assert!(verify_with(&older, &with(&[&checkpoint])).is_ok_and(|r| {
        kinds(&r) == vec![FindingKind::Truncated] && !r.checkpoints[0].extended
    }));
    assert!(verify(&older).unwrap().is_intact());
}

#[test]
fn a_checkpoint_catches_a_chain_recomputed_after_an_edit() {
    let audit = Audit::new();
    write_realistic(&audit, 3);
    let checkpoint = checkpoint_of(&audit.path);
    // The attacker changes a confidence, then recomputes that row's leaf and every link
    // after it, with the spec's own code: the chain is consistent again.
    let script = format!(
        r#"
import sqlite3, sys
sys.path.insert(0, {tools:?})
import verify_chain as v
db = sqlite3.connect({db:?})
db.text_factory = bytes
db.execute("UPDATE steps SET confidence = 0.99 WHERE rowid = 3")
row_id = db.execute("SELECT id FROM steps WHERE rowid = 3").fetchone()[0].decode()
cols = v.TABLES["steps"]
values = [v.Text(x) if isinstance(x, bytes) else x
          for x in db.execute("SELECT %s FROM steps WHERE rowid = 3" % ", ".join(cols)).fetchone()]
seq = db.execute("SELECT max(seq) FROM audit_chain WHERE table_name = 'steps' AND row_id = ?", (row_id,)).fetchone()[0]
db.execute("UPDATE audit_chain SET leaf_hash = ? WHERE seq = ?", (v.leaf_hash("steps", values), seq))
previous = db.execute("SELECT chain_hash FROM audit_chain WHERE seq = ?", (seq - 1,)).fetchone()
previous = previous[0] if previous else v.genesis_hash(db.execute("SELECT value FROM audit_meta WHERE key = 'database_id'").fetchone()[0].decode())
for s, leaf in db.execute("SELECT seq, leaf_hash FROM audit_chain WHERE seq >= ? ORDER BY seq", (seq,)).fetchall():
    previous = v.link_hash(previous, s, leaf)
    db.execute("UPDATE audit_chain SET chain_hash = ? WHERE seq = ?", (previous, s))
db.commit()
"#,
        tools = common::python_verifier().parent().unwrap(),
        db = audit.path,
    );
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        verify(&audit.path).unwrap().is_intact(),
        "a full recompute is invisible without a checkpoint"
    );
    let report = verify_with(&audit.path, &with(&[&checkpoint])).unwrap();
    assert_eq!(kinds(&report), vec![FindingKind::Forked]);
}

#[test]
fn a_signed_checkpoint_verifies_with_its_key_and_is_refused_with_another_or_altered() {
    let audit = Audit::new();
    write_realistic(&audit, 2);
    let ours = SignerKey::generate("ops.example").unwrap();
    let theirs = SignerKey::generate("ops.example").unwrap();
    let signed = checkpoint_of(&audit.path).signed(&ours);
    let options =
        |keys: Vec<reasonkit_audit::VerifierKey>, checkpoint: &Checkpoint| VerifyOptions {
            checkpoints: vec![checkpoint.clone()],
            keys,
        };
    let report = verify_with(&audit.path, &options(vec![ours.verifier()], &signed)).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.checkpoints[0].signed_by, vec!["ops.example"]);

    // Another key of the same name: its key id differs, so it finds no signature of its own.
    let wrong_key = verify_with(&audit.path, &options(vec![theirs.verifier()], &signed));
    assert!(
        matches!(&wrong_key, Err(Error::Checkpoint { message }) if message.contains("not signed by")),
        "{wrong_key:?}"
    );
    // A signature line copied onto another checkpoint, or a checkpoint edited after
    // signing: the signature does not verify.
    let mut altered = signed.clone();
    altered.size -= 1;
    let result = verify_with(&audit.path, &options(vec![ours.verifier()], &altered));
    assert!(
        matches!(&result, Err(Error::Checkpoint { message }) if message.contains("does not verify")),
        "{result:?}"
    );
    let unsigned = checkpoint_of(&audit.path);
    assert!(matches!(
        verify_with(&audit.path, &options(vec![ours.verifier()], &unsigned)),
        Err(Error::Checkpoint { message }) if message.contains("not signed")
    ));
    let other_db = Checkpoint::new("0000", signed.size, signed.hash, None);
    assert!(matches!(
        verify_with(&audit.path, &with(&[&other_db])),
        Err(Error::Checkpoint { message }) if message.contains("not this database")
    ));
}

#[test]
fn the_layer_writes_signed_checkpoints_at_start_every_n_entries_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.checkpoints");
    let key = SignerKey::generate("host-a").unwrap();
    let audit = Audit::with(|b| {
        b.checkpoints(&file)
            .checkpoint_every(200)
            .checkpoint_key(key.clone())
    });
    write_realistic(&audit, 30);
    let path = audit.path.clone();
    audit.guard.shutdown().unwrap();
    let written = Checkpoint::parse_all(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let entries = verify(&path).unwrap().entries;
    assert_eq!(written.first().map(|c| c.size), Some(0), "one at start");
    assert_eq!(
        written.last().map(|c| c.size),
        Some(entries),
        "one at shutdown"
    );
    // At start, at shutdown, and at least one in between (a checkpoint follows the first
    // commit after 200 new entries; a commit may bring many more at once).
    assert!(written.len() >= 3, "{} for {entries}", written.len());
    assert!(written.windows(2).all(|w| w[0].size <= w[1].size));
    assert!(written.iter().all(|c| c.time().is_some()));
    let report = verify_with(
        &path,
        &VerifyOptions {
            checkpoints: written.clone(),
            keys: vec![key.verifier()],
        },
    )
    .unwrap();
    assert!(report.is_intact(), "{:?}", report.findings);
    assert!(
        report
            .checkpoints
            .iter()
            .all(|c| c.extended && c.signed_by == ["host-a"])
    );

    // The independent verifier checks the same file, signatures included.
    let key_file = dir.path().join("host-a.pub");
    std::fs::write(&key_file, key.verifier().to_string()).unwrap();
    let args = [
        "--checkpoint",
        file.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
    ];
    let (code, out) = run_python_verifier(&path, &args);
    assert_eq!(code, 0, "{out}");
    // ... and finds the cut tail the Rust verifier finds.
    sqlite3(
        &path,
        "DELETE FROM audit_chain WHERE seq = (SELECT max(seq) FROM audit_chain)",
    );
    let (code, out) = run_python_verifier(&path, &args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated"), "{out}");
}

#[test]
fn the_layer_writes_checkpoints_when_idle_so_a_gap_is_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idle.checkpoints");
    let audit = Audit::with(|b| {
        b.checkpoints(&file)
            .checkpoint_interval(Duration::from_millis(20))
            .flush_interval(Duration::from_millis(10))
    });
    let count = || {
        std::fs::read_to_string(&file)
            .map(|t| Checkpoint::parse_all(&t).unwrap().len())
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(20), || count() >= 3),
        "no idle checkpoints"
    );
    let written = Checkpoint::parse_all(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(written.iter().all(|c| c.size == 0));
    let times: Vec<&str> = written.iter().map(|c| c.time().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    drop(audit);
}

#[test]
fn a_checkpoint_file_that_cannot_be_opened_fails_the_build_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = AuditLayer::builder()
        .path(dir.path().join("audit.db"))
        .checkpoints(dir.path().join("missing-dir/cp"))
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::CheckpointFile { .. }), "{error}");
    assert!(error.to_string().contains("missing-dir/cp"), "{error}");
}
