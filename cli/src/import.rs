//! `import FILE… --db postgres://…`: per-user SQLite audit files into the shared
//! PostgreSQL store, each verified before and the store after (see
//! `reasonkit_audit::postgres::import`). Importing a file twice adds nothing.

use std::path::PathBuf;

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQLite audit files to copy into the PostgreSQL store given with --db
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(url: &str, args: &Args) -> Result<Outcome, Failure> {
    for file in &args.files {
        let report = reasonkit_audit::postgres::import(file, url)?;
        println!(
            "{}: added {} sessions, {} steps, {} decisions; {} already in the store, {} \
             without their session or step (source database {}, {} chain entries, verified)",
            file.display(),
            report.sessions,
            report.steps,
            report.decisions,
            report.already_present,
            report.orphans,
            report.source_database_id,
            report.source_entries
        );
    }
    println!("store verified after import: intact");
    Ok(Outcome::Done)
}
