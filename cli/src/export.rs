//! `export`: sessions as JSON (steps and decisions nested), JSON lines, or one table as CSV.
//!
//! Streams: one session (with its steps and decisions) or one CSV row in memory at a time,
//! so a large database exports in constant memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::output;
use crate::since::Since;
use crate::store;
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

const SESSIONS: &str = "SELECT s.*, ((strftime('%s', s.ended_at) - strftime('%s', s.started_at)) * 1000.0 + (CAST(substr(s.ended_at, 21, 6) AS INTEGER) - CAST(substr(s.started_at, 21, 6) AS INTEGER)) / 1000.0) AS duration_ms
     FROM sessions s WHERE (?1 IS NULL OR s.id = ?1) AND (?2 IS NULL OR s.started_at >= ?2)
     ORDER BY s.started_at, s.rowid";
const STEPS: &str = "SELECT st.*, ((strftime('%s', st.ended_at) - strftime('%s', st.started_at)) * 1000.0 + (CAST(substr(st.ended_at, 21, 6) AS INTEGER) - CAST(substr(st.started_at, 21, 6) AS INTEGER)) / 1000.0) AS duration_ms
     FROM steps st WHERE st.session_id = ?1 ORDER BY st.started_at, st.rowid";
const DECISIONS: &str = "SELECT d.* FROM decisions d JOIN steps st ON st.id = d.step_id
     WHERE st.session_id = ?1 ORDER BY d.decided_at IS NULL, d.decided_at, d.rowid";

/// One session as JSON, its steps (in execution order) and their decisions nested.
pub fn session_json(conn: &Connection, id: &str) -> Result<Value, Failure> {
    let mut session = conn.query_row(SESSIONS, (id, None::<&str>), output::row_object)?;
    nest(conn, &mut session)?;
    Ok(Value::Object(session))
}

fn nest(conn: &Connection, session: &mut Map<String, Value>) -> Result<(), Failure> {
    let id = session
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut decisions: Vec<Map<String, Value>> = conn
        .prepare_cached(DECISIONS)?
        .query_map([&id], output::row_object)?
        .collect::<Result<_, _>>()?;
    let steps: Vec<Value> = conn
        .prepare_cached(STEPS)?
        .query_map([&id], output::row_object)?
        .map(|step| {
            let mut step = step?;
            let step_id = step.get("id").cloned().unwrap_or_default();
            let (mine, rest): (Vec<_>, Vec<_>) = decisions
                .drain(..)
                .partition(|d| d.get("step_id") == Some(&step_id));
            decisions = rest;
            step.insert(
                "decisions".into(),
                Value::Array(mine.into_iter().map(Value::Object).collect()),
            );
            Ok(Value::Object(step))
        })
        .collect::<rusqlite::Result<_>>()?;
    session.insert("steps".into(), Value::Array(steps));
    Ok(())
}

pub fn run(conn: &Connection, args: &Args) -> Result<Outcome, Failure> {
    let session = match &args.session {
        Some(prefix) => match store::resolve_session(conn, prefix)? {
            Some(id) => Some(id),
            None => {
                eprintln!("reasonkit-audit: no session id starts with '{prefix}'");
                return Ok(Outcome::NothingFound);
            }
        },
        None => None,
    };
    let since = args.since.as_ref().map(|s| s.0.clone());
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(match &args.output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    });
    let written = match args.format {
        Format::Json | Format::Jsonl => write_sessions(
            conn,
            &mut out,
            args.format,
            session.as_deref(),
            since.as_deref(),
        )?,
        Format::Csv => write_csv(
            conn,
            &mut out,
            args.table,
            session.as_deref(),
            since.as_deref(),
        )?,
    };
    out.flush()?;
    Ok(if written == 0 {
        Outcome::NothingFound
    } else {
        Outcome::Done
    })
}

fn write_sessions(
    conn: &Connection,
    out: &mut impl Write,
    format: Format,
    session: Option<&str>,
    since: Option<&str>,
) -> Result<u64, Failure> {
    let mut stmt = conn.prepare(SESSIONS)?;
    let mut rows = stmt.query((session, since))?;
    let mut written = 0;
    if format == Format::Json {
        out.write_all(b"[")?;
    }
    while let Some(row) = rows.next()? {
        let mut object = output::row_object(row)?;
        nest(conn, &mut object)?;
        if format == Format::Json {
            out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
        }
        serde_json::to_writer(&mut *out, &Value::Object(object))?;
        if format == Format::Jsonl {
            out.write_all(b"\n")?;
        }
        written += 1;
    }
    if format == Format::Json {
        out.write_all(b"\n]\n")?;
    }
    Ok(written)
}

fn write_csv(
    conn: &Connection,
    out: &mut impl Write,
    table: TableName,
    session: Option<&str>,
    since: Option<&str>,
) -> Result<u64, Failure> {
    let sql = match table {
        TableName::Sessions => {
            "SELECT * FROM sessions s WHERE (?1 IS NULL OR s.id = ?1)
             AND (?2 IS NULL OR s.started_at >= ?2) ORDER BY s.started_at, s.rowid"
        }
        TableName::Steps => {
            "SELECT st.* FROM steps st JOIN sessions s ON s.id = st.session_id
             WHERE (?1 IS NULL OR s.id = ?1) AND (?2 IS NULL OR s.started_at >= ?2)
             ORDER BY s.started_at, st.started_at, st.rowid"
        }
        TableName::Decisions => {
            "SELECT d.* FROM decisions d JOIN steps st ON st.id = d.step_id
             JOIN sessions s ON s.id = st.session_id
             WHERE (?1 IS NULL OR s.id = ?1) AND (?2 IS NULL OR s.started_at >= ?2)
             ORDER BY s.started_at, d.decided_at, d.rowid"
        }
    };
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&columns)?;
    let mut rows = stmt.query((session, since))?;
    let mut written = 0;
    while let Some(row) = rows.next()? {
        let mut record = Vec::with_capacity(columns.len());
        for index in 0..columns.len() {
            record.push(match row.get_ref(index)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(n) => n.to_string(),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
            });
        }
        writer.write_record(&record)?;
        written += 1;
    }
    writer.flush()?;
    Ok(written)
}
