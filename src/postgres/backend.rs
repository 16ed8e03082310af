//! The PostgreSQL store: each batch as one transaction of set-based statements.
//!
//! - New rows go in with one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` per
//!   table, sorted by key, so writers on many hosts lock rows in the same order; a span
//!   that opened and closed in the batch is one finished row. Closes of rows committed
//!   earlier are one `UPDATE … FROM unnest(…)` per table.
//! - Every statement RETURNs the rows it wrote through [`super::images`], and their leaves
//!   are appended to the chain at the end of the transaction, under a transaction-level
//!   advisory lock: the chain is one sequence however many writers there are, and the lock
//!   is held only from the append to the COMMIT.
//! - Each batch first records `(writer, batch number)` in `audit_batches`. When the
//!   connection drops during COMMIT the writer cannot know whether it landed; it sends the
//!   batch again on a new connection, and if the number is already there the batch landed
//!   and nothing is written twice.
//! - The connection is the writer's: lost, it is dropped, and the next attempt (the writer
//!   retries with capped, jittered back-off, holding the batch) connects again.

use std::collections::{HashMap, HashSet};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};

use super::images::{self, storable, storable_json};
use super::target::{PgTarget, message};
use crate::backend::{self, Backend, Batch, Committed, Op, Refused, Tracked};
use crate::chain::{self, ChainHead, Leaf};
use crate::ids::AuditId;
use crate::process::{self, Identity};
use crate::record::Kind;
use crate::rows::{self, DecisionColumns, SessionColumns, StepColumns};
use crate::statements;

/// The advisory lock that orders appends to the chain: "rkchain" in ASCII.
const CHAIN_LOCK: i64 = 0x0072_6b63_6861_696e;

/// The writer's PostgreSQL connection.
pub(crate) struct PgBackend {
    target: PgTarget,
    client: Option<Client>,
    /// This writer's name in `audit_batches`.
    writer_id: String,
    /// The number of the batch being committed: the same for every attempt at it.
    batch: i64,
}

type PgResult<T> = Result<T, postgres::Error>;

impl PgBackend {
    /// Connects, brings the schema up to date, and marks `interrupted` the sessions that
    /// processes of this host which no longer run left `running`.
    pub(crate) fn open(target: PgTarget, identity: &Identity) -> Result<Self, String> {
        let mut client = target.connect()?;
        super::schema::migrate(&mut client, &target.to_string())?;
        mark_dead_processes_interrupted(&mut client, identity).map_err(|e| {
            format!(
                "PostgreSQL {target}: marking sessions of processes that ended: {}",
                message(&e)
            )
        })?;
        Ok(PgBackend {
            target,
            client: Some(client),
            writer_id: uuid::Uuid::now_v7().to_string(),
            batch: 1,
        })
    }

    /// The connection, connecting again if the last one was lost.
    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.target.connect()?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| format!("no connection to PostgreSQL {}", self.target))
    }

    /// Runs `work` on the connection; an error that is the connection's drops it.
    fn with_client<T>(
        &mut self,
        what: &str,
        work: impl FnOnce(&mut Client) -> PgResult<T>,
    ) -> Result<T, String> {
        let target = self.target.to_string();
        let client = self.client()?;
        match work(client) {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.as_db_error().is_none() || client.is_closed() {
                    self.client = None;
                }
                Err(format!("PostgreSQL {target}: {what}: {}", message(&error)))
            }
        }
    }
}

impl Backend for PgBackend {
    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, String> {
        let (writer_id, number) = (self.writer_id.clone(), self.batch);
        let committed = self.with_client("committing a batch", |client| {
            write_batch(client, &writer_id, number, batch)
        })?;
        self.batch += 1;
        Ok(committed)
    }

    fn mark_interrupted(&mut self, ids: &[String]) -> Result<(), String> {
        let ids = ids.to_vec();
        self.with_client("marking sessions interrupted", |client| {
            let mut tx = client.transaction()?;
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
        Ok(false)
    }

    fn chain_head(&mut self) -> Result<(String, ChainHead), String> {
        self.with_client("reading the chain head", |client| {
            let mut tx = client.transaction()?;
            let id = database_id(&mut tx)?;
            let (size, hash) = stored_head(&mut tx, &id)?;
            let hash: [u8; 32] = hash.try_into().unwrap_or([0; 32]);
            Ok((id, ChainHead { size, hash }))
        })
    }
}

fn database_id(tx: &mut Transaction<'_>) -> PgResult<String> {
    Ok(tx
        .query_opt(
            "SELECT value FROM audit_meta WHERE key = 'database_id'",
            &[],
        )?
        .map(|row| row.get(0))
        .unwrap_or_default())
}

/// The last entry's seq and link, or (0, genesis).
fn stored_head(tx: &mut Transaction<'_>, database_id: &str) -> PgResult<(u64, Vec<u8>)> {
    let last = tx.query_opt(
        "SELECT seq, chain_hash FROM audit_chain ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    Ok(match last {
        Some(row) => (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1)),
        None => (0, chain::genesis(database_id).to_vec()),
    })
}

/// Appends `leaves` after the chain's head, holding the chain lock until COMMIT.
fn append(tx: &mut Transaction<'_>, leaves: &[Leaf]) -> PgResult<Option<u64>> {
    if leaves.is_empty() {
        return Ok(None);
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])?;
    let id = database_id(tx)?;
    let (mut seq, mut last) = stored_head(tx, &id)?;
    // Binary COPY: the entries are new by construction (seq follows the head read under
    // the lock), so nothing can conflict, and COPY is the cheapest way in.
    let sink = tx.copy_in(
        "COPY audit_chain (seq, table_name, row_id, leaf_hash, chain_hash, committed_at) \
         FROM STDIN (FORMAT binary)",
    )?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::TIMESTAMPTZ,
        ],
    );
    let now = std::time::SystemTime::now();
    for leaf in leaves {
        seq += 1;
        last = chain::link(&last, seq, &leaf.hash).to_vec();
        let n = i64::try_from(seq).unwrap_or(i64::MAX);
        writer.write(&[&n, &leaf.table, &leaf.row_id, &&leaf.hash[..], &last, &now])?;
    }
    writer.finish()?;
    Ok(Some(seq))
}

/// Runs a statement that RETURNs row images of `table`, and gives their leaves.
fn returned(
    tx: &mut Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    table: &chain::TableSpec,
) -> PgResult<Vec<Leaf>> {
    Ok(tx
        .query(sql, params)?
        .iter()
        .map(|row| images::leaf(table, row))
        .collect())
}

/// Column arrays for one statement: each field a `Vec` of one column's values.
#[derive(Default)]
struct SessionArrays {
    id: Vec<String>,
    started_at: Vec<String>,
    ended_at: Vec<Option<String>>,
    profile: Vec<String>,
    input_hash: Vec<String>,
    status: Vec<String>,
    input: Vec<Option<String>>,
    attributes: Vec<String>,
    pid: Vec<i64>,
    host: Vec<String>,
}

impl SessionArrays {
    fn push(&mut self, c: SessionColumns, identity: &Identity) {
        self.id.push(storable(&c.id).into_owned());
        self.started_at.push(c.started_at);
        self.ended_at.push(c.ended_at);
        self.profile.push(storable(&c.profile).into_owned());
        self.input_hash.push(storable(&c.input_hash).into_owned());
        self.status.push(storable(&c.status).into_owned());
        self.input.push(c.input.map(|s| storable(&s).into_owned()));
        self.attributes
            .push(storable_json(&c.attributes).into_owned());
        self.pid.push(identity.pid);
        self.host.push(storable(&identity.host).into_owned());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.id,
            &self.started_at,
            &self.ended_at,
            &self.profile,
            &self.input_hash,
            &self.status,
            &self.input,
            &self.attributes,
            &self.pid,
            &self.host,
        ]
    }
}

const SESSION_ROWS: &str = "unnest($1::text[], $2::text[], $3::text[], $4::text[], \
    $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[]) \
    AS u(id, started_at, ended_at, profile, input_hash, status, input, attributes, pid, host)";

fn insert_sessions(tx: &mut Transaction<'_>, rows: &SessionArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "INSERT INTO sessions AS t (id, started_at, ended_at, profile, input_hash, status, \
         input, attributes, pid, host) \
         SELECT u.id, (u.started_at || '+00')::timestamptz, (u.ended_at || '+00')::timestamptz, \
         u.profile, u.input_hash, u.status, u.input, u.attributes::jsonb, u.pid, u.host \
         FROM {SESSION_ROWS} ORDER BY u.id ON CONFLICT (id) DO NOTHING RETURNING {}",
        images::SESSIONS
    );
    returned(tx, &sql, &rows.params(), &chain::SESSIONS)
}

fn update_sessions(tx: &mut Transaction<'_>, rows: &SessionArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "UPDATE sessions AS t SET ended_at = (u.ended_at || '+00')::timestamptz, \
         profile = u.profile, input_hash = u.input_hash, status = u.status, input = u.input, \
         attributes = u.attributes::jsonb, pid = u.pid, host = u.host \
         FROM (SELECT * FROM {SESSION_ROWS} ORDER BY id) AS u WHERE t.id = u.id RETURNING {}",
        images::SESSIONS
    );
    returned(tx, &sql, &rows.params(), &chain::SESSIONS)
}

#[derive(Default)]
struct StepArrays {
    id: Vec<String>,
    session_id: Vec<String>,
    module: Vec<String>,
    started_at: Vec<String>,
    ended_at: Vec<Option<String>>,
    input_summary: Vec<Option<String>>,
    output_summary: Vec<Option<String>>,
    confidence: Vec<Option<f64>>,
    tokens_used: Vec<Option<i64>>,
    error: Vec<Option<String>>,
    parent_step_id: Vec<Option<String>>,
    attributes: Vec<String>,
    /// Its session is known to be in the store: no need to look.
    known_session: Vec<bool>,
}

fn opt(text: Option<String>) -> Option<String> {
    text.map(|s| storable(&s).into_owned())
}

impl StepArrays {
    fn push(&mut self, c: StepColumns, known_session: bool) {
        self.known_session.push(known_session);
        self.id.push(storable(&c.id).into_owned());
        self.session_id.push(storable(&c.session_id).into_owned());
        self.module.push(storable(&c.module).into_owned());
        self.started_at.push(c.started_at);
        self.ended_at.push(c.ended_at);
        self.input_summary.push(opt(c.input_summary));
        self.output_summary.push(opt(c.output_summary));
        self.confidence.push(c.confidence);
        self.tokens_used.push(c.tokens_used);
        self.error.push(opt(c.error));
        self.parent_step_id.push(opt(c.parent_step_id));
        self.attributes
            .push(storable_json(&c.attributes).into_owned());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.id,
            &self.session_id,
            &self.module,
            &self.started_at,
            &self.ended_at,
            &self.input_summary,
            &self.output_summary,
            &self.confidence,
            &self.tokens_used,
            &self.error,
            &self.parent_step_id,
            &self.attributes,
            &self.known_session,
        ]
    }
}

const STEP_ROWS: &str = "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::float8[], $9::int8[], $10::text[], $11::text[], $12::text[], \
    $13::bool[]) AS u(id, session_id, module, started_at, ended_at, input_summary, \
    output_summary, confidence, tokens_used, error, parent_step_id, attributes, known_session)";

/// Inserts steps whose session, and parent step if any, are in the store; returns their
/// leaves. A step whose parent is in the same batch goes in on a later pass.
fn insert_steps(tx: &mut Transaction<'_>, rows: &StepArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "INSERT INTO steps AS t (session_id, id, module, started_at, ended_at, input_summary, \
         output_summary, confidence, tokens_used, error, parent_step_id, attributes) \
         SELECT u.session_id, u.id, u.module, (u.started_at || '+00')::timestamptz, \
         (u.ended_at || '+00')::timestamptz, u.input_summary, u.output_summary, u.confidence, \
         u.tokens_used, u.error, u.parent_step_id, u.attributes::jsonb FROM {STEP_ROWS} \
         WHERE (u.known_session OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = u.session_id)) \
         AND (u.parent_step_id IS NULL OR EXISTS (SELECT 1 FROM steps p \
              WHERE p.session_id = u.session_id AND p.id = u.parent_step_id)) \
         ORDER BY u.session_id, u.id ON CONFLICT (session_id, id) DO NOTHING RETURNING {}",
        images::STEPS
    );
    returned(tx, &sql, &rows.params(), &chain::STEPS)
}

fn update_steps(tx: &mut Transaction<'_>, rows: &StepArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "UPDATE steps AS t SET module = u.module, ended_at = (u.ended_at || '+00')::timestamptz, \
         input_summary = u.input_summary, output_summary = u.output_summary, \
         confidence = u.confidence, tokens_used = u.tokens_used, error = u.error, \
         attributes = u.attributes::jsonb \
         FROM (SELECT * FROM {STEP_ROWS} ORDER BY session_id, id) AS u \
         WHERE t.session_id = u.session_id AND t.id = u.id RETURNING {}",
        images::STEPS
    );
    returned(tx, &sql, &rows.params(), &chain::STEPS)
}

#[derive(Default)]
struct DecisionArrays {
    /// The step's session when it is known here; the statement looks up the rest.
    session_id: Vec<Option<String>>,
    id: Vec<String>,
    step_id: Vec<String>,
    decision_type: Vec<String>,
    options_considered: Vec<Option<String>>,
    chosen_option: Vec<Option<String>>,
    rationale: Vec<Option<String>>,
    decided_at: Vec<Option<String>>,
    attributes: Vec<String>,
}

impl DecisionArrays {
    fn push(&mut self, c: DecisionColumns, session: Option<String>) {
        self.session_id.push(session);
        self.id.push(storable(&c.id).into_owned());
        self.step_id.push(storable(&c.step_id).into_owned());
        self.decision_type
            .push(storable(&c.decision_type).into_owned());
        self.options_considered.push(opt(c.options_considered));
        self.chosen_option.push(opt(c.chosen_option));
        self.rationale.push(opt(c.rationale));
        self.decided_at.push(c.decided_at);
        self.attributes
            .push(storable_json(&c.attributes).into_owned());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.id,
            &self.step_id,
            &self.decision_type,
            &self.options_considered,
            &self.chosen_option,
            &self.rationale,
            &self.decided_at,
            &self.attributes,
            &self.session_id,
        ]
    }
}

const DECISION_ROWS: &str = "unnest($1::text[], $2::text[], $3::text[], $4::text[], \
    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) AS u(id, step_id, decision_type, \
    options_considered, chosen_option, rationale, decided_at, attributes, session_id)";

/// Inserts decisions whose step is in the store, with the step's session.
fn insert_decisions(tx: &mut Transaction<'_>, rows: &DecisionArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "INSERT INTO decisions AS t (session_id, id, step_id, decision_type, \
         options_considered, chosen_option, rationale, decided_at, attributes) \
         SELECT x.session, x.id, x.step_id, x.decision_type, x.options_considered, \
         x.chosen_option, x.rationale, (x.decided_at || '+00')::timestamptz, \
         x.attributes::jsonb FROM (SELECT u.*, coalesce(u.session_id, \
         (SELECT s.session_id FROM steps s WHERE s.id = u.step_id)) AS session \
         FROM {DECISION_ROWS}) AS x WHERE x.session IS NOT NULL \
         ORDER BY x.session, x.id ON CONFLICT (session_id, id) DO NOTHING RETURNING {}",
        images::DECISIONS
    );
    returned(tx, &sql, &rows.params(), &chain::DECISIONS)
}

fn update_decisions(tx: &mut Transaction<'_>, rows: &DecisionArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "UPDATE decisions AS t SET decision_type = u.decision_type, \
         options_considered = u.options_considered, chosen_option = u.chosen_option, \
         rationale = u.rationale, decided_at = (u.decided_at || '+00')::timestamptz, \
         attributes = u.attributes::jsonb \
         FROM (SELECT * FROM {DECISION_ROWS} ORDER BY id) AS u WHERE t.id = u.id RETURNING {}",
        images::DECISIONS
    );
    returned(tx, &sql, &rows.params(), &chain::DECISIONS)
}

/// The ids (as written) among `wanted` that no leaf covers: refused rows.
fn missing(wanted: &[String], leaves: &[Leaf]) -> HashSet<String> {
    let written: HashSet<&str> = leaves.iter().map(|l| l.row_id.as_str()).collect();
    wanted
        .iter()
        .filter(|id| !written.contains(id.as_str()))
        .cloned()
        .collect()
}

/// The row is in the store: inserted by this batch, or committed by an earlier one.
fn in_store(rows: &HashMap<AuditId, Tracked>, present: &HashSet<AuditId>, id: &AuditId) -> bool {
    present.contains(id) || rows.get(id).is_some_and(|t| t.committed && !t.refused)
}

/// The session (as written) of a step known to be in the store; `None` when the step is
/// not known here, and the statement looks it up.
fn session_of_step(
    rows: &HashMap<AuditId, Tracked>,
    present: &HashSet<AuditId>,
    step: &AuditId,
) -> Option<String> {
    if !in_store(rows, present, step) {
        return None;
    }
    let t = rows.get(step)?;
    t.row
        .session_written_as
        .clone()
        .or_else(|| t.row.opened.parent.as_ref().map(ToString::to_string))
        .map(|s| storable(&s).into_owned())
}

/// Writes one batch in one transaction (see the module docs).
fn write_batch(
    client: &mut Client,
    writer_id: &str,
    number: i64,
    batch: Batch<'_>,
) -> PgResult<Committed> {
    let Batch {
        rows,
        ops,
        config,
        health,
        health_written,
        health_now,
    } = batch;
    let mut tx = client.transaction()?;
    let first_time = tx.execute(
        "INSERT INTO audit_batches (writer_id, batch) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&writer_id, &number],
    )? == 1;
    if !first_time {
        // An earlier attempt's COMMIT landed, though its answer was lost.
        tx.rollback()?;
        return Ok(Committed::default());
    }
    let mut refused: Refused = Vec::new();
    let mut leaves = Vec::with_capacity(ops.len() + 1);
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
            arrays.push(c, &config.identity);
        }
        if pending.is_empty() {
            break;
        }
        let got = insert_sessions(&mut tx, &arrays)?;
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
                        backend::rename_session(&mut t.row, health);
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
                backend::follow_renamed_session(rows, id);
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
        let got = insert_steps(&mut tx, &arrays)?;
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
        let got = insert_decisions(&mut tx, &arrays)?;
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

    // Closes of rows committed in earlier batches.
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
            Kind::Session => {
                sessions.push(rows::session(&t.row, config.store_inputs), &config.identity)
            }
            Kind::Step => steps.push(rows::step(&t.row), true),
            Kind::Decision => decisions.push(rows::decision(&t.row), None),
        }
    }
    if !sessions.id.is_empty() {
        leaves.extend(update_sessions(&mut tx, &sessions)?);
    }
    if !steps.id.is_empty() {
        leaves.extend(update_steps(&mut tx, &steps)?);
    }
    if !decisions.id.is_empty() {
        leaves.extend(update_decisions(&mut tx, &decisions)?);
    }

    // Health counters that grew.
    let at = rows::timestamp(std::time::SystemTime::now());
    for (kind, count, detail) in
        statements::health_rows(health_written, health_now, health.last_error())
    {
        let sql = format!(
            "INSERT INTO audit_health AS t (recorded_at, pid, host, kind, count, detail) \
             VALUES (($1 || '+00')::timestamptz, $2, $3, $4, $5, $6) RETURNING {}",
            images::AUDIT_HEALTH
        );
        let detail = detail.map(|d| storable(&d).into_owned());
        leaves.extend(returned(
            &mut tx,
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

    let chain_size = append(&mut tx, &leaves)?;
    tx.commit()?;
    Ok(Committed {
        refused,
        chain_size,
    })
}

fn kind_of(rows: &HashMap<AuditId, Tracked>, id: &AuditId) -> Option<Kind> {
    rows.get(id).map(|t| t.row.kind())
}

/// Sessions this host's processes left `running` and which no longer run: `interrupted`.
fn mark_dead_processes_interrupted(client: &mut Client, identity: &Identity) -> PgResult<()> {
    let pids: Vec<i64> = client
        .query(
            "SELECT DISTINCT pid FROM sessions WHERE status = 'running' AND host = $1 \
             AND pid IS NOT NULL",
            &[&identity.host],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let dead: Vec<i64> = pids
        .into_iter()
        .filter(|p| !process::is_alive(*p))
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    let sql = format!(
        "UPDATE sessions AS t SET status = 'interrupted' WHERE t.status = 'running' \
         AND t.host = $1 AND t.pid = ANY($2) RETURNING {}",
        images::SESSIONS
    );
    let leaves = returned(&mut tx, &sql, &[&identity.host, &dead], &chain::SESSIONS)?;
    append(&mut tx, &leaves)?;
    tx.commit()
}
