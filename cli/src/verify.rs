//! `verify`: recompute the tamper-evident chain and report what does not agree.
//!
//! Exit 0 when the chain, the rows and every checkpoint given agree; 1 on any evidence of
//! tampering; 2 when the file (or a checkpoint, or a key) cannot be used at all.

use std::path::{Path, PathBuf};

use reasonkit_audit::{Checkpoint, Report, VerifierKey, VerifyOptions};

use crate::{Failure, Outcome, read};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    sources: Sources,
    /// The report as JSON
    #[arg(long)]
    json: bool,
    /// Check this evidence bundle (from `evidence`) instead of a store, offline: exit 0
    /// intact and complete, 1 evidence of tampering or omission, 2 unusable. `--key` and
    /// `--checkpoint` are what you trust: the bundle must be signed by one of the keys and
    /// extend every checkpoint
    #[arg(long, value_name = "BUNDLE")]
    pub evidence: Option<PathBuf>,
}

/// What a verification is held against besides the chain itself: checkpoints kept
/// elsewhere, and the keys that must have signed them (`verify` and `ui` take them).
#[derive(Debug, Clone, clap::Args)]
pub struct Sources {
    /// A checkpoint file (from `checkpoint` or the layer's `.checkpoints(path)`): the chain
    /// must still extend every checkpoint in it. May be given several times
    #[arg(long, value_name = "FILE")]
    checkpoint: Vec<PathBuf>,
    /// A verifier key file (from `keygen`): every checkpoint must carry a valid signature
    /// by one of the keys given. May be given several times
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
}

/// `verify --evidence`: the bundle, not the store.
pub fn run_evidence(args: &Args) -> Result<Outcome, Failure> {
    let options = args.sources.options()?;
    let Some(bundle) = &args.evidence else {
        return Err("no bundle given".into());
    };
    crate::evidence::verify(
        bundle,
        reasonkit_audit::evidence::CheckOptions {
            keys: options.keys,
            checkpoints: options.checkpoints,
        },
        args.json,
    )
}

pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    let options = args.sources.options()?;
    let report = reasonkit_audit::verify_with(path, &options)?;
    show(&report, &options, args)
}

/// `verify` on a PostgreSQL store: the same checks and the same report.
pub fn run_postgres(url: &str, args: &Args) -> Result<Outcome, Failure> {
    let options = args.sources.options()?;
    let report = reasonkit_audit::postgres::verify(url, &options)?;
    show(&report, &options, args)
}

impl Sources {
    /// The options these files give, each file read and parsed.
    pub fn options(&self) -> Result<VerifyOptions, Failure> {
        let args = self;
        let mut options = VerifyOptions::default();
        for file in &args.checkpoint {
            let parsed = Checkpoint::parse_all(&read(file, "checkpoint file")?)
                .map_err(|e| format!("checkpoint file {}: {e}", file.display()))?;
            if parsed.is_empty() {
                return Err(
                    format!("checkpoint file {} holds no checkpoint", file.display()).into(),
                );
            }
            options.checkpoints.extend(parsed);
        }
        for file in &args.key {
            let key = VerifierKey::parse(&read(file, "key file")?)
                .map_err(|e| format!("key file {}: {e}", file.display()))?;
            options.keys.push(key);
        }
        Ok(options)
    }
}

fn show(report: &Report, options: &VerifyOptions, args: &Args) -> Result<Outcome, Failure> {
    if args.json {
        let mut value = serde_json::to_value(report)?;
        value["intact"] = report.is_intact().into();
        crate::output::print_json(&value)?;
    } else {
        print_report(report, options);
    }
    Ok(if report.is_intact() {
        Outcome::Done
    } else {
        Outcome::Evidence
    })
}

fn print_report(report: &Report, options: &VerifyOptions) {
    let short = |id: &str| id.chars().take(12).collect::<String>();
    println!("database     {}", report.path.display());
    println!(
        "database id  {}",
        report.database_id.as_deref().unwrap_or("(missing)")
    );
    println!(
        "chain        {} entries, head {}",
        report.entries,
        hex(&report.head)
    );
    let rows: Vec<String> = report
        .rows
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!("rows         {}", rows.join(", "));
    if report.pruned_rows > 0 || report.erased_rows > 0 {
        println!(
            "lifecycle    {} rows pruned, {} rows erased, each accounted for by a chained event",
            report.pruned_rows, report.erased_rows
        );
    }
    for (seq, kind, detail) in &report.events {
        println!(
            "event        entry {seq}: {kind} {}",
            event_summary(kind, detail)
        );
    }
    if !report.open.is_empty() {
        let listed: Vec<String> = report
            .open
            .iter()
            .take(5)
            .map(|o| format!("{} {}", o.table, short(&o.row_id)))
            .collect();
        println!(
            "open         {} rows of spans still open at their latest entry (not tampering): {}{}",
            report.open.len(),
            listed.join(", "),
            if report.open.len() > 5 { ", …" } else { "" }
        );
    }
    if options.checkpoints.is_empty() {
        println!(
            "checkpoints  none given: a cut tail, a recomputed chain or an older copy put back \
             cannot be detected without one (see `reasonkit-audit checkpoint`)"
        );
    }
    for check in &report.checkpoints {
        println!(
            "checkpoint   size {}{}: {}{}",
            check.size,
            check
                .time
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default(),
            if check.extended {
                "the chain extends it"
            } else {
                "NOT extended"
            },
            if check.signed_by.is_empty() {
                if options.keys.is_empty() {
                    ", signature not checked (no --key)".to_owned()
                } else {
                    String::new()
                }
            } else {
                format!(", signed by {}", check.signed_by.join(", "))
            }
        );
    }
    if report.is_intact() {
        println!("result       intact: every row and every link recomputed, nothing disagrees");
        return;
    }
    println!("findings     {}", report.findings.len());
    for finding in &report.findings {
        // The detail names the entry, the table and the row where there is one.
        println!("  {:<13} {}", finding.kind.as_str(), finding.detail);
    }
    println!(
        "result       TAMPERED: {} finding(s), evidence that the file was changed outside the audit layer",
        report.findings.len()
    );
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An event's detail as printed: a pruning or an erasure by what it says, without the
/// long lists and digests it commits to (those are in `--json`).
fn event_summary(kind: &str, detail: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(detail) else {
        return detail.to_owned();
    };
    match kind {
        "pruned" => format!(
            "{} sessions, {} steps, {} decisions that ended before {} ({}){}",
            value["sessions"],
            value["steps"],
            value["decisions"],
            value["before"].as_str().unwrap_or("?"),
            value["reason"].as_str().unwrap_or(""),
            value["archive"]["sha256"]
                .as_str()
                .map(|h| format!("; archive sha256 {h}"))
                .unwrap_or_default()
        ),
        "erased" => format!(
            "{} rows of {} sessions, by {} ({})",
            value["rows"].as_array().map_or(0, Vec::len),
            value["sessions"],
            value["selector"].as_str().unwrap_or("?"),
            value["reason"].as_str().unwrap_or("")
        ),
        _ => detail.to_owned(),
    }
}
