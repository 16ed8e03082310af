//! What the command's servers share: an HTTP/1 accept loop with limits, TLS from PEM
//! files, and the rule that only loopback is served without a token.
//!
//! The loop serves each connection with hyper directly rather than `axum::serve`, which
//! sets no timer: a client has [`HEADER_READ_TIMEOUT`] to send a request's headers (and,
//! with TLS, to finish its handshake), and at most `max_connections` are open at once —
//! past the cap, new ones wait in the kernel's backlog. A client that never finishes its
//! request is dropped and cannot hold a slot for ever.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::Failure;

/// A client has this long to send a request's headers; then its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether serving `addr` without a token would expose the trail beyond this machine.
pub fn needs_token(addr: &SocketAddr) -> bool {
    !match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    }
}

/// Binds `addr` for `command`'s server, the one its `flag` chooses. When the address is
/// taken or not this machine's, the error says so and what to do, not only the OS error.
pub async fn listen(addr: SocketAddr, command: &str, flag: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another program listens there{}; stop it, or choose another address with \
                 {flag}",
                if command == "collect" {
                    " (an OpenTelemetry collector on this host takes 4317 and 4318)"
                } else {
                    ""
                }
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("it is not an address of this machine; choose one with {flag}")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("ports below 1024 need privileges; choose another with {flag}")
            }
            _ => format!("choose another address with {flag}"),
        };
        format!("{command}: cannot listen on {addr} ({e}): {what}").into()
    })
}

/// A token for a server whose user gave none: 32 random bytes, hex.
pub fn generated_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        format!("cannot make a token (the system's random source: {e}); give --token")
    })?;
    Ok(crate::verify::hex(&bytes))
}

/// The token a server on `addr` requires: the one given (at least 16 characters), else
/// none on loopback, else one made now and printed on standard error for `command`.
pub fn token_for(
    command: &str,
    addr: &SocketAddr,
    given: Option<&str>,
) -> Result<Option<String>, Failure> {
    match (given, needs_token(addr)) {
        (Some(token), _) if token.len() < 16 => {
            Err("--token must be at least 16 characters".into())
        }
        (Some(token), _) => Ok(Some(token.to_owned())),
        (None, false) => Ok(None),
        (None, true) => {
            let token = generated_token()?;
            eprintln!(
                "reasonkit-audit {command}: {} is not a loopback address, so every request \
                 needs this token: {token}",
                addr.ip()
            );
            Ok(Some(token))
        }
    }
}

/// Compares in time that does not depend on where the two first differ.
pub fn same_token(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A TLS server configuration from a PEM certificate chain and its PEM private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Failure> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `stop` completes, at most `max_connections` at
/// once, each connection in TLS when `tls` is given.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut stop = std::pin::pin!(stop);
    loop {
        // A free slot first, then a connection: past the cap, new ones wait in the
        // kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = &mut stop => return,
        };
        let Ok(slot) = slot else { return };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted (reset, out of file
                // descriptors for a moment): the next one is served.
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .clone();
            match tls {
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
                Some(tls) => {
                    let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = http.serve_connection(io, service).await;
                    }
                }
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_served_without_a_token() {
        for (addr, needs) in [
            ("127.0.0.1:7420", false),
            ("127.3.4.5:80", false),
            ("[::1]:7420", false),
            ("0.0.0.0:7420", true),
            ("[::]:7420", true),
            ("192.168.1.20:7420", true),
        ] {
            assert_eq!(needs_token(&addr.parse().unwrap()), needs, "{addr}");
        }
    }

    #[test]
    fn off_loopback_a_token_is_made_when_none_is_given_and_a_short_one_is_refused() {
        // Only the rule is exercised: nothing binds a non-loopback address in the tests.
        let anywhere = "0.0.0.0:4318".parse().unwrap();
        let loopback = "127.0.0.1:4318".parse().unwrap();
        let made = token_for("test", &anywhere, None)
            .unwrap()
            .expect("a token");
        assert_eq!(made.len(), 64);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(Some(made), token_for("test", &anywhere, None).unwrap());
        assert_eq!(token_for("test", &loopback, None).unwrap(), None);
        let given = "a-token-of-sixteen";
        assert_eq!(
            token_for("test", &loopback, Some(given))
                .unwrap()
                .as_deref(),
            Some(given)
        );
        assert!(token_for("test", &anywhere, Some("short")).is_err());
        assert!(same_token("secret", "secret"));
        assert!(!same_token("secret", "secreT"));
        assert!(!same_token("secret", "secrets"));
    }
}
