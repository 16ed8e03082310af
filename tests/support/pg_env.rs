//! The PostgreSQL server the PG* variables name, as the tests and the bench reach it with
//! the client directly (not through the crate, whose own reading of them is under test).
#![allow(dead_code)]

use postgres::{Client, NoTls};

/// A connection configuration from PGHOST, PGPORT, PGUSER and PGPASSWORD.
pub fn config() -> postgres::Config {
    let mut config = postgres::Config::new();
    config.host(&std::env::var("PGHOST").unwrap_or_else(|_| "localhost".into()));
    config.port(
        std::env::var("PGPORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432),
    );
    config.user(&std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()));
    if let Ok(password) = std::env::var("PGPASSWORD") {
        config.password(password);
    }
    config
}

/// A connection to PGDATABASE (default `postgres`), for creating and dropping databases.
pub fn admin() -> Client {
    config()
        .dbname(&std::env::var("PGDATABASE").unwrap_or_else(|_| "postgres".into()))
        .connect(NoTls)
        .expect("connect to the PostgreSQL server the PG* variables name")
}
