//! `backup DEST`: a consistent copy of a live audit file, checked before it is called good.

use std::path::{Path, PathBuf};

use crate::{Failure, Outcome};

/// `backup` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The new file to write (never overwritten)
    dest: PathBuf,
}

/// Copies the database with SQLite's online backup API while layers may be writing it;
/// prints what the copy holds. Exit 0 when the copy checks out and its chain is intact.
pub fn run(path: &Path, args: &Args) -> Result<Outcome, Failure> {
    let report = reasonkit_audit::backup(path, &args.dest)?;
    println!("backup          {}", report.path.display());
    println!("of              {}", path.display());
    println!("bytes           {}", report.bytes);
    println!("sessions        {}", report.sessions);
    println!("integrity       ok");
    println!(
        "chain           {} entries, {}",
        report.verified.entries,
        if report.verified.is_intact() {
            "intact"
        } else {
            "NOT INTACT (run verify on the copy)"
        }
    );
    Ok(if report.verified.is_intact() {
        Outcome::Done
    } else {
        Outcome::Evidence
    })
}
