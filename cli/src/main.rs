//! `reasonkit-audit`: query, replay, export and browse a reasonkit audit trail.
//!
//! Opens the same database the layer writes (`--db PATH`, else `$REASONKIT_AUDIT_DB`, else
//! `~/.reasonkit/audit.db`), read-only for every command but `migrate` and `import`, so
//! looking never changes the file. `--db postgres://…` names a shared PostgreSQL store
//! instead; the read commands answer on it as on a file: each is a call to the library's
//! [`Reader`], and this crate only parses arguments and prints.
//!
//! Exit codes: 0 success, 1 nothing found (or, for `verify`, evidence of tampering), 2 bad
//! usage or an unusable database.

mod backup;
mod check;
mod checkpoint;
mod collect;
mod datasette;
mod diff;
mod erase;
mod evidence;
mod export;
mod import;
mod output;
mod prune;
mod report;
mod search;
mod serve;
mod sessions;
mod show;
mod since;
mod stats;
mod ui;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reasonkit_audit::read::Reader;

/// Query, replay, export and browse the reasonkit audit trail.
#[derive(Debug, Parser)]
#[command(name = "reasonkit-audit", version, about, long_about = None)]
struct Cli {
    /// The audit database: a file, or a postgres:// URL [default: $REASONKIT_AUDIT_DB, else ~/.reasonkit/audit.db]
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
    /// Bring the database to this release's schema
    Migrate,
    /// Check integrity, foreign keys and schema version
    Check,
    /// Write a Datasette metadata file: descriptions and the ADR-002 canned queries
    DatasetteMetadata(datasette::Args),
    /// Recompute the tamper-evident chain: exit 0 intact, 1 evidence of tampering, 2 unusable
    Verify(verify::Args),
    /// Print the chain's head as a checkpoint (C2SP signed-note format), to keep elsewhere
    Checkpoint(checkpoint::Args),
    /// Take sessions away as one evidence bundle an auditor verifies offline (`verify
    /// --evidence`): their rows, every chain entry with its proof, a checkpoint
    Evidence(evidence::Args),
    /// Make an Ed25519 key pair for signing checkpoints
    Keygen(checkpoint::KeygenArgs),
    /// Erase a person's data: the content of a session's rows (chained, so verify checks
    /// that nothing else changed)
    Erase(erase::Args),
    /// Delete closed sessions older than a cut (chained, so verify still passes)
    Prune(prune::Args),
    /// Copy the live database to a new file, consistently (never `cp` a live WAL
    /// database), then check the copy's pages and verify its chain
    Backup(backup::Args),
    /// Compare a re-run with the original, step by step: exit 0 when the decisions are the
    /// same, 1 when they diverged
    Diff(diff::Args),
    /// Write one self-contained HTML report of a session (or of every session since a
    /// time): a waterfall of its steps, decisions, errors, and what the chain says
    Report(report::Args),
    /// Copy SQLite audit files into the PostgreSQL store given with --db postgres://…
    /// (each verified first, the store verified after; importing twice adds nothing)
    Import(import::Args),
    /// Browse the trail in a web browser: a local, read-only web app (sessions, a session's
    /// waterfall live while it runs, search, stats, compare, verify)
    Ui(ui::Args),
    /// Receive OpenTelemetry traces (OTLP/HTTP and OTLP/gRPC) from agents in any language
    /// and write them into the trail: a trace is a session, each span a step
    Collect(collect::Args),
    /// Bring a PostgreSQL store's search index up to date (its writers never index, so
    /// that writes never pay for it; `search` reads what is not indexed yet itself). A
    /// SQLite file's writer indexes it
    Index,
}

/// How a command ended, when it did not fail.
pub enum Outcome {
    /// It found or did what was asked: exit 0.
    Done,
    /// It ran, but found nothing: exit 1.
    NothingFound,
    /// It found evidence of tampering: exit 1.
    Evidence,
    /// What it was given cannot be checked as asked, and it said why: exit 2.
    Unusable,
}

/// A failure to report in one line: exit 2.
pub type Failure = Box<dyn std::error::Error>;

/// A file's text, or a one-line failure naming `what` it is and where.
pub fn read(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()).into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_color(cli.color);
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NothingFound | Outcome::Evidence) => ExitCode::from(1),
        Ok(Outcome::Unusable) => ExitCode::from(2),
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
    // `--db postgres://…` (or REASONKIT_AUDIT_DB) names a PostgreSQL store. The read
    // commands take either store through a `Reader`; the others say which they are for.
    let url = path
        .to_str()
        .filter(|p| reasonkit_audit::postgres::is_postgres_url(p))
        .map(str::to_owned);
    let file_only = |what: &str| -> Result<Outcome, Failure> {
        Err(format!("{what} works on SQLite files; a PostgreSQL store has no {what} yet").into())
    };
    match (cli.command, url.as_deref()) {
        (Command::Sessions(args), _) => sessions::run(&Reader::open(&path)?, &args),
        (Command::Show(args), _) => show::run(&path, &args),
        (Command::Stats(args), _) => stats::run(&Reader::open(&path)?, &args),
        (Command::Search(args), _) => search::run(&Reader::open(&path)?, &args),
        (Command::Export(args), _) => export::run(&Reader::open(&path)?, &args),
        (Command::Check, _) => check::run(&Reader::open(&path)?),
        (Command::Path, Some(url)) => {
            println!("{}", reasonkit_audit::postgres::PgTarget::parse(url)?);
            Ok(Outcome::Done)
        }
        (Command::Path, None) => {
            println!("{}", path.display());
            Ok(Outcome::Done)
        }
        (Command::Migrate, Some(url)) => {
            let (before, after) = reasonkit_audit::postgres::migrate(url)?;
            let target = reasonkit_audit::postgres::PgTarget::parse(url)?;
            report_migration(&target.to_string(), before, after)
        }
        (Command::Migrate, None) => {
            let (before, after) = reasonkit_audit::migrate(&path)?;
            report_migration(&path.display().to_string(), before, after)
        }
        (Command::Verify(args), _) if args.evidence.is_some() => verify::run_evidence(&args),
        (Command::Verify(args), Some(url)) => verify::run_postgres(url, &args),
        (Command::Verify(args), None) => verify::run(&path, &args),
        (Command::Import(args), Some(url)) => import::run(url, &args),
        (Command::Import(_), None) => Err("import copies files into a PostgreSQL store: give \
                                           it with --db postgres://…"
            .into()),
        (Command::DatasetteMetadata(_), Some(_)) => file_only("datasette-metadata"),
        (Command::DatasetteMetadata(args), None) => datasette::run(&path, &args),
        (Command::Checkpoint(_), Some(_)) => file_only("checkpoint"),
        (Command::Checkpoint(args), None) => checkpoint::run(&path, &args),
        (Command::Keygen(args), _) => checkpoint::keygen(&args),
        (Command::Evidence(args), url) => evidence::run(&path, url, &args),
        (Command::Backup(_), Some(_)) => Err("backup copies a SQLite file; back up a \
                                              PostgreSQL store with its own tools \
                                              (pg_dump, pg_basebackup)"
            .into()),
        (Command::Backup(args), None) => backup::run(&path, &args),
        (Command::Diff(args), _) => diff::run(&Reader::open(&path)?, &args),
        (Command::Report(args), url) => {
            let reader = Reader::open(&path)?;
            let evidence = match url {
                Some(url) => reasonkit_audit::postgres::verify(url, &Default::default())?,
                None => reasonkit_audit::verify(&path)?,
            };
            report::run(&reader, &args, report::Evidence::of(&evidence))
        }
        (Command::Index, Some(url)) => {
            let entries = reasonkit_audit::postgres::search::catch_up(url)?;
            let target = reasonkit_audit::postgres::PgTarget::parse(url)?;
            println!("{target}: {entries} chain entries indexed for search; the index is current");
            Ok(Outcome::Done)
        }
        (Command::Index, None) => Err("index is for PostgreSQL stores: a SQLite file's writer \
                                       indexes it when idle, and search reads the rest"
            .into()),
        (Command::Ui(args), _) => ui::run(path, &args),
        (Command::Collect(args), url) => collect::run(path.clone(), url, &args),
        (Command::Prune(args), _) => prune::run(&path, &args),
        (Command::Erase(args), _) => erase::run(&path, &args),
    }
}

fn report_migration(store: &str, before: i64, after: i64) -> Result<Outcome, Failure> {
    if before == after {
        println!("{store}: schema version {after}, already current");
    } else {
        println!("{store}: schema version {before} -> {after}");
    }
    Ok(Outcome::Done)
}
