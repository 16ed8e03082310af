//! `import`: per-user SQLite audit files copied into the shared PostgreSQL store.
//!
//! A file is verified first; one whose chain does not verify is refused, since evidence of
//! tampering must not be laundered into the shared store. Its sessions, steps and decisions
//! then go in with their ids and times unchanged, through the same set-based statements the
//! writer uses, in transactions of [`CHUNK`] rows, each chained in the store's own chain
//! (the store hashes what it stores: see [`super::images`]). A row whose id is already in
//! the store is left as it is and counted, so importing the same file twice adds nothing,
//! and an interrupted import is finished by running it again. What the import added is
//! recorded — chained — as an `audit_events` row of kind `imported` naming the file, its
//! database id and the head of its own chain, so the store keeps the evidence that ties
//! the imported rows to the file's chain. Finally the store is verified.
//!
//! Not imported: the file's `audit_health` and `audit_events` rows (they describe the
//! writer of that file; its chain head in the `imported` event stands for them).

use std::path::Path;

use super::connection::{Tx, Writing};
use rusqlite::Connection;

use super::statements::{
    DecisionArrays, PgResult, SessionArrays, StepArrays, append, insert_decisions, insert_sessions,
    insert_steps, missing, returned,
};
use super::target::message;
use super::{images, schema};
use crate::chain;
use crate::error::{Error, Result};
use crate::store::rows::{DecisionColumns, SessionColumns, StepColumns};

/// Rows per import transaction.
const CHUNK: usize = 5_000;

/// What [`import`] did with one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows added to the store, by table.
    pub sessions: u64,
    /// Steps added.
    pub steps: u64,
    /// Decisions added.
    pub decisions: u64,
    /// Rows left out because their id was already in the store (from an earlier import of
    /// the same file, or another file's row with the same id).
    pub already_present: u64,
    /// Steps and decisions left out because their session or step is in neither the file
    /// nor the store.
    pub orphans: u64,
    /// The file's database id and chain size, as recorded in the `imported` event.
    pub source_database_id: String,
    /// Entries of the file's chain.
    pub source_entries: u64,
}

/// Copies the SQLite audit file at `path` into the PostgreSQL store `connection` names
/// (see the module docs), then verifies the store.
///
/// # Errors
/// The errors of [`crate::verify()`] and [`crate::open_read_only`] for the file;
/// [`Error::ImportRefused`] when its chain does not verify; [`Error::Postgres`] when the
/// store cannot be reached, written, or does not verify afterwards.
pub fn import(path: &Path, connection: &str) -> Result<ImportReport> {
    let source = crate::store::sqlite::verify::verify(path)?;
    if !source.is_intact() {
        return Err(Error::ImportRefused {
            path: path.into(),
            findings: source.findings.len(),
        });
    }
    let target = super::parse_target(connection)?;
    let mut client = target
        .connect()
        .map(Writing::new)
        .map_err(|message| Error::Postgres { message })?;
    schema::migrate(client.client(), &target.to_string())
        .map_err(|message| Error::Postgres { message })?;
    let file = crate::store::sqlite::open::open_read_only(path)?;
    let read_failed = |e: rusqlite::Error| Error::Setup {
        path: path.into(),
        step: "reading rows to import".into(),
        source: e,
    };
    let mut report = ImportReport {
        source_database_id: source.database_id.clone().unwrap_or_default(),
        source_entries: source.entries,
        ..ImportReport::default()
    };
    let write_failed = |what: &str, e: postgres::Error| Error::Postgres {
        message: format!(
            "importing {} into PostgreSQL {target}: {what}: {}",
            path.display(),
            message(&e)
        ),
    };
    import_sessions(&file, &mut client, &mut report)
        .map_err(|e| e.into_error(read_failed, |e| write_failed("sessions", e)))?;
    import_steps(&file, &mut client, &mut report)
        .map_err(|e| e.into_error(read_failed, |e| write_failed("steps", e)))?;
    import_decisions(&file, &mut client, &mut report)
        .map_err(|e| e.into_error(read_failed, |e| write_failed("decisions", e)))?;
    if report.sessions + report.steps + report.decisions > 0 {
        let detail = format!(
            "from {} (database {}, {} chain entries, head {}): {} sessions, {} steps, {} decisions",
            path.display(),
            report.source_database_id,
            source.entries,
            chain::hex(&source.head),
            report.sessions,
            report.steps,
            report.decisions
        );
        record_event(&mut client, &detail).map_err(|e| write_failed("the imported event", e))?;
        // The imported rows indexed for search now, rather than left to the next writer.
        while super::search::index_chunk(&mut client)
            .map_err(|e| write_failed("indexing for search", e))?
            .1
        {}
    }
    let after = super::verify(connection, &crate::chain::verify::VerifyOptions::default())?;
    if !after.is_intact() {
        return Err(Error::Postgres {
            message: format!(
                "PostgreSQL {target} does not verify after importing {} ({} findings): run \
                 `reasonkit-audit verify --db` on it",
                path.display(),
                after.findings.len()
            ),
        });
    }
    Ok(report)
}

/// A failure on either side of the copy.
enum Failure {
    Read(rusqlite::Error),
    Write(postgres::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Read(e)
    }
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Write(e)
    }
}

impl Failure {
    fn into_error(
        self,
        read: impl FnOnce(rusqlite::Error) -> Error,
        write: impl FnOnce(postgres::Error) -> Error,
    ) -> Error {
        match self {
            Failure::Read(e) => read(e),
            Failure::Write(e) => write(e),
        }
    }
}

/// Runs `write` in one transaction with the chain entries of what it wrote.
fn chunk(
    client: &mut Writing,
    write: impl FnOnce(&mut Tx<'_>) -> PgResult<Vec<chain::Leaf>>,
) -> PgResult<u64> {
    let mut tx = client.begin()?;
    let leaves = write(&mut tx)?;
    append(&mut tx, &leaves)?;
    tx.commit()?;
    Ok(leaves.len() as u64)
}

fn import_sessions(
    file: &Connection,
    client: &mut Writing,
    report: &mut ImportReport,
) -> Result<(), Failure> {
    let mut stmt = file.prepare(
        "SELECT id, started_at, ended_at, profile, input_hash, status, input, \
         coalesce(attributes, '{}'), pid, host FROM sessions ORDER BY started_at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut arrays = SessionArrays::default();
    let mut flush = |arrays: &mut SessionArrays, report: &mut ImportReport| -> PgResult<()> {
        let wanted = arrays.id.len() as u64;
        let added = chunk(client, |tx| insert_sessions(tx, arrays))?;
        report.sessions += added;
        report.already_present += wanted - added;
        *arrays = SessionArrays::default();
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let c = SessionColumns {
            id: row.get(0)?,
            started_at: row.get(1)?,
            ended_at: row.get(2)?,
            profile: row.get(3)?,
            input_hash: row.get(4)?,
            status: row.get(5)?,
            input: row.get(6)?,
            attributes: row.get(7)?,
        };
        let host: Option<String> = row.get(9)?;
        arrays.push(c, row.get(8)?, host.as_deref());
        if arrays.id.len() >= CHUNK {
            flush(&mut arrays, report)?;
        }
    }
    if !arrays.id.is_empty() {
        flush(&mut arrays, report)?;
    }
    Ok(())
}

fn import_steps(
    file: &Connection,
    client: &mut Writing,
    report: &mut ImportReport,
) -> Result<(), Failure> {
    let mut stmt = file.prepare(
        "SELECT id, session_id, module, started_at, ended_at, input_summary, output_summary, \
         confidence, tokens_used, error, parent_step_id, coalesce(attributes, '{}') FROM steps \
         ORDER BY started_at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut pending: Vec<StepColumns> = Vec::new();
    while let Some(row) = rows.next()? {
        pending.push(StepColumns {
            id: row.get(0)?,
            session_id: row.get(1)?,
            module: row.get(2)?,
            started_at: row.get(3)?,
            ended_at: row.get(4)?,
            input_summary: row.get(5)?,
            output_summary: row.get(6)?,
            confidence: row.get(7)?,
            tokens_used: row.get(8)?,
            error: row.get(9)?,
            parent_step_id: row.get(10)?,
            attributes: row.get(11)?,
        });
        if pending.len() >= CHUNK {
            steps_chunk(client, std::mem::take(&mut pending), report)?;
        }
    }
    if !pending.is_empty() {
        steps_chunk(client, pending, report)?;
    }
    Ok(())
}

/// A chunk of steps, a pass per level of nesting inside it (as the writer does). A step
/// that no pass can place is already in the store, or has no session or parent anywhere.
fn steps_chunk(
    client: &mut Writing,
    mut steps: Vec<StepColumns>,
    report: &mut ImportReport,
) -> PgResult<()> {
    let mut tx = client.begin()?;
    let mut leaves = Vec::new();
    while !steps.is_empty() {
        let mut arrays = StepArrays::default();
        for c in &steps {
            arrays.push(c.clone(), false);
        }
        let got = insert_steps(&mut tx, &arrays)?;
        let lost = missing(&arrays.id, &got);
        let progress = got.len();
        leaves.extend(got);
        report.steps += progress as u64;
        steps.retain(|c| lost.contains(super::jsonb::storable(&c.id).as_ref()));
        if progress == 0 {
            break;
        }
    }
    if !steps.is_empty() {
        let ids: Vec<String> = steps
            .iter()
            .map(|c| super::jsonb::storable(&c.id).into_owned())
            .collect();
        let present: i64 = tx
            .query_one("SELECT count(*) FROM steps WHERE id = ANY($1)", &[&ids])?
            .get(0);
        let present = u64::try_from(present).unwrap_or(0);
        report.already_present += present;
        report.orphans += steps.len() as u64 - present.min(steps.len() as u64);
    }
    append(&mut tx, &leaves)?;
    tx.commit()
}

fn import_decisions(
    file: &Connection,
    client: &mut Writing,
    report: &mut ImportReport,
) -> Result<(), Failure> {
    let mut stmt = file.prepare(
        "SELECT d.id, d.step_id, d.decision_type, d.options_considered, d.chosen_option, \
         d.rationale, d.decided_at, coalesce(d.attributes, '{}'), s.session_id \
         FROM decisions d LEFT JOIN steps s ON s.id = d.step_id ORDER BY d.decided_at, d.id",
    )?;
    let mut rows = stmt.query([])?;
    let mut arrays = DecisionArrays::default();
    let mut flush = |arrays: &mut DecisionArrays, report: &mut ImportReport| -> PgResult<()> {
        let wanted = arrays.id.len() as u64;
        let ids = arrays.id.clone();
        let mut tx = client.begin()?;
        let leaves = insert_decisions(&mut tx, arrays)?;
        let added = leaves.len() as u64;
        let present: i64 = tx
            .query_one("SELECT count(*) FROM decisions WHERE id = ANY($1)", &[&ids])?
            .get(0);
        append(&mut tx, &leaves)?;
        tx.commit()?;
        let present = u64::try_from(present).unwrap_or(0);
        report.decisions += added;
        report.already_present += present.saturating_sub(added);
        report.orphans += wanted.saturating_sub(present);
        *arrays = DecisionArrays::default();
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let c = DecisionColumns {
            id: row.get(0)?,
            step_id: row.get(1)?,
            decision_type: row.get(2)?,
            options_considered: row.get(3)?,
            chosen_option: row.get(4)?,
            rationale: row.get(5)?,
            decided_at: row.get(6)?,
            attributes: row.get(7)?,
        };
        let session: Option<String> = row.get(8)?;
        arrays.push(c, session.map(|s| super::jsonb::storable(&s).into_owned()));
        if arrays.id.len() >= CHUNK {
            flush(&mut arrays, report)?;
        }
    }
    if !arrays.id.is_empty() {
        flush(&mut arrays, report)?;
    }
    Ok(())
}

/// The `imported` event, chained.
fn record_event(client: &mut Writing, detail: &str) -> PgResult<u64> {
    chunk(client, |tx| {
        let sql = format!(
            "INSERT INTO audit_events AS t (recorded_at, kind, detail) \
             VALUES (now(), 'imported', $1) RETURNING {}",
            images::AUDIT_EVENTS
        );
        returned(
            tx,
            &sql,
            &[&super::jsonb::storable(detail).as_ref()],
            &chain::AUDIT_EVENTS,
        )
    })
}
