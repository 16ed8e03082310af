//! [`AuditLayerBuilder`]: the options of an audit layer, their defaults, and `build`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::capture::layer::{AuditLayer, OverflowPolicy};
use crate::chain::checkpoint::SignerKey;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::record::FieldLimits;
use crate::redaction::Redaction;
use crate::store::WriteOptions;
use crate::store::process::Identity;
use crate::store::sqlite::open::{self, DEFAULT_BUSY_TIMEOUT, is_postgres_url};
use crate::writer::checkpoint_log::CheckpointConfig;
use crate::writer::guard::AuditGuard;
use crate::writer::{self, WriterConfig};

/// The environment variable that overrides the default database path.
pub const DB_PATH_ENV: &str = "REASONKIT_AUDIT_DB";
/// How many records the queue between the layer and the writer holds.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// The longest a record waits on the writer thread before it is committed.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// The most records committed in one transaction to a SQLite file.
pub const DEFAULT_MAX_BATCH: usize = 1_024;
/// The most records committed in one transaction to a PostgreSQL store. Larger than a
/// file's: each transaction pays a dozen round trips to the server whatever its size (a
/// remote server makes each one count) and cuts the spans open across it in two row
/// versions; measured on a local server, 4,096 gave 0.71× a direct COPY where 1,024 gave
/// 0.60× (BENCHMARKS.md). A transaction of 4,096 records takes about 0.1 s.
pub const DEFAULT_POSTGRES_MAX_BATCH: usize = 4_096;
/// The longest [`AuditGuard::flush`] waits for the writer.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest dropping the [`AuditGuard`] waits for the writer to commit and stop.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest field value kept, in bytes; longer ones are cut and marked.
pub const DEFAULT_MAX_FIELD_LEN: usize = 64 * 1024;
/// With [`AuditLayerBuilder::checkpoints`]: a checkpoint after this many new chain entries.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100_000;
/// With [`AuditLayerBuilder::checkpoints`]: a checkpoint at least this often, also when
/// idle (an hour, as CloudTrail's digests).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3600);

/// The database an audit layer writes when no path is given: `$REASONKIT_AUDIT_DB` if set
/// and not empty, else `~/.reasonkit/audit.db`.
///
/// # Errors
/// [`Error::NoDefaultPath`] when neither is available.
pub fn default_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(DB_PATH_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::home_dir()
        .filter(|home| !home.as_os_str().is_empty())
        .map(|home| home.join(".reasonkit").join("audit.db"))
        .ok_or(Error::NoDefaultPath)
}

/// Configures and builds an [`AuditLayer`] and its [`AuditGuard`].
///
/// Every option has a default that suits a reasoning application; `build()` alone writes
/// to [`default_path`].
///
/// ```
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir()?;
/// let (layer, guard) = reasonkit_audit::AuditLayer::builder()
///     .path(dir.path().join("audit.db"))
///     .flush_interval(Duration::from_millis(20))
///     .store_inputs(true)
///     .build()?;
/// assert_eq!(guard.path(), dir.path().join("audit.db"));
/// # drop(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AuditLayerBuilder {
    path: Option<PathBuf>,
    postgres: Option<String>,
    store_inputs: bool,
    queue_capacity: usize,
    overflow: OverflowPolicy,
    flush_interval: Duration,
    max_batch: Option<usize>,
    busy_timeout: Duration,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
    max_field_len: usize,
    max_db_size: Option<u64>,
    checkpoints: Option<PathBuf>,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    checkpoint_key: Option<SignerKey>,
    redaction: Redaction,
    retention: Option<Duration>,
    frameworks: bool,
}

impl AuditLayer {
    /// Starts configuring an audit layer; see [`AuditLayerBuilder`] for the options and
    /// their defaults.
    pub fn builder() -> AuditLayerBuilder {
        AuditLayerBuilder::default()
    }
}

impl Default for AuditLayerBuilder {
    fn default() -> Self {
        AuditLayerBuilder {
            path: None,
            postgres: None,
            store_inputs: false,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            overflow: OverflowPolicy::Block,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_batch: None,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            max_db_size: None,
            checkpoints: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            checkpoint_key: None,
            redaction: Redaction::default(),
            retention: None,
            frameworks: true,
        }
    }
}

impl AuditLayerBuilder {
    /// The database file; default: [`default_path`]. Parent directories are created.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self.postgres = None;
        self
    }

    /// A shared PostgreSQL store instead of a file (cargo feature `postgres`): a
    /// `postgres://user@host:port/database` URL or a libpq `key=value` string. What it
    /// leaves out comes from the PG* environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`), then libpq's defaults. Without this call,
    /// `REASONKIT_AUDIT_DB=postgres://…` chooses PostgreSQL too.
    ///
    /// The schema (`migrations/postgres/`) is created or brought up to date when the layer
    /// is built. Without the `postgres` feature, [`build`](Self::build) fails with
    /// [`Error::PostgresNotBuilt`].
    pub fn postgres(mut self, connection: impl Into<String>) -> Self {
        self.postgres = Some(connection.into());
        self.path = None;
        self
    }

    /// Also store each session's raw `input` text in `sessions.input`. Off by default:
    /// only its SHA-256 (`input_hash`) is stored, so the file holds no prompt text.
    pub fn store_inputs(mut self, store: bool) -> Self {
        self.store_inputs = store;
        self
    }

    /// How many records the queue holds (at least 1); default
    /// [`DEFAULT_QUEUE_CAPACITY`]. Bounds the memory the audit trail can take.
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue_capacity = records.max(1);
        self
    }

    /// What to do when the queue is full; default [`OverflowPolicy::Block`].
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// The longest a record waits before it is committed; default
    /// [`DEFAULT_FLUSH_INTERVAL`]. A crash loses at most this much.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The most records per transaction (at least 1); default [`DEFAULT_MAX_BATCH`] for a
    /// SQLite file, [`DEFAULT_POSTGRES_MAX_BATCH`] for a PostgreSQL store.
    pub fn max_batch(mut self, records: usize) -> Self {
        self.max_batch = Some(records.max(1));
        self
    }

    /// How long a statement waits for another process's lock; default
    /// [`DEFAULT_BUSY_TIMEOUT`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The longest [`AuditGuard::flush`] waits; default [`DEFAULT_FLUSH_TIMEOUT`].
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The longest dropping the guard waits for the writer; default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The longest field value kept, in bytes; default [`DEFAULT_MAX_FIELD_LEN`]. Longer
    /// values are cut at a character boundary, end with a visible marker, and are counted
    /// in [`AuditStats::truncated_fields`](crate::AuditStats::truncated_fields).
    pub fn max_field_len(mut self, bytes: usize) -> Self {
        self.max_field_len = bytes;
        self
    }

    /// Caps the database file at about this many bytes (SQLite's `max_page_count`); no
    /// cap by default. At the cap, commits fail as if the disk were full: the records wait
    /// in memory, the queue fills (so callers wait, or drop and count under
    /// [`OverflowPolicy::Drop`]), and everything is committed once space is freed (rows
    /// deleted by another connection).
    pub fn max_db_size(mut self, bytes: u64) -> Self {
        self.max_db_size = Some(bytes);
        self
    }

    /// Appends checkpoints of the chain's head to this file, outside the database: when
    /// the writer starts, after every [`checkpoint_every`](Self::checkpoint_every) new
    /// entries, at least every [`checkpoint_interval`](Self::checkpoint_interval) (also
    /// when idle, so a gap in the series is evidence), and at shutdown. Off by default.
    ///
    /// Keep the file where whoever can rewrite the database cannot rewrite it too (another
    /// disk, a log shipper, an append-only bucket): `reasonkit-audit verify --checkpoint
    /// FILE` then catches a cut tail, a recomputed chain and an older copy put back.
    pub fn checkpoints(mut self, path: impl AsRef<Path>) -> Self {
        self.checkpoints = Some(path.as_ref().to_path_buf());
        self
    }

    /// With [`checkpoints`](Self::checkpoints): a checkpoint after this many new chain
    /// entries (at least 1), written after the commit that reaches the count (a commit
    /// may bring up to a batch of entries at once); default [`DEFAULT_CHECKPOINT_EVERY`].
    pub fn checkpoint_every(mut self, entries: u64) -> Self {
        self.checkpoint_every = entries.max(1);
        self
    }

    /// With [`checkpoints`](Self::checkpoints): a checkpoint at least this often; default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`].
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// With [`checkpoints`](Self::checkpoints): sign each checkpoint with this key (see
    /// [`SignerKey`]; `reasonkit-audit keygen` makes one).
    pub fn checkpoint_key(mut self, key: SignerKey) -> Self {
        self.checkpoint_key = Some(key);
        self
    }

    /// What is removed from recorded values before they are written: by default the
    /// secrets of [`DEFAULT_SECRET_FIELDS`](crate::redaction::DEFAULT_SECRET_FIELDS) and
    /// [`DEFAULT_PATTERNS`](crate::redaction::DEFAULT_PATTERNS); [`Redaction::none`] turns
    /// redaction off. See [`Redaction`].
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Keeps closed sessions for `keep`, then prunes them with their steps and decisions:
    /// the writer checks when idle, at most once an hour, and each pruning is a chained
    /// `pruned` event, so `verify` still passes (see [`prune`](crate::prune())). Running
    /// sessions are never pruned. Default: keep everything.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// Whether spans of the OpenTelemetry GenAI conventions and of the Rust agent
    /// frameworks (rig's `invoke_agent`/`chat`/`execute_tool`, genai's `genai.chat`,
    /// swiftide's `agent.run`/`tool`, adk-rust's `agent.execute`/`call_llm`, …) are
    /// recorded as sessions, steps and decisions; default: on. Off, only spans named
    /// `session`, `step` and `decision` are. The table is in the crate docs' "Frameworks"
    /// section.
    pub fn frameworks(mut self, recognise: bool) -> Self {
        self.frameworks = recognise;
        self
    }

    /// Opens (creating and migrating if needed) the database and starts the writer thread.
    ///
    /// # Errors
    /// An [`Error`] naming the path when the database cannot be created, opened, or
    /// migrated: a directory in the way, a file that is not SQLite, a read-only file, a
    /// schema newer than this release. The file is left untouched in those cases.
    /// [`Error::CheckpointFile`] when the checkpoint file cannot be opened for appending.
    pub fn build(self) -> Result<(AuditLayer, AuditGuard)> {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

        // A PostgreSQL URL given as the path, or in REASONKIT_AUDIT_DB, names the store: it
        // must never become a SQLite file named like a URL.
        let postgres = self.postgres.clone().or_else(|| match &self.path {
            Some(path) => path
                .to_str()
                .filter(|p| is_postgres_url(p))
                .map(str::to_owned),
            None => std::env::var(DB_PATH_ENV)
                .ok()
                .filter(|p| is_postgres_url(p)),
        });
        let identity = Identity::current();
        let max_batch = self.max_batch.unwrap_or(if postgres.is_some() {
            DEFAULT_POSTGRES_MAX_BATCH
        } else {
            DEFAULT_MAX_BATCH
        });
        let (backend, path): (Box<dyn crate::store::Backend>, PathBuf) = match postgres {
            Some(connection) => open_postgres(&connection, &identity)?,
            None => {
                let path = match self.path.clone() {
                    Some(path) => path,
                    None => default_path()?,
                };
                let mut conn =
                    open::open_for_writing(&path, self.busy_timeout, self.max_db_size, &identity)?;
                let checkpointer = crate::store::sqlite::checkpointer::Checkpointer::start(
                    &path,
                    &mut conn,
                    self.busy_timeout,
                );
                (
                    Box::new(crate::store::sqlite::SqliteBackend {
                        _checkpointer: checkpointer,
                        conn,
                    }),
                    path,
                )
            }
        };
        if let Some(file) = &self.checkpoints {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_err(|source| Error::CheckpointFile {
                    path: file.clone(),
                    source,
                })?;
        }
        let limits = FieldLimits::new(self.max_field_len);
        let health = Health::new(path.clone(), limits.clone());
        let (sender, receiver) = crossbeam_channel::bounded(self.queue_capacity);
        let (done_sender, done) = crossbeam_channel::bounded(0);
        let config = WriterConfig {
            flush_interval: self.flush_interval,
            max_batch,
            write: WriteOptions {
                store_inputs: self.store_inputs,
                identity,
            },
            redaction: self.redaction,
            retention: self.retention,
            busy_timeout: self.busy_timeout,
            checkpoints: self.checkpoints.map(|path| CheckpointConfig {
                path,
                every: self.checkpoint_every,
                interval: self.checkpoint_interval,
                key: self.checkpoint_key,
            }),
        };
        let writer = writer::spawn(backend, receiver, config, health.clone(), done_sender)
            .map_err(|source| Error::Spawn { path, source })?;

        let layer = AuditLayer {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            sender: sender.clone(),
            policy: self.overflow,
            limits,
            health: health.clone(),
            callsites: crate::capture::conventions::Callsites::new(self.frameworks),
            unplaced: std::sync::atomic::AtomicUsize::new(0),
            open: crate::capture::open_spans::OpenSpans::new(),
        };
        let guard = AuditGuard {
            sender,
            writer: Some(writer),
            done,
            health,
            flush_timeout: self.flush_timeout,
            shutdown_timeout: self.shutdown_timeout,
        };
        Ok((layer, guard))
    }
}

/// Connects to the PostgreSQL store and prepares it; the path is its description (no
/// password), which errors and [`AuditGuard::path`] show.
#[cfg(feature = "postgres")]
fn open_postgres(
    connection: &str,
    identity: &Identity,
) -> Result<(Box<dyn crate::store::Backend>, PathBuf)> {
    let target = crate::store::postgres::PgTarget::parse(connection)
        .map_err(|message| Error::Postgres { message })?;
    let description = PathBuf::from(target.to_string());
    let backend = crate::store::postgres::backend::PgBackend::open(target, identity)
        .map_err(|message| Error::Postgres { message })?;
    Ok((Box::new(backend), description))
}

/// Without the `postgres` feature: says so, naming the store without its password.
#[cfg(not(feature = "postgres"))]
fn open_postgres(
    connection: &str,
    _identity: &Identity,
) -> Result<(Box<dyn crate::store::Backend>, PathBuf)> {
    let target = match connection.split_once('@') {
        Some((_, after)) if connection.contains("://") => format!("postgres://…@{after}"),
        _ => "the connection string".to_owned(),
    };
    Err(Error::PostgresNotBuilt { target })
}
