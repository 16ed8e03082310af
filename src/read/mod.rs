//! Reading the audit trail back: everything the `reasonkit-audit` command shows is a call
//! here first — list and filter sessions (with what their steps add up to), load one as
//! its tree of steps with their decisions, stream many, search, per-module statistics,
//! export as JSON or CSV, check the store, find the replays of a run and compare them.
//!
//! | file | what it reads |
//! |---|---|
//! | `reader.rs` | [`Reader`]: the read-only connection, one query runner for both stores |
//! | `model.rs` | the values given back: [`Session`], [`SessionOverview`], [`SearchHit`], … |
//! | `sessions.rs` | [`Reader::sessions`], [`Reader::overview`], [`Reader::session`], [`Reader::resolve`] |
//! | `search.rs` | [`Reader::search`]: full-text, the unindexed tail included |
//! | `stats.rs` | [`Reader::module_stats`] |
//! | `export.rs` | [`Reader::export`]: JSON, JSON lines, CSV, streamed |
//! | `check.rs` | [`Reader::check`]: integrity, orphans, schema, step times |
//! | `diff.rs` | [`diff::compare`]: a re-run against its original |
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

mod check;
pub mod diff;
mod export;
mod model;
#[cfg(feature = "otlp")]
pub(crate) mod presence;
mod reader;
mod search;
mod sessions;
mod stats;

pub use check::CheckReport;
pub use export::{ExportFormat, ExportScope, ExportTable, SessionRecord};
pub use model::{
    DayStats, Decision, HitKind, ModuleStats, OverviewColumn, REPLAY_OF, SearchHit, Session,
    SessionFilter, SessionOverview, SessionSummary, SortBy, Step,
};
pub use reader::Reader;
