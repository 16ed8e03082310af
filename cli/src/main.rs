//! `reasonkit-audit`: query, replay, export and browse a reasonkit audit trail.
//!
//! Opens the same database the layer writes (`--db PATH`, else `$REASONKIT_AUDIT_DB`, else
//! `~/.reasonkit/audit.db`), read-only for every command but `migrate`, so looking never
//! changes the file.
//!
//! Exit codes: 0 success, 1 nothing found (or, for `verify`, evidence of tampering), 2 bad
//! usage or an unusable database.

mod checkpoint;
mod datasette;
mod export;
mod import;
mod output;
mod search;
mod sessions;
mod show;
mod since;
mod stats;
mod store;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Query, replay, export and browse the reasonkit audit trail.
#[derive(Debug, Parser)]
#[command(name = "reasonkit-audit", version, about, long_about = None)]
struct Cli {
    /// The audit database [default: $REASONKIT_AUDIT_DB, else ~/.reasonkit/audit.db]
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,

    /// Colour: auto (only on a terminal), always, never
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    color: output::ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List sessions, newest first
    Sessions(sessions::Args),
    /// Replay one session: its steps as a tree, with decisions, durations, confidence, errors
    Show(show::Args),
    /// Per-module statistics: uses, confidence, duration, failure rate, tokens
    Stats(stats::Args),
    /// Full-text search over step summaries, errors and decision rationales
    Search(search::Args),
    /// Export sessions as JSON, JSON lines, or one table as CSV
    Export(export::Args),
    /// Print the database path in use
    Path,
    /// Bring the database to this release's schema (the only command that writes)
    Migrate,
    /// Check integrity, foreign keys and schema version
    Check,
    /// Write a Datasette metadata file: descriptions and the ADR-002 canned queries
    DatasetteMetadata(datasette::Args),
    /// Recompute the tamper-evident chain: exit 0 intact, 1 evidence of tampering, 2 unusable
    Verify(verify::Args),
    /// Print the chain's head as a checkpoint (C2SP signed-note format), to keep elsewhere
    Checkpoint(checkpoint::Args),
    /// Make an Ed25519 key pair for signing checkpoints
    Keygen(checkpoint::KeygenArgs),
    /// Copy SQLite audit files into the PostgreSQL store given with --db postgres://…
    /// (each verified first, the store verified after; importing twice adds nothing)
    Import(import::Args),
}

/// How a command ended, when it did not fail.
pub enum Outcome {
    /// It found or did what was asked: exit 0.
    Done,
    /// It ran, but found nothing: exit 1.
    NothingFound,
    /// It found evidence of tampering: exit 1.
    Evidence,
}

/// A failure to report in one line: exit 2.
pub type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_color(cli.color);
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NothingFound | Outcome::Evidence) => ExitCode::from(1),
        Err(error) => {
            eprintln!("reasonkit-audit: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<Outcome, Failure> {
    let path = match cli.db {
        Some(path) => path,
        None => reasonkit_audit::default_path()?,
    };
    if let Some(url) = path
        .to_str()
        .filter(|p| reasonkit_audit::postgres::is_postgres_url(p))
    {
        return run_postgres(url, cli.command);
    }
    match cli.command {
        Command::Sessions(args) => sessions::run(&store::open(&path)?, &args),
        Command::Show(args) => show::run(&store::open(&path)?, &args),
        Command::Stats(args) => stats::run(&store::open(&path)?, &args),
        Command::Search(args) => search::run(&store::open(&path)?, &args),
        Command::Export(args) => export::run(&store::open(&path)?, &args),
        Command::Path => {
            println!("{}", path.display());
            Ok(Outcome::Done)
        }
        Command::Migrate => {
            let (before, after) = reasonkit_audit::migrate(&path)?;
            if before == after {
                println!(
                    "{}: schema version {after}, already current",
                    path.display()
                );
            } else {
                println!("{}: schema version {before} -> {after}", path.display());
            }
            Ok(Outcome::Done)
        }
        Command::Check => store::check(&path),
        Command::DatasetteMetadata(args) => datasette::run(&path, &args),
        Command::Verify(args) => verify::run(&path, &args),
        Command::Checkpoint(args) => checkpoint::run(&path, &args),
        Command::Keygen(args) => checkpoint::keygen(&args),
        Command::Import(_) => Err("import copies files into a PostgreSQL store: give it with \
                                   --db postgres://…"
            .into()),
    }
}

/// A command on a PostgreSQL store: `verify`, `import`, `migrate` and `path` so far.
fn run_postgres(url: &str, command: Command) -> Result<Outcome, Failure> {
    match command {
        Command::Verify(args) => verify::run_postgres(url, &args),
        Command::Import(args) => import::run(url, &args),
        Command::Migrate => {
            let (before, after) = reasonkit_audit::postgres::migrate(url)?;
            let target = reasonkit_audit::postgres::PgTarget::parse(url)?;
            if before == after {
                println!("{target}: schema version {after}, already current");
            } else {
                println!("{target}: schema version {before} -> {after}");
            }
            Ok(Outcome::Done)
        }
        Command::Path => {
            println!("{}", reasonkit_audit::postgres::PgTarget::parse(url)?);
            Ok(Outcome::Done)
        }
        _ => Err(
            "this command does not read PostgreSQL stores yet (verify, import, migrate \
                  and path do); query the tables with psql meanwhile"
                .into(),
        ),
    }
}
