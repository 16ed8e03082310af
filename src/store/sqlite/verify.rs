//! `verify` on a SQLite file: a read-only snapshot, the chain walked on one connection
//! while the rows are read and hashed on a second, fed to the store-agnostic verifier
//! ([`crate::chain::verify`]). PostgreSQL's feed is `store/postgres/verify.rs`.

use std::path::Path;

use rusqlite::Connection;

use crate::chain::verify::{
    ChainWalk, FindingKind, Report, RowLeaf, Stored, TableRows, Verifier, VerifyOptions,
};
use crate::chain::verify_lifecycle::{Event, Lifecycle, PrunedRow};
use crate::chain::{self, CHAINED_TABLES, Cell, MAX_COLUMNS};
use crate::error::{Error, Result};
use crate::store::sqlite::chain as file_chain;

/// Verifies the chain of the audit database at `path`, read-only, without checkpoints.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("audit.db");
/// let (audit, guard) = reasonkit_audit::AuditLayer::builder().path(&path).build()?;
/// let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(audit));
/// tracing::dispatcher::with_default(&dispatch, || {
///     tracing::info_span!("session").in_scope(|| {
///         tracing::info_span!("step", module = "gigathink", confidence = 0.9).in_scope(|| {});
///     });
/// });
/// guard.shutdown()?;
///
/// let report = reasonkit_audit::verify(&path)?;
/// assert!(report.is_intact());
///
/// // Lower a confidence behind the layer's back: verify names the row.
/// let db = rusqlite::Connection::open(&path)?;
/// db.execute("UPDATE steps SET confidence = 0.2", [])?;
/// let report = reasonkit_audit::verify(&path)?;
/// assert_eq!(report.findings.len(), 1);
/// assert_eq!(report.findings[0].kind, reasonkit_audit::FindingKind::Modified);
/// assert_eq!(report.findings[0].table.as_deref(), Some("steps"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When the file cannot be verified at all: missing, not SQLite, a schema without a chain
/// (older: run `migrate` first) or newer than this release. Tampering is not an error: it
/// is reported in [`Report::findings`].
pub fn verify(path: &Path) -> Result<Report> {
    verify_with(path, &VerifyOptions::default())
}

/// Verifies the chain and checks it against the given checkpoints (see [`verify`]).
///
/// # Errors
/// Those of [`verify`], and [`Error::Checkpoint`] when a checkpoint names another
/// database, or is not signed by one of `options.keys` (when keys are given), or carries
/// a signature that does not verify.
pub fn verify_with(path: &Path, options: &VerifyOptions) -> Result<Report> {
    let fail = |step: &str, source| Error::Setup {
        path: path.into(),
        step: step.into(),
        source,
    };
    let conn = snapshot(path)?;
    let mut verifier = Verifier::new(path);
    if !verifier
        .tables_present(&conn)
        .map_err(|e| fail("reading the chain", e))?
    {
        return Ok(verifier.report);
    }
    // The rows are read and hashed on a second connection and thread while this one walks
    // the chain: on two cores, nearly twice as fast. Both read transactions must see the
    // same snapshot; every commit of the layer appends to the chain, so the same chain
    // length in both means the same state. If a commit slipped in between, read the rows
    // again on this connection (its snapshot is kept).
    let rows_conn = snapshot(path)?;
    let size = |c: &Connection| {
        c.query_row("SELECT max(seq) FROM audit_chain", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
    };
    let here = size(&conn).map_err(|e| fail("reading the chain", e))?;
    let (events, pruned) = read_lifecycle(&conn).map_err(|e| fail("reading audit_events", e))?;
    let lifecycle = verifier.lifecycle(events, pruned);
    let (chain, rows) = std::thread::scope(|scope| {
        let lifecycle = &lifecycle;
        let reader = scope.spawn(move || {
            let there = size(&rows_conn)?;
            Ok::<_, rusqlite::Error>((there, read_rows(&rows_conn, lifecycle)?))
        });
        let chain = verifier.read_chain(&conn);
        let rows = reader.join().unwrap_or(Err(rusqlite::Error::InvalidQuery));
        (chain, rows)
    });
    chain.map_err(|e| fail("reading the chain", e))?;
    let rows = match rows {
        Ok((there, rows)) if there == here => rows,
        _ => read_rows(&conn, &lifecycle).map_err(|e| fail("reading the rows", e))?,
    };
    verifier.match_rows(rows);
    verifier.reconcile(&lifecycle);
    verifier
        .read_events(&conn)
        .map_err(|e| fail("reading audit_events", e))?;
    for checkpoint in &options.checkpoints {
        verifier.check_checkpoint(checkpoint, &options.keys)?;
    }
    check_sessions_and_trees(&conn, &mut verifier, options)
        .map_err(|e| fail("reading the chain's sessions", e))?;
    Ok(verifier.report)
}

/// What evidence bundles rest on: each row's latest entry names the row's session, and
/// every checkpoint that carries tree heads carries this chain's (docs/chain.md,
/// "Evidence bundles"): a signer who signed other heads is caught here.
fn check_sessions_and_trees(
    conn: &Connection,
    verifier: &mut Verifier,
    options: &VerifyOptions,
) -> rusqlite::Result<()> {
    use crate::store::sqlite::evidence::{mislabelled_entries, tree_heads_at};
    let mislabelled = mislabelled_entries(conn)?;
    let sizes = crate::chain::verify::tree_checkpoint_sizes(options);
    let held = if sizes.is_empty() {
        Vec::new()
    } else {
        tree_heads_at(conn, &sizes)?
    };
    crate::chain::verify::check_sessions_and_trees(verifier, mislabelled, &held, options);
    Ok(())
}

/// A read-only connection inside a read transaction: everything it reads comes from one
/// snapshot, so a layer writing meanwhile cannot make rows and chain look out of step.
fn snapshot(path: &Path) -> Result<Connection> {
    let conn = crate::store::sqlite::open::open_read_only(path)?;
    conn.execute_batch("BEGIN DEFERRED")
        .map_err(|source| Error::Setup {
            path: path.into(),
            step: "starting a read transaction".into(),
            source,
        })?;
    Ok(conn)
}

/// The SQLite store's reads of the chain's own tables.
impl Verifier {
    /// The chain's own tables and the database id; `false` when the chain cannot be read.
    pub(crate) fn tables_present(&mut self, conn: &Connection) -> rusqlite::Result<bool> {
        let present = |name: &str| -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        for name in ["audit_chain", "audit_meta"]
            .into_iter()
            .chain(CHAINED_TABLES.iter().map(|t| t.name))
        {
            if !present(name)? {
                self.find(
                    FindingKind::ChainMissing,
                    None,
                    None,
                    format!("table {name} is gone from a database whose schema has it"),
                );
            }
        }
        if !self.report.findings.is_empty() {
            return Ok(false);
        }
        self.start(file_chain::database_id(conn)?);
        Ok(true)
    }

    /// Pass 1: every entry's link, `seq` density, and the latest leaf of every row.
    pub(crate) fn read_chain(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(
            "SELECT seq, table_name, row_id, leaf_hash, chain_hash FROM audit_chain ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut walk = ChainWalk::default();
        while let Some(row) = rows.next()? {
            let table = match row.get_ref(1)? {
                rusqlite::types::ValueRef::Text(name) => Ok(name),
                other => Err(text_of(other)),
            };
            self.entry(
                &mut walk,
                u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                table,
                text_of(row.get_ref(2)?),
                Stored::of(&bytes_of(row.get_ref(3)?)),
                Stored::of(&bytes_of(row.get_ref(4)?)),
            );
        }
        self.end_chain(walk);
        Ok(())
    }

    pub(crate) fn read_events(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(
            "SELECT c.seq, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = CAST(e.id AS TEXT) \
             ORDER BY c.seq",
        )?;
        self.report.events = stmt
            .query_map([], |r| {
                Ok((
                    u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    r.get(1)?,
                    r.get(2)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
    }
}

/// The `pruned` and `erased` events, with their chain entries, and the rows
/// `audit_pruned` lists (a database from before schema 7 has none).
fn read_lifecycle(conn: &Connection) -> rusqlite::Result<(Vec<Event>, Vec<PrunedRow>)> {
    let events = conn
        .prepare(
            "SELECT max(c.seq), e.id, e.kind, coalesce(e.detail, '') FROM audit_events e \
             JOIN audit_chain c ON c.table_name = 'audit_events' AND c.row_id = CAST(e.id AS TEXT) \
             WHERE e.kind IN ('pruned', 'erased') GROUP BY e.id ORDER BY 1",
        )?
        .query_map([], |r| {
            Ok(Event {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                id: r.get(1)?,
                kind: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let has_pruned: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'audit_pruned'",
        [],
        |r| r.get(0),
    )?;
    let pruned = if has_pruned == 0 {
        Vec::new()
    } else {
        conn.prepare("SELECT table_name, row_id, event_id FROM audit_pruned")?
            .query_map([], |r| {
                Ok(PrunedRow {
                    table: r.get(0)?,
                    row_id: r.get(1)?,
                    event_id: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
    };
    Ok((events, pruned))
}

/// Reads every row of every chained table and recomputes its leaf.
fn read_rows(conn: &Connection, lifecycle: &Lifecycle) -> rusqlite::Result<Vec<TableRows>> {
    let mut out = Vec::with_capacity(CHAINED_TABLES.len());
    for (index, table) in CHAINED_TABLES.iter().enumerate() {
        let mut stmt = conn.prepare(&table.select(""))?;
        let mut rows = stmt.query([])?;
        let width = table.columns.len();
        let mut leaves = Vec::new();
        while let Some(row) = rows.next()? {
            let mut all = [Cell::Null; MAX_COLUMNS];
            for (i, cell) in all.iter_mut().enumerate().take(width) {
                *cell = Cell::from(row.get_ref(i)?);
            }
            leaves.push(RowLeaf::of(index as u8, &all[..width], lifecycle));
        }
        out.push(TableRows {
            index: index as u8,
            rows: leaves,
        });
    }
    Ok(out)
}

fn text_of(value: rusqlite::types::ValueRef<'_>) -> String {
    chain::row_id(Cell::from(value))
}

/// A stored hash's bytes: a blob as it is; anything else (a tampered entry) as the bytes
/// it would hash as, so the links are computed over what is there.
fn bytes_of(value: rusqlite::types::ValueRef<'_>) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match value {
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => Cow::Borrowed(b),
        rusqlite::types::ValueRef::Integer(n) => Cow::Owned(n.to_be_bytes().to_vec()),
        rusqlite::types::ValueRef::Real(f) => Cow::Owned(f.to_bits().to_be_bytes().to_vec()),
        rusqlite::types::ValueRef::Null => Cow::Borrowed(&[]),
    }
}
