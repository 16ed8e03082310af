//! The one door every read goes through: a [`Reader`] holds a read-only connection to a
//! SQLite file or a PostgreSQL database, and runs a query given in both dialects.
//!
//! Rows come back alike from both stores — a JSON object per row, its columns in order:
//! integers and reals as numbers, times as the SQLite file's text (UTC, microseconds),
//! `attributes` and `options_considered` as the JSON they hold, keys sorted — so
//! everything built on a query (the typed values of `sessions.rs`, search, stats, the
//! export's JSON and CSV) is one code path, and the two stores answer the same.

#[cfg(feature = "postgres")]
use std::cell::RefCell;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::ValueRef;
use serde_json::Value;

use crate::error::{Error, Result};

/// The connection a [`Reader`] holds.
pub(super) enum Store {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(RefCell<::postgres::Client>),
}

/// A read-only handle on an audit store: every read of the trail — sessions, one session,
/// search, statistics, export, checks, replays — is a method of it.
///
/// ```
/// use reasonkit_audit::read::Reader;
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.db");
/// let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
///     let _s = tracing::info_span!("session", id = "run-1").entered();
///     let _step = tracing::info_span!("step", module = "gigathink",
///         output_summary = "the filing exceeds the annual total").entered();
/// });
/// guard.flush()?;
///
/// let reader = Reader::open(&path)?;
/// assert_eq!(reader.store_name(), path.display().to_string());
/// let hits = reader.search("annual total", 10)?;
/// assert_eq!(hits[0].session_id, "run-1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader {
    pub(super) store: Store,
    name: String,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("store", &self.name).finish()
    }
}

/// A query in both dialects.
pub(super) struct Query<'a> {
    pub(super) sqlite: &'a str,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) postgres: &'a str,
}

/// A query parameter, bound alike in both dialects.
#[derive(Clone, Debug)]
pub(super) enum Param {
    Text(Option<String>),
    Real(Option<f64>),
    Int(i64),
}

impl Param {
    /// A time as the SQLite file's text, which both dialects compare against.
    pub(super) fn time(at: Option<DateTime<Utc>>) -> Param {
        Param::Text(at.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()))
    }

    /// A count, capped where a store's integer ends.
    pub(super) fn count(n: usize) -> Param {
        Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(t) => t.to_sql(),
            Param::Real(r) => r.to_sql(),
            Param::Int(n) => n.to_sql(),
        }
    }
}

/// One row: its columns in the query's order, each as JSON. Serializes as a JSON object
/// in that order (whatever `serde_json`'s map type is in the build).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Row {
    columns: Vec<(String, Value)>,
}

impl Row {
    /// The value of `column`; `None` when the query has no such column.
    pub(super) fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .find_map(|(name, value)| (name == column).then_some(value))
    }

    /// Adds a column at the end.
    pub(super) fn push(&mut self, column: impl Into<String>, value: Value) {
        self.columns.push((column.into(), value));
    }

    /// The column names, in order.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(name, _)| name.as_str())
    }

    /// The values, in order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Value> {
        self.columns.iter().map(|(_, value)| value)
    }
}

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (name, value) in &self.columns {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

pub(super) use crate::store::sql::pg_utc;

/// A span's duration in whole microseconds, on SQLite: whole seconds apart
/// (`strftime('%s')`), plus the microseconds of the two texts apart.
macro_rules! sqlite_duration_us {
    ($start:literal, $end:literal) => {
        concat!(
            "((strftime('%s', ",
            $end,
            ") - strftime('%s', ",
            $start,
            ")) * 1000000 + (CAST(substr(",
            $end,
            ", 21, 6) AS INTEGER) - CAST(substr(",
            $start,
            ", 21, 6) AS INTEGER)))"
        )
    };
}
pub(super) use sqlite_duration_us;

/// A span's duration in milliseconds, on SQLite.
macro_rules! sqlite_duration_ms {
    ($start:literal, $end:literal) => {
        concat!(
            "(",
            $crate::read::reader::sqlite_duration_us!($start, $end),
            " / 1000.0)"
        )
    };
}
pub(super) use sqlite_duration_ms;

/// A span's duration in whole microseconds (`bigint`) on PostgreSQL, computed as SQLite
/// computes it (whole seconds apart, plus the microseconds apart), for exact sums.
macro_rules! pg_duration_us {
    ($start:literal, $end:literal) => {
        concat!(
            "((floor(extract(epoch FROM ",
            $end,
            ")) - floor(extract(epoch FROM ",
            $start,
            ")))::bigint * 1000000 + (extract(microseconds FROM ",
            $end,
            ")::bigint % 1000000 - extract(microseconds FROM ",
            $start,
            ")::bigint % 1000000))"
        )
    };
}
pub(super) use pg_duration_us;

/// A span's duration in milliseconds on PostgreSQL, as SQLite computes it.
macro_rules! pg_duration_ms {
    ($start:literal, $end:literal) => {
        concat!(
            "(",
            $crate::read::reader::pg_duration_us!($start, $end),
            " / 1000.0)::float8"
        )
    };
}
pub(super) use pg_duration_ms;

impl Reader {
    /// Opens `store` read-only: a SQLite audit file, or (with the `postgres` feature) a
    /// `postgres://` URL given as the path.
    ///
    /// # Errors
    /// Those of [`open_read_only`](crate::open_read_only) for a file: missing, not SQLite,
    /// a schema this release does not read; [`Error::Postgres`] for a server that cannot be
    /// reached.
    pub fn open(store: impl AsRef<Path>) -> Result<Reader> {
        let path = store.as_ref();
        #[cfg(feature = "postgres")]
        if let Some(url) = path
            .to_str()
            .filter(|p| crate::store::postgres::is_postgres_url(p))
        {
            let client = crate::store::postgres::connect_read_only(url)?;
            let name = crate::store::postgres::PgTarget::parse(url)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "PostgreSQL".into());
            return Ok(Reader {
                store: Store::Postgres(RefCell::new(client)),
                name,
            });
        }
        Ok(Reader {
            store: Store::Sqlite(crate::store::sqlite::open::open_read_only(path)?),
            name: path.display().to_string(),
        })
    }

    /// What this reader reads: the file's path, or the server and database.
    pub fn store_name(&self) -> &str {
        &self.name
    }

    /// An [`Error::Read`] naming this store, what was being done, and the store's words.
    pub(super) fn fail(&self, what: &str, error: impl std::fmt::Display) -> Error {
        Error::Read {
            store: self.name.clone(),
            message: format!("{what}: {error}"),
        }
    }

    /// Every row of `query`.
    pub(super) fn rows(&self, query: &Query<'_>, params: &[Param]) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        self.each_row(query, params, |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Hands each row of `query` to `each` as it is read. A SQLite file streams (a large
    /// result is never held whole); PostgreSQL's rows are read first, so that `each` may
    /// query the same connection.
    pub(super) fn each_row(
        &self,
        query: &Query<'_>,
        params: &[Param],
        each: impl FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        self.each_row_as(query, params, JsonColumns::Parsed, each)
    }

    /// Like [`each_row`](Self::each_row), with the JSON columns as `json` says.
    pub(super) fn each_row_as(
        &self,
        query: &Query<'_>,
        params: &[Param],
        json: JsonColumns,
        mut each: impl FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        match &self.store {
            Store::Sqlite(conn) => {
                let mut statement = conn
                    .prepare_cached(query.sqlite)
                    .map_err(|e| self.fail("preparing a query", e))?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| self.fail("querying", e))?;
                while let Some(row) = rows.next().map_err(|e| self.fail("reading a row", e))? {
                    each(sqlite_object(row, json).map_err(|e| self.fail("reading a row", e))?)?;
                }
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(client) => {
                let rows = {
                    let mut client = client.borrow_mut();
                    let bound: Vec<Box<dyn ::postgres::types::ToSql + Sync>> =
                        params.iter().map(pg_param).collect();
                    let refs: Vec<&(dyn ::postgres::types::ToSql + Sync)> =
                        bound.iter().map(|b| b.as_ref()).collect();
                    client
                        .query(query.postgres, &refs)
                        .map_err(|e| self.fail("querying", e))?
                };
                for row in &rows {
                    each(pg_object(row, json))?;
                }
                Ok(())
            }
        }
    }

    /// A time column's text as a time.
    pub(super) fn time(&self, row: &Row, column: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(text) = row.get(column).and_then(Value::as_str) else {
            return Ok(None);
        };
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .map(|t| Some(t.and_utc()))
            .map_err(|e| self.fail(&format!("reading the time '{text}' of {column}"), e))
    }
}

/// A text column; `None` for NULL.
pub(super) fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// A real column; `None` for NULL.
pub(super) fn real(row: &Row, column: &str) -> Option<f64> {
    row.get(column).and_then(Value::as_f64)
}

/// An integer column; `None` for NULL.
pub(super) fn int(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(Value::as_i64)
}

/// A JSON column (`attributes`, `options_considered`), already parsed; `Null` for NULL.
pub(super) fn json(row: &Row, column: &str) -> Value {
    row.get(column).cloned().unwrap_or(Value::Null)
}

/// How the columns that hold JSON text (`attributes`, `options_considered`) are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JsonColumns {
    /// As the JSON they hold, keys sorted.
    Parsed,
    /// As text, as the SQLite writer wrote it: `attributes` compact with sorted keys (a
    /// PostgreSQL `jsonb` is written so), `options_considered` as stored.
    Text,
}

/// Whether a column holds JSON text.
fn holds_json(column: &str) -> bool {
    matches!(column, "attributes" | "options_considered")
}

/// A SQLite row as an object of its columns, in order.
fn sqlite_object(row: &rusqlite::Row<'_>, json: JsonColumns) -> rusqlite::Result<Row> {
    let statement = row.as_ref();
    let mut object = Row::default();
    for index in 0..statement.column_count() {
        let name = statement.column_name(index)?;
        let value = match row.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::from(n),
            ValueRef::Real(n) => real_value(n),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let parse = json == JsonColumns::Parsed && holds_json(name);
                match parse.then(|| serde_json::from_str(&text).ok()) {
                    Some(Some(parsed)) => parsed,
                    _ => Value::String(text.into_owned()),
                }
            }
        };
        object.push(name, value);
    }
    Ok(object)
}

/// A real as JSON: a number, or (for NaN and the infinities, which JSON has not) its text.
fn real_value(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or_else(|| Value::String(n.to_string()), Value::Number)
}

#[cfg(feature = "postgres")]
fn pg_param(param: &Param) -> Box<dyn ::postgres::types::ToSql + Sync> {
    match param {
        Param::Text(t) => Box::new(t.clone()),
        Param::Real(r) => Box::new(*r),
        Param::Int(n) => Box::new(*n),
    }
}

/// A PostgreSQL row as the object a SQLite row gives: text, integers and reals as
/// themselves, booleans as 0 or 1, the JSON columns as the JSON they hold, keys sorted.
#[cfg(feature = "postgres")]
fn pg_object(row: &::postgres::Row, json: JsonColumns) -> Row {
    use ::postgres::types::Type;
    let mut object = Row::default();
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let kind = column.type_();
        let value = if *kind == Type::INT8 {
            row.get::<_, Option<i64>>(i)
                .map_or(Value::Null, Value::from)
        } else if *kind == Type::INT4 {
            row.get::<_, Option<i32>>(i)
                .map_or(Value::Null, Value::from)
        } else if *kind == Type::FLOAT8 {
            row.get::<_, Option<f64>>(i).map_or(Value::Null, real_value)
        } else if *kind == Type::BOOL {
            row.get::<_, Option<bool>>(i)
                .map_or(Value::Null, |b| Value::from(i64::from(b)))
        } else {
            match row.try_get::<_, Option<String>>(i).ok().flatten() {
                None => Value::Null,
                Some(text) if json == JsonColumns::Parsed && holds_json(name) => {
                    serde_json::from_str(&text).map_or(Value::String(text), sorted)
                }
                Some(text) if name == "attributes" => Value::String(
                    serde_json::from_str(&text)
                        .map_or(text, |parsed: Value| sorted(parsed).to_string()),
                ),
                Some(text) => Value::String(text),
            }
        };
        object.push(name, value);
    }
    object
}

/// A JSON value with every object's keys sorted: `jsonb` keeps its own key order, the
/// SQLite store the writer's (sorted), and what is read must not depend on the store.
#[cfg(feature = "postgres")]
pub(super) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
