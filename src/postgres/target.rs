//! Where the PostgreSQL store is, and how to connect to it: a URL or libpq key=value
//! string, completed from the PG* environment variables as libpq would.
//!
//! The `postgres` crate reads no environment variables (rust-postgres#654), so a string
//! that leaves out the host, port, user, password or database takes them from `PGHOST`,
//! `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` and `PGSSLMODE`, then libpq's defaults
//! (the Unix socket in `/var/run/postgresql`, port 5432, the login user, a database named
//! like the user). The password never leaves this module in text: errors and the guard's
//! description name `user@host:port/database` only.

use std::fmt;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

/// Does `REASONKIT_AUDIT_DB` (or a `--db` argument) name a PostgreSQL store rather than a
/// SQLite file? Only URLs do: a key=value string could be a file name.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// A PostgreSQL store to connect to.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    description: String,
}

impl fmt::Debug for PgTarget {
    /// The description only: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgTarget").field(&self.description).finish()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Reads one environment variable, empty as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PgTarget {
    /// Parses `text` (a `postgres://` URL or `key=value` pairs) and completes it from the
    /// PG* environment variables. The error names what is wrong, never the password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config: Config = text.parse().map_err(|e: postgres::Error| {
            let hint = if text.contains("verify-") {
                "; sslmode=verify-ca and verify-full are not supported yet (use require, or \
                 disable on a trusted network)"
            } else {
                ""
            };
            format!("invalid PostgreSQL connection string: {e}{hint}")
        })?;
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(hosts) => {
                    for host in hosts.split(',') {
                        config.host(host);
                    }
                }
                None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                    config.host_path("/var/run/postgresql");
                }
                None => {
                    config.host("localhost");
                }
            }
        }
        if config.get_ports().is_empty() {
            let port = match env("PGPORT") {
                Some(port) => port
                    .parse()
                    .map_err(|_| format!("PGPORT is not a port number: {port}"))?,
                None => 5432,
            };
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE")
                .or_else(|| config.get_user().map(str::to_owned))
                .unwrap_or_default();
            config.dbname(&db);
        }
        if !text.contains("sslmode") {
            match env("PGSSLMODE").as_deref() {
                None | Some("prefer" | "allow") => {}
                Some("disable") => {
                    config.ssl_mode(SslMode::Disable);
                }
                Some(other) => {
                    return Err(format!(
                        "PGSSLMODE={other} needs TLS, which this release does not support yet; \
                         unset it or set it to disable on a trusted network"
                    ));
                }
            }
        }
        if config.get_ssl_mode() == SslMode::Require {
            return Err(
                "sslmode=require needs TLS, which this release does not support yet; \
                        use sslmode=disable on a trusted network"
                    .into(),
            );
        }
        // Without TLS, `prefer` would try TLS and fall back: ask for what will happen.
        config.ssl_mode(SslMode::Disable);
        if config.get_application_name().is_none() {
            config.application_name("reasonkit-audit");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let description = describe(&config);
        Ok(PgTarget {
            config,
            description,
        })
    }

    /// Connects, with an error that names the server and database but not the password.
    pub(crate) fn connect(&self) -> Result<Client, String> {
        self.config
            .connect(NoTls)
            .map_err(|e| format!("cannot connect to PostgreSQL {self}: {}", message(&e)))
    }
}

/// `postgres://user@host:port/database`, without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or_default(),
        config.get_dbname().unwrap_or_default()
    )
}

/// A PostgreSQL error in one line: the server's own message when there is one.
pub(crate) fn message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let text = error.to_string();
            match std::error::Error::source(error) {
                Some(source) if !text.contains(&source.to_string()) => format!("{text}: {source}"),
                _ => text,
            }
        }
    }
}
