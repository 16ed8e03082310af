//! Opening an audit database: file creation, pragmas, schema migrations, version checks.
//!
//! Everything here runs once, in [`AuditLayerBuilder::build`](crate::AuditLayerBuilder::build),
//! on the caller's thread, so that a database that cannot be used is reported as an `Err`
//! before any record is queued. The connection it returns is then moved to the writer
//! thread, which owns it for the rest of its life.
//!
//! The order of the checks matters: nothing that writes to the file (WAL mode, migrations)
//! happens before we know it is a SQLite database whose schema we understand, so a foreign
//! file or a database from a newer release is left byte-for-byte untouched.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::chain::{self, Cell, Leaf};
use crate::error::{Error, Result};
use crate::store::process::{self, Identity};
use crate::store::rows;
use crate::store::sqlite::chain as file_chain;
use crate::store::sqlite::statements;

/// How long one SQLite statement waits for another process's lock before failing (and
/// being retried).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Does `REASONKIT_AUDIT_DB`, a path given to the builder, or a `--db` argument name a
/// PostgreSQL store rather than a SQLite file? Only `postgres://` and `postgresql://` URLs
/// do: a key=value string could be a file name.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// One schema step: a numbered SQL file from the top-level `migrations/` folder.
pub(crate) struct Migration {
    /// The schema version the database has once this migration is applied.
    pub(crate) version: i64,
    /// The file name without `.sql`, recorded in `schema_migrations`.
    pub(crate) name: &'static str,
    /// The SQL, embedded at compile time.
    pub(crate) sql: &'static str,
    /// What SQL cannot do, run after it in the same transaction (hashing, say).
    pub(crate) then: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        migration!($version, $name, None)
    };
    ($version:expr, $name:literal, $then:expr) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/", $name, ".sql")),
            then: $then,
        }
    };
}

/// Every migration, in order. A unit test checks that this list matches the folder.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_initial"),
    migration!(2, "0002_layer_columns"),
    migration!(3, "0003_process_and_health"),
    migration!(4, "0004_search"),
    migration!(5, "0005_audit_chain", Some(seal_existing_rows)),
    migration!(6, "0006_deferred_search"),
    migration!(7, "0007_lifecycle"),
    migration!(8, "0008_chain_sessions"),
];

/// The schema version this release writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Opens (creating if needed) the audit database at `path` and brings its schema up to
/// [`SCHEMA_VERSION`].
pub(crate) fn open_for_writing(
    path: &Path,
    busy_timeout: Duration,
    max_size: Option<u64>,
    identity: &Identity,
) -> Result<Connection> {
    if path.is_dir() {
        return Err(Error::IsDirectory { path: path.into() });
    }
    create_private_file(path)?;

    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| classify(path, source))?;
    let setup = |step: &str, source| classify_setup(path, step, source);

    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| setup("checking access", e))?
    {
        return Err(Error::ReadOnly { path: path.into() });
    }
    conn.busy_timeout(busy_timeout)
        .map_err(|e| setup("setting busy_timeout", e))?;

    // Read before writing anything: a foreign file fails here, a newer schema stops here.
    let found = schema_version(&conn).map_err(|e| setup("reading the schema version", e))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.into(),
            found,
            supported: SCHEMA_VERSION,
        });
    }

    // Switching a new file to WAL needs an exclusive lock. When several processes open the
    // same new file at once, SQLite may answer BUSY at once rather than wait (the busy
    // handler is skipped where waiting could deadlock), so the switch is asked again until
    // the busy timeout has passed.
    let deadline = std::time::Instant::now() + busy_timeout;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.map_err(|e| setup("enabling WAL mode", e))?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Setup {
            path: path.into(),
            step: format!("enabling WAL mode (SQLite kept journal_mode={mode})"),
            source: rusqlite::Error::InvalidQuery,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| setup("setting synchronous=NORMAL", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| setup("enabling foreign keys", e))?;
    // A batch dirties pages of eight B-trees; with SQLite's default 2 MiB cache they spill
    // into the WAL before the commit and are written twice.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| setup("setting cache_size", e))?;
    // Statements with triggers keep a statement journal for their own rollback; on disk
    // that cost a pwrite per page (a fifth of the writer's time). In memory it is the same
    // journal without the syscalls; durability does not depend on it.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| setup("setting temp_store", e))?;

    apply_migrations(&conn, path)?;
    mark_interrupted(&conn, identity).map_err(|e| setup("marking interrupted sessions", e))?;
    if let Some(bytes) = max_size {
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .map_err(|e| setup("reading page_size", e))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update(None, "max_page_count", pages.max(1))
            .map_err(|e| setup("setting max_page_count", e))?;
    }
    Ok(conn)
}

/// Marks `interrupted` the sessions left `running` by processes of this host that no
/// longer exist, and chains their new versions, in one transaction.
fn mark_interrupted(conn: &Connection, identity: &Identity) -> rusqlite::Result<usize> {
    let pids: Vec<i64> = conn
        .prepare(
            "SELECT DISTINCT pid FROM sessions WHERE status = 'running' AND host = ?1 AND pid IS NOT NULL",
        )?
        .query_map([&identity.host], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let dead: Vec<i64> = pids
        .into_iter()
        .filter(|pid| !process::is_alive(*pid))
        .collect();
    if dead.is_empty() {
        return Ok(0);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut leaves = Vec::new();
    for pid in dead {
        leaves.extend(statements::mark_interrupted_where(
            &tx,
            "host = ?1 AND pid = ?2",
            (&identity.host, pid),
        )?);
    }
    file_chain::append(&tx, &leaves, &rows::timestamp(SystemTime::now()))?;
    tx.commit()?;
    Ok(leaves.len())
}

/// How many rows the sealing migration appends to the chain per statement batch.
const SEAL_CHUNK: usize = 10_000;

/// Migration 0005: the rows already in the file become the chain's first leaves, after an
/// `audit_events` row (kind `sealed`) that says so: they are sealed as found, since
/// nothing can show what happened to them before.
fn seal_existing_rows(conn: &Connection) -> rusqlite::Result<()> {
    let sealed = [
        &chain::SESSIONS,
        &chain::STEPS,
        &chain::DECISIONS,
        &chain::AUDIT_HEALTH,
    ];
    let mut counts = serde_json::Map::new();
    let mut total = 0_i64;
    for table in sealed {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| {
            r.get(0)
        })?;
        counts.insert(table.name.to_owned(), n.into());
        total += n;
    }
    if total == 0 {
        return Ok(());
    }
    let at = rows::timestamp(SystemTime::now());
    let detail = serde_json::json!({
        "migration": "0005_audit_chain",
        "rows": total,
        "tables": counts,
        "note": "rows written before the chain existed, sealed as they were found",
    })
    .to_string();
    conn.execute(
        "INSERT INTO audit_events (recorded_at, kind, detail) VALUES (?1, 'sealed', ?2)",
        (&at, &detail),
    )?;
    let event = conn.last_insert_rowid();
    let mut leaves = vec![Leaf::of(
        &chain::AUDIT_EVENTS,
        event.to_string(),
        [
            Cell::Integer(event),
            Cell::text(&at),
            Cell::text("sealed"),
            Cell::text(&detail),
        ],
    )];
    for table in sealed {
        let mut stmt = conn.prepare(&table.select("ORDER BY rowid"))?;
        let mut found = stmt.query([])?;
        while let Some(row) = found.next()? {
            let cells = (0..table.columns.len())
                .map(|i| row.get_ref(i).map(Cell::from))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            leaves.push(Leaf::of(table, chain::row_id(cells[0]), cells));
            if leaves.len() >= SEAL_CHUNK {
                file_chain::append_before_sessions(conn, &leaves, &at)?;
                leaves.clear();
            }
        }
    }
    file_chain::append_before_sessions(conn, &leaves, &at)?;
    Ok(())
}

/// Opens an existing audit database for reading only: nothing in the file is changed.
///
/// For tools that query the audit trail (the `reasonkit-audit` command uses it). The schema
/// must be the one this release writes.
///
/// # Errors
/// [`Error::Missing`], [`Error::IsDirectory`], [`Error::NotADatabase`],
/// [`Error::SchemaTooNew`] or [`Error::SchemaTooOld`], each naming the path.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    if path.is_dir() {
        return Err(Error::IsDirectory { path: path.into() });
    }
    if !path.exists() {
        return Err(Error::Missing { path: path.into() });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| classify(path, source))?;
    conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
        .map_err(|e| classify_setup(path, "setting busy_timeout", e))?;
    let found =
        schema_version(&conn).map_err(|e| classify_setup(path, "reading the schema version", e))?;
    match found {
        v if v > SCHEMA_VERSION => Err(Error::SchemaTooNew {
            path: path.into(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        v if v < SCHEMA_VERSION => Err(Error::SchemaTooOld {
            path: path.into(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(conn),
    }
}

/// Brings an existing audit database to this release's schema; returns the versions
/// before and after. The only way, besides building a layer on it, to change a file.
///
/// # Errors
/// [`Error::Missing`] when there is no file (migrating never creates one), and the errors
/// of [`AuditLayerBuilder::build`](crate::AuditLayerBuilder::build) otherwise.
pub fn migrate(path: &Path) -> Result<(i64, i64)> {
    if !path.exists() {
        return Err(Error::Missing { path: path.into() });
    }
    let before = {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
        schema_version(&conn).map_err(|e| classify_setup(path, "reading the schema version", e))?
    };
    open_for_writing(path, DEFAULT_BUSY_TIMEOUT, None, &Identity::current())?;
    Ok((before, SCHEMA_VERSION))
}

/// Opens an existing audit file for a command that changes it (prune, erase): never
/// creates one, waits the default busy timeout for another writer's lock, and writes as
/// this process.
///
/// # Errors
/// [`Error::Missing`] when there is no file, and the errors of opening it for writing.
pub(crate) fn open_existing_for_writing(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::Missing { path: path.into() });
    }
    open_for_writing(path, DEFAULT_BUSY_TIMEOUT, None, &Identity::current())
}

/// The chain's current head and the database's id, read-only: what a checkpoint records.
///
/// # Errors
/// Those of [`open_read_only`], and [`Error::Setup`] when the chain cannot be read (its
/// tables are gone or its last link is damaged: `verify` says what happened).
pub fn chain_head(path: &Path) -> Result<(String, chain::ChainHead)> {
    let conn = open_read_only(path)?;
    let read = || -> rusqlite::Result<(String, chain::ChainHead)> {
        let id = file_chain::database_id(&conn)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok((id, file_chain::head(&conn)?))
    };
    read().map_err(|source| Error::Setup {
        path: path.into(),
        step: "reading the chain head (run `reasonkit-audit verify` to see why)".into(),
        source,
    })
}

/// The database's schema version, as recorded in `PRAGMA user_version`.
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies every migration newer than the database, each in its own transaction together
/// with its version bump, so a crash between two migrations leaves a consistent schema.
fn apply_migrations(conn: &Connection, path: &Path) -> Result<()> {
    for migration in MIGRATIONS {
        let step = || format!("applying migration {}", migration.name);
        // IMMEDIATE takes the write lock first, so two processes opening a new file at
        // the same moment apply each migration exactly once.
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify_setup(path, &step(), e))?;
        let applied = apply_if_new(conn, migration);
        let finished = match applied {
            Ok(()) => conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        };
        finished.map_err(|e| classify_setup(path, &step(), e))?;
    }
    Ok(())
}

fn apply_if_new(conn: &Connection, migration: &Migration) -> rusqlite::Result<()> {
    if schema_version(conn)? >= migration.version {
        return Ok(());
    }
    conn.execute_batch(migration.sql)?;
    if let Some(then) = migration.then {
        then(conn)?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )?;
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at)
         VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%f', 'now'))",
        (migration.version, migration.name),
    )?;
    conn.pragma_update(None, "user_version", migration.version)
}

/// Creates the parent directories (0700) and an empty database file (0600) if missing:
/// audit records hold reasoning content, so only the owner may read them. SQLite gives the
/// `-wal` and `-shm` files the permissions of the database file.
pub(crate) fn create_private_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|source| Error::CreateDir {
                path: dir.into(),
                source,
            })?;
        }
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // AlreadyExists (perhaps created by another process a moment ago) is the common case;
    // any other failure is left for SQLite to report, with its own wording and the path.
    let _ = options.open(path);
    Ok(())
}

/// Maps an error from opening the file onto the variant a user can act on.
fn classify(path: &Path, source: rusqlite::Error) -> Error {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotADatabase { path: path.into() },
        Some(ErrorCode::ReadOnly) => Error::ReadOnly { path: path.into() },
        _ => Error::Open {
            path: path.into(),
            source,
        },
    }
}

fn classify_setup(path: &Path, step: &str, source: rusqlite::Error) -> Error {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::ReadOnly) => classify(path, source),
        _ => Error::Setup {
            path: path.into(),
            step: step.into(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_list_every_file_in_the_folder_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(files, listed);
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version))
            );
        }
    }
}
