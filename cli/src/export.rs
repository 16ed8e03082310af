//! `export`: sessions as JSON (steps and decisions nested), JSON lines, or one table as CSV.
//!
//! Streams: one session (with its steps and decisions) or one CSV row in memory at a time,
//! so a large database exports in constant memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::db::{Db, Param, Query};
use crate::output;
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

/// The PostgreSQL tables' columns in the SQLite tables' order, times as the file's text
/// (macros, so that `concat!` can build the queries from them).
macro_rules! session_columns {
    () => {
        concat!(
            "s.id, ",
            crate::utc!("s.started_at"),
            " AS started_at, ",
            crate::utc!("s.ended_at"),
            " AS ended_at, s.profile, s.input_hash, s.status, s.input, \
             s.attributes::text AS attributes, s.pid, s.host"
        )
    };
}
macro_rules! step_columns {
    () => {
        concat!(
            "st.id, st.session_id, st.module, ",
            crate::utc!("st.started_at"),
            " AS started_at, ",
            crate::utc!("st.ended_at"),
            " AS ended_at, st.input_summary, st.output_summary, st.confidence, \
             st.tokens_used, st.error, st.parent_step_id, st.attributes::text AS attributes"
        )
    };
}
macro_rules! decision_columns {
    () => {
        concat!(
            "d.id, d.step_id, d.decision_type, d.options_considered, d.chosen_option, \
             d.rationale, ",
            crate::utc!("d.decided_at"),
            " AS decided_at, d.attributes::text AS attributes"
        )
    };
}

const SESSIONS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT s.*, ",
        crate::sqlite_duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms
     FROM sessions s WHERE (?1 IS NULL OR s.id = ?1) AND (?2 IS NULL OR s.started_at >= ?2)
     ORDER BY s.started_at, s.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        session_columns!(),
        ", ",
        crate::duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms FROM sessions s WHERE ($1::text IS NULL OR s.id = $1) \
         AND ($2::text IS NULL OR s.started_at >= ($2::text || '+00')::timestamptz) \
         ORDER BY s.started_at, s.id"
    ),
};
const STEPS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT st.*, ",
        crate::sqlite_duration_ms!("st.started_at", "st.ended_at"),
        " AS duration_ms
     FROM steps st WHERE st.session_id = ?1 ORDER BY st.started_at, st.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        step_columns!(),
        ", ",
        crate::duration_ms!("st.started_at", "st.ended_at"),
        " AS duration_ms FROM steps st WHERE st.session_id = $1::text ORDER BY st.started_at, st.id"
    ),
};
const DECISIONS: Query<'static> = Query {
    sqlite: "SELECT d.* FROM decisions d JOIN steps st ON st.id = d.step_id
     WHERE st.session_id = ?1 ORDER BY d.decided_at IS NULL, d.decided_at, d.rowid",
    postgres: concat!(
        "SELECT ",
        decision_columns!(),
        " FROM decisions d WHERE d.session_id = $1::text \
         ORDER BY d.decided_at IS NULL, d.decided_at, d.id"
    ),
};

/// One session as JSON, its steps (in execution order) and their decisions nested.
pub fn session_json(db: &Db, id: &str) -> Result<Value, Failure> {
    let params = [Param::Text(Some(id.to_owned())), Param::Text(None)];
    let rows = db.rows(&SESSIONS, &params)?;
    let mut session = rows
        .into_iter()
        .next()
        .ok_or_else(|| format!("session {id} is gone"))?;
    nest(db, &mut session)?;
    Ok(Value::Object(session))
}

fn nest(db: &Db, session: &mut Map<String, Value>) -> Result<(), Failure> {
    let id = session
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let params = [Param::Text(Some(id))];
    let mut decisions = db.rows(&DECISIONS, &params)?;
    let steps = db.rows(&STEPS, &params)?;
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|mut step| {
            let step_id = step.get("id").cloned().unwrap_or_default();
            let (mine, rest): (Vec<_>, Vec<_>) = decisions
                .drain(..)
                .partition(|d| d.get("step_id") == Some(&step_id));
            decisions = rest;
            step.insert(
                "decisions".into(),
                Value::Array(mine.into_iter().map(Value::Object).collect()),
            );
            Value::Object(step)
        })
        .collect();
    session.insert("steps".into(), Value::Array(steps));
    Ok(())
}

pub fn run(db: &Db, args: &Args) -> Result<Outcome, Failure> {
    let session = match &args.session {
        Some(prefix) => match crate::resolve::resolve_session(db, prefix)? {
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
            db,
            &mut out,
            args.format,
            session.as_deref(),
            since.as_deref(),
        )?,
        Format::Csv => write_csv(
            db,
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
    db: &Db,
    out: &mut impl Write,
    format: Format,
    session: Option<&str>,
    since: Option<&str>,
) -> Result<u64, Failure> {
    let mut written = 0;
    if format == Format::Json {
        out.write_all(b"[")?;
    }
    let mut write = |mut object: Map<String, Value>| -> Result<(), Failure> {
        nest(db, &mut object)?;
        if format == Format::Json {
            out.write_all(if written == 0 { b"\n" } else { b",\n" })?;
        }
        serde_json::to_writer(&mut *out, &Value::Object(object))?;
        if format == Format::Jsonl {
            out.write_all(b"\n")?;
        }
        written += 1;
        Ok(())
    };
    match db {
        // A file streams its sessions: an export of a large file holds one in memory.
        Db::Sqlite(conn) => {
            let mut stmt = conn.prepare(SESSIONS.sqlite)?;
            let mut rows = stmt.query((session, since))?;
            while let Some(row) = rows.next()? {
                write(output::row_object(row)?)?;
            }
        }
        Db::Postgres(_) => {
            let params = [
                Param::Text(session.map(str::to_owned)),
                Param::Text(since.map(str::to_owned)),
            ];
            for object in db.rows(&SESSIONS, &params)? {
                write(object)?;
            }
        }
    }
    if format == Format::Json {
        out.write_all(b"\n]\n")?;
    }
    Ok(written)
}

fn write_csv(
    db: &Db,
    out: &mut impl Write,
    table: TableName,
    session: Option<&str>,
    since: Option<&str>,
) -> Result<u64, Failure> {
    match db {
        Db::Sqlite(conn) => write_csv_sqlite(conn, out, table, session, since),
        Db::Postgres(client) => {
            write_csv_postgres(&mut client.borrow_mut(), out, table, session, since)
        }
    }
}

/// The same CSV from PostgreSQL: the SQLite tables' columns in their order, times as the
/// file's text, `attributes` as the compact JSON with sorted keys the writer produces.
fn write_csv_postgres(
    client: &mut reasonkit_audit::postgres::client::Client,
    out: &mut impl Write,
    table: TableName,
    session: Option<&str>,
    since: Option<&str>,
) -> Result<u64, Failure> {
    use reasonkit_audit::postgres::client::types::Type;
    const FILTER: &str = "($1::text IS NULL OR s.id = $1) \
        AND ($2::text IS NULL OR s.started_at >= ($2::text || '+00')::timestamptz)";
    let sql = match table {
        TableName::Sessions => format!(
            "SELECT {} FROM sessions s WHERE {FILTER} ORDER BY s.started_at, s.id",
            session_columns!()
        ),
        TableName::Steps => format!(
            "SELECT {} FROM steps st JOIN sessions s ON s.id = st.session_id WHERE {FILTER} \
             ORDER BY s.started_at, st.started_at, st.id",
            step_columns!()
        ),
        TableName::Decisions => format!(
            "SELECT {} FROM decisions d JOIN sessions s ON s.id = d.session_id \
             WHERE {FILTER} ORDER BY s.started_at, d.decided_at, d.id",
            decision_columns!()
        ),
    };
    let statement = client.prepare(&sql)?;
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&columns)?;
    let mut written = 0;
    for row in client.query(&statement, &[&session, &since])? {
        let mut record = Vec::with_capacity(columns.len());
        for (i, column) in row.columns().iter().enumerate() {
            let kind = column.type_();
            record.push(if *kind == Type::INT8 {
                row.get::<_, Option<i64>>(i)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            } else if *kind == Type::FLOAT8 {
                row.get::<_, Option<f64>>(i)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            } else {
                let text: Option<String> = row.get(i);
                match text {
                    Some(t) if column.name() == "attributes" => canonical_json(&t),
                    other => other.unwrap_or_default(),
                }
            });
        }
        writer.write_record(&record)?;
        written += 1;
    }
    writer.flush()?;
    Ok(written)
}

/// JSON text as the writer writes `attributes`: compact, keys sorted.
fn canonical_json(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map_or_else(|_| text.to_owned(), |v| crate::db::sorted(v).to_string())
}

fn write_csv_sqlite(
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
