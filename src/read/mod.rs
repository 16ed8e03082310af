//! Reading the audit trail back as typed values: list and filter sessions, load one session
//! as its tree of steps with their decisions, stream many, and find the replays of a run.
//!
//! ADR-002's fourth purpose is reproducibility: replaying a reasoning chain with identical
//! inputs. With [`AuditLayerBuilder::store_inputs`](crate::AuditLayerBuilder::store_inputs)
//! on, a recorded session keeps its `input`; a harness loads it here, runs the same input
//! again under a session span with `replay_of = <the original's id>`, and compares the two
//! runs with [`diff::compare`]. [`Reader::replays_of`] finds the re-runs of a session.
//!
//! A [`Reader`] opens the store read-only (a SQLite file or, with the `postgres` feature, a
//! `postgres://` URL) and never writes to it. Times are UTC.
//!
//! ```
//! use reasonkit_audit::read::{Reader, SessionFilter};
//! use tracing_subscriber::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("audit.db");
//! let (audit, guard) = reasonkit_audit::AuditLayer::builder()
//!     .path(&path)
//!     .store_inputs(true)
//!     .build()?;
//! let subscriber = tracing_subscriber::registry().with(audit);
//! tracing::subscriber::with_default(subscriber, || {
//!     let _s = tracing::info_span!("session", id = "run-1", input = "Is 7 prime?").entered();
//!     let _step = tracing::info_span!("step", module = "gigathink", confidence = 0.9).entered();
//!     tracing::info!(name: "decision", decision_type = "verdict", chosen_option = "prime");
//! });
//! guard.flush()?;
//!
//! let reader = Reader::open(&path)?;
//! let listed = reader.sessions(&SessionFilter::default())?;
//! assert_eq!(listed[0].id, "run-1");
//! let session = reader.session("run-1")?.expect("recorded");
//! assert_eq!(session.input.as_deref(), Some("Is 7 prime?"));
//! assert_eq!(session.steps[0].module, "gigathink");
//! assert_eq!(session.steps[0].decisions[0].chosen_option.as_deref(), Some("prime"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod diff;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::ValueRef;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The attribute that links a re-run to the session it replays.
pub const REPLAY_OF: &str = "replay_of";

/// One session row, without its steps: what [`Reader::sessions`] lists.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session's id as written.
    pub id: String,
    /// When it opened.
    pub started_at: DateTime<Utc>,
    /// When it closed; `None` while running or after a crash.
    pub ended_at: Option<DateTime<Utc>>,
    /// The reasoning profile.
    pub profile: String,
    /// SHA-256 of the input, hex.
    pub input_hash: String,
    /// `running`, `completed`, `failed`, `interrupted`, or a recorded status.
    pub status: String,
    /// The raw input, when it was stored (`store_inputs(true)`).
    pub input: Option<String>,
    /// Every field without a column, as JSON.
    pub attributes: Value,
}

impl SessionSummary {
    /// The id of the session this one replays (its `replay_of` attribute).
    pub fn replay_of(&self) -> Option<&str> {
        self.attributes.get(REPLAY_OF).and_then(Value::as_str)
    }

    /// The run's answer, where it was recorded: `gen_ai.completion` (rig's run span, the
    /// rig recipe in docs/frameworks.md), else the value an `#[instrument(ret)]` run returned.
    pub fn answer(&self) -> Option<String> {
        attribute_text(&self.attributes, &["gen_ai.completion", "return"])
    }

    /// The instructions the agent ran with: `gen_ai.system_instructions` (rig's preamble).
    pub fn instructions(&self) -> Option<String> {
        attribute_text(&self.attributes, &["gen_ai.system_instructions"])
    }

    /// Why the run failed, when that was recorded on it: the `error` of an
    /// `#[instrument(err)]` run, of an ERROR event inside it, or the layer's note on a rig
    /// run that ended without a result.
    pub fn error(&self) -> Option<String> {
        attribute_text(&self.attributes, &["error", "error.type"])
    }
}

/// The first of `names` present in `attributes`, as text: a string as it is, any other
/// JSON value as JSON.
fn attribute_text(attributes: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match attributes.get(*name)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    })
}

/// One session with its steps, as a tree, and their decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Session {
    /// The session row.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Every step, depth first in execution order: a step, then the steps nested in it
    /// (each with its [`Step::depth`] and [`Step::parent_step_id`]), then its next sibling.
    /// Kept flat, not as nested vectors, so that a chain nested a million deep is read,
    /// walked and dropped without recursion.
    pub steps: Vec<Step>,
}

impl std::ops::Deref for Session {
    type Target = SessionSummary;

    fn deref(&self) -> &SessionSummary {
        &self.summary
    }
}

impl Session {
    /// Every step, depth first in execution order, with its depth (0 for top-level).
    pub fn walk(&self) -> Vec<(usize, &Step)> {
        self.steps.iter().map(|s| (s.depth, s)).collect()
    }

    /// The steps nested directly in `step`, in the order they started.
    pub fn children<'a>(&'a self, step: &'a Step) -> impl Iterator<Item = &'a Step> + 'a {
        self.steps
            .iter()
            .filter(move |s| s.parent_step_id.as_deref() == Some(step.id.as_str()))
    }
}

/// One step, with its decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// The step's id.
    pub id: String,
    /// The enclosing step, for a nested step.
    pub parent_step_id: Option<String>,
    /// How deep it is nested: 0 for a top-level step.
    pub depth: usize,
    /// The reasoning module.
    pub module: String,
    /// When it opened.
    pub started_at: DateTime<Utc>,
    /// When it closed.
    pub ended_at: Option<DateTime<Utc>>,
    /// What went in, summarised.
    pub input_summary: Option<String>,
    /// What came out, summarised.
    pub output_summary: Option<String>,
    /// The module's confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// Tokens the step used.
    pub tokens_used: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Every field without a column, as JSON.
    pub attributes: Value,
    /// Its decisions, in the order they were made.
    pub decisions: Vec<Decision>,
}

/// One decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// The decision's id.
    pub id: String,
    /// What kind of decision.
    pub decision_type: String,
    /// The options, as recorded (JSON).
    pub options_considered: Option<Value>,
    /// The option chosen.
    pub chosen_option: Option<String>,
    /// Why.
    pub rationale: Option<String>,
    /// When it was made; `None` for a decision span still open.
    pub decided_at: Option<DateTime<Utc>>,
    /// Every field without a column, as JSON.
    pub attributes: Value,
}

/// Which sessions [`Reader::sessions`] lists; the default lists them all, newest first.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    /// Only sessions started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only sessions started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this profile.
    pub profile: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only re-runs of this session (`replay_of` attribute).
    pub replay_of: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

enum Store {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Postgres(std::cell::RefCell<::postgres::Client>),
}

/// A read-only handle on an audit store.
pub struct Reader {
    store: Store,
    name: String,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("store", &self.name).finish()
    }
}

/// A query in both dialects, with text parameters.
struct Query {
    sqlite: &'static str,
    postgres: &'static str,
}

/// A PostgreSQL timestamp as the SQLite file's text.
macro_rules! pg_utc {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        )
    };
}

const SESSIONS: Query = Query {
    sqlite: "SELECT id, started_at, ended_at, profile, input_hash, status, input, attributes
        FROM sessions
        WHERE (?1 IS NULL OR started_at >= ?1) AND (?2 IS NULL OR started_at < ?2)
          AND (?3 IS NULL OR profile = ?3) AND (?4 IS NULL OR status = ?4)
          AND (?5 IS NULL OR json_extract(attributes, '$.replay_of') = ?5)
          AND (?6 IS NULL OR id = ?6)
        ORDER BY CASE WHEN ?7 = 'oldest' THEN started_at END, CASE WHEN ?7 = 'oldest' THEN id END,
          started_at DESC, id DESC
        LIMIT CAST(?8 AS INTEGER)",
    postgres: concat!(
        "SELECT id, ",
        pg_utc!("started_at"),
        ", ",
        pg_utc!("ended_at"),
        ", profile, input_hash, status, input, attributes::text FROM sessions \
         WHERE ($1::text IS NULL OR started_at >= ($1::text || '+00')::timestamptz) \
         AND ($2::text IS NULL OR started_at < ($2::text || '+00')::timestamptz) \
         AND ($3::text IS NULL OR profile = $3) AND ($4::text IS NULL OR status = $4) \
         AND ($5::text IS NULL OR attributes->>'replay_of' = $5) \
         AND ($6::text IS NULL OR id = $6) \
         ORDER BY CASE WHEN $7::text = 'oldest' THEN started_at END, \
         CASE WHEN $7::text = 'oldest' THEN id END, started_at DESC, id DESC \
         LIMIT $8::text::bigint"
    ),
};

const STEPS: Query = Query {
    sqlite: "SELECT id, parent_step_id, module, started_at, ended_at, input_summary,
        output_summary, confidence, tokens_used, error, attributes
        FROM steps WHERE session_id = ?1 ORDER BY started_at, rowid",
    postgres: concat!(
        "SELECT id, parent_step_id, module, ",
        pg_utc!("started_at"),
        ", ",
        pg_utc!("ended_at"),
        ", input_summary, output_summary, confidence::text, tokens_used::text, error, \
         attributes::text FROM steps WHERE session_id = $1 ORDER BY started_at, id"
    ),
};

const DECISIONS: Query = Query {
    sqlite: "SELECT d.step_id, d.id, d.decision_type, d.options_considered, d.chosen_option,
        d.rationale, d.decided_at, d.attributes
        FROM decisions d JOIN steps s ON s.id = d.step_id WHERE s.session_id = ?1
        ORDER BY d.decided_at IS NULL, d.decided_at, d.rowid",
    postgres: concat!(
        "SELECT step_id, id, decision_type, options_considered, chosen_option, rationale, ",
        pg_utc!("decided_at"),
        ", attributes::text FROM decisions WHERE session_id = $1 \
         ORDER BY decided_at IS NULL, decided_at, id"
    ),
};

const IDS_STARTING_WITH: Query = Query {
    sqlite: "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1
        ORDER BY started_at DESC, id DESC LIMIT CAST(?2 AS INTEGER)",
    postgres: "SELECT id FROM sessions WHERE left(id, length($1::text)) = $1::text
        ORDER BY started_at DESC, id DESC LIMIT $2::text::bigint",
};

type Cells = Vec<Option<String>>;

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
                store: Store::Postgres(std::cell::RefCell::new(client)),
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

    fn fail(&self, what: &str, error: impl std::fmt::Display) -> Error {
        Error::Read {
            store: self.name.clone(),
            message: format!("{what}: {error}"),
        }
    }

    /// Every row of `query`, every cell as text (numbers in their shortest form).
    fn rows(&self, query: &Query, params: &[Option<String>]) -> Result<Vec<Cells>> {
        match &self.store {
            Store::Sqlite(conn) => {
                let mut statement = conn
                    .prepare_cached(query.sqlite)
                    .map_err(|e| self.fail("preparing a query", e))?;
                let columns = statement.column_count();
                let mut rows = statement
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(|e| self.fail("querying", e))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| self.fail("reading a row", e))? {
                    let mut cells = Vec::with_capacity(columns);
                    for i in 0..columns {
                        let cell = row.get_ref(i).map_err(|e| self.fail("reading a cell", e))?;
                        cells.push(match cell {
                            ValueRef::Null => None,
                            ValueRef::Integer(n) => Some(n.to_string()),
                            ValueRef::Real(x) => Some(x.to_string()),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Some(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    out.push(cells);
                }
                Ok(out)
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(client) => {
                let sql = query.postgres;
                let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn ::postgres::types::ToSql + Sync))
                    .collect();
                let rows = client
                    .borrow_mut()
                    .query(sql, &params)
                    .map_err(|e| self.fail("querying", e))?;
                Ok(rows
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<_, Option<String>>(i).ok().flatten())
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The sessions `filter` selects, newest first, without their steps.
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>> {
        self.select_sessions(filter, None)
    }

    fn select_sessions(
        &self,
        filter: &SessionFilter,
        id: Option<&str>,
    ) -> Result<Vec<SessionSummary>> {
        let at =
            |t: &Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
        let params = [
            at(&filter.since),
            at(&filter.until),
            filter.profile.clone(),
            filter.status.clone(),
            filter.replay_of.clone(),
            id.map(str::to_owned),
            filter.oldest_first.then(|| "oldest".to_owned()),
            // SQLite reads a negative LIMIT as none; PostgreSQL a NULL one.
            match (&self.store, filter.limit) {
                (_, Some(limit)) => Some(limit.min(i64::MAX as usize).to_string()),
                (Store::Sqlite(_), None) => Some("-1".to_owned()),
                #[cfg(feature = "postgres")]
                (Store::Postgres(_), None) => None,
            },
        ];
        self.rows(&SESSIONS, &params)?
            .into_iter()
            .map(|cells| self.summary(cells))
            .collect()
    }

    fn summary(&self, cells: Cells) -> Result<SessionSummary> {
        let mut cells = cells.into_iter();
        let mut next = || cells.next().flatten();
        Ok(SessionSummary {
            id: next().unwrap_or_default(),
            started_at: self.time(next())?.unwrap_or_default(),
            ended_at: self.time(next())?,
            profile: next().unwrap_or_default(),
            input_hash: next().unwrap_or_default(),
            status: next().unwrap_or_default(),
            input: next(),
            attributes: json(next()),
        })
    }

    fn time(&self, text: Option<String>) -> Result<Option<DateTime<Utc>>> {
        let Some(text) = text else { return Ok(None) };
        NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
            .map(|t| Some(t.and_utc()))
            .map_err(|e| self.fail(&format!("reading the time '{text}'"), e))
    }

    /// One session with its steps and decisions; `None` when no session has this id.
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn session(&self, id: &str) -> Result<Option<Session>> {
        let Some(summary) = self
            .select_sessions(&SessionFilter::default(), Some(id))?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let params = [Some(summary.id.clone())];
        let mut decisions: std::collections::HashMap<String, Vec<Decision>> =
            std::collections::HashMap::new();
        for cells in self.rows(&DECISIONS, &params)? {
            let mut cells = cells.into_iter();
            let mut next = || cells.next().flatten();
            let step = next().unwrap_or_default();
            decisions.entry(step).or_default().push(Decision {
                id: next().unwrap_or_default(),
                decision_type: next().unwrap_or_default(),
                options_considered: next().map(|o| json(Some(o))),
                chosen_option: next(),
                rationale: next(),
                decided_at: self.time(next())?,
                attributes: json(next()),
            });
        }
        let mut flat = Vec::new();
        for cells in self.rows(&STEPS, &params)? {
            let mut cells = cells.into_iter();
            let mut next = || cells.next().flatten();
            let id = next().unwrap_or_default();
            let mine = decisions.remove(&id).unwrap_or_default();
            flat.push(Step {
                id,
                parent_step_id: next(),
                depth: 0,
                module: next().unwrap_or_default(),
                started_at: self.time(next())?.unwrap_or_default(),
                ended_at: self.time(next())?,
                input_summary: next(),
                output_summary: next(),
                confidence: next().and_then(|c| c.parse().ok()),
                tokens_used: next().and_then(|t| t.parse().ok()),
                error: next(),
                attributes: json(next()),
                decisions: mine,
            });
        }
        Ok(Some(Session {
            summary,
            steps: depth_first(flat),
        }))
    }

    /// The sessions `filter` selects, loaded one at a time as the iterator is advanced: a
    /// large store is read holding the list of ids and one session's steps and decisions
    /// at a time.
    ///
    /// # Errors
    /// [`Error::Read`] when the list cannot be read; each item carries its own error.
    pub fn stream(
        &self,
        filter: &SessionFilter,
    ) -> Result<impl Iterator<Item = Result<Session>> + '_> {
        let ids: Vec<String> = self.sessions(filter)?.into_iter().map(|s| s.id).collect();
        Ok(ids
            .into_iter()
            .filter_map(move |id| self.session(&id).transpose()))
    }

    /// The ids of the sessions whose id starts with `prefix`, newest first, at most
    /// `limit`: for tools that accept an id's first characters.
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn ids_starting_with(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let params = [Some(prefix.to_owned()), Some(limit.to_string())];
        Ok(self
            .rows(&IDS_STARTING_WITH, &params)?
            .into_iter()
            .filter_map(|cells| cells.into_iter().next().flatten())
            .collect())
    }

    /// The re-runs of session `id` (sessions recorded with `replay_of = id`), newest first.
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn replays_of(&self, id: &str) -> Result<Vec<SessionSummary>> {
        self.sessions(&SessionFilter {
            replay_of: Some(id.to_owned()),
            ..SessionFilter::default()
        })
    }
}

/// Text that should be JSON (attributes, options): parsed, or kept as a JSON string.
fn json(text: Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Steps in start order, put depth first (each followed by the steps nested in it) with
/// their depths, without recursion. A step whose parent is not in the session, or that a
/// (hand-made) cycle of parents would hide, is kept at the top level.
fn depth_first(flat: Vec<Step>) -> Vec<Step> {
    let index: std::collections::HashMap<&str, usize> = flat
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); flat.len()];
    let mut roots = Vec::new();
    for (i, step) in flat.iter().enumerate() {
        match step.parent_step_id.as_deref().and_then(|p| index.get(p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(flat.len());
    let mut seen = vec![false; flat.len()];
    let mut visit = |start: usize, order: &mut Vec<(usize, usize)>| {
        let mut stack = vec![(start, 0)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push((i, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    };
    for &root in &roots {
        visit(root, &mut order);
    }
    for i in 0..flat.len() {
        visit(i, &mut order);
    }
    let mut slots: Vec<Option<Step>> = flat.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(i, depth)| {
            let mut step = slots[i].take()?;
            step.depth = depth;
            Some(step)
        })
        .collect()
}
