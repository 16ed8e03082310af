//! The PostgreSQL store (cargo feature `postgres`): one audit trail shared by many
//! processes on many hosts, written by the same layer and writer as the SQLite file.
//!
//! - [`target`]: the connection string and the PG* environment variables.
//! - [`schema`]: `migrations/postgres/`, applied under an advisory lock.
//! - [`images`]: rows read back as the chain hashes them.
//! - [`backend`]: the writer's batches as set-based, idempotent transactions.
//! - [`verify()`]: the chain checked against the rows, as for a SQLite file.

pub(crate) mod backend;
pub(crate) mod images;
pub(crate) mod schema;
pub(crate) mod target;
mod verify;

pub use schema::PG_SCHEMA_VERSION;
pub use target::{PgTarget, is_postgres_url};
pub use verify::verify;
