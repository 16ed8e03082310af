//! `reasonkit-audit collect`: an OTLP receiver. Agents in any language export their
//! OpenTelemetry traces here — OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, gzip or
//! not) and OTLP/gRPC — and each span lands in the audit trail through the library's
//! [`Receiver`]: the same writer, conventions table, redaction and hash chain as the
//! layer's own spans. A request is answered success only once its spans are committed.
//!
//! | file | what it does |
//! |---|---|
//! | `mod.rs` | the command: the writer, the receiver, the two servers, shutdown |
//! | `http.rs` | OTLP/HTTP: the token, the body's type, encoding and size, the answers; `GET /health` |
//! | `grpc.rs` | OTLP/gRPC: the same on tonic; the standard gRPC health service |
//!
//! Loopback by default; any other address needs a token (`Authorization: Bearer`), made
//! and printed when none is given. `--tls-cert`/`--tls-key` serve both over TLS.

mod grpc;
mod http;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reasonkit_audit::AuditLayer;
use reasonkit_audit::otlp::{
    Accepted, ExportError, ExportTracePartialSuccess, ExportTraceServiceRequest,
    ExportTraceServiceResponse, Receiver,
};
use reasonkit_audit::read::Reader;

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// OTLP/HTTP: where to listen for `POST /v1/traces`
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// OTLP/gRPC: where to listen, or `off`
    #[arg(long, default_value = "127.0.0.1:4317", value_name = "ADDR:PORT|off")]
    grpc: String,
    /// Every request must carry `Authorization: Bearer TOKEN` (at least 16 characters).
    /// Required off loopback: one is made and printed when none is given
    #[arg(long, env = "REASONKIT_AUDIT_COLLECT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve over TLS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The largest request taken, in bytes, as sent and once inflated (larger: HTTP 413,
    /// gRPC RESOURCE_EXHAUSTED)
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    max_body: usize,
    /// Records the writer's queue holds (each span is one or two)
    #[arg(long, default_value_t = 8192, value_name = "RECORDS")]
    queue: usize,
    /// How long a request waits for room in a full queue before it is answered 429 /
    /// RESOURCE_EXHAUSTED with a time to retry after
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    queue_wait_ms: u64,
    /// Keep at most this many connections open on each protocol (HTTP, gRPC); more wait
    /// to be accepted
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections: usize,
}

/// What both servers share.
pub struct App {
    receiver: Receiver,
    token: Option<String>,
    max_body: usize,
}

impl App {
    /// Whether a request that carries `authorization` (the header's value) may write.
    fn allows(&self, authorization: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(token) => authorization
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| crate::serve::same_token(given, token)),
        }
    }

    /// Why the store is not taking spans now, or `None`: what both health checks answer.
    fn fault(&self) -> Option<String> {
        self.receiver.fault()
    }

    /// Exports on a blocking thread: the receiver waits for the commit.
    async fn export(&self, request: ExportTraceServiceRequest) -> Result<Accepted, ExportError> {
        let receiver = self.receiver.clone();
        tokio::task::spawn_blocking(move || receiver.export(request))
            .await
            .unwrap_or_else(|e| Err(ExportError::Unavailable(format!("the export failed: {e}"))))
    }
}

/// The answer to a request taken: OTLP's partial success when some spans were not.
fn response(accepted: Accepted) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (accepted.rejected_spans > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: accepted.rejected_spans,
            error_message: accepted.error_message,
        }),
    }
}

const UNAUTHORIZED: &str = "this collector needs its token: send Authorization: Bearer TOKEN (the exporters' \
     headers option, e.g. OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20TOKEN)";

pub fn run(store: PathBuf, url: Option<&str>, args: &Args) -> Result<Outcome, Failure> {
    let grpc: Option<SocketAddr> = match args.grpc.as_str() {
        "off" => None,
        addr => Some(
            addr.parse()
                .map_err(|e| format!("--grpc {addr}: not ADDR:PORT or off ({e})"))?,
        ),
    };
    let exposed = [Some(args.listen), grpc]
        .into_iter()
        .flatten()
        .find(crate::serve::needs_token)
        .unwrap_or(args.listen);
    let token = crate::serve::token_for("collect", &exposed, args.token.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => None,
    };
    let tls_config = match &tls {
        Some((cert, key)) => Some(crate::serve::tls_config(cert, key)?),
        None => None,
    };

    let builder = match url {
        Some(url) => AuditLayer::builder().postgres(url),
        None => AuditLayer::builder().path(&store),
    };
    let (layer, guard) = builder.queue_capacity(args.queue.max(16)).build()?;
    let reader = Reader::open(&store)?;
    let store_name = reader.store_name().to_owned();
    let receiver =
        Receiver::new(&layer, reader).queue_wait(Duration::from_millis(args.queue_wait_ms));
    drop(layer);
    let app = Arc::new(App {
        receiver,
        token,
        max_body: args.max_body,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| format!("cannot start the collector's runtime: {e}"))?;
    runtime.block_on(async {
        let http_listener = crate::serve::listen(args.listen, "collect", "--listen").await?;
        let grpc_listener = match grpc {
            Some(addr) => Some(crate::serve::listen(addr, "collect", "--grpc").await?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut line = format!(
            "reasonkit-audit collect: writing {} from OTLP/HTTP at {scheme}://{}/v1/traces",
            store_name,
            http_listener.local_addr()?
        );
        if let Some(listener) = &grpc_listener {
            line.push_str(&format!(
                " and OTLP/gRPC at {scheme}://{}",
                listener.local_addr()?
            ));
        }
        // The first line of standard output says where: scripts and tests read it.
        println!("{line}");
        use std::io::Write;
        std::io::stdout().flush()?;

        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let grpc_task = grpc_listener.map(|listener| {
            tokio::spawn(grpc::serve(
                app.clone(),
                listener,
                args.max_connections,
                tls.clone(),
                wait_for(stopped.clone()),
            ))
        });
        let http = crate::serve::accept_loop(
            http_listener,
            http::router(app.clone()),
            args.max_connections,
            tls_config,
            wait_for(stopped),
        );
        tokio::select! {
            () = http => {}
            () = shutdown_signal() => {}
        }
        let _ = stopping.send(true);
        if let Some(task) = grpc_task {
            task.await
                .map_err(|e| format!("the OTLP/gRPC server failed: {e}"))??;
        }
        Ok::<(), Failure>(())
    })?;
    drop(app);
    // Everything acknowledged is committed already; this commits the rest and marks the
    // sessions whose root span never came as interrupted.
    guard.shutdown()?;
    Ok(Outcome::Done)
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Ctrl-C, or SIGTERM (what service managers and `kill` send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
