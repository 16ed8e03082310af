//! Sessions as typed values: the list ([`Reader::sessions`]), the list with what each
//! session's steps add up to ([`Reader::overview`], the `sessions` command), one session
//! as its tree of steps and decisions ([`Reader::session`]), many streamed, the re-runs of
//! one, and the session a unique beginning of an id names.

use std::collections::HashMap;

use super::reader::{
    Param, Query, Reader, Row, int, json, pg_duration_ms, pg_utc, real, sqlite_duration_ms, text,
};
use super::{Decision, Session, SessionFilter, SessionOverview, SessionSummary, Step};
use crate::error::{Error, Result};

/// The conditions of a [`SessionFilter`] on `sessions s`, parameters 1 to 7, and (`_page`)
/// its order after any sort key and its page, parameters 8 to 10 (macros, so that
/// `concat!` can build the queries).
macro_rules! sqlite_filter {
    () => {
        "WHERE (?1 IS NULL OR s.started_at >= ?1) AND (?2 IS NULL OR s.started_at < ?2)
          AND (?3 IS NULL OR s.profile = ?3) AND (?4 IS NULL OR s.status = ?4)
          AND (?5 IS NULL OR json_extract(s.attributes, '$.replay_of') = ?5)
          AND (?6 IS NULL OR s.id = ?6)
          AND (?7 IS NULL OR EXISTS
               (SELECT 1 FROM steps st WHERE st.session_id = s.id AND st.confidence < ?7))
          AND (?11 IS NULL OR s.id IN (SELECT value FROM json_each(?11)))
"
    };
}
macro_rules! sqlite_page {
    () => {
        " CASE WHEN ?8 = 'oldest' THEN s.started_at END,
          CASE WHEN ?8 = 'oldest' THEN s.id END, s.started_at DESC, s.id DESC
        LIMIT ?9 OFFSET ?10"
    };
}
macro_rules! pg_filter {
    () => {
        " WHERE ($1::text IS NULL OR s.started_at >= ($1::text || '+00')::timestamptz)
          AND ($2::text IS NULL OR s.started_at < ($2::text || '+00')::timestamptz)
          AND ($3::text IS NULL OR s.profile = $3) AND ($4::text IS NULL OR s.status = $4)
          AND ($5::text IS NULL OR s.attributes->>'replay_of' = $5)
          AND ($6::text IS NULL OR s.id = $6)
          AND ($7::float8 IS NULL OR EXISTS
               (SELECT 1 FROM steps st WHERE st.session_id = s.id AND st.confidence < $7))
          AND ($11::text IS NULL OR s.id IN (SELECT json_array_elements_text($11::text::json)))
"
    };
}
macro_rules! pg_page {
    () => {
        " CASE WHEN $8::text = 'oldest' THEN s.started_at END,
          CASE WHEN $8::text = 'oldest' THEN s.id END, s.started_at DESC, s.id DESC
        LIMIT CASE WHEN $9::bigint < 0 THEN NULL ELSE $9::bigint END OFFSET $10::bigint"
    };
}

const SESSIONS: Query<'static> = Query {
    sqlite: concat!(
        "SELECT s.id, s.started_at, s.ended_at, s.profile, s.input_hash, s.status, s.input,
            s.attributes FROM sessions s ",
        sqlite_filter!(),
        " ORDER BY",
        sqlite_page!()
    ),
    postgres: concat!(
        "SELECT s.id, ",
        pg_utc!("s.started_at"),
        " AS started_at, ",
        pg_utc!("s.ended_at"),
        " AS ended_at, s.profile, s.input_hash, s.status, s.input, \
         s.attributes::text AS attributes FROM sessions s",
        pg_filter!(),
        " ORDER BY",
        pg_page!()
    ),
};

/// What a session's steps add up to, per session.
macro_rules! step_totals {
    ($tokens:literal) => {
        concat!(
            "(SELECT count(*) FROM steps st WHERE st.session_id = s.id) AS steps,
             (SELECT min(confidence) FROM steps st WHERE st.session_id = s.id) AS min_confidence,
             (SELECT ",
            $tokens,
            " FROM steps st WHERE st.session_id = s.id) AS tokens,
             (SELECT count(*) FROM steps st WHERE st.session_id = s.id
                AND st.error IS NOT NULL) AS errors"
        )
    };
}

/// The overview's columns on SQLite, over `sessions s` (or a page of it aliased `s`).
const SQLITE_OVERVIEW_COLUMNS: &str = concat!(
    "SELECT s.id, s.started_at, s.ended_at, s.profile, s.status, ",
    sqlite_duration_ms!("s.started_at", "s.ended_at"),
    " AS duration_ms, ",
    step_totals!("sum(tokens_used)")
);

/// The overview's rows and conditions; its order and page follow (see [`Reader::overview`]).
const OVERVIEW: Query<'static> = Query {
    sqlite: concat!(
        "SELECT s.id, s.started_at, s.ended_at, s.profile, s.status, ",
        sqlite_duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms, ",
        step_totals!("sum(tokens_used)"),
        " FROM sessions s ",
        sqlite_filter!()
    ),
    postgres: concat!(
        "SELECT s.id, ",
        pg_utc!("s.started_at"),
        " AS started_at, ",
        pg_utc!("s.ended_at"),
        " AS ended_at, s.profile, s.status, ",
        pg_duration_ms!("s.started_at", "s.ended_at"),
        " AS duration_ms, ",
        step_totals!("sum(tokens_used)::bigint"),
        " FROM sessions s",
        pg_filter!()
    ),
};

const STEPS: Query<'static> = Query {
    sqlite: "SELECT id, parent_step_id, module, started_at, ended_at, input_summary,
        output_summary, confidence, tokens_used, error, attributes
        FROM steps WHERE session_id = ?1 ORDER BY started_at, rowid",
    postgres: concat!(
        "SELECT id, parent_step_id, module, ",
        pg_utc!("started_at"),
        " AS started_at, ",
        pg_utc!("ended_at"),
        " AS ended_at, input_summary, output_summary, confidence::float8 AS confidence, \
         tokens_used::bigint AS tokens_used, error, attributes::text AS attributes \
         FROM steps WHERE session_id = $1 ORDER BY started_at, id"
    ),
};

const DECISIONS: Query<'static> = Query {
    sqlite: "SELECT d.step_id, d.id, d.decision_type, d.options_considered, d.chosen_option,
        d.rationale, d.decided_at, d.attributes
        FROM decisions d JOIN steps s ON s.id = d.step_id WHERE s.session_id = ?1
        ORDER BY d.decided_at IS NULL, d.decided_at, d.rowid",
    postgres: concat!(
        "SELECT step_id, id, decision_type, options_considered, chosen_option, rationale, ",
        pg_utc!("decided_at"),
        " AS decided_at, attributes::text AS attributes FROM decisions WHERE session_id = $1 \
         ORDER BY decided_at IS NULL, decided_at, id"
    ),
};

const IDS_STARTING_WITH: Query<'static> = Query {
    sqlite: "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1
        ORDER BY started_at DESC, id DESC LIMIT ?2",
    postgres: "SELECT id FROM sessions WHERE left(id, length($1::text)) = $1::text
        ORDER BY started_at DESC, id DESC LIMIT $2::bigint",
};

/// How many ids [`Reader::resolve`] names when a beginning is ambiguous.
const AMBIGUOUS_SHOWN: usize = 5;

impl Reader {
    /// The sessions `filter` selects, newest first, without their steps.
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>> {
        self.select_sessions(filter, None)
    }

    /// The sessions `filter` selects, newest first, each with what its steps add up to:
    /// how many, the lowest confidence, tokens, failures, and its duration. What
    /// `reasonkit-audit sessions` lists.
    ///
    /// ```
    /// # use tracing_subscriber::prelude::*;
    /// use reasonkit_audit::read::{Reader, SessionFilter};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("audit.db");
    /// # let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
    /// # tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
    /// #     let _s = tracing::info_span!("session", id = "run-1").entered();
    /// #     let _a = tracing::info_span!("step", module = "a", confidence = 0.4).entered();
    /// # });
    /// # guard.flush()?;
    /// let reader = Reader::open(&path)?;
    /// let unsure = reader.overview(&SessionFilter {
    ///     below_confidence: Some(0.5),
    ///     ..SessionFilter::default()
    /// })?;
    /// assert_eq!(unsure[0].id, "run-1");
    /// assert_eq!(unsure[0].steps, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn overview(&self, filter: &SessionFilter) -> Result<Vec<SessionOverview>> {
        // The sort key is one of a fixed set of column names, never text from a caller.
        // `of` names the table a sessions column is read from (`s.`), or nothing for the
        // overview's own columns.
        let key = |of: &str| {
            filter.sort.map_or_else(String::new, |sort| {
                format!(
                    " {of}{} {} NULLS LAST,",
                    sort.column.name(),
                    if sort.descending { "DESC" } else { "ASC" }
                )
            })
        };
        let sqlite = match filter.sort.map(|s| s.column.in_sessions_table()) {
            // Ordered by a column of the sessions table (or not at all): SQLite picks the
            // page from the sessions alone, through the index on started_at, and adds up
            // the steps of that page's sessions only. (Ordered by the same CASE as below,
            // it added up every session's steps before sorting: 640 ms a page at a
            // million rows.)
            None | Some(true) => {
                let order = format!(
                    "{}{}",
                    key("s."),
                    if filter.oldest_first {
                        " s.started_at, s.id"
                    } else {
                        " s.started_at DESC, s.id DESC"
                    }
                );
                format!(
                    "{SQLITE_OVERVIEW_COLUMNS} FROM (SELECT * FROM sessions s {} ORDER BY{order} \
                     LIMIT ?9 OFFSET ?10) s ORDER BY{order}",
                    sqlite_filter!()
                )
            }
            // Ordered by what the steps add up to: every selected session's totals first.
            Some(false) => format!("{} ORDER BY{}{}", OVERVIEW.sqlite, key(""), sqlite_page!()),
        };
        let postgres = format!("{} ORDER BY{}{}", OVERVIEW.postgres, key(""), pg_page!());
        let query = Query {
            sqlite: &sqlite,
            postgres: &postgres,
        };
        self.rows(&query, &filter_params(filter, None))?
            .iter()
            .map(|row| {
                Ok(SessionOverview {
                    id: text(row, "id").unwrap_or_default(),
                    started_at: self.time(row, "started_at")?.unwrap_or_default(),
                    ended_at: self.time(row, "ended_at")?,
                    profile: text(row, "profile").unwrap_or_default(),
                    status: text(row, "status").unwrap_or_default(),
                    duration_ms: real(row, "duration_ms"),
                    steps: int(row, "steps").unwrap_or(0),
                    min_confidence: real(row, "min_confidence"),
                    tokens: int(row, "tokens"),
                    errors: int(row, "errors").unwrap_or(0),
                })
            })
            .collect()
    }

    pub(crate) fn select_sessions(
        &self,
        filter: &SessionFilter,
        id: Option<&str>,
    ) -> Result<Vec<SessionSummary>> {
        self.rows(&SESSIONS, &filter_params(filter, id))?
            .iter()
            .map(|row| self.summary(row))
            .collect()
    }

    pub(super) fn summary(&self, row: &Row) -> Result<SessionSummary> {
        Ok(SessionSummary {
            id: text(row, "id").unwrap_or_default(),
            started_at: self.time(row, "started_at")?.unwrap_or_default(),
            ended_at: self.time(row, "ended_at")?,
            profile: text(row, "profile").unwrap_or_default(),
            input_hash: text(row, "input_hash").unwrap_or_default(),
            status: text(row, "status").unwrap_or_default(),
            input: text(row, "input"),
            attributes: json(row, "attributes"),
        })
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
        let params = [Param::Text(Some(summary.id.clone()))];
        let mut decisions: HashMap<String, Vec<Decision>> = HashMap::new();
        for row in self.rows(&DECISIONS, &params)? {
            decisions
                .entry(text(&row, "step_id").unwrap_or_default())
                .or_default()
                .push(Decision {
                    id: text(&row, "id").unwrap_or_default(),
                    decision_type: text(&row, "decision_type").unwrap_or_default(),
                    options_considered: row
                        .get("options_considered")
                        .filter(|o| !o.is_null())
                        .cloned(),
                    chosen_option: text(&row, "chosen_option"),
                    rationale: text(&row, "rationale"),
                    decided_at: self.time(&row, "decided_at")?,
                    attributes: json(&row, "attributes"),
                });
        }
        let mut flat = Vec::new();
        for row in self.rows(&STEPS, &params)? {
            let id = text(&row, "id").unwrap_or_default();
            let mine = decisions.remove(&id).unwrap_or_default();
            flat.push(Step {
                id,
                parent_step_id: text(&row, "parent_step_id"),
                depth: 0,
                module: text(&row, "module").unwrap_or_default(),
                started_at: self.time(&row, "started_at")?.unwrap_or_default(),
                ended_at: self.time(&row, "ended_at")?,
                input_summary: text(&row, "input_summary"),
                output_summary: text(&row, "output_summary"),
                confidence: real(&row, "confidence"),
                tokens_used: int(&row, "tokens_used"),
                error: text(&row, "error"),
                attributes: json(&row, "attributes"),
                decisions: mine,
            });
        }
        Ok(Some(Session {
            summary,
            steps: depth_first(flat),
        }))
    }

    /// Where the steps of a joined session went: the sessions its `otel.joined_into` leads
    /// through, hop by hop, to one that joined no other (the last, which holds them). A
    /// trace received over OTLP that joined a run which later joined a conversation points
    /// at the run, and the run at the conversation. Empty for a session that joined none.
    /// A hop to a session not in the store ends the walk there, and so does a cycle,
    /// which no receiver writes.
    ///
    /// ```
    /// use reasonkit_audit::{AuditLayer, read::Reader};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("audit.db");
    /// let (_layer, guard) = AuditLayer::builder().path(&path).build()?;
    /// drop(guard);
    /// // A session the layer wrote joined none (and an unknown id leads nowhere).
    /// assert!(Reader::open(&path)?.joined_chain("no-such-session")?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Read`] when the store cannot be queried.
    pub fn joined_chain(&self, id: &str) -> Result<Vec<String>> {
        let mut chain: Vec<String> = Vec::new();
        let mut at = id.to_owned();
        loop {
            let Some(summary) = self
                .select_sessions(&SessionFilter::default(), Some(&at))?
                .into_iter()
                .next()
            else {
                return Ok(chain);
            };
            let Some(into) = summary.joined_into() else {
                return Ok(chain);
            };
            if into == id || chain.iter().any(|seen| seen == into) {
                return Ok(chain);
            }
            chain.push(into.to_owned());
            at = into.to_owned();
        }
    }

    /// The sessions `filter` selects, loaded one at a time as the iterator is advanced: a
    /// large store is read holding the list of ids and one session's steps and decisions
    /// at a time.
    ///
    /// # Errors
    /// [`Error::Read`] when the list cannot be read; each item carries
    /// its own error.
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
        let params = [Param::Text(Some(prefix.to_owned())), Param::count(limit)];
        Ok(self
            .rows(&IDS_STARTING_WITH, &params)?
            .iter()
            .filter_map(|row| text(row, "id"))
            .collect())
    }

    /// The one session `prefix` names, as git takes a commit's first characters: an id
    /// given whole is taken as it is (even when longer ids start with it), else the one id
    /// that starts with it; `None` when none does.
    ///
    /// # Errors
    /// [`Error::Request`] naming up to five of the candidates when more than one id starts
    /// with `prefix`; [`Error::Read`] when the store cannot be queried.
    pub fn resolve(&self, prefix: &str) -> Result<Option<String>> {
        let ids = self.ids_starting_with(prefix, AMBIGUOUS_SHOWN + 1)?;
        if ids.iter().any(|id| id == prefix) {
            return Ok(Some(prefix.to_owned()));
        }
        match ids.len() {
            0 | 1 => Ok(ids.into_iter().next()),
            _ => Err(Error::Request {
                message: format!(
                    "session id prefix '{prefix}' is ambiguous ({}{}); give more characters",
                    ids[..ids.len().min(AMBIGUOUS_SHOWN)].join(", "),
                    if ids.len() > AMBIGUOUS_SHOWN {
                        ", …"
                    } else {
                        ""
                    }
                ),
            }),
        }
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

/// The parameters of the session filter's conditions, order and page.
fn filter_params(filter: &SessionFilter, id: Option<&str>) -> [Param; 11] {
    [
        Param::time(filter.since),
        Param::time(filter.until),
        Param::Text(filter.profile.clone()),
        Param::Text(filter.status.clone()),
        Param::Text(filter.replay_of.clone()),
        Param::Text(id.map(str::to_owned)),
        Param::Real(filter.below_confidence),
        Param::Text(filter.oldest_first.then(|| "oldest".to_owned())),
        // A negative limit is none, in both dialects as the queries are written.
        filter.limit.map_or(Param::Int(-1), Param::count),
        Param::count(filter.offset),
        // The ids as a JSON array, which each dialect unpacks (json_each, json_array_elements).
        Param::Text(
            filter
                .only
                .as_ref()
                .map(|ids| serde_json::Value::from(ids.clone()).to_string()),
        ),
    ]
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
