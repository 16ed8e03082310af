//! OTLP/gRPC: the trace service opentelemetry-proto generates for tonic, and the standard
//! health service (`grpc.health.v1.Health`, tonic-health's), which needs no token.
//!
//! The same rules as OTLP/HTTP, in gRPC's words: `UNAUTHENTICATED` without the token,
//! `RESOURCE_EXHAUSTED` over `--max-body` or when the writer's queue stays full, and
//! `UNAVAILABLE` when the store cannot commit (both retried by the exporters); gzip
//! requests are accepted.
//!
//! The health service answers `SERVING` for the server (`""`) and for
//! `opentelemetry.proto.collector.trace.v1.TraceService` while the store takes spans, and
//! `NOT_SERVING` while its commits fail or the collector is stopping, as `GET /health`
//! does; it looks again every [`HEALTH_INTERVAL`], and `Watch` answers as `Check` does.
//!
//! The connections are bounded as the HTTP server's are: at most `--max-connections` open
//! at once (past the cap, new ones wait in the kernel's backlog), and a connection that
//! sends nothing for [`HEADER_READ_TIMEOUT`] after it is accepted — no HTTP/2 preface, no
//! TLS handshake — is closed, so a client cannot hold a slot without speaking. An idle
//! HTTP/2 connection that did speak keeps its slot, as an exporter's channel does between
//! batches; HTTP/2 keepalive pings close it when its peer is gone.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use reasonkit_audit::otlp::{ExportError, ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codec::CompressionEncoding;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status};

use super::{App, UNAUTHORIZED};
use crate::serve::HEADER_READ_TIMEOUT;

/// How often the health service's status is brought up to date.
const HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the health service's status as the store's: serving while it takes spans.
async fn report_health(app: Arc<App>, reporter: tonic_health::server::HealthReporter) {
    let mut serving = None;
    loop {
        let now = app.fault().is_none();
        if serving != Some(now) {
            let status = if now {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status(
                    <TraceServiceServer<Traces> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
            serving = Some(now);
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

struct Traces {
    app: Arc<App>,
}

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if !self.app.allows(authorization) {
            return Err(Status::unauthenticated(UNAUTHORIZED));
        }
        match self.app.export(request.into_inner()).await {
            Ok(accepted) => Ok(Response::new(super::response(accepted))),
            Err(error @ ExportError::Busy { .. }) => {
                Err(Status::resource_exhausted(error.to_string()))
            }
            Err(error) => Err(Status::unavailable(error.to_string())),
        }
    }
}

/// Serves OTLP/gRPC on `listener` until `stop` completes, at most `max_connections`
/// connections at once.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    max_connections: usize,
    tls: Option<(PathBuf, PathBuf)>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let max_body = app.max_body;
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_of = app.clone();
    let service = TraceServiceServer::new(Traces { app })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_body);
    let mut server = tonic::transport::Server::builder()
        .timeout(std::time::Duration::from_secs(60))
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)));
    if let Some((cert, key)) = tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let identity = tonic::transport::Identity::from_pem(read(&cert)?, read(&key)?);
        // ring, as everywhere else in this binary (a second provider may be in the build).
        let _ = rustls::crypto::ring::default_provider().install_default();
        server = server
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(identity)
                    .timeout(HEADER_READ_TIMEOUT),
            )
            .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
    }
    let reporting = tokio::spawn(report_health(health_of, reporter));
    let served = server
        .add_service(health)
        .add_service(service)
        .serve_with_incoming_shutdown(capped(listener, max_connections), stop)
        .await
        .map_err(|e| format!("the OTLP/gRPC server stopped: {e}"));
    reporting.abort();
    served
}

/// The listener's connections, each accepted only once a slot is free and holding it
/// until it closes.
fn capped(
    listener: TcpListener,
    max_connections: usize,
) -> impl futures_util::Stream<Item = io::Result<Capped>> {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    futures_util::stream::unfold((listener, slots), |(listener, slots)| async move {
        loop {
            // The semaphore is never closed: this waits for a slot.
            let slot = slots.clone().acquire_owned().await.ok()?;
            match listener.accept().await {
                Ok((stream, _)) => {
                    // gRPC's small frames go out at once, as tonic's own listener does.
                    let _ = stream.set_nodelay(true);
                    let capped = Capped {
                        stream,
                        _slot: slot,
                        silence: Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT))),
                    };
                    return Some((Ok(capped), (listener, slots)));
                }
                // A connection that failed before it was accepted: the next one is served.
                Err(_) => continue,
            }
        }
    })
}

/// An accepted connection holding its slot, closed if it sends nothing in time.
struct Capped {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Until the first byte arrives: when the client must have spoken by.
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.silence.is_some() {
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => self.silence = None,
                Poll::Pending => {
                    if let Some(silence) = self.silence.as_mut()
                        && silence.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client sent nothing after connecting",
                        )));
                    }
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
