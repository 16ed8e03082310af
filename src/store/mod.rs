//! The stores the writer writes, behind one trait: SQLite (`sqlite/`) or, with the
//! `postgres` feature, PostgreSQL (`postgres/`).
//!
//! - this file: the [`Backend`] trait, the batch it writes, and the renaming of a session
//!   whose given id is taken — the part every store shares;
//! - `rows.rs`: recorded fields → column values, the mapping table in code;
//! - `process.rs`: who writes (pid, host), and whether a crashed writer's process lives;
//! - `sqlite/`: opening a file (pragmas, migrations), the statements, the search index,
//!   and the backend; `postgres/`: the same concerns for a server, its `mod.rs` lists them.
//!
//! The writer thread owns the batch — which rows it holds, which of them are committed,
//! which statements the next transaction runs, in arrival order — and everything that
//! decides it (flush, shutdown, the drop policy's lost closes, back-off). A backend only
//! writes a batch in one transaction, with the chain entries of every row version it
//! wrote, and reports what it refused. That keeps one batching policy, tested once, for
//! every store.

#[cfg(feature = "postgres")]
pub mod postgres;
pub(crate) mod process;
pub(crate) mod rows;
pub(crate) mod sql;
pub(crate) mod sqlite;

use std::collections::HashMap;

use crate::chain::ChainHead;
use crate::health::{AuditStats, Health};
use crate::ids::AuditId;
use crate::record::{Decided, Joined};
use crate::store::process::Identity;
use crate::store::rows::Row;

/// A row the writer holds: until it is committed, and, if still open, until it closes.
pub(crate) struct Tracked {
    pub(crate) row: Row,
    /// Its INSERT is committed (or the store refused it), so a close becomes an UPDATE.
    pub(crate) committed: bool,
    /// The store refused its INSERT: later updates must not touch a row of the same id.
    pub(crate) refused: bool,
    /// Its close was dropped (drop policy): once inserted, the row is let go, left open.
    pub(crate) close_lost: bool,
}

impl Tracked {
    /// Nothing more will change this row once its INSERT is committed.
    pub(crate) fn finished(&self) -> bool {
        self.row.closed.is_some() || self.close_lost
    }
}

/// One statement of the next transaction, in arrival order (parents before children).
pub(crate) enum Op {
    Insert(AuditId),
    Update(AuditId),
    Decided(Decided),
    /// A session's steps move to another: see [`Joined`]. After its statements, the rows
    /// the writer still tracks follow (see [`follow_joined`]).
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    Joined(Joined),
}

/// What a store needs of the writer's configuration to write rows.
#[derive(Clone, Debug)]
pub(crate) struct WriteOptions {
    /// Keep the raw `input` of sessions (else only its hash).
    pub(crate) store_inputs: bool,
    /// The writing process, recorded on each session and health row.
    pub(crate) identity: Identity,
}

/// Rows the store refused in a commit, with its reason.
pub(crate) type Refused = Vec<(AuditId, String)>;

/// What one commit writes.
pub(crate) struct Batch<'a> {
    /// The batch's number: the same for every attempt at one batch, new for the next one
    /// (also after a batch given up), so a store can tell a resent batch from a new one.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) number: u64,
    /// Every row the writer holds; a backend may set `written_as` (a renamed session) and
    /// `session_written_as` (a step following it).
    pub(crate) rows: &'a mut HashMap<AuditId, Tracked>,
    pub(crate) ops: &'a [Op],
    pub(crate) config: &'a WriteOptions,
    pub(crate) health: &'a Health,
    /// The health counters as last written, and as they are now: a row per counter that grew.
    pub(crate) health_written: &'a AuditStats,
    pub(crate) health_now: &'a AuditStats,
}

/// What a commit did.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) refused: Refused,
    /// The chain's size after the commit, if it appended to it.
    pub(crate) chain_size: Option<u64>,
}

/// A store the writer thread writes.
pub(crate) trait Backend: Send {
    /// Writes the batch in one transaction, with its chain entries. On an error nothing of
    /// it is committed — or, where the store cannot tell (a connection lost during COMMIT),
    /// writing the same batch again must add nothing twice.
    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, String>;

    /// Marks these sessions (ids as written) `interrupted` if still `running`, chained.
    fn mark_interrupted(&mut self, ids: &[String]) -> Result<(), String>;

    /// Indexes a chunk of rows for search, if the store indexes apart from writing;
    /// `true` when more wait.
    fn index_search(&mut self) -> Result<bool, String>;

    /// The database's id and the chain's head, for a checkpoint.
    fn chain_head(&mut self) -> Result<(String, ChainHead), String>;

    /// Prunes closed sessions older than the cut, chained (the layer's retention).
    fn prune(
        &mut self,
        prune: &crate::lifecycle::prune::Prune,
    ) -> Result<crate::lifecycle::prune::PruneReport, String>;
}

/// After a [`Joined`] is written: the steps of `from` the writer still tracks now belong
/// to `into` and name their trace, as the statement made their stored rows, so that the
/// leaves of their later versions cover what is stored.
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn follow_joined(rows: &mut HashMap<AuditId, Tracked>, joined: &Joined) {
    for tracked in rows.values_mut() {
        let opened = &mut tracked.row.opened;
        if opened.kind == crate::record::Kind::Step && opened.parent.as_ref() == Some(&joined.from)
        {
            opened.parent = Some(joined.into.clone());
            let names_trace =
                |fields: &crate::record::Fields| fields.iter().any(|(name, _)| *name == TRACE_ID);
            let recorded = tracked
                .row
                .closed
                .as_ref()
                .is_some_and(|c| names_trace(&c.learned().recorded));
            if !names_trace(&tracked.row.opened.fields) && !recorded {
                tracked.row.opened.fields.push((
                    TRACE_ID,
                    crate::record::FieldValue::Str(joined.trace.clone()),
                ));
            }
        }
    }
}

/// What [`follow_joined`] changes in the writer's tracked steps during an attempt at a
/// batch, kept so that an attempt that did not commit can be undone: the next attempt
/// moves the stored steps again, and must find the tracked ones where the store has them.
/// (Without it, a close after a join in a batch whose first attempt was rolled back named
/// the session the steps had been moved to, and on PostgreSQL, whose closes find a step by
/// its session and id, matched nothing: the close was lost.)
pub(crate) struct JoinUndo(Vec<(AuditId, Option<AuditId>, usize)>);

impl JoinUndo {
    /// The steps of the sessions that `ops` join into others, as they are now.
    pub(crate) fn of(rows: &HashMap<AuditId, Tracked>, ops: &[Op]) -> JoinUndo {
        let from: std::collections::HashSet<&AuditId> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Joined(joined) => Some(&joined.from),
                _ => None,
            })
            .collect();
        if from.is_empty() {
            return JoinUndo(Vec::new());
        }
        JoinUndo(
            rows.iter()
                .filter(|(_, t)| {
                    t.row.opened.kind == crate::record::Kind::Step
                        && t.row
                            .opened
                            .parent
                            .as_ref()
                            .is_some_and(|p| from.contains(p))
                })
                .map(|(id, t)| {
                    let opened = &t.row.opened;
                    (id.clone(), opened.parent.clone(), opened.fields.len())
                })
                .collect(),
        )
    }

    /// Puts those steps back as they were.
    pub(crate) fn restore(&self, rows: &mut HashMap<AuditId, Tracked>) {
        for (id, parent, fields) in &self.0 {
            if let Some(tracked) = rows.get_mut(id) {
                tracked.row.opened.parent = parent.clone();
                tracked.row.opened.fields.truncate(*fields);
            }
        }
    }
}

/// The attribute that names a span's trace, on a step whose session is another trace's.
pub(crate) const TRACE_ID: &str = "otel.trace_id";

/// A step whose session was written under another id (its given id was taken) follows it.
pub(crate) fn follow_renamed_session(rows: &mut HashMap<AuditId, Tracked>, id: &AuditId) {
    let Some(tracked) = rows.get(id) else { return };
    if tracked.row.kind() != crate::record::Kind::Step {
        return;
    }
    let renamed = tracked
        .row
        .opened
        .parent
        .as_ref()
        .and_then(|session| rows.get(session))
        .and_then(|session| session.row.written_as.clone());
    if let Some(tracked) = rows.get_mut(id) {
        tracked.row.session_written_as = renamed;
    }
}

/// Gives a session whose given id already names another session a new id (see
/// [`AuditId::renamed`]), and says so once in the health report. The given id stays in
/// `attributes.given_id`, so every run stays apart and each can be found.
pub(crate) fn rename_session(row: &mut Row, health: &Health) {
    let renamed = row.opened.id.renamed();
    health.report("renamed_sessions", || {
        format!(
            "session id {} already names another session; this one is written as {renamed} \
             (attributes.given_id keeps the id it was given)",
            row.opened.id
        )
    });
    row.written_as = Some(renamed);
}

/// Renames each session new in this batch whose given id an earlier new session of the
/// batch was also given. A store that inserts a batch's sessions in one statement cannot
/// tell which of two rows of one id it kept; in arrival order, the first keeps the id.
#[cfg(feature = "postgres")]
pub(crate) fn rename_repeated_sessions(
    rows: &mut HashMap<AuditId, Tracked>,
    ops: &[Op],
    health: &Health,
) {
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    for op in ops {
        let Op::Insert(id) = op else { continue };
        if id.given_text().is_none() {
            continue;
        }
        let Some(tracked) = rows.get_mut(id) else {
            continue;
        };
        if tracked.row.written_as.is_none() && !taken.insert(tracked.row.written_id()) {
            rename_session(&mut tracked.row, health);
        }
    }
}
