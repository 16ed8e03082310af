//! `export`: sessions as JSON (steps and decisions nested), JSON lines, or one table as CSV.
//!
//! The library's [`Reader::export`] writes it (streaming: one session, or one CSV row, in
//! memory at a time); this file parses the arguments and opens the output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use reasonkit_audit::read::{ExportFormat, ExportScope, ExportTable, Reader};

use crate::since::Since;
use crate::{Failure, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableName {
    Sessions,
    Steps,
    Decisions,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// json: an array of sessions with steps and decisions nested; jsonl: one such session
    /// per line; csv: one table (--table)
    #[arg(long, value_enum)]
    format: Format,
    /// Only this session (an id, or enough of its beginning to be unique)
    #[arg(long)]
    session: Option<String>,
    /// Only sessions started since: 30m, 24h, 7d, 2w, or a date
    #[arg(long)]
    since: Option<Since>,
    /// The table to write as CSV
    #[arg(long, value_enum, default_value_t = TableName::Sessions)]
    table: TableName,
    /// Write to this file instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(reader: &Reader, args: &Args) -> Result<Outcome, Failure> {
    let session = match &args.session {
        Some(prefix) => match reader.resolve(prefix)? {
            Some(id) => Some(id),
            None => {
                eprintln!("reasonkit-audit: no session id starts with '{prefix}'");
                return Ok(Outcome::NothingFound);
            }
        },
        None => None,
    };
    let scope = ExportScope {
        session,
        since: args.since.as_ref().map(Since::utc),
    };
    let format = match args.format {
        Format::Json => ExportFormat::Json,
        Format::Jsonl => ExportFormat::JsonLines,
        Format::Csv => ExportFormat::Csv(match args.table {
            TableName::Sessions => ExportTable::Sessions,
            TableName::Steps => ExportTable::Steps,
            TableName::Decisions => ExportTable::Decisions,
        }),
    };
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(match &args.output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    });
    let written = reader.export(format, &scope, &mut out)?;
    out.flush()?;
    Ok(if written == 0 {
        Outcome::NothingFound
    } else {
        Outcome::Done
    })
}
