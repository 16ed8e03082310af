//! `prune --before AGE`: closed sessions older than the cut go, with their steps and
//! decisions, after a chained `pruned` event that commits to exactly what went; with
//! `--archive FILE.jsonl` they are first written there in the export format, and the
//! file's SHA-256 is recorded in the event.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::since::Since;
use crate::{Failure, Outcome};

/// `prune` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Prune closed sessions that ended before this: 180d, 26w, or a date (2026-06-01)
    #[arg(long, value_name = "AGE|DATE")]
    before: Since,
    /// Print what would go, and change nothing
    #[arg(long)]
    dry_run: bool,
    /// First write the sessions to this new file (JSON lines, as `export --format jsonl`);
    /// its SHA-256 is recorded in the chained pruned event
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// Why, for the record (a retention rule, a ticket)
    #[arg(long, default_value = "prune --before")]
    reason: String,
    /// Give the freed space back to the file system with a full VACUUM afterwards (else it
    /// is reused by later writes); holds the write lock while it runs
    #[arg(long)]
    vacuum: bool,
}

/// Prunes the file, or the PostgreSQL store a postgres:// URL names.
fn prune(
    path: &Path,
    prune: &reasonkit_audit::Prune,
) -> Result<reasonkit_audit::PruneReport, Failure> {
    match path
        .to_str()
        .filter(|p| reasonkit_audit::postgres::is_postgres_url(p))
    {
        Some(url) => Ok(reasonkit_audit::postgres::prune(url, prune)?),
        None => Ok(reasonkit_audit::prune(path, prune)?),
    }
}

pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    let cut = &args.before.0;
    let planned = prune(
        path,
        &reasonkit_audit::Prune::before_text(cut.clone()).dry_run(true),
    )?;
    if args.dry_run {
        println!(
            "would prune {} sessions ({} steps, {} decisions) that ended before {cut}",
            planned.sessions, planned.steps, planned.decisions
        );
        for id in &planned.session_ids {
            println!("  {id}");
        }
        return Ok(Outcome::Done);
    }
    if planned.sessions == 0 {
        println!("nothing ended before {cut}: no session pruned");
        return Ok(Outcome::NothingFound);
    }
    let mut prune = reasonkit_audit::Prune::before_text(cut.clone())
        .reason(args.reason.clone())
        .vacuum(args.vacuum);
    let mut archived = None;
    if let Some(file) = &args.archive {
        let sha256 = write_archive(path, file, &planned.session_ids)?;
        prune = prune
            .only(planned.session_ids.clone())
            .archive(file.display().to_string(), sha256.clone());
        archived = Some((file, sha256));
    }
    let report = self::prune(path, &prune)?;
    println!(
        "pruned {} sessions ({} steps, {} decisions) that ended before {cut}",
        report.sessions, report.steps, report.decisions
    );
    if let Some(seq) = report.event_seq {
        println!("recorded as chain entry {seq} (kind pruned); verify accounts for it");
    }
    if let Some((file, sha256)) = archived {
        println!("archive {} sha256 {sha256}", file.display());
    }
    if report.bytes_before > 0 {
        println!(
            "file {} -> {} bytes",
            report.bytes_before, report.bytes_after
        );
    }
    Ok(Outcome::Done)
}

/// Writes the sessions as JSON lines to a new file; returns its SHA-256, read back.
fn write_archive(db: &Path, file: &Path, ids: &[String]) -> Result<String, Failure> {
    let source = reasonkit_audit::read::Reader::open(db)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| {
            format!(
                "cannot create archive {}: {e} (an archive is never overwritten)",
                file.display()
            )
        })?;
    let mut buffer = std::io::BufWriter::new(&mut out);
    for id in ids {
        let record = source
            .session_record(id)?
            .ok_or_else(|| format!("session {id} is gone"))?;
        serde_json::to_writer(&mut buffer, &record)?;
        buffer.write_all(b"\n")?;
    }
    buffer.flush()?;
    drop(buffer);
    out.sync_all()?;
    let bytes =
        std::fs::read(file).map_err(|e| format!("cannot read back {}: {e}", file.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
