//! An OTLP/HTTP request body as an export request: protobuf or JSON, plain or gzip, and
//! never larger than the limit once inflated (a small gzip body cannot become a huge one in
//! memory). Whatever the bytes, the answer is a request or a [`DecodeError`] that says why:
//! never a panic (a property test feeds it arbitrary bytes).

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// How a body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`: the binary protobuf encoding.
    Protobuf,
    /// `application/json`: OTLP's JSON mapping of the same messages (hex ids, camelCase).
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters such as `; charset=utf-8` ignored);
    /// `None` for any other type.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }
}

/// Why a body is not an export request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The body, or what it inflates to, is over the limit (HTTP 413).
    #[error("the request body is over the limit of {limit} bytes{inflated}; send smaller batches (the exporter's max export batch size) or raise --max-body", inflated = if *.inflated { " once inflated" } else { "" })]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The limit was passed while inflating a gzip body.
        inflated: bool,
    },
    /// A `Content-Encoding` other than `gzip` or `identity` (HTTP 415).
    #[error("unsupported Content-Encoding {0:?}: send gzip or no compression")]
    UnsupportedEncoding(String),
    /// The body is not what its headers say (HTTP 400).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read: `gzip body`, `protobuf body`, `JSON body`.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
}

/// Decodes an OTLP/HTTP trace export body. `content_encoding` is the header's value, if
/// any; `limit` bounds the body both as received and as inflated.
///
/// ```
/// use reasonkit_audit::otlp::{decode, Encoding};
///
/// let request = decode(br#"{"resourceSpans":[]}"#, Encoding::Json, None, 1 << 20)?;
/// assert!(request.resource_spans.is_empty());
/// assert!(decode(b"\xff\xff", Encoding::Protobuf, None, 1 << 20).is_err());
/// # Ok::<(), reasonkit_audit::otlp::DecodeError>(())
/// ```
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            inflated: false,
        });
    }
    let inflated;
    let bytes = match content_encoding.map(str::trim) {
        None | Some("") => body,
        Some(e) if e.eq_ignore_ascii_case("identity") => body,
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            inflated = gunzip(body, limit)?;
            &inflated[..]
        }
        Some(other) => return Err(DecodeError::UnsupportedEncoding(other.to_owned())),
    };
    match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(bytes).map_err(|e| DecodeError::Malformed {
                what: "protobuf body",
                reason: e.to_string(),
            })
        }
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
            what: "JSON body",
            reason: e.to_string(),
        }),
    }
}

/// Inflates a gzip body, refusing at once when it grows past `limit`.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Malformed {
            what: "gzip body",
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            inflated: true,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("in memory");
        encoder.finish().expect("in memory")
    }

    #[test]
    fn a_gzip_bomb_is_refused_once_it_inflates_past_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10, "compresses well: {}", bomb.len());
        assert_eq!(
            decode(&bomb, Encoding::Protobuf, Some("gzip"), 1 << 20),
            Err(DecodeError::TooLarge {
                limit: 1 << 20,
                inflated: true
            })
        );
    }

    #[test]
    fn content_types_and_encodings_are_read_as_the_specification_names_them() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert!(matches!(
            decode(b"{}", Encoding::Json, Some("br"), 100),
            Err(DecodeError::UnsupportedEncoding(_))
        ));
        let request = ExportTraceServiceRequest::default().encode_to_vec();
        assert!(decode(&gzip(&request), Encoding::Protobuf, Some("gzip"), 100).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the bytes, in either encoding, plain or "gzip": a request or an error.
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            json in any::<bool>(),
            gzipped in any::<bool>(),
        ) {
            let encoding = if json { Encoding::Json } else { Encoding::Protobuf };
            let encoded = gzipped.then_some("gzip");
            let _ = decode(&body, encoding, encoded, 4096);
            let _ = decode(&gzip(&body), encoding, encoded, 4096);
        }

        /// A request that encodes and decodes (mutated in one byte) stays within bounds.
        #[test]
        fn mutated_real_requests_never_panic_the_decoder(
            names in proptest::collection::vec("[a-z.]{0,12}", 1..8),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let request = sample_request(&names);
            let mut bytes = request.encode_to_vec();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes, Encoding::Protobuf, None, 1 << 20);
            let json = serde_json::to_vec(&request).expect("serializes");
            prop_assert_eq!(decode(&json, Encoding::Json, None, 1 << 20), Ok(request));
        }
    }

    fn sample_request(names: &[String]) -> ExportTraceServiceRequest {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let spans = names
            .iter()
            .enumerate()
            .map(|(i, name)| Span {
                trace_id: vec![7; 16],
                span_id: vec![i as u8 + 1; 8],
                name: name.clone(),
                attributes: vec![KeyValue {
                    key: name.clone(),
                    value: Some(AnyValue {
                        value: Some(Value::IntValue(i as i64)),
                    }),
                    ..KeyValue::default()
                }],
                ..Span::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }
}
