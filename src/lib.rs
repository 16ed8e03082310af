//! An audit trail for AI reasoning: a [`tracing_subscriber::Layer`] that records reasoning
//! sessions, steps and decisions as rows of a local SQLite database.
//!
//! Every reasoning session, step and decision lands in one file — `~/.reasonkit/audit.db`
//! by default — that a person can query afterwards with `sqlite3`, Datasette, or any SQLite
//! tool, to debug a chain, satisfy an auditor, study patterns, or replay a run with
//! identical inputs (the design is ADR-002, "SQLite for Audit Trail").
//!
//! The instrumented thread never touches SQLite: the layer sends small records through a
//! bounded queue to one writer thread, which commits them in batches in WAL mode with
//! `synchronous=NORMAL`. By default nothing is ever dropped: when the queue is full the
//! instrumented thread waits.
//!
//! The trail's lifecycle, for both stores: secrets are redacted on the writer thread before
//! anything is written ([`Redaction`], on by default); closed sessions past a retention are
//! pruned ([`prune()`], [`AuditLayerBuilder::retention`]) and a person's data erased
//! ([`erase()`]), each after a chained event that lets [`verify()`] still check everything
//! else; and a live file is copied consistently with [`backup()`].
//!
//! With the `postgres` feature the same layer writes one PostgreSQL database shared by
//! many processes on many hosts instead ([`AuditLayerBuilder::postgres`], or
//! `REASONKIT_AUDIT_DB=postgres://…`); see the `postgres` module and
//! `docs/postgres.md`.
//!
//! # Quick start
//!
//! ```
//! use tracing::instrument;
//! use tracing_subscriber::prelude::*;
//!
//! #[instrument(name = "session", skip_all, fields(profile = "balanced", input = %question))]
//! fn answer(question: &str) -> String {
//!     let idea = think(question);
//!     check(&idea)
//! }
//!
//! #[instrument(name = "step", skip_all, fields(module = "gigathink", confidence = 0.81), ret)]
//! fn think(question: &str) -> String {
//!     format!("an idea about {question}")
//! }
//!
//! #[instrument(name = "step", skip_all, fields(module = "proofguard", confidence = tracing::field::Empty))]
//! fn check(idea: &str) -> String {
//!     tracing::info!(
//!         name: "decision",
//!         decision_type = "accept",
//!         options_considered = ?["accept", "revise"],
//!         chosen_option = "accept",
//!         rationale = "no contradiction found",
//!     );
//!     tracing::Span::current().record("confidence", 0.95);
//!     idea.to_owned()
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let (audit, guard) = reasonkit_audit::AuditLayer::builder()
//! #   .path(dir.path().join("audit.db"))
//!     .build()?; // default path: $REASONKIT_AUDIT_DB, else ~/.reasonkit/audit.db
//! tracing_subscriber::registry().with(audit).init();
//!
//! answer("Why is the sky blue?");
//! guard.flush()?; // every record sent so far is committed
//! # let db = rusqlite::Connection::open(dir.path().join("audit.db"))?;
//! # let steps: i64 = db.query_row("SELECT count(*) FROM steps", [], |r| r.get(0))?;
//! # assert_eq!(steps, 2);
//! # Ok(())
//! # }
//! ```
//!
//! Then: `sqlite3 ~/.reasonkit/audit.db 'SELECT module, confidence FROM steps'`, or the
//! `reasonkit-audit` command (`cargo install --path cli`): `reasonkit-audit sessions`,
//! `reasonkit-audit show <id>` for the replay view, `search`, `stats`, `export`.
//!
//! # What is recorded
//!
//! Spans named `session`, `step` and `decision`, and events named `decision`, become rows,
//! and so do the spans of the agent frameworks (see [Frameworks](#frameworks)); spans and
//! events with other names write nothing. A field that has no column of its own
//! goes into the row's `attributes` JSON object, so nothing recorded is lost. Fields may be
//! given when the span is created or recorded later with `Span::record` (declare them
//! `= tracing::field::Empty`).
//!
//! | column | taken from |
//! |---|---|
//! | **`sessions`** | one row per `session` span, written when it opens |
//! | `id` | the `id` field if given (at creation), else a new UUIDv7 ([`current_session_id`] tells it); a given id that already names another session (a re-run, a conversation's next turn, however soon after) is written as `<id>~<uuidv7>`, with `attributes.given_id`: every session span is a row of its own |
//! | `started_at`, `ended_at` | UTC at creation and close, as `YYYY-MM-DD HH:MM:SS.ffffff` |
//! | `profile` | the `profile` field, else `'default'` |
//! | `input_hash` | an `input_hash` field as given, else lowercase hex SHA-256 of the `input` field's text (of `""` without one) |
//! | `input` | the `input` field, only with [`AuditLayerBuilder::store_inputs`]`(true)`; else NULL |
//! | `status` | `'running'` while open; at close the `status` field if recorded, else `'failed'` if the session has an `error` field or an ERROR-level event directly inside it (what `#[instrument(err)]` emits), else `'completed'` |
//! | `attributes` | every other field, as a JSON object |
//! | **`steps`** | one row per `step` span, written when it opens |
//! | `id` | a new UUIDv7 |
//! | `session_id` | the nearest enclosing `session`: through unrelated spans, across threads, through `.instrument(span)` futures |
//! | `parent_step_id` | the nearest enclosing `step`, NULL for a top-level step |
//! | `module` | the `module` field, else the span's target |
//! | `input_summary`, `output_summary`, `confidence`, `tokens_used`, `error` | fields of those names; `output_summary` falls back to what `#[instrument(ret)]` emits, `error` to what `#[instrument(err)]` emits (or the message of an ERROR event directly inside the step) |
//! | columns when their own field is not given | the OpenTelemetry GenAI names (`gen_ai.usage.*` tokens, `gen_ai.tool.name`, …): see [Frameworks](#frameworks) |
//! | `attributes` | every other field, as a JSON object |
//! | **`decisions`** | one row per `decision` span (written when it opens) and per `decision` event |
//! | `id` | a new UUIDv7 |
//! | `step_id` | the nearest enclosing `step` |
//! | `decision_type` | the field, else `'unspecified'` |
//! | `options_considered` | a value that is already JSON (e.g. `?vec!["a", "b"]`) as it is, anything else as a JSON string |
//! | `chosen_option`, `rationale` | fields of those names |
//! | `decided_at` | the event's time, or the close of the span (NULL while it is open) |
//! | `attributes` | every other field, as a JSON object |
//!
//! **Orphans are never dropped.** A `step` outside every session gets an *implicit session*
//! of its own (profile `'implicit'`, `attributes` `{"implicit":true}`), opened and closed
//! with the step and `'failed'` if the step failed. A decision outside every step gets an
//! *implicit step* (module `'implicit'`) in the enclosing session, or in an implicit
//! session of its own; for a decision event it opens and closes at that moment.
//!
//! **Text of values.** A value recorded with `?debug` (the default for `#[instrument]`
//! arguments) that is a quoted string is stored without its quotes and escapes; other values
//! are stored as their text. Values longer than [`AuditLayerBuilder::max_field_len`] are cut
//! and marked. Numeric columns take numbers and numeric strings; anything else (including
//! NaN) stays in `attributes` under its field name.
//!
//! # Frameworks
//!
//! The spans of the OpenTelemetry GenAI conventions and of the Rust agent frameworks are
//! recorded as they are ([`AuditLayerBuilder::frameworks`] turns this off): a span whose
//! `gen_ai.operation.name` is `invoke_agent` or `invoke_workflow`, or whose name is a known
//! run span (`agent.run`, `agent.query`, `agent.execute`, `task.run`, …), is a session — a
//! step when it runs inside a session; `chat`, `text_completion`, `generate_content`,
//! `embeddings`, `retrieval`, `execute_tool` (and `genai.chat`, `call_llm`, swiftide's `tool`
//! inside a session, adk-rust's unnamed `otel.name = "execute_tool X"` spans, …) are steps;
//! `plan` is a decision. Columns come from the conventions when their own fields are not
//! given: `module` from `gen_ai.tool.name`, `gen_ai.request.model` or `gen_ai.agent.name`;
//! `tokens_used` from the input and output token counts; the session id from
//! `gen_ai.conversation.id`; summaries from tool-call arguments and results or messages;
//! `error` from `error.type` or `otel.status_code = "error"`. The full table is in
//! `docs/frameworks.md`.
//!
//! rig-core 0.38 runs without a span of yours are one session each too: rig never enters
//! its own `invoke_agent` span and links its turns only by `follows_from`, so a rig step
//! opened outside every session waits until rig says where it belongs (see the rig section
//! of `docs/frameworks.md`, which also says what each framework records of a failure and
//! what to add).
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let (audit, guard) = reasonkit_audit::AuditLayer::builder()
//!     .path(dir.path().join("audit.db"))
//!     .build()?;
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(audit), || {
//!     // What genai's `otel` feature opens for an agent and one model call.
//!     let _agent = tracing::info_span!("genai.agent", "gen_ai.operation.name" = "invoke_agent",
//!         "gen_ai.agent.name" = "planner", "gen_ai.conversation.id" = "conv-1").entered();
//!     let chat = tracing::info_span!("genai.chat", "gen_ai.operation.name" = "chat",
//!         "gen_ai.request.model" = "gpt-4o-mini",
//!         "gen_ai.usage.input_tokens" = tracing::field::Empty,
//!         "gen_ai.usage.output_tokens" = tracing::field::Empty);
//!     chat.record("gen_ai.usage.input_tokens", 120_u64);
//!     chat.record("gen_ai.usage.output_tokens", 30_u64);
//! });
//! guard.flush()?;
//!
//! let db = rusqlite::Connection::open(dir.path().join("audit.db"))?;
//! let (session, module, tokens): (String, String, i64) = db.query_row(
//!     "SELECT session_id, module, tokens_used FROM steps", [],
//!     |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
//! assert_eq!((session.as_str(), module.as_str(), tokens), ("conv-1", "gpt-4o-mini", 150));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Tamper evidence
//!
//! Every row version the writer commits is also a leaf of one SHA-256 hash chain (the
//! `audit_chain` table), hashed on the writer thread in the transaction that writes it.
//! [`verify()`] recomputes every leaf and link and names what disagrees — a changed, deleted
//! or inserted row, an edited, missing or reordered chain entry. A [`Checkpoint`] of the
//! chain's head kept outside the file (written by [`AuditLayerBuilder::checkpoints`] or
//! `reasonkit-audit checkpoint`, optionally signed with a [`SignerKey`]) also catches a cut
//! tail, a recomputed chain and an older copy put back: pass it in
//! [`VerifyOptions::checkpoints`]. The encoding is specified in `docs/chain.md`, with golden
//! vectors and an independent verifier in Python (`tools/verify_chain.py`).
//!
//! # Reading back, replaying, comparing
//!
//! [`read::Reader`] opens a store read-only (a file, or a `postgres://` URL with the
//! `postgres` feature) and gives its sessions as typed values: listed and filtered, one
//! session with its steps (depth first) and decisions, streamed one at a time, and the
//! re-runs of a session (recorded with `replay_of = <id>`). [`diff::compare`] aligns a
//! re-run with its original step by step and says whether the decisions diverged; its
//! module documentation is a replay harness. The `reasonkit-audit` command's `show`, `diff`
//! and `report` are built on them.
//!
//! # Subscribers
//!
//! The layer works with a global subscriber (`.init()`), with
//! `tracing::subscriber::set_default` / `with_default`, and inside a [`tracing::Dispatch`];
//! several layers, each with its own file, can live in one process. A *global* filter in
//! front of it (e.g. `registry().with(EnvFilter::new("warn")).with(audit)`) hides reasoning
//! spans from the audit trail too: give other layers per-layer filters
//! (`fmt::layer().with_filter(...)`) instead.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod capture;
mod chain;
mod error;
mod health;
mod ids;
mod lifecycle;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod read;
mod record;
pub mod redaction;
mod store;
mod writer;

pub use builder::{
    AuditLayerBuilder, DB_PATH_ENV, DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_FLUSH_INTERVAL, DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_MAX_FIELD_LEN,
    DEFAULT_POSTGRES_MAX_BATCH, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, default_path,
};
pub use capture::context::current_session_id;
pub use capture::layer::{AuditLayer, OverflowPolicy};
pub use chain::checkpoint::{
    Checkpoint, CheckpointError, NoteSignature, ORIGIN_PREFIX, SignerKey, TreeHeads, VerifierKey,
};
/// Evidence bundles: sessions, or a period, taken away from the store as one file that
/// proves itself offline — every row is what the audit layer committed, and none of the
/// scope is left out (docs/chain.md, "Evidence bundles").
pub mod evidence {
    pub use crate::chain::evidence::*;
    pub use crate::store::sqlite::evidence::{build, tree_heads};
}
pub use chain::verify::{CheckpointCheck, Finding, FindingKind, OpenRow, Report, VerifyOptions};
pub use chain::{CHAIN_FORMAT, ChainHead};
pub use error::{Error, Result};
pub use health::AuditStats;
pub use lifecycle::erase::{Erase, EraseReport};
pub use lifecycle::prune::{Prune, PruneReport};
pub use read::diff;
pub use record::TRUNCATION_MARKER;
pub use redaction::Redaction;
#[cfg(feature = "postgres")]
pub use store::postgres;
pub use store::rows::{DEFAULT_PROFILE, IMPLICIT_MODULE, IMPLICIT_PROFILE, UNSPECIFIED_DECISION};
pub use store::sqlite::backup::{BackupReport, backup};
pub use store::sqlite::erase::erase;
pub use store::sqlite::open::{
    DEFAULT_BUSY_TIMEOUT, SCHEMA_VERSION, chain_head, migrate, open_read_only,
};
pub use store::sqlite::prune::prune;
pub use store::sqlite::verify::{verify, verify_with};
pub use writer::guard::AuditGuard;
