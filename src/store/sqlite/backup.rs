//! Online backups of an audit file: a consistent copy taken while the layer writes.
//!
//! `cp audit.db` while a layer writes copies a WAL database without its WAL — the newest
//! commits are missing, and a copy taken during a checkpoint can be torn. [`backup`] uses
//! SQLite's online backup API in one step, inside one read transaction of the source: the
//! copy holds exactly what was committed when that transaction began, page for page (so
//! rowids, and with them the search index, stay as they were), while writers go on
//! committing to the WAL. The copy is then checked with `PRAGMA integrity_check` and its
//! chain verified before it is reported good.

use std::path::{Path, PathBuf};

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use crate::chain::verify::Report;
use crate::error::{Error, Result};
use crate::store::sqlite::open as store;
use crate::store::sqlite::verify::verify;

/// What [`backup`] copied and found.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Sessions in the copy.
    pub sessions: u64,
    /// The copy's chain, verified.
    pub verified: Report,
}

/// Copies the audit database at `source` to a new file `dest` (0600; never over an
/// existing file), consistently, while other processes may be writing it; then checks the
/// copy's pages and verifies its chain.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = dir.path().join("audit.db");
/// let (_layer, guard) = reasonkit_audit::AuditLayer::builder().path(&db).build()?;
/// guard.flush()?;
/// let report = reasonkit_audit::backup(&db, &dir.path().join("copy.db"))?;
/// assert!(report.verified.is_intact());
/// # guard.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Backup`] naming both paths when `dest` exists, cannot be created, or the copy
/// fails or does not check out (a failed copy is removed); the errors of
/// [`open_read_only`](crate::open_read_only) for `source`.
pub fn backup(source: &Path, dest: &Path) -> Result<BackupReport> {
    let fail = |message: String| Error::Backup {
        source_path: source.into(),
        dest: dest.into(),
        message,
    };
    if dest.exists() {
        return Err(fail(
            "the destination exists; give a new file name (a backup never overwrites)".into(),
        ));
    }
    let from = store::open_read_only(source)?;
    store::create_private_file(dest)?;
    let copied = (|| -> rusqlite::Result<u64> {
        let mut to = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        {
            let backup = Backup::new(&from, &mut to)?;
            // Every page in one step: one read transaction of the source, so one snapshot.
            backup.step(-1)?;
        }
        let check: String = to.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity_check of the copy: {check}")),
            ));
        }
        to.query_row("SELECT count(*) FROM sessions", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    })();
    let sessions = match copied {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return Err(fail(format!("copying: {e}")));
        }
    };
    let verified = verify(dest)?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: dest.into(),
        bytes,
        sessions,
        verified,
    })
}
