//! The SQLite store: the writer's batches as one IMMEDIATE transaction each, through the
//! statements of `statements.rs`; `open.rs` opens a file (pragmas, migrations, version
//! checks), `search.rs` keeps its full-text index and `checkpointer.rs` moves the WAL into
//! the file on a thread of its own. The file's lifecycle sits beside
//! it, under the same names as PostgreSQL's: `prune.rs`, `erase.rs`, `verify.rs` (its
//! feed of verify's engine), and `backup.rs`, which only a file has.
//!
//! IMMEDIATE takes the write lock at BEGIN, so the chain head read inside the transaction
//! is the head this commit extends, whichever process wrote the file last. A row SQLite
//! refuses on its own (a constraint) is reported and skipped; it never sinks its batch.

pub(crate) mod backup;
pub(crate) mod chain;
pub(crate) mod checkpointer;
pub(crate) mod erase;
pub(crate) mod evidence;
pub(crate) mod open;
pub(crate) mod prune;
pub(crate) mod search;
pub(crate) mod statements;
pub(crate) mod verify;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use self::statements::RowWrite;
use crate::chain::{ChainHead, Leaf};
use crate::health::Health;
use crate::lifecycle::prune::{Prune, PruneReport};
use crate::record::Kind;
use crate::store::rows::Row;
use crate::store::sqlite::chain as file_chain;
use crate::store::{self, Backend, Batch, Committed, Op, WriteOptions};

/// The writer's SQLite connection, and the thread that checkpoints its WAL (see
/// `checkpointer.rs`; `None` where it could not start, SQLite then checkpointing inside the
/// writer's commits as by default).
pub(crate) struct SqliteBackend {
    /// Declared first, so dropped first: the writer's connection is then the last one to
    /// close, and folds the WAL into the database.
    pub(crate) _checkpointer: Option<checkpointer::Checkpointer>,
    pub(crate) conn: Connection,
}

impl Backend for SqliteBackend {
    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, String> {
        self.try_commit(batch).map_err(|e| e.to_string())
    }

    fn mark_interrupted(&mut self, ids: &[String]) -> Result<(), String> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let mut leaves = Vec::with_capacity(ids.len());
                for id in ids {
                    leaves.extend(statements::mark_interrupted_where(&tx, "id = ?1", [id])?);
                }
                let committed_at = crate::store::rows::timestamp(std::time::SystemTime::now());
                file_chain::append(&tx, &leaves, &committed_at)?;
                tx.commit()
            })
            .map_err(|e| e.to_string())
    }

    fn index_search(&mut self) -> Result<bool, String> {
        search::index_chunk(&self.conn).map_err(|e| e.to_string())
    }

    fn chain_head(&mut self) -> Result<(String, ChainHead), String> {
        let id = file_chain::database_id(&self.conn).map_err(|e| e.to_string())?;
        let head = file_chain::head(&self.conn).map_err(|e| e.to_string())?;
        Ok((id.unwrap_or_default(), head))
    }

    fn prune(&mut self, prune: &Prune) -> Result<PruneReport, String> {
        let report = self::prune::prune_in(&self.conn, prune).map_err(|e| e.to_string())?;
        if report.sessions > 0 {
            // Pages back to the file system; the WAL is folded in by the usual checkpoints.
            self::prune::reclaim(&self.conn, false, false).map_err(|e| e.to_string())?;
        }
        Ok(report)
    }
}

impl SqliteBackend {
    fn try_commit(&mut self, batch: Batch<'_>) -> rusqlite::Result<Committed> {
        let Batch {
            number: _,
            rows,
            ops,
            config,
            health,
            health_written,
            health_now,
        } = batch;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut refused = Vec::new();
        let mut leaves = Vec::with_capacity(ops.len() + 1);
        for op in ops {
            if let Op::Joined(joined) = op {
                if let Some(moved) = statements::join_session(&tx, joined)? {
                    leaves.extend(moved);
                    store::follow_joined(rows, joined);
                }
                continue;
            }
            let (id, result) = match op {
                Op::Insert(id) => {
                    store::follow_renamed_session(rows, id);
                    match rows.get_mut(id) {
                        Some(t) => (id, insert_row(&tx, &mut t.row, config, health)),
                        None => continue,
                    }
                }
                Op::Update(id) => match rows.get(id) {
                    Some(t) if !t.refused => (
                        id,
                        statements::write_row(
                            &tx,
                            &t.row,
                            RowWrite::Update,
                            config.store_inputs,
                            &config.identity,
                        ),
                    ),
                    _ => continue,
                },
                Op::Decided(decided) => (&decided.id, statements::insert_decided(&tx, decided)),
                Op::Joined(_) => continue,
            };
            match result {
                Ok(leaf) => leaves.extend(leaf),
                Err(e) if is_row_error(&e) => refused.push((id.clone(), e.to_string())),
                Err(e) => return Err(e),
            }
        }
        leaves.extend(statements::insert_health(
            &tx,
            &config.identity,
            health_written,
            health_now,
            health.last_error(),
        )?);
        let committed_at = crate::store::rows::timestamp(std::time::SystemTime::now());
        let head = file_chain::append(&tx, &leaves, &committed_at)?;
        tx.commit()?;
        Ok(Committed {
            refused,
            chain_size: head.map(|h| h.size),
        })
    }
}

/// Inserts a row; a session whose given id already names a session in the file is
/// written under a new id instead.
fn insert_row(
    tx: &rusqlite::Transaction<'_>,
    row: &mut Row,
    config: &WriteOptions,
    health: &Health,
) -> rusqlite::Result<Option<Leaf>> {
    let write = |row: &Row| {
        statements::write_row(
            tx,
            row,
            RowWrite::Insert,
            config.store_inputs,
            &config.identity,
        )
    };
    match write(row) {
        Err(e)
            if row.kind() == Kind::Session && row.written_as.is_none() && is_duplicate_id(&e) =>
        {
            store::rename_session(row, health);
            write(row)
        }
        other => other,
    }
}

/// The row's primary key is taken.
fn is_duplicate_id(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Errors that concern one row only; anything else concerns the whole transaction.
fn is_row_error(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
    )
}
