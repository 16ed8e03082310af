//! The statements of the PostgreSQL store: the column arrays each set-based statement
//! binds, the statements themselves (each RETURNs the row images the chain hashes, see
//! [`super::images`]), and the chain's append. Used by the writer's backend and by
//! `import`.

use std::collections::HashSet;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::connection::Tx;
use super::images;
use super::jsonb::{storable, storable_json};
use crate::chain::{self, Leaf};
use crate::store::rows::{DecisionColumns, SessionColumns, StepColumns};

/// The advisory lock that orders appends to the chain: "rkchain" in ASCII.
const CHAIN_LOCK: i64 = 0x0072_6b63_6861_696e;

pub(crate) use super::connection::PgResult;

pub(crate) fn database_id(tx: &mut Tx<'_>) -> PgResult<String> {
    Ok(tx
        .query_opt(
            "SELECT value FROM audit_meta WHERE key = 'database_id'",
            &[],
        )?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or_default())
}

/// The last entry's seq and link, or (0, genesis).
pub(crate) fn stored_head(tx: &mut Tx<'_>, database_id: &str) -> PgResult<(u64, Vec<u8>)> {
    let last = tx.query_opt(
        "SELECT seq, chain_hash FROM audit_chain ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    Ok(match last {
        Some(row) => (
            u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
            row.try_get(1)?,
        ),
        None => (0, chain::genesis(database_id).to_vec()),
    })
}

/// Takes the chain lock until COMMIT, and reads the chain's head under it.
pub(crate) fn lock_chain(tx: &mut Tx<'_>) -> PgResult<crate::chain::ChainHead> {
    let (size, hash) = locked_head(tx)?;
    Ok(crate::chain::ChainHead { size, hash })
}

/// The chain lock, then the chain's head (seq and link, or 0 and the genesis) read under
/// it: one round trip. The two statements go in one simple query, and each statement of it
/// takes its own snapshot (READ COMMITTED), so the head is read after the lock is held and
/// sees every append committed before.
fn locked_head(tx: &mut Tx<'_>) -> PgResult<(u64, [u8; 32])> {
    let sql = format!(
        "SELECT pg_advisory_xact_lock({CHAIN_LOCK}); \
         SELECT (SELECT value FROM audit_meta WHERE key = 'database_id'), h.seq, \
         encode(h.chain_hash, 'hex') FROM (SELECT 1) AS one LEFT JOIN LATERAL \
         (SELECT seq, chain_hash FROM audit_chain ORDER BY seq DESC LIMIT 1) AS h ON true"
    );
    let messages = tx.simple_query(&sql)?;
    let head = messages.iter().rev().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let Some(head) = head else {
        return Ok((0, chain::genesis("")));
    };
    let id = head.try_get(0)?.unwrap_or_default();
    match (head.try_get(1)?, head.try_get(2)?) {
        (Some(seq), Some(hex)) => {
            let seq = seq.parse::<u64>().unwrap_or(0);
            let mut hash = [0u8; 32];
            for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
                *byte = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
            }
            Ok((seq, hash))
        }
        _ => Ok((0, chain::genesis(id))),
    }
}

/// Inserts a lifecycle event (`pruned`, `erased`) with its detail and chains it: the
/// event's id and its chain entry. The twin of the SQLite store's `chain::append_event`.
pub(crate) fn append_event(
    tx: &mut Tx<'_>,
    kind: &str,
    detail: &str,
) -> PgResult<(i64, Option<u64>)> {
    let at = crate::store::rows::timestamp(std::time::SystemTime::now());
    let sql = format!(
        "INSERT INTO audit_events AS t (recorded_at, kind, detail) \
         VALUES (($1 || '+00')::timestamptz, $2, $3) RETURNING {}",
        images::AUDIT_EVENTS
    );
    let leaves = returned(tx, &sql, &[&at, &kind, &detail], &chain::AUDIT_EVENTS)?;
    let event = leaves
        .first()
        .and_then(|l| l.row_id.parse().ok())
        .unwrap_or_default();
    Ok((event, append(tx, &leaves)?))
}

/// Appends `leaves` after the chain's head, holding the chain lock until COMMIT.
pub(crate) fn append(tx: &mut Tx<'_>, leaves: &[Leaf]) -> PgResult<Option<u64>> {
    if leaves.is_empty() {
        return Ok(None);
    }
    let (mut seq, head) = locked_head(tx)?;
    let mut last = head.to_vec();
    // Binary COPY: the entries are new by construction (seq follows the head read under
    // the lock), so nothing can conflict, and COPY is the cheapest way in.
    // Each entry names its row's session (docs/chain.md, "Evidence bundles"): a session or
    // step row's comes with its leaf; a decision's is its row's `session_id` column, set
    // after the COPY by one indexed UPDATE of this batch's decision entries.
    let first = seq + 1;
    let sink = tx.copy_in(
        "COPY audit_chain (seq, table_name, row_id, leaf_hash, chain_hash, committed_at, \
         session_id) FROM STDIN (FORMAT binary)",
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
            Type::TEXT,
        ],
    );
    let now = std::time::SystemTime::now();
    for leaf in leaves {
        seq += 1;
        last = chain::link(&last, seq, &leaf.hash).to_vec();
        let n = i64::try_from(seq).unwrap_or(i64::MAX);
        writer.write(&[
            &n,
            &leaf.table,
            &leaf.row_id,
            &&leaf.hash[..],
            &last,
            &now,
            &leaf.session,
        ])?;
    }
    writer.finish()?;
    // Decisions written by COPY come with their session; those of the set-based statements
    // (the fallback) get it here.
    if leaves
        .iter()
        .any(|l| l.table == chain::DECISIONS.name && l.session.is_none())
    {
        let (from, to) = (
            i64::try_from(first).unwrap_or(i64::MAX),
            i64::try_from(seq).unwrap_or(i64::MAX),
        );
        tx.execute(
            "UPDATE audit_chain c SET session_id = d.session_id FROM decisions d \
             WHERE c.seq BETWEEN $1 AND $2 AND c.table_name = 'decisions' AND d.id = c.row_id",
            &[&from, &to],
        )?;
    }
    Ok(Some(seq))
}

/// Runs a statement that RETURNs row images of `table`, and gives their leaves.
pub(crate) fn returned(
    tx: &mut Tx<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    table: &chain::TableSpec,
) -> PgResult<Vec<Leaf>> {
    Ok(tx
        .query_prepared(sql, params)?
        .iter()
        .map(|row| images::leaf(table, row))
        .collect())
}

/// Column arrays for one statement: each field a `Vec` of one column's values.
#[derive(Default)]
pub(crate) struct SessionArrays {
    pub(crate) id: Vec<String>,
    pub(crate) started_at: Vec<String>,
    pub(crate) ended_at: Vec<Option<String>>,
    pub(crate) profile: Vec<String>,
    pub(crate) input_hash: Vec<String>,
    pub(crate) status: Vec<String>,
    pub(crate) input: Vec<Option<String>>,
    pub(crate) attributes: Vec<String>,
    pub(crate) pid: Vec<Option<i64>>,
    pub(crate) host: Vec<Option<String>>,
}

impl SessionArrays {
    /// A session's columns; `pid` and `host` of the process that wrote it.
    pub(crate) fn push(&mut self, c: SessionColumns, pid: Option<i64>, host: Option<&str>) {
        self.id.push(storable(&c.id).into_owned());
        self.started_at.push(c.started_at);
        self.ended_at.push(c.ended_at);
        self.profile.push(storable(&c.profile).into_owned());
        self.input_hash.push(storable(&c.input_hash).into_owned());
        self.status.push(storable(&c.status).into_owned());
        self.input.push(c.input.map(|s| storable(&s).into_owned()));
        self.attributes
            .push(storable_json(&c.attributes).into_owned());
        self.pid.push(pid);
        self.host.push(host.map(|h| storable(h).into_owned()));
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 10] {
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

pub(crate) fn insert_sessions(tx: &mut Tx<'_>, rows: &SessionArrays) -> PgResult<Vec<Leaf>> {
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

pub(crate) fn update_sessions(tx: &mut Tx<'_>, rows: &SessionArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "UPDATE sessions AS t SET started_at = (u.started_at || '+00')::timestamptz, \
         ended_at = (u.ended_at || '+00')::timestamptz, profile = u.profile, input_hash = u.input_hash, status = u.status, input = u.input, \
         attributes = u.attributes::jsonb, pid = u.pid, host = u.host \
         FROM (SELECT * FROM {SESSION_ROWS} ORDER BY id) AS u WHERE t.id = u.id RETURNING {}",
        images::SESSIONS
    );
    returned(tx, &sql, &rows.params(), &chain::SESSIONS)
}

#[derive(Default)]
pub(crate) struct StepArrays {
    pub(crate) id: Vec<String>,
    pub(crate) session_id: Vec<String>,
    pub(crate) module: Vec<String>,
    pub(crate) started_at: Vec<String>,
    pub(crate) ended_at: Vec<Option<String>>,
    pub(crate) input_summary: Vec<Option<String>>,
    pub(crate) output_summary: Vec<Option<String>>,
    pub(crate) confidence: Vec<Option<f64>>,
    pub(crate) tokens_used: Vec<Option<i64>>,
    pub(crate) error: Vec<Option<String>>,
    pub(crate) parent_step_id: Vec<Option<String>>,
    pub(crate) attributes: Vec<String>,
    /// Its session is known to be in the store: no need to look.
    pub(crate) known_session: Vec<bool>,
}

pub(crate) fn opt(text: Option<String>) -> Option<String> {
    text.map(|s| storable(&s).into_owned())
}

impl StepArrays {
    pub(crate) fn push(&mut self, c: StepColumns, known_session: bool) {
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

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 13] {
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
pub(crate) fn insert_steps(tx: &mut Tx<'_>, rows: &StepArrays) -> PgResult<Vec<Leaf>> {
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

pub(crate) fn update_steps(tx: &mut Tx<'_>, rows: &StepArrays) -> PgResult<Vec<Leaf>> {
    let sql = format!(
        "UPDATE steps AS t SET module = u.module, \
         started_at = (u.started_at || '+00')::timestamptz, \
         ended_at = (u.ended_at || '+00')::timestamptz, \
         input_summary = u.input_summary, output_summary = u.output_summary, \
         confidence = u.confidence, tokens_used = u.tokens_used, error = u.error, \
         parent_step_id = u.parent_step_id, attributes = u.attributes::jsonb \
         FROM (SELECT * FROM {STEP_ROWS} ORDER BY session_id, id) AS u \
         WHERE t.session_id = u.session_id AND t.id = u.id RETURNING {}",
        images::STEPS
    );
    returned(tx, &sql, &rows.params(), &chain::STEPS)
}

#[derive(Default)]
pub(crate) struct DecisionArrays {
    /// The step's session when it is known here; the statement looks up the rest.
    pub(crate) session_id: Vec<Option<String>>,
    pub(crate) id: Vec<String>,
    pub(crate) step_id: Vec<String>,
    pub(crate) decision_type: Vec<String>,
    pub(crate) options_considered: Vec<Option<String>>,
    pub(crate) chosen_option: Vec<Option<String>>,
    pub(crate) rationale: Vec<Option<String>>,
    pub(crate) decided_at: Vec<Option<String>>,
    pub(crate) attributes: Vec<String>,
}

impl DecisionArrays {
    pub(crate) fn push(&mut self, c: DecisionColumns, session: Option<String>) {
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

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
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
pub(crate) fn insert_decisions(tx: &mut Tx<'_>, rows: &DecisionArrays) -> PgResult<Vec<Leaf>> {
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

pub(crate) fn update_decisions(tx: &mut Tx<'_>, rows: &DecisionArrays) -> PgResult<Vec<Leaf>> {
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
pub(crate) fn missing(wanted: &[String], leaves: &[Leaf]) -> HashSet<String> {
    let written: HashSet<&str> = leaves.iter().map(|l| l.row_id.as_str()).collect();
    wanted
        .iter()
        .filter(|id| !written.contains(id.as_str()))
        .cloned()
        .collect()
}
