//! `backup`: a consistent copy of a file another process is writing hard.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

mod common;

#[test]
fn a_backup_during_heavy_writing_from_another_process_is_whole_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let mut writer = common::child("heavy", &db, 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut acknowledged = 0_u64;
    let mut next = || -> u64 {
        let line = lines.next().expect("writer ended early").unwrap();
        line.strip_prefix("committed ").unwrap().parse().unwrap()
    };
    while acknowledged < 200 {
        acknowledged = next();
    }
    // Everything acknowledged before the backup began must be in the copy.
    let copy = dir.path().join("backup").join("copy.db");
    let report = reasonkit_audit::backup(&db, &copy).unwrap();
    // The writer went on while the copy was made.
    let after = next();
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert!(after > acknowledged);

    assert!(
        report.verified.is_intact(),
        "{:?}",
        report.verified.findings
    );
    assert_eq!(
        common::sqlite3(&copy, "PRAGMA integrity_check;").trim(),
        "ok"
    );
    common::assert_chain_intact(&copy);
    let ids: Vec<String> = (0..acknowledged).map(|i| format!("'s{i:07}'")).collect();
    let present = common::sqlite3(
        &copy,
        &format!(
            "SELECT count(*) FROM sessions WHERE status = 'completed' AND id IN ({});",
            ids.join(",")
        ),
    );
    assert_eq!(present.trim(), acknowledged.to_string());
    assert!(report.sessions >= acknowledged);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy is as private as the original");
    }
    // A backup never overwrites.
    let again = reasonkit_audit::backup(&db, &copy).unwrap_err().to_string();
    assert!(
        again.contains("exists") && again.contains("copy.db"),
        "{again}"
    );
}
