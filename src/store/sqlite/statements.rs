//! The SQL the writer runs: one INSERT and one UPDATE per table, and the health rows.
//!
//! Every write builds the row's full image once, as [`Cell`]s in the chain's column order;
//! the same cells are bound to the statement and hashed into the row's chain leaf, so the
//! leaf covers exactly what SQLite stores. An UPDATE rewrites every column that can change
//! and the leaf covers the whole row after it.
//!
//! Every statement goes through `prepare_cached`, so each is compiled once per connection.
//! Values are always bound as parameters; no text from a span ever becomes SQL.

use std::time::SystemTime;

use rusqlite::{Connection, Transaction, params_from_iter};

use crate::chain::{self, Cell, Leaf};
use crate::health::AuditStats;
use crate::record::{Decided, Joined, Kind};
use crate::store::process::Identity;
use crate::store::rows::{self, DecisionColumns, Row, SessionColumns, StepColumns};
use crate::store::sqlite::chain as file_chain;

fn session_cells<'a>(c: &'a SessionColumns, identity: &'a Identity) -> [Cell<'a>; 10] {
    [
        Cell::text(&c.id),
        Cell::text(&c.started_at),
        Cell::opt_text(c.ended_at.as_deref()),
        Cell::text(&c.profile),
        Cell::text(&c.input_hash),
        Cell::text(&c.status),
        Cell::opt_text(c.input.as_deref()),
        Cell::text(&c.attributes),
        Cell::Integer(identity.pid),
        Cell::text(&identity.host),
    ]
}

fn step_cells(c: &StepColumns) -> [Cell<'_>; 12] {
    [
        Cell::text(&c.id),
        Cell::text(&c.session_id),
        Cell::text(&c.module),
        Cell::text(&c.started_at),
        Cell::opt_text(c.ended_at.as_deref()),
        Cell::opt_text(c.input_summary.as_deref()),
        Cell::opt_text(c.output_summary.as_deref()),
        Cell::opt_real(c.confidence),
        Cell::opt_integer(c.tokens_used),
        Cell::opt_text(c.error.as_deref()),
        Cell::opt_text(c.parent_step_id.as_deref()),
        Cell::text(&c.attributes),
    ]
}

fn decision_cells(c: &DecisionColumns) -> [Cell<'_>; 8] {
    [
        Cell::text(&c.id),
        Cell::text(&c.step_id),
        Cell::text(&c.decision_type),
        Cell::opt_text(c.options_considered.as_deref()),
        Cell::opt_text(c.chosen_option.as_deref()),
        Cell::opt_text(c.rationale.as_deref()),
        Cell::opt_text(c.decided_at.as_deref()),
        Cell::text(&c.attributes),
    ]
}

// Column lists in the chain's ordinal order (`chain::SESSIONS` etc.; a unit test checks).
const INSERT_SESSION: &str = "INSERT INTO sessions (id, started_at, ended_at, profile, \
     input_hash, status, input, attributes, pid, host) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const INSERT_STEP: &str = "INSERT INTO steps (id, session_id, module, started_at, ended_at, \
     input_summary, output_summary, confidence, tokens_used, error, parent_step_id, \
     attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const INSERT_DECISION: &str = "INSERT INTO decisions (id, step_id, decision_type, \
     options_considered, chosen_option, rationale, decided_at, attributes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
// The keys (id, the parent references, the start) never change, so an UPDATE leaves them
// (and their foreign-key checks) alone. Its parameters are numbered as in the INSERT, so
// the same cells bind it; SQLite allows the gaps, and the last column is always set, so the
// parameter count is the column count.
const UPDATE_SESSION: &str = "UPDATE sessions SET ended_at = ?3, profile = ?4, \
     input_hash = ?5, status = ?6, input = ?7, attributes = ?8, pid = ?9, host = ?10 \
     WHERE id = ?1";
const UPDATE_STEP: &str = "UPDATE steps SET module = ?3, ended_at = ?5, input_summary = ?6, \
     output_summary = ?7, confidence = ?8, tokens_used = ?9, error = ?10, attributes = ?12 \
     WHERE id = ?1";
// A row whose opening had to guess its start or its enclosing step (a placeholder the OTLP
// receiver opened for a parent span its child arrived before) is corrected by these. Only
// they pay for the foreign-key check of a moved `parent_step_id`.
const UPDATE_SESSION_MOVED: &str = "UPDATE sessions SET started_at = ?2, ended_at = ?3, \
     profile = ?4, input_hash = ?5, status = ?6, input = ?7, attributes = ?8, pid = ?9, \
     host = ?10 WHERE id = ?1";
const UPDATE_STEP_MOVED: &str = "UPDATE steps SET module = ?3, started_at = ?4, ended_at = ?5, \
     input_summary = ?6, output_summary = ?7, confidence = ?8, tokens_used = ?9, error = ?10, \
     parent_step_id = ?11, attributes = ?12 WHERE id = ?1";
const UPDATE_DECISION: &str = "UPDATE decisions SET decision_type = ?3, \
     options_considered = ?4, chosen_option = ?5, rationale = ?6, decided_at = ?7, \
     attributes = ?8 WHERE id = ?1";

/// Runs `sql` with `cells` bound; the row's leaf when it changed a row.
fn write(
    tx: &Transaction<'_>,
    sql: &str,
    table: &chain::TableSpec,
    cells: &[Cell<'_>],
) -> rusqlite::Result<Option<Leaf>> {
    let changed = tx.prepare_cached(sql)?.execute(params_from_iter(cells))?;
    let id = match cells.first() {
        Some(Cell::Text(id)) => String::from_utf8_lossy(id).into_owned(),
        _ => return Ok(None),
    };
    Ok((changed == 1).then(|| Leaf::of(table, id, cells.iter().copied())))
}

/// How a span's row is written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowWrite {
    /// The row as it stands: `running` if still open, final if already closed.
    Insert,
    /// An inserted row brought up to date once its span has closed.
    Update,
}

/// Writes a row's full image with the statement for its kind (session, step, decision).
pub(crate) fn write_row(
    tx: &Transaction<'_>,
    row: &Row,
    write_as: RowWrite,
    store_inputs: bool,
    identity: &Identity,
) -> rusqlite::Result<Option<Leaf>> {
    let [session, step, decision] = match write_as {
        RowWrite::Insert => [INSERT_SESSION, INSERT_STEP, INSERT_DECISION],
        RowWrite::Update if row.moves() => {
            [UPDATE_SESSION_MOVED, UPDATE_STEP_MOVED, UPDATE_DECISION]
        }
        RowWrite::Update => [UPDATE_SESSION, UPDATE_STEP, UPDATE_DECISION],
    };
    match row.kind() {
        Kind::Session => {
            let c = rows::session(row, store_inputs);
            write(tx, session, &chain::SESSIONS, &session_cells(&c, identity))
        }
        Kind::Step => write(tx, step, &chain::STEPS, &step_cells(&rows::step(row))),
        Kind::Decision => {
            let c = rows::decision(row);
            write(tx, decision, &chain::DECISIONS, &decision_cells(&c))
        }
    }
}

/// Inserts the row of a `decision` event.
pub(crate) fn insert_decided(
    tx: &Transaction<'_>,
    decided: &Decided,
) -> rusqlite::Result<Option<Leaf>> {
    let c = rows::decided(decided);
    write(tx, INSERT_DECISION, &chain::DECISIONS, &decision_cells(&c))
}

/// Writes a [`Joined`]: the steps of `joined.from` move to `joined.into`, and `from`
/// becomes the pointer to it (status `joined`, ended, `otel.joined_into` in its
/// attributes). The leaves of every row it changed, read back as stored; `None`, and
/// nothing changed, when `into` is not in the store (its row was refused): a join never
/// fails a batch.
pub(crate) fn join_session(
    tx: &Transaction<'_>,
    joined: &Joined,
) -> rusqlite::Result<Option<Vec<Leaf>>> {
    let (from, into) = (joined.from.to_string(), joined.into.to_string());
    let into_stored: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)")?
        .query_row([&into], |row| row.get(0))?;
    if !into_stored {
        return Ok(None);
    }
    let moved: Vec<String> = tx
        .prepare_cached(
            "UPDATE steps SET session_id = ?1, attributes = CASE \
               WHEN json_extract(attributes, '$.\"otel.trace_id\"') IS NULL \
               THEN json_set(coalesce(attributes, '{}'), '$.\"otel.trace_id\"', ?3) \
               ELSE attributes END \
             WHERE session_id = ?2 RETURNING id",
        )?
        .query_map([&into, &from, &joined.trace], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let pointer: Vec<String> = tx
        .prepare_cached(
            "UPDATE sessions SET status = 'joined', ended_at = coalesce(ended_at, ?2), \
             attributes = json_set(coalesce(attributes, '{}'), '$.\"otel.joined_into\"', ?3) \
             WHERE id = ?1 RETURNING id",
        )?
        .query_map([&from, &rows::timestamp(joined.at), &into], |row| {
            row.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut leaves = Vec::with_capacity(moved.len() + pointer.len());
    for id in moved {
        leaves.extend(file_chain::leaf_of_stored_row(tx, &chain::STEPS, &id)?);
    }
    for id in pointer {
        leaves.extend(file_chain::leaf_of_stored_row(tx, &chain::SESSIONS, &id)?);
    }
    Ok(Some(leaves))
}

/// Marks `interrupted` the sessions still `running` among those `WHERE` selects, and
/// returns the leaves of the rows it changed.
pub(crate) fn mark_interrupted_where(
    conn: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Leaf>> {
    let sql = format!(
        "UPDATE sessions SET status = 'interrupted' WHERE status = 'running' AND ({condition}) \
         RETURNING id"
    );
    let ids: Vec<String> = conn
        .prepare(&sql)?
        .query_map(params, |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut leaves = Vec::with_capacity(ids.len());
    for id in ids {
        leaves.extend(file_chain::leaf_of_stored_row(conn, &chain::SESSIONS, &id)?);
    }
    Ok(leaves)
}

/// The `audit_health` rows for the counters that grew since `written`: kind, how much it
/// grew, and for write errors the last one's text.
pub(crate) fn health_rows(
    written: &AuditStats,
    now: &AuditStats,
    last_error: Option<String>,
) -> Vec<(&'static str, i64, Option<String>)> {
    written
        .by_kind()
        .into_iter()
        .zip(now.by_kind())
        .filter(|((_, before), (_, after))| after > before)
        .map(|((kind, before), (_, after))| {
            let detail = (kind == "write_errors")
                .then(|| last_error.clone())
                .flatten();
            (
                kind,
                i64::try_from(after - before).unwrap_or(i64::MAX),
                detail,
            )
        })
        .collect()
}

/// One `audit_health` row per counter that grew since `written`, with their leaves.
pub(crate) fn insert_health(
    tx: &Transaction<'_>,
    identity: &Identity,
    written: &AuditStats,
    now: &AuditStats,
    last_error: Option<String>,
) -> rusqlite::Result<Vec<Leaf>> {
    let at = rows::timestamp(SystemTime::now());
    let mut leaves = Vec::new();
    for (kind, count, detail) in health_rows(written, now, last_error) {
        tx.prepare_cached(
            "INSERT INTO audit_health (recorded_at, pid, host, kind, count, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute((&at, identity.pid, &identity.host, kind, count, &detail))?;
        let id = tx.last_insert_rowid();
        leaves.push(Leaf::of(
            &chain::AUDIT_HEALTH,
            id.to_string(),
            [
                Cell::Integer(id),
                Cell::text(&at),
                Cell::Integer(identity.pid),
                Cell::text(&identity.host),
                Cell::text(kind),
                Cell::Integer(count),
                Cell::opt_text(detail.as_deref()),
            ],
        ));
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column names a statement lists, in order.
    fn listed(sql: &str) -> Vec<String> {
        let open = sql.find('(').unwrap();
        let close = sql[open..].find(')').unwrap() + open;
        sql[open + 1..close]
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect()
    }

    #[test]
    fn inserts_list_columns_in_the_chain_order() {
        for (sql, spec) in [
            (INSERT_SESSION, &chain::SESSIONS),
            (INSERT_STEP, &chain::STEPS),
            (INSERT_DECISION, &chain::DECISIONS),
        ] {
            assert_eq!(listed(sql), spec.columns, "{sql}");
        }
    }

    #[test]
    fn updates_set_each_column_from_its_own_ordinal_and_set_the_last() {
        for (sql, spec) in [
            (UPDATE_SESSION, &chain::SESSIONS),
            (UPDATE_STEP, &chain::STEPS),
            (UPDATE_DECISION, &chain::DECISIONS),
        ] {
            let assignments: Vec<(String, usize)> = sql
                .split([',', ' '])
                .collect::<Vec<_>>()
                .windows(3)
                .filter(|w| w[1] == "=" && w[2].starts_with('?'))
                .map(|w| (w[0].to_owned(), w[2][1..].parse().unwrap()))
                .collect();
            for (column, parameter) in &assignments {
                let ordinal = spec.columns.iter().position(|c| c == column).unwrap();
                assert_eq!(*parameter, ordinal + 1, "{sql}: {column}");
            }
            let last = spec.columns.len();
            assert!(assignments.iter().any(|(_, p)| *p == last), "{sql}");
        }
    }

    /// A file with the schema, two sessions and two steps of the first, through SQL.
    fn file_with_two_sessions(dir: &std::path::Path) -> Connection {
        let path = dir.join("audit.db");
        let (_layer, guard) = crate::AuditLayer::builder().path(&path).build().unwrap();
        guard.shutdown().unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO sessions (id, started_at, profile, input_hash, status, attributes) VALUES
               ('from', '2026-01-01 00:00:00.000000', 'p', 'h', 'running', '{}'),
               ('into', '2026-01-01 00:00:00.000000', 'p', 'h', 'running', '{}');
             INSERT INTO steps (id, session_id, module, started_at, attributes) VALUES
               ('a', 'from', 'm', '2026-01-01 00:00:01.000000', '{}'),
               ('b', 'from', 'm', '2026-01-01 00:00:02.000000', '{\"otel.trace_id\":\"kept\"}');",
        )
        .unwrap();
        conn
    }

    fn joined(into: &str) -> Joined {
        Joined {
            from: crate::ids::AuditId::given("from", std::time::UNIX_EPOCH),
            into: crate::ids::AuditId::given(into, std::time::UNIX_EPOCH),
            at: std::time::UNIX_EPOCH,
            trace: "0202".to_owned(),
        }
    }

    #[test]
    fn a_join_moves_the_steps_names_their_trace_and_leaves_a_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = file_with_two_sessions(dir.path());
        let tx = conn.transaction().unwrap();
        let leaves = join_session(&tx, &joined("into")).unwrap().unwrap();
        tx.commit().unwrap();
        assert_eq!(leaves.len(), 3, "two steps and the pointer");
        let steps: Vec<(String, String, String)> = conn
            .prepare(
                "SELECT id, session_id, json_extract(attributes, '$.\"otel.trace_id\"') \
                 FROM steps ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            steps,
            [
                ("a".into(), "into".into(), "0202".into()),
                ("b".into(), "into".into(), "kept".into())
            ]
        );
        let pointer: (String, bool, String) = conn
            .query_row(
                "SELECT status, ended_at IS NOT NULL, \
                 json_extract(attributes, '$.\"otel.joined_into\"') FROM sessions WHERE id = 'from'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(pointer, ("joined".into(), true, "into".into()));
    }

    #[test]
    fn a_join_into_a_session_the_store_lacks_changes_nothing_and_fails_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = file_with_two_sessions(dir.path());
        let tx = conn.transaction().unwrap();
        assert!(join_session(&tx, &joined("refused")).unwrap().is_none());
        tx.commit().unwrap();
        let moved: i64 = conn
            .query_row(
                "SELECT count(*) FROM steps WHERE session_id <> 'from'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let status: String = conn
            .query_row("SELECT status FROM sessions WHERE id = 'from'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!((moved, status.as_str()), (0, "running"));
    }
}
