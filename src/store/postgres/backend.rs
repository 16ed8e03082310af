//! The PostgreSQL store: each batch as one transaction.
//!
//! - New rows go in by binary COPY ([`super::copy`]), their leaves hashed from what was
//!   sent. When a row has no COPY form, or the store refuses one (a taken id, a missing
//!   parent), the transaction is rolled back and the batch goes again by set-based
//!   statements: one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` per table,
//!   which refuse, or rename, row by row. Either way each table's rows are sorted by key,
//!   so writers on many hosts lock rows in the same order, and a span that opened and
//!   closed in the batch is one finished row. Closes of rows committed earlier are one
//!   `UPDATE … FROM unnest(…)` per table.
//! - A batch in which a session joins another (the OTLP receiver's runs and conversations)
//!   is written in parts, cut after each join, in the order the writer took them: a row
//!   sent after a join may name a step the join moved, and the steps' keys hold their
//!   session. The writer's memory of the moved steps is put back when an attempt is
//!   rolled back ([`store::JoinUndo`]), so the next attempt finds them where the store has
//!   them.
//! - The statements RETURN the rows they wrote through [`super::images`], and every leaf
//!   is appended to the chain at the end of the transaction, under a transaction-level
//!   advisory lock: the chain is one sequence however many writers there are, and the lock
//!   is held only from the append to the COMMIT.
//! - Each batch first records `(writer, batch number)` in `audit_batches`. When the
//!   connection drops during COMMIT the writer cannot know whether it landed; it sends the
//!   batch again on a new connection, and if the number is already there the batch landed
//!   and nothing is written twice.
//! - The connection is the writer's: lost, it is dropped, and the next attempt (the writer
//!   retries with capped, jittered back-off, holding the batch) connects again.

use std::collections::{HashMap, HashSet};

use super::batch::{in_store, session_of_step};
use super::connection::{Tx, Writing};
use super::copy::{Copied, NewRows};
use super::images;
use super::jsonb::storable;
use super::statements::{
    DecisionArrays, PgResult, SessionArrays, StepArrays, append, database_id, insert_decisions,
    insert_sessions, insert_steps, missing, returned, stored_head, update_decisions,
    update_sessions, update_steps,
};
use super::target::{PgTarget, message};
use crate::chain::{self, ChainHead, Leaf};
use crate::ids::AuditId;
use crate::record::Kind;
use crate::store::process::{self, Identity};
use crate::store::rows;
use crate::store::sqlite::statements;
use crate::store::{self, Backend, Batch, Committed, Op, Refused, Tracked};

/// The writer's PostgreSQL connection.
pub(crate) struct PgBackend {
    target: PgTarget,
    connection: Option<Writing>,
    /// This writer's name in `audit_batches`.
    writer_id: String,
}

impl PgBackend {
    /// Connects, brings the schema up to date, and marks `interrupted` the sessions that
    /// processes of this host which no longer run left `running`.
    pub(crate) fn open(target: PgTarget, identity: &Identity) -> Result<Self, String> {
        let mut connection = Writing::new(target.connect()?);
        super::schema::migrate(connection.client(), &target.to_string())?;
        mark_dead_processes_interrupted(&mut connection, identity).map_err(|e| {
            format!(
                "PostgreSQL {target}: marking sessions of processes that ended: {}",
                message(&e)
            )
        })?;
        Ok(PgBackend {
            target,
            connection: Some(connection),
            writer_id: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// The connection, connecting again if the last one was lost.
    fn connection(&mut self) -> Result<&mut Writing, String> {
        if self.connection.as_ref().is_none_or(Writing::is_closed) {
            self.connection = Some(Writing::new(self.target.connect()?));
        }
        self.connection
            .as_mut()
            .ok_or_else(|| format!("no connection to PostgreSQL {}", self.target))
    }

    /// Runs `work` on the connection; an error that is the connection's drops it, and any
    /// other makes its statements be prepared afresh.
    fn with_client<T>(
        &mut self,
        what: &str,
        work: impl FnOnce(&mut Writing) -> PgResult<T>,
    ) -> Result<T, String> {
        let target = self.target.to_string();
        let connection = self.connection()?;
        match work(connection) {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.as_db_error().is_none() || connection.is_closed() {
                    self.connection = None;
                } else {
                    connection.forget_prepared();
                }
                Err(format!("PostgreSQL {target}: {what}: {}", message(&error)))
            }
        }
    }
}

impl Backend for PgBackend {
    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, String> {
        // A connection the server closed while the writer was idle (a restart, a
        // terminated backend) is found closed here and replaced without a failed
        // statement: the loss is on the record all the same.
        if self.connection.as_ref().is_some_and(Writing::is_closed) {
            batch.health.record_write_error(format!(
                "the connection to PostgreSQL {} was lost; connecting again",
                self.target
            ));
        }
        let writer_id = self.writer_id.clone();
        let number = i64::try_from(batch.number).unwrap_or(i64::MAX);
        let committed = self.with_client("committing a batch", |connection| {
            write_batch(connection, &writer_id, number, batch)
        })?;
        Ok(committed)
    }

    fn mark_interrupted(&mut self, ids: &[String]) -> Result<(), String> {
        let ids = ids.to_vec();
        self.with_client("marking sessions interrupted", |connection| {
            let mut tx = connection.begin()?;
            let sql = format!(
                "UPDATE sessions AS t SET status = 'interrupted' \
                 WHERE t.status = 'running' AND t.id = ANY($1) RETURNING {}",
                images::SESSIONS
            );
            let leaves = returned(&mut tx, &sql, &[&ids], &chain::SESSIONS)?;
            append(&mut tx, &leaves)?;
            tx.commit()
        })
    }

    fn index_search(&mut self) -> Result<bool, String> {
        // Writers leave the search index to `reasonkit-audit index` (super::search): a
        // chunk costs the shared server more than writing its rows did.
        Ok(false)
    }

    fn prune(
        &mut self,
        prune: &crate::lifecycle::prune::Prune,
    ) -> Result<crate::lifecycle::prune::PruneReport, String> {
        self.with_client("pruning", |connection| {
            super::prune::prune_in(connection, prune)
        })
    }

    fn chain_head(&mut self) -> Result<(String, ChainHead), String> {
        self.with_client("reading the chain head", |connection| {
            let mut tx = connection.begin()?;
            let id = database_id(&mut tx)?;
            let (size, hash) = stored_head(&mut tx, &id)?;
            let hash: [u8; 32] = hash.try_into().unwrap_or([0; 32]);
            Ok((id, ChainHead { size, hash }))
        })
    }
}

/// Writes one batch in one transaction (see the module docs): its new rows by COPY when
/// every one of them can go so ([`super::copy`]); by the set-based statements when not,
/// or when the store refused the COPY (then nothing of that attempt stays).
fn write_batch(
    connection: &mut Writing,
    writer_id: &str,
    number: i64,
    mut batch: Batch<'_>,
) -> PgResult<Committed> {
    // Both ways below insert a batch's sessions in one statement each.
    store::rename_repeated_sessions(batch.rows, batch.ops, batch.health);
    // The first part's plan (see `transaction`), made before any statement: a batch
    // whose rows have no COPY form goes to the statements at once.
    let first_part = parts(batch.ops).next().unwrap_or_default();
    let planned = if connection.stores_as_sent()? {
        NewRows::plan(batch.rows, first_part, &HashSet::new())
    } else {
        None
    };
    if planned.is_some() {
        let undo = store::JoinUndo::of(batch.rows, batch.ops);
        match transaction(
            connection,
            writer_id,
            number,
            &mut batch,
            Inserts::Copy(planned),
        ) {
            Ok(Some(committed)) => return Ok(committed),
            // A row without a COPY form, or one the store refused: the statements write it,
            // from the rows as they were before this attempt's joins.
            Ok(None) => undo.restore(batch.rows),
            Err(error) if error.as_db_error().is_some() && !connection.is_closed() => {
                undo.restore(batch.rows);
            }
            Err(error) => return Err(error),
        }
    }
    let written = transaction(
        connection,
        writer_id,
        number,
        &mut batch,
        Inserts::Statements,
    )?;
    Ok(written.unwrap_or_default())
}

/// How a batch's new rows go in.
enum Inserts {
    /// By COPY: the first part's rows as planned (taken by the first part; each later part
    /// is planned after the joins before it).
    Copy(Option<NewRows>),
    Statements,
}

/// A batch's parts: its ops cut after each [`Op::Joined`] (see [`transaction`]).
fn parts(ops: &[Op]) -> impl Iterator<Item = &[Op]> {
    ops.split_inclusive(|op| matches!(op, Op::Joined(_)))
}

/// One batch's transaction: its record in `audit_batches`, then each part of the batch in
/// turn (its new rows, the closes of rows committed earlier, and the session joined at its
/// end), the health counters that grew, the chain, COMMIT. `None` when new rows had no COPY
/// form after all, and the transaction was rolled back.
///
/// A batch is cut after each [`Op::Joined`]: what came before a join is written before its
/// steps move, and what came after it is written after, as the ops were sent. (A span that
/// names a conversation after its trace's earlier spans were sent moves them; its own row,
/// in the conversation's session, names a parent step that is there only once they moved.)
fn transaction(
    connection: &mut Writing,
    writer_id: &str,
    number: i64,
    batch: &mut Batch<'_>,
    mut inserts: Inserts,
) -> PgResult<Option<Committed>> {
    let (mut tx, first_time) = connection.begin_batch(writer_id, number)?;
    if !first_time {
        // An earlier attempt's COMMIT landed, though its answer was lost (and the writer
        // undid that attempt's joins in its memory): the steps moved.
        tx.rollback()?;
        for op in batch.ops {
            if let Op::Joined(joined) = op {
                store::follow_joined(batch.rows, joined);
            }
        }
        return Ok(Some(Committed::default()));
    }
    let mut leaves = Vec::new();
    let mut refused: Refused = Vec::new();
    // The new rows the parts before this one have put in the store.
    let mut written: HashSet<AuditId> = HashSet::new();
    let parts: Vec<&[Op]> = parts(batch.ops).collect();
    for (i, &ops) in parts.iter().enumerate() {
        let mut part = Batch {
            number: batch.number,
            rows: &mut *batch.rows,
            ops,
            config: batch.config,
            health: batch.health,
            health_written: batch.health_written,
            health_now: batch.health_now,
        };
        match &mut inserts {
            Inserts::Copy(first) => {
                let planned = first
                    .take()
                    .or_else(|| NewRows::plan(part.rows, ops, &written));
                let copied = match planned {
                    Some(new_rows) => new_rows.write(
                        &mut tx,
                        part.rows,
                        ops,
                        part.config.store_inputs,
                        &part.config.identity,
                    )?,
                    None => Copied::NoCopyForm,
                };
                match copied {
                    Copied::Rows(copied) => leaves.extend(copied),
                    Copied::NoCopyForm => {
                        tx.rollback()?;
                        return Ok(None);
                    }
                }
                if i + 1 < parts.len() {
                    written.extend(ops.iter().filter_map(|op| match op {
                        Op::Insert(id) => Some(id.clone()),
                        _ => None,
                    }));
                }
            }
            Inserts::Statements => {
                let (inserted, refusals) = insert_by_statements(&mut tx, &mut part)?;
                leaves.extend(inserted);
                refused.extend(refusals);
            }
        }
        leaves.extend(closes(&mut tx, &part)?);
        leaves.extend(joins(&mut tx, &mut part)?);
    }
    leaves.extend(health_rows(&mut tx, batch)?);
    let chain_size = append(&mut tx, &leaves)?;
    tx.commit()?;
    Ok(Some(Committed {
        refused,
        chain_size,
    }))
}

/// The batch's new rows by set-based statements, which skip a row the store refuses and
/// say which: its leaves, and the rows refused.
fn insert_by_statements(tx: &mut Tx<'_>, batch: &mut Batch<'_>) -> PgResult<(Vec<Leaf>, Refused)> {
    let (rows, ops, config, health) = (&mut *batch.rows, batch.ops, batch.config, batch.health);
    let mut refused: Refused = Vec::new();
    let mut leaves = Vec::with_capacity(ops.len());
    // Written as: the id each op's row goes under, for telling refused rows apart.
    let mut written_as: HashMap<String, AuditId> = HashMap::new();
    // Rows this batch has put in the store so far.
    let mut present: HashSet<AuditId> = HashSet::new();

    // Sessions first (their steps need them), renaming a session whose given id is taken.
    let new_sessions: Vec<&AuditId> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(id) if kind_of(rows, id) == Some(Kind::Session) => Some(id),
            _ => None,
        })
        .collect();
    for attempt in 0..2 {
        let mut arrays = SessionArrays::default();
        let mut pending = Vec::new();
        for id in &new_sessions {
            let Some(t) = rows.get(*id) else { continue };
            let c = rows::session(&t.row, config.store_inputs);
            if attempt == 1 && !written_as.contains_key(&c.id) {
                continue;
            }
            pending.push(((*id).clone(), c.id.clone()));
            arrays.push(c, Some(config.identity.pid), Some(&config.identity.host));
        }
        if pending.is_empty() {
            break;
        }
        let got = insert_sessions(tx, &arrays)?;
        let lost = missing(&arrays.id, &got);
        leaves.extend(got);
        written_as.clear();
        for (id, as_written) in pending {
            if !lost.contains(storable(&as_written).as_ref()) {
                present.insert(id);
                continue;
            }
            {
                match rows.get_mut(&id) {
                    Some(t) if attempt == 0 && t.row.written_as.is_none() => {
                        store::rename_session(&mut t.row, health);
                        let renamed = t.row.written_as.clone().unwrap_or_default();
                        written_as.insert(renamed, id);
                    }
                    _ => refused.push((id, "its id is already in the store".into())),
                }
            }
        }
        if written_as.is_empty() {
            break;
        }
    }

    // Steps, a pass per level of nesting within the batch.
    let mut new_steps: Vec<AuditId> = Vec::new();
    for op in ops {
        if let Op::Insert(id) = op {
            if kind_of(rows, id) == Some(Kind::Step) {
                store::follow_renamed_session(rows, id);
                new_steps.push(id.clone());
            }
        }
    }
    while !new_steps.is_empty() {
        let mut arrays = StepArrays::default();
        for id in &new_steps {
            if let Some(t) = rows.get(id) {
                let known = t
                    .row
                    .opened
                    .parent
                    .as_ref()
                    .is_some_and(|s| in_store(rows, &present, s));
                arrays.push(rows::step(&t.row), known);
            }
        }
        let got = insert_steps(tx, &arrays)?;
        let lost = missing(&arrays.id, &got);
        let progress = got.len();
        leaves.extend(got);
        let mut left = Vec::new();
        for id in new_steps {
            if lost.contains(storable(&id.to_string()).as_ref()) {
                left.push(id);
            } else {
                present.insert(id);
            }
        }
        if progress == 0 {
            for id in left {
                refused.push((
                    id,
                    "its session or parent step is not in the store, or its id is taken".into(),
                ));
            }
            break;
        }
        new_steps = left;
    }

    // Decisions: spans and events alike.
    let mut arrays = DecisionArrays::default();
    let mut decision_ids = Vec::new();
    for op in ops {
        match op {
            Op::Insert(id) if kind_of(rows, id) == Some(Kind::Decision) => {
                if let Some(t) = rows.get(id) {
                    let session = t
                        .row
                        .opened
                        .parent
                        .as_ref()
                        .and_then(|step| session_of_step(rows, &present, step));
                    arrays.push(rows::decision(&t.row), session);
                    decision_ids.push(id.clone());
                }
            }
            Op::Decided(decided) => {
                let session = session_of_step(rows, &present, &decided.step);
                arrays.push(rows::decided(decided), session);
                decision_ids.push(decided.id.clone());
            }
            _ => {}
        }
    }
    if !decision_ids.is_empty() {
        let got = insert_decisions(tx, &arrays)?;
        let lost = missing(&arrays.id, &got);
        leaves.extend(got);
        for id in decision_ids {
            if lost.contains(storable(&id.to_string()).as_ref()) {
                refused.push((
                    id,
                    "its step is not in the store, or its id is taken".into(),
                ));
            }
        }
    }

    Ok((leaves, refused))
}

/// Closes of rows committed in earlier batches, as set-based UPDATEs: their leaves.
fn closes(tx: &mut Tx<'_>, batch: &Batch<'_>) -> PgResult<Vec<Leaf>> {
    let (rows, ops, config) = (&*batch.rows, batch.ops, batch.config);
    let mut leaves = Vec::new();
    let (mut sessions, mut steps, mut decisions) = (
        SessionArrays::default(),
        StepArrays::default(),
        DecisionArrays::default(),
    );
    for op in ops {
        let Op::Update(id) = op else { continue };
        let Some(t) = rows.get(id).filter(|t| !t.refused) else {
            continue;
        };
        match t.row.kind() {
            Kind::Session => sessions.push(
                rows::session(&t.row, config.store_inputs),
                Some(config.identity.pid),
                Some(&config.identity.host),
            ),
            Kind::Step => steps.push(rows::step(&t.row), true),
            Kind::Decision => decisions.push(rows::decision(&t.row), None),
        }
    }
    if !sessions.id.is_empty() {
        leaves.extend(update_sessions(tx, &sessions)?);
    }
    if !steps.id.is_empty() {
        leaves.extend(update_steps(tx, &steps)?);
    }
    if !decisions.id.is_empty() {
        leaves.extend(update_decisions(tx, &decisions)?);
    }

    Ok(leaves)
}

/// The batch's [`Joined`](crate::record::Joined) sessions, after its inserts and closes:
/// their steps (with their decisions, which carry the session here) move in one statement,
/// so that the keys that reference them move with them, and the joined session becomes
/// the pointer to where they went. The leaves of the steps and the pointer, as stored.
/// Nothing moves when the session joined into is not in the store (its row was refused):
/// a join never fails a batch.
fn joins(tx: &mut Tx<'_>, batch: &mut Batch<'_>) -> PgResult<Vec<Leaf>> {
    let mut leaves = Vec::new();
    for op in batch.ops {
        let Op::Joined(joined) = op else { continue };
        let (from, into) = (joined.from.to_string(), joined.into.to_string());
        let into_stored: bool = tx
            .query_prepared(
                "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)",
                &[&into],
            )?
            .first()
            .is_some_and(|row| row.get(0));
        if !into_stored {
            continue;
        }
        let sql = format!(
            "WITH moved AS (UPDATE steps AS t SET session_id = $1, attributes = CASE \
               WHEN t.attributes ? 'otel.trace_id' THEN t.attributes \
               ELSE t.attributes || jsonb_build_object('otel.trace_id', $3::text) END \
             WHERE t.session_id = $2 RETURNING {}), \
             decisions_moved AS (UPDATE decisions SET session_id = $1 WHERE session_id = $2) \
             SELECT * FROM moved",
            images::STEPS
        );
        leaves.extend(returned(
            tx,
            &sql,
            &[&into, &from, &joined.trace],
            &chain::STEPS,
        )?);
        let sql = format!(
            "UPDATE sessions AS t SET status = 'joined', \
             ended_at = coalesce(t.ended_at, ($2 || '+00')::timestamptz), \
             attributes = t.attributes || jsonb_build_object('otel.joined_into', $3::text) \
             WHERE t.id = $1 RETURNING {}",
            images::SESSIONS
        );
        let at = rows::timestamp(joined.at);
        leaves.extend(returned(tx, &sql, &[&from, &at, &into], &chain::SESSIONS)?);
        store::follow_joined(batch.rows, joined);
    }
    Ok(leaves)
}

/// A row for each health counter that grew since last written: their leaves.
fn health_rows(tx: &mut Tx<'_>, batch: &Batch<'_>) -> PgResult<Vec<Leaf>> {
    let (config, health) = (batch.config, batch.health);
    let mut leaves = Vec::new();
    let at = rows::timestamp(std::time::SystemTime::now());
    for (kind, count, detail) in
        statements::health_rows(batch.health_written, batch.health_now, health.last_error())
    {
        let sql = format!(
            "INSERT INTO audit_health AS t (recorded_at, pid, host, kind, count, detail) \
             VALUES (($1 || '+00')::timestamptz, $2, $3, $4, $5, $6) RETURNING {}",
            images::AUDIT_HEALTH
        );
        let detail = detail.map(|d| storable(&d).into_owned());
        leaves.extend(returned(
            tx,
            &sql,
            &[
                &at,
                &config.identity.pid,
                &config.identity.host,
                &kind,
                &count,
                &detail,
            ],
            &chain::AUDIT_HEALTH,
        )?);
    }

    Ok(leaves)
}

fn kind_of(rows: &HashMap<AuditId, Tracked>, id: &AuditId) -> Option<Kind> {
    rows.get(id).map(|t| t.row.kind())
}

/// Sessions this host's processes left `running` and which no longer run: `interrupted`.
fn mark_dead_processes_interrupted(connection: &mut Writing, identity: &Identity) -> PgResult<()> {
    let pids: Vec<i64> = connection
        .client()
        .query(
            "SELECT DISTINCT pid FROM sessions WHERE status = 'running' AND host = $1 \
             AND pid IS NOT NULL",
            &[&identity.host],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<PgResult<_>>()?;
    let dead: Vec<i64> = pids
        .into_iter()
        .filter(|p| !process::is_alive(*p))
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    let mut tx = connection.begin()?;
    let sql = format!(
        "UPDATE sessions AS t SET status = 'interrupted' WHERE t.status = 'running' \
         AND t.host = $1 AND t.pid = ANY($2) RETURNING {}",
        images::SESSIONS
    );
    let leaves = returned(&mut tx, &sql, &[&identity.host, &dead], &chain::SESSIONS)?;
    append(&mut tx, &leaves)?;
    tx.commit()
}
