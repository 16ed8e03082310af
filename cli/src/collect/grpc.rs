//! OTLP/gRPC: the trace service opentelemetry-proto generates for tonic.
//!
//! The same rules as OTLP/HTTP, in gRPC's words: `UNAUTHENTICATED` without the token,
//! `RESOURCE_EXHAUSTED` over `--max-body` or when the writer's queue stays full, and
//! `UNAVAILABLE` when the store cannot commit (both retried by the exporters); gzip
//! requests are accepted.

use std::path::PathBuf;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use reasonkit_audit::otlp::{ExportError, ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{App, UNAUTHORIZED};

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

/// Serves OTLP/gRPC on `listener` until `stop` completes.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let max_body = app.max_body;
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
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
    }
    server
        .add_service(service)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), stop)
        .await
        .map_err(|e| format!("the OTLP/gRPC server stopped: {e}"))?;
    Ok(())
}
