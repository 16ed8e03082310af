//! The crate's error type.
//!
//! Every variant that concerns the database names its path, says what went wrong, and —
//! where there is one — what the user can do about it. The layer itself never returns
//! errors to instrumented code: it reports write problems on stderr and in the
//! database's own `audit_health` table instead. Only [`AuditLayerBuilder::build`],
//! [`AuditGuard::flush`] and [`AuditGuard::shutdown`] return this type.
//!
//! [`AuditLayerBuilder::build`]: crate::AuditLayerBuilder::build
//! [`AuditGuard::flush`]: crate::AuditGuard::flush
//! [`AuditGuard::shutdown`]: crate::AuditGuard::shutdown

use std::path::PathBuf;

/// What went wrong while opening, migrating or writing an audit database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No path was given, `$REASONKIT_AUDIT_DB` is unset, and the home directory is unknown.
    #[error(
        "cannot choose a default audit database: $REASONKIT_AUDIT_DB is unset and the home \
         directory is unknown; set REASONKIT_AUDIT_DB or call AuditLayer::builder().path(..)"
    )]
    NoDefaultPath,

    /// The database's parent directory could not be created.
    #[error("cannot create directory {path} for the audit database: {source}")]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The database file could not be created or opened.
    #[error(
        "cannot open audit database {path}: {source}; check that the path is a file in a \
         writable directory"
    )]
    Open {
        /// The database path.
        path: PathBuf,
        /// The underlying SQLite error.
        source: rusqlite::Error,
    },

    /// There is no database at the path (for reading or migrating, which never create one).
    #[error(
        "no audit database at {path}; run an instrumented program first, or pass --db / set \
         REASONKIT_AUDIT_DB to the file you mean"
    )]
    Missing {
        /// The database path.
        path: PathBuf,
    },

    /// The database's schema is older than this release reads; `migrate` brings it up.
    #[error(
        "audit database {path} has schema version {found}, older than the {supported} this \
         release reads; run `reasonkit-audit migrate --db {path}` (or open it with the layer)"
    )]
    SchemaTooOld {
        /// The database path.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The version this release reads.
        supported: i64,
    },

    /// The path is a directory, not a database file.
    #[error("cannot open audit database {path}: it is a directory; give the path of a file")]
    IsDirectory {
        /// The database path.
        path: PathBuf,
    },

    /// The file exists but is not a SQLite database; it was left untouched.
    #[error(
        "cannot open audit database {path}: the file is not a SQLite database (left untouched); \
         move it away or choose another path"
    )]
    NotADatabase {
        /// The database path.
        path: PathBuf,
    },

    /// The file could only be opened read-only; it was left untouched.
    #[error(
        "cannot write audit database {path}: the file or its directory is read-only (left \
         untouched); fix its permissions or choose another path"
    )]
    ReadOnly {
        /// The database path.
        path: PathBuf,
    },

    /// The database was written by a newer version of this crate; it was left untouched.
    #[error(
        "audit database {path} has schema version {found}, newer than the {supported} this \
         version of reasonkit-audit knows (left untouched); upgrade reasonkit-audit or choose \
         another path"
    )]
    SchemaTooNew {
        /// The database path.
        path: PathBuf,
        /// The version found in the file (`PRAGMA user_version`).
        found: i64,
        /// The newest version this crate knows.
        supported: i64,
    },

    /// A pragma or migration failed while preparing the database.
    #[error("cannot prepare audit database {path} ({step}): {source}")]
    Setup {
        /// The database path.
        path: PathBuf,
        /// What was being done, e.g. `"applying migration 0002_layer_columns"`.
        step: String,
        /// The underlying SQLite error.
        source: rusqlite::Error,
    },

    /// The writer thread could not be started.
    #[error("cannot start the audit writer thread for {path}: {source}")]
    Spawn {
        /// The database path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// Committing records failed; they are kept in memory and retried.
    #[error("cannot write to audit database {path}: {message}; the records are kept and retried")]
    Write {
        /// The database path.
        path: PathBuf,
        /// SQLite's description of the failure.
        message: String,
    },

    /// The writer did not answer within the allowed time.
    #[error(
        "audit database {path}: the writer did not commit within {waited:?}; records are still \
         queued (is another process holding a write lock, or the disk full?)"
    )]
    TimedOut {
        /// The database path.
        path: PathBuf,
        /// How long the caller waited.
        waited: std::time::Duration,
    },

    /// The writer stopped at shutdown with records it could not commit in time.
    #[error(
        "audit database {path}: {records} records could not be written before the shutdown \
         timeout (see the messages above for why)"
    )]
    Unwritten {
        /// The database path.
        path: PathBuf,
        /// How many records were given up.
        records: u64,
    },

    /// The checkpoint file given to the builder cannot be opened for appending.
    #[error(
        "cannot open checkpoint file {path} for appending: {source}; give a writable path \
         (outside the database's reach, ideally)"
    )]
    CheckpointFile {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A checkpoint given to `verify` cannot be used: it names another database, it is not
    /// signed by any of the keys given, or its signature does not verify.
    #[error("checkpoint rejected: {message}")]
    Checkpoint {
        /// What is wrong with it.
        message: String,
    },

    /// An erasure was refused, and nothing was changed.
    #[error("not erasing in {path}: {message}")]
    Erase {
        /// The database.
        path: PathBuf,
        /// Why.
        message: String,
    },

    /// A backup could not be made, or the copy did not check out (and was removed).
    #[error("cannot back up {source_path} to {dest}: {message}")]
    Backup {
        /// The database being copied.
        source_path: PathBuf,
        /// The copy.
        dest: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A redaction pattern given to [`Redaction::pattern`](crate::Redaction::pattern) is not
    /// a valid regular expression.
    #[error("redaction rule {rule}: invalid regular expression: {message}")]
    RedactionPattern {
        /// The rule's name.
        rule: String,
        /// The regex crate's description of the error.
        message: String,
    },

    /// The PostgreSQL store could not be reached, prepared or used. The message names the
    /// server and database (`postgres://user@host:port/database`), never the password.
    #[error("{message}")]
    Postgres {
        /// What failed, where, and PostgreSQL's own words for it.
        message: String,
    },

    /// Reading the audit trail back ([`read::Reader`](crate::read::Reader)) failed.
    #[error("cannot read {store}: {message}")]
    Read {
        /// The file's path, or the PostgreSQL server and database.
        store: String,
        /// What was being read, and the store's own words for what went wrong.
        message: String,
    },

    /// An evidence bundle could not be made as asked: a session the store does not hold,
    /// a checkpoint the store's chain no longer extends, a store too old.
    #[error("cannot make evidence from {store}: {message}")]
    Evidence {
        /// The file's path.
        store: String,
        /// What stopped it, and what to do.
        message: String,
    },

    /// What was asked of the read side cannot be answered as asked: a search with no word,
    /// an id's beginning that more than one session shares. Say more and ask again.
    #[error("{message}")]
    Request {
        /// What was asked, why it cannot be answered, and what to give instead.
        message: String,
    },

    /// A file to import does not verify: evidence of tampering is not copied into a shared
    /// store.
    #[error(
        "not importing {path}: its chain does not verify ({findings} findings); run \
         `reasonkit-audit verify --db {path}` to see them"
    )]
    ImportRefused {
        /// The file.
        path: PathBuf,
        /// How many findings `verify` reported.
        findings: usize,
    },

    /// A PostgreSQL store was asked for, but this build has no PostgreSQL support.
    #[error(
        "{target} names a PostgreSQL store, but this build of reasonkit-audit has no PostgreSQL \
         support; enable the crate's `postgres` feature"
    )]
    PostgresNotBuilt {
        /// The store asked for, without its password.
        target: String,
    },

    /// The writer thread has stopped; nothing more can be written through this guard.
    #[error("audit database {path}: the writer thread has stopped")]
    WriterStopped {
        /// The database path.
        path: PathBuf,
    },
}

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
