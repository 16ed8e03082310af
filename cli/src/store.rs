//! Opening the database for reading, and the `check` command.

use std::path::Path;

use rusqlite::Connection;

use crate::{Failure, Outcome};

/// Opens the audit database read-only; every error names the path and says what to do.
pub fn open(path: &Path) -> Result<Connection, Failure> {
    Ok(reasonkit_audit::open_read_only(path)?)
}

/// `check`: integrity, foreign keys, schema version. Exit 0 when all are sound, 2 if not.
pub fn check(path: &Path) -> Result<Outcome, Failure> {
    let conn = open(path)?;
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let foreign: i64 =
        conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let integrity_ok = integrity == ["ok"];
    println!("database        {}", path.display());
    println!(
        "schema version  {version} (this release: {})",
        reasonkit_audit::SCHEMA_VERSION
    );
    println!("integrity       {}", integrity.join("; "));
    println!(
        "foreign keys    {}",
        if foreign == 0 {
            "ok".to_owned()
        } else {
            format!("{foreign} violations")
        }
    );
    if integrity_ok && foreign == 0 {
        Ok(Outcome::Done)
    } else {
        Err(format!(
            "{}: the database failed its checks (see above)",
            path.display()
        )
        .into())
    }
}

/// Finds the one session whose id starts with `prefix`.
pub fn resolve_session(conn: &Connection, prefix: &str) -> Result<Option<String>, Failure> {
    let mut stmt = conn.prepare(
        "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1 ORDER BY started_at DESC LIMIT 6",
    )?;
    let ids: Vec<String> = stmt
        .query_map([prefix], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.into_iter().next()),
        _ => Err(format!(
            "session id prefix '{prefix}' is ambiguous ({}{}); give more characters",
            ids[..ids.len().min(5)].join(", "),
            if ids.len() > 5 { ", …" } else { "" }
        )
        .into()),
    }
}
