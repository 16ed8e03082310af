//! The store a read command reads: a SQLite file, or a PostgreSQL database
//! (`--db postgres://…`). Each command gives its query in both dialects; the rows come
//! back alike, as JSON objects with the same columns, so everything after the query —
//! tables, JSON, CSV — is one code path.

use std::cell::RefCell;

use reasonkit_audit::postgres::client::types::{ToSql, Type};
use reasonkit_audit::postgres::client::{Client, Row};
use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::Failure;
use crate::output;

/// An open store, read-only.
pub enum Db {
    Sqlite(Connection),
    Postgres(RefCell<Client>),
}

/// A query parameter, bound alike in both dialects.
#[derive(Clone, Debug)]
pub enum Param {
    Text(Option<String>),
    Real(Option<f64>),
    Int(i64),
}

/// A query in both dialects.
pub struct Query<'a> {
    pub sqlite: &'a str,
    pub postgres: &'a str,
}

impl Db {
    /// Opens `target` read-only: a `postgres://` URL, or a SQLite file.
    pub fn open(target: &std::path::Path) -> Result<Db, Failure> {
        match target
            .to_str()
            .filter(|t| reasonkit_audit::postgres::is_postgres_url(t))
        {
            Some(url) => Ok(Db::Postgres(RefCell::new(
                reasonkit_audit::postgres::connect_read_only(url)?,
            ))),
            None => Ok(Db::Sqlite(reasonkit_audit::open_read_only(target)?)),
        }
    }

    /// The rows of `query`, each a JSON object of its columns in order.
    pub fn rows(
        &self,
        query: &Query<'_>,
        params: &[Param],
    ) -> Result<Vec<Map<String, Value>>, Failure> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(query.sqlite)?;
                let bound: Vec<Box<dyn rusqlite::ToSql>> = params
                    .iter()
                    .map(|p| -> Box<dyn rusqlite::ToSql> {
                        match p {
                            Param::Text(t) => Box::new(t.clone()),
                            Param::Real(r) => Box::new(*r),
                            Param::Int(n) => Box::new(*n),
                        }
                    })
                    .collect();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(bound.iter()), output::row_object)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            }
            Db::Postgres(client) => {
                let mut client = client.borrow_mut();
                let statement = client.prepare(query.postgres)?;
                let bound: Vec<Box<dyn ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn ToSql + Sync> {
                        match p {
                            Param::Text(t) => Box::new(t.clone()),
                            Param::Real(r) => Box::new(*r),
                            Param::Int(n) => Box::new(*n),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
                let rows = client
                    .query(&statement, &refs)?
                    .iter()
                    .map(pg_object)
                    .collect();
                Ok(rows)
            }
        }
    }
}

/// A PostgreSQL row as the JSON object a SQLite row gives: text, integers and reals as
/// themselves, `attributes` and `options_considered` as the JSON they hold.
fn pg_object(row: &Row) -> Map<String, Value> {
    let mut object = Map::new();
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
            row.get::<_, Option<f64>>(i).map_or(Value::Null, |n| {
                serde_json::Number::from_f64(n)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            })
        } else if *kind == Type::BOOL {
            row.get::<_, Option<bool>>(i)
                .map_or(Value::Null, |b| Value::from(i64::from(b)))
        } else {
            match row.try_get::<_, Option<String>>(i).ok().flatten() {
                None => Value::Null,
                Some(text) if matches!(name, "attributes" | "options_considered") => {
                    serde_json::from_str(&text).map_or(Value::String(text), sorted)
                }
                Some(text) => Value::String(text),
            }
        };
        object.insert(name.to_owned(), value);
    }
    object
}

/// A `timestamptz` column as the SQLite store's text (UTC, microseconds), for the
/// PostgreSQL side of a query.
#[macro_export]
macro_rules! utc {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        )
    };
}

/// A span's duration in whole microseconds, for the SQLite side of a query: whole seconds
/// apart (SQLite's `strftime('%s')`), plus the microseconds of the two texts apart.
#[macro_export]
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

/// A span's duration in milliseconds, for the SQLite side of a query.
#[macro_export]
macro_rules! sqlite_duration_ms {
    ($start:literal, $end:literal) => {
        concat!("(", $crate::sqlite_duration_us!($start, $end), " / 1000.0)")
    };
}

/// A span's duration in whole microseconds (`bigint`), for exact sums.
#[macro_export]
macro_rules! duration_us {
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

/// A span's duration in milliseconds, computed as the SQLite side computes it (whole
/// seconds apart, plus the microseconds apart), for the PostgreSQL side of a query.
#[macro_export]
macro_rules! duration_ms {
    ($start:literal, $end:literal) => {
        concat!(
            "(",
            $crate::duration_us!($start, $end),
            " / 1000.0)::float8"
        )
    };
}

/// A JSON value with every object's keys sorted: `jsonb` keeps its own key order, the
/// SQLite store the writer's (sorted), and output must not depend on the store.
pub fn sorted(value: Value) -> Value {
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
