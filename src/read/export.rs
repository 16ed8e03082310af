//! The trail written out for other tools: sessions as JSON with their steps and decisions
//! nested, as JSON lines, or one table as CSV — [`Reader::export`], the `export` command.
//!
//! Every column of the tables is written, named as in the SQLite file, times as its UTC
//! text, `attributes` as compact JSON with sorted keys, whichever store it comes from; the
//! JSON forms add each session's and step's `duration_ms`. An export streams: from a file,
//! one session (with its steps and decisions) or one CSV row is in memory at a time, so a
//! large store exports in constant memory.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::reader::{
    JsonColumns, Param, Query, Reader, Row, Store, pg_duration_ms, pg_utc, sqlite_duration_ms, text,
};
use crate::error::Result;

/// What [`Reader::export`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array of sessions, each with its steps (in execution order) and their
    /// decisions nested.
    Json,
    /// The same sessions, one JSON object per line.
    JsonLines,
    /// One table as CSV, a header row first.
    Csv(ExportTable),
}

/// The table a CSV export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportTable {
    /// `sessions`.
    Sessions,
    /// `steps`, of the sessions selected.
    Steps,
    /// `decisions`, of the sessions selected.
    Decisions,
}

/// Which sessions an export covers; the default covers them all, oldest first.
#[derive(Clone, Debug, Default)]
pub struct ExportScope {
    /// Only the session with this id (whole: see [`Reader::resolve`] for a beginning).
    pub session: Option<String>,
    /// Only sessions started at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// A session as an export writes it: every column of its row and `duration_ms`, then
/// `steps`, each with every column, `duration_ms` and `decisions`. Serialize it (with
/// `serde_json`) to get the same object `export --format json` writes for the session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    row: Row,
    steps: Vec<StepRecord>,
}

#[derive(Clone, Debug, PartialEq)]
struct StepRecord {
    row: Row,
    decisions: Vec<Row>,
}

/// A row's columns, then one more entry holding its children.
fn serialize_with<S: serde::Serializer, C: Serialize>(
    row: &Row,
    key: &str,
    children: &[C],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let columns = row.names().count();
    let mut map = serializer.serialize_map(Some(columns + 1))?;
    for (name, value) in row.names().zip(row.values()) {
        map.serialize_entry(name, value)?;
    }
    map.serialize_entry(key, children)?;
    map.end()
}

impl Serialize for SessionRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_with(&self.row, "steps", &self.steps, s)
    }
}

impl Serialize for StepRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_with(&self.row, "decisions", &self.decisions, s)
    }
}

impl SessionRecord {
    /// The session's id.
    pub fn id(&self) -> &str {
        self.row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// How many steps it holds.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
}

/// The PostgreSQL tables' columns in the SQLite tables' order, times as the file's text
/// (macros, so that `concat!` can build the queries from them).
macro_rules! session_columns {
    () => {
        concat!(
            "s.id, ",
            pg_utc!("s.started_at"),
            " AS started_at, ",
            pg_utc!("s.ended_at"),
            " AS ended_at, s.profile, s.input_hash, s.status, s.input, \
             s.attributes::text AS attributes, s.pid, s.host"
        )
    };
}
macro_rules! step_columns {
    () => {
        concat!(
            "st.id, st.session_id, st.module, ",
            pg_utc!("st.started_at"),
            " AS started_at, ",
            pg_utc!("st.ended_at"),
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
            pg_utc!("d.decided_at"),
            " AS decided_at, d.attributes::text AS attributes"
        )
    };
}

/// The scope's conditions on `sessions s`: parameters 1 (an id) and 2 (since).
macro_rules! sqlite_scope {
    () => {
        "(?1 IS NULL OR s.id = ?1) AND (?2 IS NULL OR s.started_at >= ?2)"
    };
}
macro_rules! pg_scope {
    () => {
        "($1::text IS NULL OR s.id = $1) \
         AND ($2::text IS NULL OR s.started_at >= ($2::text || '+00')::timestamptz)"
    };
}

const SESSIONS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT s.*, ",
        sqlite_duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms FROM sessions s WHERE ",
        sqlite_scope!(),
        " ORDER BY s.started_at, s.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        session_columns!(),
        ", ",
        pg_duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms FROM sessions s WHERE ",
        pg_scope!(),
        " ORDER BY s.started_at, s.id"
    ),
};

const STEPS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT st.*, ",
        sqlite_duration_ms!("st.started_at", "st.ended_at"),
        " AS duration_ms FROM steps st WHERE st.session_id = ?1 \
         ORDER BY st.started_at, st.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        step_columns!(),
        ", ",
        pg_duration_ms!("st.started_at", "st.ended_at"),
        " AS duration_ms FROM steps st WHERE st.session_id = $1::text \
         ORDER BY st.started_at, st.id"
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

const CSV_SESSIONS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT s.* FROM sessions s WHERE ",
        sqlite_scope!(),
        " ORDER BY s.started_at, s.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions s WHERE ",
        pg_scope!(),
        " ORDER BY s.started_at, s.id"
    ),
};

const CSV_STEPS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT st.* FROM steps st JOIN sessions s ON s.id = st.session_id WHERE ",
        sqlite_scope!(),
        " ORDER BY s.started_at, st.started_at, st.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        step_columns!(),
        " FROM steps st JOIN sessions s ON s.id = st.session_id WHERE ",
        pg_scope!(),
        " ORDER BY s.started_at, st.started_at, st.id"
    ),
};

const CSV_DECISIONS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT d.* FROM decisions d JOIN steps st ON st.id = d.step_id \
         JOIN sessions s ON s.id = st.session_id WHERE ",
        sqlite_scope!(),
        " ORDER BY s.started_at, d.decided_at, d.rowid"
    ),
    postgres: concat!(
        "SELECT ",
        decision_columns!(),
        " FROM decisions d JOIN sessions s ON s.id = d.session_id WHERE ",
        pg_scope!(),
        " ORDER BY s.started_at, d.decided_at, d.id"
    ),
};

impl Reader {
    /// Writes the sessions `scope` selects to `out` as `format` says; returns how many
    /// sessions (JSON) or rows (CSV) it wrote. `out` is not flushed: wrap a file in a
    /// `BufWriter` and flush it after.
    ///
    /// ```
    /// # use tracing_subscriber::prelude::*;
    /// use reasonkit_audit::read::{ExportFormat, ExportScope, ExportTable, Reader};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("audit.db");
    /// # let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
    /// # tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
    /// #     let _s = tracing::info_span!("session", id = "run-1").entered();
    /// #     let _a = tracing::info_span!("step", module = "gigathink").entered();
    /// # });
    /// # guard.flush()?;
    /// let reader = Reader::open(&path)?;
    /// let mut lines = Vec::new();
    /// let written = reader.export(ExportFormat::JsonLines, &ExportScope::default(), &mut lines)?;
    /// assert_eq!(written, 1);
    /// let session: serde_json::Value = serde_json::from_slice(&lines)?;
    /// assert_eq!(session["steps"][0]["module"], "gigathink");
    ///
    /// let mut csv = Vec::new();
    /// reader.export(ExportFormat::Csv(ExportTable::Steps), &ExportScope::default(), &mut csv)?;
    /// assert!(String::from_utf8(csv)?.starts_with("id,session_id,module,"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) when the store cannot be queried or `out`
    /// cannot be written.
    pub fn export(
        &self,
        format: ExportFormat,
        scope: &ExportScope,
        out: &mut impl Write,
    ) -> Result<u64> {
        let params = [Param::Text(scope.session.clone()), Param::time(scope.since)];
        let wrote = |e: std::io::Error| self.fail("writing the export", e);
        let mut written = 0;
        match format {
            ExportFormat::Json | ExportFormat::JsonLines => {
                let json = format == ExportFormat::Json;
                if json {
                    out.write_all(b"[").map_err(wrote)?;
                }
                self.each_row(&SESSIONS, &params, |row| {
                    let record = self.nest(row)?;
                    if json {
                        out.write_all(if written == 0 { b"\n" } else { b",\n" })
                            .map_err(wrote)?;
                    }
                    serde_json::to_writer(&mut *out, &record)
                        .map_err(|e| self.fail("writing the export", e))?;
                    if !json {
                        out.write_all(b"\n").map_err(wrote)?;
                    }
                    written += 1;
                    Ok(())
                })?;
                if json {
                    out.write_all(b"\n]\n").map_err(wrote)?;
                }
            }
            ExportFormat::Csv(table) => {
                let query = match table {
                    ExportTable::Sessions => &CSV_SESSIONS,
                    ExportTable::Steps => &CSV_STEPS,
                    ExportTable::Decisions => &CSV_DECISIONS,
                };
                let mut csv = csv::Writer::from_writer(&mut *out);
                let fail = |e: csv::Error| self.fail("writing the export", e);
                let mut header = true;
                self.each_row_as(query, &params, JsonColumns::Text, |row| {
                    if std::mem::take(&mut header) {
                        csv.write_record(row.names()).map_err(fail)?;
                    }
                    csv.write_record(row.values().map(csv_cell)).map_err(fail)?;
                    written += 1;
                    Ok(())
                })?;
                if header {
                    // Nothing selected: the header alone, so the file still says its columns.
                    csv.write_record(self.columns(query)?).map_err(fail)?;
                }
                csv.flush().map_err(wrote)?;
            }
        }
        Ok(written)
    }

    /// The session `id` as [`export`](Self::export) writes it, steps and decisions nested;
    /// `None` when no session has this id.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) when the store cannot be queried.
    pub fn session_record(&self, id: &str) -> Result<Option<SessionRecord>> {
        let params = [Param::Text(Some(id.to_owned())), Param::Text(None)];
        match self.rows(&SESSIONS, &params)?.into_iter().next() {
            Some(row) => self.nest(row).map(Some),
            None => Ok(None),
        }
    }

    /// A session row with its steps and their decisions.
    fn nest(&self, row: Row) -> Result<SessionRecord> {
        let params = [Param::Text(text(&row, "id"))];
        let mut decisions = self.rows(&DECISIONS, &params)?;
        let steps = self
            .rows(&STEPS, &params)?
            .into_iter()
            .map(|step| {
                let id = step.get("id").cloned();
                let (mine, rest) = std::mem::take(&mut decisions)
                    .into_iter()
                    .partition(|d| d.get("step_id").cloned() == id);
                decisions = rest;
                StepRecord {
                    row: step,
                    decisions: mine,
                }
            })
            .collect();
        Ok(SessionRecord { row, steps })
    }

    /// The column names of `query`, for a CSV header when it selects no row.
    fn columns(&self, query: &Query<'_>) -> Result<Vec<String>> {
        match &self.store {
            Store::Sqlite(conn) => Ok(conn
                .prepare_cached(query.sqlite)
                .map_err(|e| self.fail("preparing a query", e))?
                .column_names()
                .map(str::to_owned)
                .collect()),
            #[cfg(feature = "postgres")]
            Store::Postgres(client) => Ok(client
                .borrow_mut()
                .prepare(query.postgres)
                .map_err(|e| self.fail("preparing a query", e))?
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect()),
        }
    }
}

/// A value as a CSV cell: empty for NULL, text as it is, numbers as Rust writes them, JSON
/// compact.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => n.to_string(),
        },
        other => other.to_string(),
    }
}
