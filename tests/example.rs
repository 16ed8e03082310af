//! The main job: `cargo run --example reasoning` writes a real audit database — to
//! `$REASONKIT_AUDIT_DB`, or to `~/.reasonkit/audit.db` — and says how to look at it.

mod common;

use std::path::Path;
use std::process::Command;

fn run_example(configure: impl FnOnce(&mut Command)) -> String {
    let mut command = Command::new(common::example_binary("reasoning"));
    command.env_remove("REASONKIT_AUDIT_DB");
    configure(&mut command);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check_run(path: &Path, stdout: &str) {
    assert!(
        stdout.contains(&format!("Audit trail written to {}", path.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sqlite3 -header -column '{}'", path.display())),
        "{stdout}"
    );
    let rows = |sql| common::rows(path, sql);
    assert_eq!(
        rows("SELECT profile, status FROM sessions ORDER BY started_at"),
        [
            ["balanced", "completed"],
            ["paranoid", "completed"],
            ["quick", "completed"],
        ]
    );
    let modules = rows("SELECT DISTINCT module FROM steps ORDER BY 1");
    assert_eq!(
        modules,
        [
            ["bedrock"],
            ["gigathink"],
            ["gigathink.expand"],
            ["laserlogic"],
            ["proofguard"]
        ]
    );
    assert_eq!(
        rows("SELECT count(*) FROM steps WHERE error IS NOT NULL")[0][0],
        "1"
    );
    assert_eq!(
        rows("SELECT count(*) FROM steps WHERE parent_step_id IS NOT NULL")[0][0],
        "6"
    );
    assert_eq!(
        rows(
            "SELECT count(*) FROM decisions WHERE rationale IS NOT NULL AND json_valid(options_considered)"
        )[0][0],
        "9"
    );
    assert_eq!(
        rows("SELECT count(DISTINCT confidence) > 5, min(tokens_used) > 0 FROM steps")[0],
        ["1", "1"]
    );
    common::assert_consistent(path);
}

#[test]
fn the_example_writes_to_reasonkit_audit_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let stdout = run_example(|c| {
        c.env("REASONKIT_AUDIT_DB", &path);
    });
    check_run(&path, &stdout);
}

#[cfg(unix)]
#[test]
fn without_configuration_the_example_writes_to_a_private_reasonkit_folder_in_home() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let stdout = run_example(|c| {
        c.env("HOME", home.path());
    });
    let path = home.path().join(".reasonkit").join("audit.db");
    check_run(&path, &stdout);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.path().join(".reasonkit")), 0o700);
    assert_eq!(mode(&path), 0o600);
}
