//! For the unit tests that need a real server: a database of their own on the server the
//! PG* variables name, created for the test and dropped after it. Without a server the
//! test skips with a one-line message — unless `REASONKIT_AUDIT_REQUIRE_POSTGRES` is set (as
//! `.ci/run` sets it), which makes that a failure.

#[path = "../../../tests/support/pg_env.rs"]
mod pg_env;

use postgres::{Client, NoTls};

/// A database of its own, dropped with it.
pub(crate) struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// `None` (after saying so) when no server is configured.
    pub(crate) fn create(purpose: &str) -> Option<TestDatabase> {
        Self::create_encoded(purpose, "UTF8")
    }

    /// The same, in another server encoding (`LATIN1`, say).
    pub(crate) fn create_encoded(purpose: &str, encoding: &str) -> Option<TestDatabase> {
        if std::env::var_os("PGHOST").is_none() && std::env::var_os("PGPORT").is_none() {
            assert!(
                std::env::var_os("REASONKIT_AUDIT_REQUIRE_POSTGRES").is_none(),
                "REASONKIT_AUDIT_REQUIRE_POSTGRES is set but no PostgreSQL server is configured \
                 (PGHOST/PGPORT unset): run the tests under pg_virtualenv"
            );
            eprintln!("skipped {purpose}: no PostgreSQL server (run under pg_virtualenv)");
            return None;
        }
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(purpose);
        let name = format!("rk_unit_{:x}{random:x}", std::process::id());
        pg_env::admin()
            .batch_execute(&format!(
                "CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' \
                 TEMPLATE template0"
            ))
            .expect("CREATE DATABASE");
        Some(TestDatabase { name })
    }

    /// A connection to it, without TLS.
    pub(crate) fn client(&self) -> Client {
        pg_env::config()
            .dbname(&self.name)
            .connect(NoTls)
            .expect("connect to the test database")
    }

    /// A connection to it with the store's schema in place.
    pub(crate) fn migrated(&self) -> Client {
        let mut client = self.client();
        super::schema::migrate(&mut client, &self.name).expect("migrate");
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = pg_env::admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
