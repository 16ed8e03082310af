//! The PostgreSQL store (cargo feature `postgres`): one audit trail shared by many
//! processes on many hosts, written by the same layer and writer as the SQLite file.
//!
//! - `target.rs`: the connection string and the PG* environment variables.
//! - `tls.rs`: TLS with libpq's `sslmode` meanings (rustls).
//! - `schema.rs`: `migrations/postgres/`, applied under an advisory lock.
//! - `images.rs`: rows read back as the chain hashes them.
//! - `connection.rs`: a writing connection and the statements prepared on it.
//! - `statements.rs`: the set-based statements (the fallback, and closes) and the chain's
//!   append.
//! - `jsonb.rs`: what the server can store (no U+0000) and `jsonb`'s normal form, so the
//!   client knows what the server will store.
//! - `batch.rs`: which of a batch's rows are in the store, and the session a step is
//!   written under.
//! - `copy.rs`: a batch's new rows by binary COPY, hashed from what was sent.
//! - `backend.rs`: the writer's batches as idempotent transactions.
//! - [`search`]: the search index, written in bulk behind the writes.
//! - `prune.rs`, `erase.rs`: retention and erasure, as for a SQLite file.
//! - [`verify()`]: the chain checked against the rows, as for a SQLite file.
//! - [`evidence()`]: evidence bundles of sessions or a period, as for a SQLite file.
//! - [`import()`]: per-user SQLite files copied into the shared store.

pub(crate) mod backend;
mod batch;
mod connection;
mod copy;
mod erase;
mod evidence;
pub(crate) mod images;
mod import;
mod jsonb;
mod prune;
pub(crate) mod schema;
pub mod search;
pub(crate) mod statements;
pub(crate) mod target;
#[cfg(test)]
mod test_server;
mod tls;
mod verify;

pub use evidence::build as evidence;
pub use import::{ImportReport, import};
pub use schema::PG_SCHEMA_VERSION;
pub use target::{PgTarget, is_postgres_url};
pub use verify::verify;

use crate::error::{Error, Result};

/// The PostgreSQL client crate this module uses, for the [`postgres::Client`] that
/// [`connect_read_only`] returns.
pub use ::postgres as client;

/// The store `connection` names (a URL or `key=value` pairs, completed from the PG*
/// variables); an error names what is wrong, never the password.
pub(crate) fn parse_target(connection: &str) -> Result<PgTarget> {
    PgTarget::parse(connection).map_err(|message| Error::Postgres { message })
}

/// The store `connection` names, and a client connected to it.
pub(crate) fn connected(connection: &str) -> Result<(PgTarget, ::postgres::Client)> {
    let target = parse_target(connection)?;
    let client = target
        .connect()
        .map_err(|message| Error::Postgres { message })?;
    Ok((target, client))
}

/// One REPEATABLE READ, read-only snapshot of a store whose schema this release reads:
/// what `verify` and `evidence` read, so that writers committing meanwhile cannot make rows
/// and chain look out of step. `store` names it in errors.
pub(crate) fn snapshot<'a>(
    client: &'a mut ::postgres::Client,
    store: &str,
) -> Result<::postgres::Transaction<'a>> {
    let mut tx = client
        .build_transaction()
        .isolation_level(::postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| Error::Postgres {
            message: format!(
                "cannot read PostgreSQL {store}: starting a read transaction: {}",
                target::message(&e)
            ),
        })?;
    schema::check_readable(&mut tx, store).map_err(|message| Error::Postgres { message })?;
    Ok(tx)
}

/// Connects to the PostgreSQL store `connection` names for reading only: every
/// transaction of the session is READ ONLY, so nothing read through it can write. For
/// tools that query the trail (the `reasonkit-audit` command uses it).
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached, or holds no reasonkit-audit schema
/// or a newer one than this release reads.
pub fn connect_read_only(connection: &str) -> Result<::postgres::Client> {
    let (target, mut client) = connected(connection)?;
    let fail = |e: ::postgres::Error| Error::Postgres {
        message: format!("cannot read PostgreSQL {target}: {}", target::message(&e)),
    };
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .map_err(fail)?;
    let mut tx = client.transaction().map_err(fail)?;
    schema::check_readable(&mut tx, &target.to_string())
        .map_err(|message| Error::Postgres { message })?;
    tx.commit().map_err(fail)?;
    Ok(client)
}

/// Creates or brings up to date the schema of the PostgreSQL store `connection` names (as
/// the layer does when it starts); returns the versions before and after.
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached, or its schema is newer than this
/// release (left untouched).
pub fn migrate(connection: &str) -> Result<(i64, i64)> {
    let (target, mut client) = connected(connection)?;
    schema::migrate(&mut client, &target.to_string()).map_err(|message| Error::Postgres { message })
}

/// Prunes the PostgreSQL store `connection` names, as [`crate::prune()`] does a file:
/// closed sessions older than the cut, with their steps and decisions, after a chained
/// `pruned` event (PostgreSQL gives the space back itself, by autovacuum).
///
/// # Errors
/// [`Error::Postgres`] when the store cannot be reached or migrated, or the pruning fails
/// (nothing is then changed).
pub fn prune(
    connection: &str,
    prune: &crate::lifecycle::prune::Prune,
) -> Result<crate::lifecycle::prune::PruneReport> {
    let target = parse_target(connection)?;
    let mut writing = writing(&target)?;
    prune::prune_in(&mut writing, prune).map_err(|e| Error::Postgres {
        message: format!("cannot prune PostgreSQL {target}: {}", target::message(&e)),
    })
}

/// Erases sessions from the PostgreSQL store `connection` names, as [`crate::erase()`] does
/// in a file. PostgreSQL keeps the updated rows' old versions until `VACUUM` (and in WAL
/// archives and backups for as long as they are kept).
///
/// # Errors
/// [`Error::Erase`] when the erasure is refused (nothing changed), [`Error::Postgres`] when
/// the store cannot be reached or the erasure fails.
pub fn erase(
    connection: &str,
    erase: &crate::lifecycle::erase::Erase,
) -> Result<crate::lifecycle::erase::EraseReport> {
    let target = parse_target(connection)?;
    let refuse = |message: String| Error::Erase {
        path: target.to_string().into(),
        message,
    };
    if erase.reason.trim().is_empty() {
        return Err(refuse(crate::lifecycle::erase::NO_REASON.into()));
    }
    let mut writing = writing(&target)?;
    match erase::erase_in(&mut writing, erase) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(message)) => Err(refuse(message)),
        Err(e) => Err(Error::Postgres {
            message: format!(
                "cannot erase in PostgreSQL {target}: {}",
                target::message(&e)
            ),
        }),
    }
}

/// A writing connection to `target`, its schema brought up to date.
fn writing(target: &PgTarget) -> Result<connection::Writing> {
    let mut writing = connection::Writing::new(
        target
            .connect()
            .map_err(|message| Error::Postgres { message })?,
    );
    schema::migrate(writing.client(), &target.to_string())
        .map_err(|message| Error::Postgres { message })?;
    Ok(writing)
}
