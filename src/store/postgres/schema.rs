//! The PostgreSQL schema: `migrations/postgres/*.sql`, applied in one transaction under a
//! transaction-level advisory lock.
//!
//! Two processes starting at once against an empty database both ask for the lock; the
//! second waits (up to [`LOCK_TIMEOUT`]), then re-reads the version under the lock and
//! finds nothing left to do. The lock is the transaction's, so a process that dies while
//! migrating leaves neither a lock nor half a schema behind (PostgreSQL's DDL is
//! transactional), and a pooler in transaction mode cannot separate lock and work. A
//! database whose schema is newer than this release is refused and left untouched.

use postgres::Client;

use super::target::message;

/// A migration: its version and SQL.
struct Migration {
    version: i64,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/postgres/0001_schema.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/postgres/0002_lifecycle.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/postgres/0003_search.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../../migrations/postgres/0004_chain_sessions.sql"),
    },
];

/// The schema version this release writes and reads.
pub const PG_SCHEMA_VERSION: i64 = 4;

/// The advisory lock every reasonkit-audit migration takes: "rkaudit" in ASCII.
const LOCK_KEY: i64 = 0x0072_6b61_7564_6974;

/// How long a migration waits for another process's migration, or for a lock on a table.
const LOCK_TIMEOUT: &str = "60s";

/// Brings the schema up to [`PG_SCHEMA_VERSION`]; returns the versions before and after.
/// `target` names the store in errors.
pub(crate) fn migrate(client: &mut Client, target: &str) -> Result<(i64, i64), String> {
    let fail = |what: &str, e: postgres::Error| {
        format!(
            "cannot migrate PostgreSQL {target}: {what}: {}",
            message(&e)
        )
    };
    let mut tx = client.transaction().map_err(|e| fail("BEGIN", e))?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .map_err(|e| fail("setting lock_timeout", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(|e| fail("waiting for another process's migration", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS reasonkit_schema (version bigint NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(|e| fail("creating reasonkit_schema", e))?;
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM reasonkit_schema",
            &[],
        )
        .map_err(|e| fail("reading the schema version", e))?
        .get(0);
    if found > PG_SCHEMA_VERSION {
        return Err(format!(
            "PostgreSQL {target} has audit schema version {found}, newer than the \
             {PG_SCHEMA_VERSION} this release knows (left untouched); upgrade reasonkit-audit"
        ));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(migration.sql)
            .map_err(|e| fail(&format!("applying migration {}", migration.version), e))?;
        tx.execute(
            "INSERT INTO reasonkit_schema (version) VALUES ($1)",
            &[&migration.version],
        )
        .map_err(|e| fail("recording the schema version", e))?;
    }
    tx.commit().map_err(|e| fail("COMMIT", e))?;
    Ok((found, PG_SCHEMA_VERSION))
}

/// Refuses a store without this crate's schema, or with a newer one, for reading.
pub(crate) fn check_readable(
    tx: &mut postgres::Transaction<'_>,
    target: &str,
) -> Result<i64, String> {
    let fail = |e: postgres::Error| format!("cannot read PostgreSQL {target}: {}", message(&e));
    let present: bool = tx
        .query_one("SELECT to_regclass('reasonkit_schema') IS NOT NULL", &[])
        .map_err(fail)?
        .get(0);
    let version: Option<i64> = if present {
        tx.query_one("SELECT max(version)::bigint FROM reasonkit_schema", &[])
            .map_err(fail)?
            .get(0)
    } else {
        None
    };
    match version {
        None => Err(format!(
            "PostgreSQL {target} holds no reasonkit-audit schema; run an instrumented program \
             against it first, or `reasonkit-audit migrate --db` it"
        )),
        Some(found) if found > PG_SCHEMA_VERSION => Err(format!(
            "PostgreSQL {target} has audit schema version {found}, newer than the \
             {PG_SCHEMA_VERSION} this release knows; upgrade reasonkit-audit"
        )),
        Some(found) => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_like_their_files_and_end_at_the_schema_version() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len());
        for (i, (file, migration)) in files.iter().zip(MIGRATIONS).enumerate() {
            assert_eq!(migration.version, i as i64 + 1);
            assert!(
                file.starts_with(&format!("{:04}_", migration.version)),
                "{file}"
            );
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(text, migration.sql, "{file}");
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, PG_SCHEMA_VERSION);
    }
}
