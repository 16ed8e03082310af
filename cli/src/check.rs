//! `check`: integrity, foreign keys, the schema version, and every step within its
//! session's time, on a SQLite file or a PostgreSQL store.

use std::path::Path;

use rusqlite::Connection;

use crate::db::{Db, Query};
use crate::{Failure, Outcome};

/// `check`: integrity, foreign keys, schema version, and that every step lies within its
/// session's time. Exit 0 when all are sound, 2 if not.
pub fn run(db: &Db, path: &Path) -> Result<Outcome, Failure> {
    let stored = match db {
        Db::Sqlite(conn) => check_sqlite(conn, path)?,
        Db::Postgres(client) => check_postgres(&mut client.borrow_mut(), path)?,
    };
    let nested = check_step_times(db)?;
    if stored && nested {
        Ok(Outcome::Done)
    } else {
        Err(format!(
            "{}: the database failed its checks (see above)",
            path.display()
        )
        .into())
    }
}

/// A step recorded as starting before its session or ending after it: two runs merged
/// into one session (a re-used id written over another run), or rows edited by hand.
/// Prints the line and says whether every step lies within its session.
fn check_step_times(db: &Db) -> Result<bool, Failure> {
    let query = Query {
        sqlite: "SELECT st.id FROM steps st JOIN sessions s ON s.id = st.session_id \
                 WHERE st.started_at < s.started_at OR st.ended_at > s.ended_at \
                 ORDER BY st.started_at LIMIT 1000",
        postgres: "SELECT st.id FROM steps st JOIN sessions s ON s.id = st.session_id \
                   WHERE st.started_at < s.started_at OR st.ended_at > s.ended_at \
                   ORDER BY st.started_at LIMIT 1000",
    };
    let outside: Vec<String> = db
        .rows(&query, &[])?
        .iter()
        .filter_map(|r| r.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    if outside.is_empty() {
        println!("step times      ok (every step within its session)");
        return Ok(true);
    }
    println!(
        "step times      {}{} steps outside their session's time ({}{}): runs merged into \
         one session, or rows edited",
        outside.len(),
        if outside.len() == 1000 { "+" } else { "" },
        outside[..outside.len().min(3)].join(", "),
        if outside.len() > 3 { ", …" } else { "" }
    );
    Ok(false)
}

/// `check` on a SQLite file: integrity, foreign keys, schema version; whether all are sound.
fn check_sqlite(conn: &Connection, path: &Path) -> Result<bool, Failure> {
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
    Ok(integrity_ok && foreign == 0)
}

/// `check` on PostgreSQL: the server keeps its pages whole and enforces the foreign keys,
/// so what is checked is that the constraints are in place and no row lacks its parent.
fn check_postgres(
    client: &mut reasonkit_audit::postgres::client::Client,
    path: &Path,
) -> Result<bool, Failure> {
    let version: i64 = client
        .query_one("SELECT max(version)::bigint FROM reasonkit_schema", &[])?
        .get(0);
    let constraints: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
             AND conrelid IN ('steps'::regclass, 'decisions'::regclass)",
            &[],
        )?
        .get(0);
    let orphans: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM steps st WHERE NOT EXISTS \
                 (SELECT 1 FROM sessions s WHERE s.id = st.session_id)) \
             + (SELECT count(*) FROM steps st WHERE st.parent_step_id IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM steps p WHERE p.session_id = st.session_id AND p.id = st.parent_step_id)) \
             + (SELECT count(*) FROM decisions d WHERE NOT EXISTS \
                 (SELECT 1 FROM steps st WHERE st.session_id = d.session_id AND st.id = d.step_id))",
            &[],
        )?
        .get(0);
    let target = reasonkit_audit::postgres::PgTarget::parse(&path.display().to_string())?;
    println!("database        {target}");
    println!(
        "schema version  {version} (this release: {})",
        reasonkit_audit::postgres::PG_SCHEMA_VERSION
    );
    println!("integrity       ok (kept by the server)");
    let fine = constraints == 3 && orphans == 0;
    println!(
        "foreign keys    {}",
        if fine {
            "ok (3 constraints, enforced by the server)".to_owned()
        } else {
            format!("{constraints} of 3 constraints in place, {orphans} rows without their parent")
        }
    );
    Ok(fine)
}
