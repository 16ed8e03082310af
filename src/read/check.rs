//! Whether a store is sound as a store — its pages whole, no row without its parent, the
//! schema one this release reads, every step within its session's time: [`Reader::check`],
//! the `check` command. (Whether the rows are the ones the layer committed is the chain's
//! question: [`verify`](crate::verify).)

use serde::Serialize;

use super::reader::{Query, Reader, Store, text};
use crate::error::Result;

/// At most this many steps outside their session are listed.
const OUTSIDE_LISTED: usize = 1000;

/// What [`Reader::check`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The schema version the store is at.
    pub schema_version: i64,
    /// The schema version this release writes.
    pub release_schema_version: i64,
    /// SQLite's `integrity_check` lines (`["ok"]` when the pages are whole); empty for
    /// PostgreSQL, whose server keeps its pages whole.
    pub integrity: Vec<String>,
    /// Rows whose parent row is missing (SQLite's `foreign_key_check`; on PostgreSQL, steps
    /// and decisions without their session or step).
    pub orphans: i64,
    /// PostgreSQL only: how many of the 3 foreign-key constraints are in place.
    pub constraints: Option<i64>,
    /// Steps that start before their session or end after it — two runs merged into one
    /// session, or rows edited by hand: their ids, at most 1000. Steps of a trace received
    /// over OTLP that joined the run it follows (they carry their own `otel.trace_id`) are
    /// not counted: they may run past the run's root.
    pub steps_outside_session: Vec<String>,
}

impl CheckReport {
    /// Whether every check passed.
    pub fn is_sound(&self) -> bool {
        let integrity = self.integrity.is_empty() || self.integrity == ["ok"];
        integrity
            && self.orphans == 0
            && self.constraints.is_none_or(|c| c == 3)
            && self.steps_outside_session.is_empty()
    }

    /// Whether the list of steps outside their session was cut at its limit.
    pub fn outside_listed_in_part(&self) -> bool {
        self.steps_outside_session.len() >= OUTSIDE_LISTED
    }
}

/// A step of a trace that joined another trace's session (it names its own trace) may
/// run past that session's root — a turn that follows a run is often after it — and is
/// not counted.
const OUTSIDE: Query<'static> = Query {
    sqlite: "SELECT st.id FROM steps st JOIN sessions s ON s.id = st.session_id \
             WHERE (st.started_at < s.started_at OR st.ended_at > s.ended_at) \
               AND json_extract(st.attributes, '$.\"otel.trace_id\"') IS NULL \
             ORDER BY st.started_at LIMIT 1000",
    postgres: "SELECT st.id FROM steps st JOIN sessions s ON s.id = st.session_id \
               WHERE (st.started_at < s.started_at OR st.ended_at > s.ended_at) \
                 AND NOT (st.attributes ? 'otel.trace_id') \
               ORDER BY st.started_at LIMIT 1000",
};

impl Reader {
    /// Checks the store as a store: integrity, foreign keys, schema version, and that every
    /// step lies within its session's time.
    ///
    /// ```
    /// # use tracing_subscriber::prelude::*;
    /// use reasonkit_audit::read::Reader;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("audit.db");
    /// # let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
    /// # tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
    /// #     let _s = tracing::info_span!("session").entered();
    /// #     let _a = tracing::info_span!("step", module = "gigathink").entered();
    /// # });
    /// # guard.flush()?;
    /// let report = Reader::open(&path)?.check()?;
    /// assert!(report.is_sound());
    /// assert_eq!(report.schema_version, report.release_schema_version);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) when the store cannot be queried.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = match &self.store {
            Store::Sqlite(conn) => check_sqlite(conn).map_err(|e| self.fail("checking", e))?,
            #[cfg(feature = "postgres")]
            Store::Postgres(client) => {
                check_postgres(&mut client.borrow_mut()).map_err(|e| self.fail("checking", e))?
            }
        };
        report.steps_outside_session = self
            .rows(&OUTSIDE, &[])?
            .iter()
            .filter_map(|row| text(row, "id"))
            .collect();
        Ok(report)
    }
}

/// A file's integrity, foreign keys and schema version.
fn check_sqlite(conn: &rusqlite::Connection) -> rusqlite::Result<CheckReport> {
    let integrity = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let orphans = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    let schema_version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    Ok(CheckReport {
        schema_version,
        release_schema_version: crate::store::sqlite::open::SCHEMA_VERSION,
        integrity,
        orphans,
        constraints: None,
        steps_outside_session: Vec::new(),
    })
}

/// A PostgreSQL store's foreign-key constraints, rows without their parent, and schema
/// version (the server keeps its pages whole).
#[cfg(feature = "postgres")]
fn check_postgres(
    client: &mut ::postgres::Client,
) -> std::result::Result<CheckReport, ::postgres::Error> {
    let schema_version = client
        .query_one("SELECT max(version)::bigint FROM reasonkit_schema", &[])?
        .get(0);
    let constraints = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
             AND conrelid IN ('steps'::regclass, 'decisions'::regclass)",
            &[],
        )?
        .get(0);
    let orphans = client
        .query_one(
            "SELECT (SELECT count(*) FROM steps st WHERE NOT EXISTS \
                 (SELECT 1 FROM sessions s WHERE s.id = st.session_id)) \
             + (SELECT count(*) FROM steps st WHERE st.parent_step_id IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM steps p WHERE p.session_id = st.session_id \
                 AND p.id = st.parent_step_id)) \
             + (SELECT count(*) FROM decisions d WHERE NOT EXISTS (SELECT 1 FROM steps st \
                 WHERE st.session_id = d.session_id AND st.id = d.step_id))",
            &[],
        )?
        .get(0);
    Ok(CheckReport {
        schema_version,
        release_schema_version: crate::store::postgres::PG_SCHEMA_VERSION,
        integrity: Vec::new(),
        orphans,
        constraints: Some(constraints),
        steps_outside_session: Vec::new(),
    })
}
