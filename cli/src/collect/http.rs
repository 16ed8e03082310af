//! OTLP/HTTP: `POST /v1/traces`, and `GET /health` for what runs in front.
//!
//! The answers are the specification's: 200 with an `ExportTraceServiceResponse` (its
//! `partial_success` saying what was not taken) once the spans are committed; 400 with a
//! `google.rpc.Status` saying why the body is malformed; 401 without the token; 413 over
//! `--max-body`; 415 for another content type or encoding; 429 when the writer's queue
//! stays full and 503 when the store cannot commit — both with `Retry-After`, which the
//! exporters honour. Every answer is in the request's own encoding (protobuf or JSON).
//!
//! `GET /health` answers 200 `{"status":"serving"}` while the store takes spans, and 503
//! `{"status":"not_serving"}` with `Retry-After` while its commits fail or the collector is
//! stopping (see [`Receiver::fault`](reasonkit_audit::otlp::Receiver::fault)). It needs no
//! token, so that a load balancer or a probe can ask; the reason is added for a caller that
//! may write (any caller, on loopback without a token), since it can name the store's path.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost::Message;
use reasonkit_audit::otlp::{
    DecodeError, Encoding, ExportError, ExportTraceServiceResponse, decode,
};

use super::{App, UNAUTHORIZED};

/// `google.rpc.Status`, which OTLP/HTTP answers a refused request with: its two fields that
/// OTLP uses (`details` stays empty).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's code for a bad request, which the status carries.
const INVALID_ARGUMENT: i32 = 3;
const UNAUTHENTICATED: i32 = 16;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/health", get(health))
        // The body limit is checked by the decoder (as sent and once inflated); this one
        // only stops a body from being read far past it.
        .layer(axum::extract::DefaultBodyLimit::max(
            app.max_body.saturating_add(1),
        ))
        .with_state(app)
}

async fn traces(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = header_text(&headers, header::CONTENT_TYPE).unwrap_or("");
    let encoding = Encoding::from_content_type(content_type);
    let answer_in = encoding.unwrap_or(Encoding::Protobuf);
    if !app.allows(header_text(&headers, header::AUTHORIZATION)) {
        return status(
            answer_in,
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            UNAUTHORIZED,
        );
    }
    let Some(encoding) = encoding else {
        return status(
            answer_in,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_ARGUMENT,
            &format!(
                "Content-Type {content_type:?}: send application/x-protobuf or application/json"
            ),
        );
    };
    let content_encoding = header_text(&headers, header::CONTENT_ENCODING).map(str::to_owned);
    let max_body = app.max_body;
    let decoded = tokio::task::spawn_blocking(move || {
        decode(&body, encoding, content_encoding.as_deref(), max_body)
    })
    .await;
    let request = match decoded {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            let http = match error {
                DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                DecodeError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            return status(encoding, http, INVALID_ARGUMENT, &error.to_string());
        }
        Err(join) => {
            return status(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                UNAVAILABLE,
                &format!("decoding failed: {join}"),
            );
        }
    };
    match app.export(request).await {
        Ok(accepted) => {
            let response = super::response(accepted);
            encoded(encoding, StatusCode::OK, &response)
        }
        Err(error) => {
            let (http, code, retry_after) = match &error {
                ExportError::Busy { retry_after, .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    RESOURCE_EXHAUSTED,
                    retry_after.as_secs().max(1),
                ),
                _ => (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, 1),
            };
            let mut answer = status(encoding, http, code, &error.to_string());
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            answer
        }
    }
}

async fn health(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(reason) = app.fault() else {
        return json(StatusCode::OK, &serde_json::json!({ "status": "serving" }));
    };
    let body = if app.allows(header_text(&headers, header::AUTHORIZATION)) {
        serde_json::json!({ "status": "not_serving", "reason": reason })
    } else {
        serde_json::json!({ "status": "not_serving" })
    };
    let mut answer = json(StatusCode::SERVICE_UNAVAILABLE, &body);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1));
    answer
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn status(encoding: Encoding, http: StatusCode, code: i32, message: &str) -> Response {
    let status = RpcStatus {
        code,
        message: message.to_owned(),
    };
    match encoding {
        Encoding::Json => json(http, &status),
        Encoding::Protobuf => protobuf(http, status.encode_to_vec()),
    }
}

fn encoded(
    encoding: Encoding,
    http: StatusCode,
    response: &ExportTraceServiceResponse,
) -> Response {
    match encoding {
        // Full success is the empty message: `{}`, not a null field.
        Encoding::Json if response.partial_success.is_none() => json(http, &serde_json::json!({})),
        Encoding::Json => json(http, response),
        Encoding::Protobuf => protobuf(http, response.encode_to_vec()),
    }
}

fn json(http: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (http, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn protobuf(http: StatusCode, body: Vec<u8>) -> Response {
    (
        http,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}
