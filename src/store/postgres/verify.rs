//! `verify` for a PostgreSQL store: the same checks as for a SQLite file
//! ([`crate::verify()`]), fed from one REPEATABLE READ snapshot, so that writers on other
//! hosts committing meanwhile cannot make rows and chain look out of step.

use std::path::PathBuf;

use postgres::Transaction;
use postgres::fallible_iterator::FallibleIterator;

use super::images;
use super::target::message;
use crate::chain::CHAINED_TABLES;
use crate::chain::verify::{
    ChainWalk, Report, RowLeaf, Stored, TableRows, Verifier, VerifyOptions,
};
use crate::chain::verify_lifecycle::{Event, Lifecycle, PrunedRow};
use crate::error::{Error, Result};

/// Verifies the chain of the PostgreSQL store `connection` names (a URL or key=value
/// string, completed from the PG* variables), and checks it against the checkpoints in
/// `options`; see [`crate::verify()`] for what is checked and reported.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let report = reasonkit_audit::postgres::verify("postgres://auditor@db.internal/audit",
///     &reasonkit_audit::VerifyOptions::default())?;
/// assert!(report.is_intact(), "{:?}", report.findings);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached or read (or its schema is not one
/// this release knows), and those of [`crate::verify_with`] for checkpoints. Tampering is
/// not an error: it is reported in [`Report::findings`].
pub fn verify(connection: &str, options: &VerifyOptions) -> Result<Report> {
    let (target, mut client) = super::connected(connection)?;
    let fail = |what: &str, e: postgres::Error| Error::Postgres {
        message: format!("cannot verify PostgreSQL {target}: {what}: {}", message(&e)),
    };
    let mut tx = super::snapshot(&mut client, &target.to_string())?;
    let mut verifier = Verifier::new(&PathBuf::from(target.to_string()));
    let id: Option<String> = tx
        .query_opt(
            "SELECT value FROM audit_meta WHERE key = 'database_id'",
            &[],
        )
        .map_err(|e| fail("reading audit_meta", e))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(|e| fail("reading audit_meta", e))?;
    verifier.start(id);
    let (events, pruned) = read_lifecycle(&mut tx).map_err(|e| fail("reading audit_events", e))?;
    let lifecycle = verifier.lifecycle(events, pruned);
    read_chain(&mut tx, &mut verifier).map_err(|e| fail("reading the chain", e))?;
    let rows = read_rows(&mut tx, &lifecycle).map_err(|e| fail("reading the rows", e))?;
    verifier.match_rows(rows);
    verifier.reconcile(&lifecycle);
    verifier.report.events = tx
        .query(
            "SELECT c.seq, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = e.id::text \
             ORDER BY c.seq",
            &[],
        )
        .map_err(|e| fail("reading audit_events", e))?
        .iter()
        .map(|r| {
            Ok((
                u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                r.try_get(1)?,
                r.try_get(2)?,
            ))
        })
        .collect::<Result<_, postgres::Error>>()
        .map_err(|e| fail("reading audit_events", e))?;
    for checkpoint in &options.checkpoints {
        verifier.check_checkpoint(checkpoint, &options.keys)?;
    }
    check_sessions_and_trees(&mut tx, &mut verifier, options)
        .map_err(|e| fail("reading the chain's sessions", e))?;
    Ok(verifier.report)
}

/// What evidence bundles rest on, as for a file (`store/sqlite/verify.rs`): each row's
/// latest entry names the row's session, and every checkpoint's tree heads are the chain's.
fn check_sessions_and_trees(
    tx: &mut Transaction<'_>,
    verifier: &mut Verifier,
    options: &VerifyOptions,
) -> std::result::Result<(), postgres::Error> {
    let mislabelled = super::evidence::mislabelled_entries(tx)?;
    let sizes = crate::chain::verify::tree_checkpoint_sizes(options);
    let held = if sizes.is_empty() {
        Vec::new()
    } else {
        super::evidence::tree_heads_at(tx, &sizes)?
    };
    crate::chain::verify::check_sessions_and_trees(verifier, mislabelled, &held, options);
    Ok(())
}

/// Every chain entry in `seq` order, streamed.
fn read_chain(tx: &mut Transaction<'_>, verifier: &mut Verifier) -> Result<(), postgres::Error> {
    let mut rows = tx.query_raw(
        "SELECT seq, table_name, row_id, leaf_hash, chain_hash FROM audit_chain ORDER BY seq",
        std::iter::empty::<i64>(),
    )?;
    let mut walk = ChainWalk::default();
    while let Some(row) = rows.next()? {
        // Read as the schema has them; a column whose type was altered is an error to
        // report, not a reason to stop the process.
        let table: &str = row.try_get(1)?;
        verifier.entry(
            &mut walk,
            u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
            Ok(table.as_bytes()),
            row.try_get(2)?,
            Stored::of(row.try_get(3)?),
            Stored::of(row.try_get(4)?),
        );
    }
    verifier.end_chain(walk);
    Ok(())
}

/// The `pruned` and `erased` events with their chain entries, and `audit_pruned`.
fn read_lifecycle(
    tx: &mut Transaction<'_>,
) -> Result<(Vec<Event>, Vec<PrunedRow>), postgres::Error> {
    let events = tx
        .query(
            "SELECT max(c.seq), e.id, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = e.id::text \
             WHERE e.kind IN ('pruned', 'erased') GROUP BY e.id ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(Event {
                seq: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                id: r.try_get(1)?,
                kind: r.try_get(2)?,
                detail: r.try_get(3)?,
            })
        })
        .collect::<Result<_, postgres::Error>>()?;
    // A store of schema version 1 (before pruning existed) has no audit_pruned.
    let has_pruned: bool = tx
        .query_one("SELECT to_regclass('audit_pruned') IS NOT NULL", &[])?
        .get(0);
    if !has_pruned {
        return Ok((events, Vec::new()));
    }
    let pruned = tx
        .query("SELECT table_name, row_id, event_id FROM audit_pruned", &[])?
        .iter()
        .map(|r| {
            Ok(PrunedRow {
                table: r.try_get(0)?,
                row_id: r.try_get(1)?,
                event_id: r.try_get(2)?,
            })
        })
        .collect::<Result<_, postgres::Error>>()?;
    Ok((events, pruned))
}

/// Every row of every chained table through its image list, with its leaf.
fn read_rows(
    tx: &mut Transaction<'_>,
    lifecycle: &Lifecycle,
) -> Result<Vec<TableRows>, postgres::Error> {
    let mut out = Vec::with_capacity(CHAINED_TABLES.len());
    for (index, (table, image)) in images::CHAINED.iter().enumerate() {
        let sql = format!("SELECT {image} FROM {} AS t", table.name);
        let mut rows = tx.query_raw(&sql, std::iter::empty::<i64>())?;
        let mut leaves = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = images::cells(&row);
            leaves.push(RowLeaf::of(index as u8, &cells, lifecycle));
        }
        out.push(TableRows {
            index: index as u8,
            rows: leaves,
        });
    }
    Ok(out)
}
