//! What an export answers: [`Accepted`] (with OTLP's partial success), or why the request
//! was not taken ([`ExportError`]), which the servers turn into HTTP and gRPC statuses.

use std::time::Duration;

/// A request taken: what was not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Spans not recorded (OTLP's `partial_success.rejected_spans`): those whose trace or
    /// span id is invalid. Spans already recorded (a retry) are accepted, not rejected.
    pub rejected_spans: i64,
    /// Why, when `rejected_spans` is not zero (OTLP's `partial_success.error_message`).
    pub error_message: String,
}

/// Why a request was not taken. Nothing of it is lost either way: what was sent before
/// the error stays sent, and a retry sends only the rest.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer's queue stayed full for the whole wait: retry after `retry_after`
    /// (HTTP 429, gRPC `RESOURCE_EXHAUSTED`).
    #[error(
        "the audit writer is behind (its queue stayed full for {waited:?}); retry after {retry_after:?}"
    )]
    Busy {
        /// How long the request waited for room.
        waited: Duration,
        /// When to try again.
        retry_after: Duration,
    },
    /// The store or the writer cannot take the request now (HTTP 503, gRPC `UNAVAILABLE`):
    /// a commit failed or did not finish in time, the store could not be read, or the
    /// writer has stopped. The message says which.
    #[error("{0}")]
    Unavailable(String),
}

/// Waits for the writer's answer to a flush: `Ok` once everything sent before it is
/// committed.
pub(super) fn committed(
    answer: &crossbeam_channel::Receiver<Result<(), String>>,
    wait: Duration,
) -> Result<(), ExportError> {
    match answer.recv_timeout(wait) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(fault)) => Err(ExportError::Unavailable(format!(
            "the audit store did not commit the spans: {fault}; they are kept and retried, \
             and a retry of this request adds nothing twice"
        ))),
        Err(_) => Err(ExportError::Unavailable(format!(
            "the audit store did not commit within {wait:?}; retry"
        ))),
    }
}
