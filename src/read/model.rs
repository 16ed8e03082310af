//! The values the read side gives: sessions, steps and decisions as the layer recorded them,
//! a session's line in a list, a search hit, a module's statistics, and the filters that
//! select them. Plain data: `Serialize`, comparable, no connection inside.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// The attribute that links a re-run to the session it replays.
pub const REPLAY_OF: &str = "replay_of";

/// One session row, without its steps: what [`Reader::sessions`](super::Reader::sessions) lists.
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

    /// The session this one was joined into (its `otel.joined_into`): a trace received
    /// over OTLP whose root follows another trace's run, whose steps are in that run's
    /// session. `None` for every other session.
    pub fn joined_into(&self) -> Option<&str> {
        self.attributes
            .get("otel.joined_into")
            .and_then(Value::as_str)
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

impl Decision {
    /// The options considered, as text: each element of a JSON array, or the one value
    /// recorded; strings as they are, anything else as JSON.
    pub fn options(&self) -> Vec<String> {
        let as_text = |o: &Value| o.as_str().map_or_else(|| o.to_string(), str::to_owned);
        match &self.options_considered {
            Some(Value::Array(options)) => options.iter().map(as_text).collect(),
            Some(other) => vec![as_text(other)],
            None => Vec::new(),
        }
    }
}

/// Which sessions [`Reader::sessions`](super::Reader::sessions) and
/// [`Reader::overview`](super::Reader::overview) list; the default lists them all, newest first.
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
    /// Only sessions with a step whose confidence is below this.
    pub below_confidence: Option<f64>,
    /// Only these sessions (e.g. the sessions [`Reader::search`](super::Reader::search)
    /// found); `Some(vec![])` selects none.
    pub only: Option<Vec<String>>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Skip this many first (paging: with `limit`, page `n` starts at `n * limit`).
    pub offset: usize,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// [`Reader::overview`](super::Reader::overview) only: order by this column first (then
    /// by start, newest first); sessions without a value for it come last.
    pub sort: Option<SortBy>,
}

/// A column of [`SessionOverview`] to order by, and which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortBy {
    /// The column.
    pub column: OverviewColumn,
    /// Largest first.
    pub descending: bool,
}

/// The columns of [`SessionOverview`] a list can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverviewColumn {
    /// The session's id.
    Id,
    /// When it started.
    Started,
    /// How long it took.
    Duration,
    /// Its profile.
    Profile,
    /// Its status.
    Status,
    /// How many steps it has.
    Steps,
    /// Its steps' lowest confidence.
    MinConfidence,
    /// The tokens its steps used.
    Tokens,
    /// How many of its steps failed.
    Errors,
}

impl OverviewColumn {
    /// Every column, in the order a list shows them.
    pub const ALL: [OverviewColumn; 9] = [
        OverviewColumn::Id,
        OverviewColumn::Started,
        OverviewColumn::Duration,
        OverviewColumn::Profile,
        OverviewColumn::Status,
        OverviewColumn::Steps,
        OverviewColumn::MinConfidence,
        OverviewColumn::Tokens,
        OverviewColumn::Errors,
    ];

    /// Its name, as [`SessionOverview`] serializes it (`duration_ms`, `min_confidence`, …).
    pub fn name(self) -> &'static str {
        match self {
            OverviewColumn::Id => "id",
            OverviewColumn::Started => "started_at",
            OverviewColumn::Duration => "duration_ms",
            OverviewColumn::Profile => "profile",
            OverviewColumn::Status => "status",
            OverviewColumn::Steps => "steps",
            OverviewColumn::MinConfidence => "min_confidence",
            OverviewColumn::Tokens => "tokens",
            OverviewColumn::Errors => "errors",
        }
    }

    /// Whether it is a column of the `sessions` table itself, not a total of its steps.
    pub fn in_sessions_table(self) -> bool {
        matches!(
            self,
            OverviewColumn::Id
                | OverviewColumn::Started
                | OverviewColumn::Profile
                | OverviewColumn::Status
        )
    }

    /// The column with this name.
    pub fn from_name(name: &str) -> Option<OverviewColumn> {
        OverviewColumn::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One line of [`Reader::overview`](super::Reader::overview): a session with what its steps
/// add up to — what `reasonkit-audit sessions` prints.
///
/// Serializes as `sessions --json` prints it: times as the store's UTC text
/// (`2026-12-06 09:30:00.123456`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionOverview {
    /// The session's id as written.
    pub id: String,
    /// When it opened.
    #[serde(serialize_with = "stored_time")]
    pub started_at: DateTime<Utc>,
    /// When it closed; `None` while running or after a crash.
    #[serde(serialize_with = "stored_time_or_null")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The reasoning profile.
    pub profile: String,
    /// `running`, `completed`, `failed`, `interrupted`, or a recorded status.
    pub status: String,
    /// From open to close, in milliseconds; `None` while running.
    pub duration_ms: Option<f64>,
    /// How many steps it has.
    pub steps: i64,
    /// The lowest confidence of its steps.
    pub min_confidence: Option<f64>,
    /// The tokens its steps used, summed; `None` when no step counted any.
    pub tokens: Option<i64>,
    /// How many of its steps failed.
    pub errors: i64,
}

/// Where a [`SearchHit`] was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HitKind {
    /// In a step's input summary, output summary or error.
    Step,
    /// In a decision's options, chosen option or rationale.
    Decision,
}

/// One match of [`Reader::search`](super::Reader::search), best first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchHit {
    /// A step or a decision.
    pub kind: HitKind,
    /// The session it belongs to.
    pub session_id: String,
    /// The step (for a decision, the step it was made in).
    pub step_id: String,
    /// That step's module.
    pub module: String,
    /// When the step started, or the decision was made.
    #[serde(serialize_with = "stored_time")]
    pub at: DateTime<Utc>,
    /// The matching text around the match, the words found between `[` and `]`.
    pub snippet: String,
    /// The store's rank: lower is better (SQLite's bm25, PostgreSQL's `-ts_rank`).
    pub rank: f64,
}

/// One module's figures, from [`Reader::module_stats`](super::Reader::module_stats).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModuleStats {
    /// The reasoning module.
    pub module: String,
    /// How many steps ran it.
    pub uses: i64,
    /// Their average confidence, over the steps that gave one.
    pub avg_confidence: Option<f64>,
    /// Their average duration in milliseconds, over the steps that ended.
    pub avg_duration_ms: Option<f64>,
    /// The share of them that failed, 0 to 1.
    pub failure_rate: f64,
    /// The tokens they used, summed.
    pub tokens: Option<i64>,
}

/// A time as the store's text: UTC, microseconds.
fn stored_time<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&at.format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn stored_time_or_null<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => stored_time(at, s),
        None => s.serialize_none(),
    }
}

/// One UTC day's steps, from [`Reader::daily_stats`](super::Reader::daily_stats).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayStats {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// How many steps started that day.
    pub steps: i64,
    /// How many of them failed.
    pub failures: i64,
    /// Their average confidence, over the steps that gave one.
    pub avg_confidence: Option<f64>,
    /// The tokens they used.
    pub tokens: Option<i64>,
}
