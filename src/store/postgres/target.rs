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

use std::path::PathBuf;

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::tls::{self, SslMode};

pub use crate::store::sqlite::open::is_postgres_url;

/// A PostgreSQL store to connect to.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    description: String,
    ssl_mode: SslMode,
    root_cert: Option<PathBuf>,
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
        // The two TLS options the crate does not take (or takes only in part) are read
        // here; see [`super::tls`].
        let (text, ssl_mode) = take_option(text, "sslmode");
        let (text, root_cert) = take_option(&text, "sslrootcert");
        let mut config: Config = text
            .parse()
            .map_err(|e: postgres::Error| format!("invalid PostgreSQL connection string: {e}"))?;
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
        let ssl_mode = match ssl_mode.or_else(|| env("PGSSLMODE")) {
            Some(mode) => SslMode::parse(&mode)?,
            None => SslMode::Prefer,
        };
        config.ssl_mode(ssl_mode.crate_mode());
        let root_cert = root_cert
            .filter(|r| !r.is_empty())
            .map(PathBuf::from)
            .or_else(tls::default_root);
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
            ssl_mode,
            root_cert,
        })
    }

    /// Connects, with an error that names the server and database but not the password.
    pub(crate) fn connect(&self) -> Result<Client, String> {
        let connected = match self.ssl_mode {
            SslMode::Disable => self.config.connect(NoTls),
            mode => {
                let connector = tls::connector(mode, self.root_cert.as_deref())
                    .map_err(|e| format!("cannot connect to PostgreSQL {self}: {e}"))?;
                self.config.connect(connector)
            }
        };
        connected.map_err(|e| format!("cannot connect to PostgreSQL {self}: {}", message(&e)))
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

/// Takes `key` out of a connection string — a URL's query parameter or a `key=value` pair
/// — and returns the rest and the value.
fn take_option(text: &str, key: &str) -> (String, Option<String>) {
    if is_postgres_url(text) {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.split_once('=') {
                Some((k, v)) if k == key => {
                    value = Some(percent_decode(v));
                    false
                }
                _ => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, value)
    } else {
        let mut value = None;
        let kept: Vec<&str> = text
            .split_whitespace()
            .filter(|pair| match pair.split_once('=') {
                Some((k, v)) if k == key => {
                    value = Some(v.trim_matches('\'').to_owned());
                    false
                }
                _ => true,
            })
            .collect();
        (kept.join(" "), value)
    }
}

/// `%XX` escapes of a URL query value decoded (`+` stays `+`, as libpq reads it).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_urls_and_key_value_strings() {
        assert_eq!(
            take_option(
                "postgres://u@h/db?sslmode=verify-full&application_name=x",
                "sslmode"
            ),
            (
                "postgres://u@h/db?application_name=x".to_owned(),
                Some("verify-full".to_owned())
            )
        );
        assert_eq!(
            take_option(
                "postgres://u@h/db?sslrootcert=%2Fetc%2Fca.pem",
                "sslrootcert"
            ),
            (
                "postgres://u@h/db".to_owned(),
                Some("/etc/ca.pem".to_owned())
            )
        );
        assert_eq!(
            take_option("host=h sslmode='require' dbname=d", "sslmode"),
            ("host=h dbname=d".to_owned(), Some("require".to_owned()))
        );
        assert_eq!(
            take_option("host=h", "sslmode"),
            ("host=h".to_owned(), None)
        );
        assert!(SslMode::parse("verify-fully").is_err());
    }
}
