//! Every command docs/compliance.md tells an auditor to run, run as written — through `sh`,
//! with `reasonkit-audit` on the PATH and `tools/verify_chain.py` beside the copy — on a
//! backup of a real trail with signed checkpoints: each must succeed, so the page never
//! promises a check that does not work.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, run, succeeded, text};
use tracing::info_span;

/// One run of a claim: a planning step, a payment that failed, a judging step with its
/// decision.
fn record(db: &Path, session: impl FnOnce() -> tracing::Span) {
    common::record_with_layer(db, || {
        let _s = session().entered();
        info_span!("step", module = "planner", tokens_used = 50_i64).in_scope(|| {});
        info_span!(
            "step",
            module = "payments",
            error = "the bank refused the transfer"
        )
        .in_scope(|| {});
        info_span!("step", module = "judge", confidence = 0.9).in_scope(|| {
            tracing::info!(name: "decision", decision_type = "claim", chosen_option = "pay",
                rationale = "covered under section 4.2");
        });
    });
}

/// The lines of the page's `sh` blocks, comments cut.
fn documented_commands(page: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut inside = false;
    for line in page.lines() {
        if line.starts_with("```") {
            inside = line == "```sh";
            continue;
        }
        if inside {
            let command = line.split(" # ").next().unwrap_or(line).trim();
            if !command.is_empty() {
                commands.push(command.to_owned());
            }
        }
    }
    commands
}

#[test]
fn every_command_the_compliance_page_gives_an_auditor_runs_on_a_real_copy() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    record(&live, || {
        info_span!("session", id = "claim-1", input = "claim 881")
    });
    record(&live, || {
        info_span!(
            "session",
            id = "claim-1-rerun",
            input = "claim 881",
            replay_of = "claim-1"
        )
    });
    // Signed checkpoints kept outside the database, and the auditor's copy.
    let keys = dir.path().join("ops");
    succeeded(&run(
        &live,
        &["keygen", "ops", "--out", keys.to_str().unwrap()],
    ));
    let checkpoints = dir.path().join("checkpoints.txt");
    succeeded(&run(
        &live,
        &[
            "checkpoint",
            "--sign",
            dir.path().join("ops.key").to_str().unwrap(),
            "--append",
            checkpoints.to_str().unwrap(),
        ],
    ));
    succeeded(&run(
        &live,
        &["backup", dir.path().join("audit-copy.db").to_str().unwrap()],
    ));

    // `reasonkit-audit` on the PATH and `tools/` beside the copy, as the page assumes.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("reasonkit-audit")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::os::unix::fs::symlink(repo.join("tools"), dir.path().join("tools")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let page = std::fs::read_to_string(repo.join("docs/compliance.md")).unwrap();
    let commands = documented_commands(&page);
    assert!(commands.len() >= 15, "{commands:?}");
    for written in &commands {
        let command = written
            .replace("<original>", "claim-1")
            .replace("<re-run>", "claim-1-rerun")
            .replace("<session>", "claim-1")
            .replace("<id>", "claim-1");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{written}` failed ({:?}):\n{}",
            out.status.code(),
            text(&out)
        );
        if written.contains("verify") {
            let said = text(&out);
            assert!(
                said.contains("checkpoint") && !said.contains("none given"),
                "`{written}` did not check the checkpoint:\n{said}"
            );
        }
    }
    assert!(dir.path().join("s.html").exists(), "the report was written");
}
