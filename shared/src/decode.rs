//! Step 1, decode: turn one Pub/Sub push request into a [`PushMessage`].
//!
//! Pub/Sub pushes in one of two shapes:
//! - **wrapped** (the default, and what `terraform/` configures): a JSON body
//!   `{"message": {"data": base64, "attributes": {…}, "messageId", "publishTime", …},
//!   "subscription": "projects/…/subscriptions/…", "deliveryAttempt": N}`, with every message field
//!   in camelCase and again in snake_case. Both spellings are accepted; `data` and `attributes` are
//!   optional (a message may carry attributes only).
//! - **unwrapped** (`no_wrapper`): the body is the raw data; with `write_metadata` the message id,
//!   publish time and subscription arrive as `x-goog-pubsub-*` headers and each attribute as a header
//!   of its own. A request is treated as unwrapped when it carries `x-goog-pubsub-message-id`.
//!   HTTP folds header names to lower case, so attribute keys come back lower-cased; the attribute
//!   keys the pipeline reads are mapped back to their canonical spelling ([`KNOWN_ATTRIBUTES`]).
//!
//! The largest message Pub/Sub delivers has 10 MB of data, about 13.4 MB once base64-wrapped; the
//! server refuses bodies above [`MAX_PUSH_BODY_BYTES`] before they reach this module.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;

use crate::event::RawData;
use crate::limits::{MAX_MESSAGE_DATA_BYTES, MAX_PUSH_BODY_BYTES};

/// The attributes the telemetry gateway sets and this pipeline reads.
pub const KNOWN_ATTRIBUTES: &[&str] = &[
    "publisher.source",
    "event.feature",
    "event.action",
    "event.hasPrivateMetadata",
    "event.recordsPrivateMetadataTranscript",
];

/// A wrapped push body as Pub/Sub sends it, every message field in camelCase and snake_case:
/// what `replay` re-delivers and what tests and fixtures send. `data` is base64-encoded here
/// (or passed through when already encoded, as a dead letter keeps it).
#[derive(Debug, Clone, Default)]
pub struct PushEnvelope {
    pub message_id: String,
    /// The base64 text of the data (`None`: a message with attributes only).
    pub data_base64: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub publish_time: Option<String>,
    pub subscription: Option<String>,
}

impl PushEnvelope {
    pub fn new(message_id: impl Into<String>, data: &[u8]) -> Self {
        Self {
            message_id: message_id.into(),
            data_base64: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            ..Self::default()
        }
    }

    pub fn attributes(mut self, attributes: &BTreeMap<String, String>) -> Self {
        self.attributes = attributes.clone();
        self
    }

    pub fn subscription(mut self, subscription: impl Into<String>) -> Self {
        self.subscription = Some(subscription.into());
        self
    }

    pub fn publish_time(mut self, time: impl Into<String>) -> Self {
        self.publish_time = Some(time.into());
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let id = &self.message_id;
        let mut message = json!({"attributes": self.attributes, "messageId": id, "message_id": id});
        if let Some(data) = &self.data_base64 {
            message["data"] = json!(data);
        }
        if let Some(t) = &self.publish_time {
            message["publishTime"] = json!(t);
            message["publish_time"] = json!(t);
        }
        let mut body = json!({ "message": message });
        if let Some(s) = &self.subscription {
            body["subscription"] = json!(s);
        }
        body
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

/// One Pub/Sub message as delivered by push.
#[derive(Debug, Clone)]
pub struct PushMessage {
    pub message_id: String,
    pub publish_time: Option<DateTime<Utc>>,
    /// Full resource name, `projects/{p}/subscriptions/{s}`, when Pub/Sub said.
    pub subscription: Option<String>,
    /// Only present when the subscription has a dead-letter policy (and never from the emulator).
    pub delivery_attempt: Option<u32>,
    pub attributes: BTreeMap<String, String>,
    pub data: RawData,
    pub format: PushFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    Wrapped,
    Unwrapped,
}

/// Why a request is not a Pub/Sub push. Never quotes the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("request body is larger than {limit} bytes, the most a Pub/Sub push can carry")]
    TooLarge { limit: usize },
    #[error("body is not a Pub/Sub push envelope: {0}")]
    Envelope(String),
    #[error("message has no messageId")]
    NoMessageId,
    #[error("message.data is not valid base64 (standard alphabet)")]
    Base64,
    #[error("message data is larger than Pub/Sub's 10 MB limit")]
    DataTooLarge,
    #[error("{field} is not an RFC 3339 time")]
    BadTime { field: &'static str },
    #[error("header {0} is not valid UTF-8")]
    BadHeader(String),
}

impl DecodeError {
    /// A short, stable code for logs, metrics and dead-letter attributes.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "body_too_large",
            DecodeError::Envelope(_) => "invalid_envelope",
            DecodeError::NoMessageId => "no_message_id",
            DecodeError::Base64 => "invalid_base64",
            DecodeError::DataTooLarge => "data_too_large",
            DecodeError::BadTime { .. } => "invalid_publish_time",
            DecodeError::BadHeader(_) => "invalid_header",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    message: Option<PushedMessage<'a>>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, alias = "delivery_attempt")]
    delivery_attempt: Option<u32>,
}

/// Field order matters for nothing; both spellings are read, camelCase wins.
#[derive(Deserialize)]
struct PushedMessage<'a> {
    /// Borrowed from the body (base64 has nothing to unescape): no copy of a 13 MB text.
    #[serde(default, borrow)]
    data: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
}

impl PushMessage {
    /// Decodes a push request from its headers and body.
    pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Self, DecodeError> {
        if body.len() > MAX_PUSH_BODY_BYTES {
            return Err(DecodeError::TooLarge {
                limit: MAX_PUSH_BODY_BYTES,
            });
        }
        if headers.contains_key("x-goog-pubsub-message-id") {
            Self::decode_unwrapped(headers, body)
        } else {
            Self::decode_wrapped(body)
        }
    }

    fn decode_wrapped(body: &[u8]) -> Result<Self, DecodeError> {
        let env: Envelope = serde_json::from_slice(body).map_err(|e| {
            // Only the category and position: serde's message can quote input.
            DecodeError::Envelope(match e.classify() {
                serde_json::error::Category::Data => {
                    format!(
                        "unexpected field type at line {} column {}",
                        e.line(),
                        e.column()
                    )
                }
                serde_json::error::Category::Eof => "truncated JSON".into(),
                _ => format!("invalid JSON at line {} column {}", e.line(), e.column()),
            })
        })?;
        let msg = env.message.ok_or_else(|| {
            DecodeError::Envelope(
                "no `message` object (is the subscription unwrapped without write_metadata?)"
                    .into(),
            )
        })?;
        let message_id = msg
            .message_id_camel
            .or(msg.message_id_snake)
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::NoMessageId)?;
        let publish_time = msg
            .publish_time_camel
            .or(msg.publish_time_snake)
            .map(|s| parse_time(&s, "message.publishTime"))
            .transpose()?;
        let data = match msg.data {
            None => Vec::new(),
            Some(b64) => {
                if b64.len() > MAX_MESSAGE_DATA_BYTES.div_ceil(3) * 4 {
                    return Err(DecodeError::DataTooLarge);
                }
                // Standard alphabet, padding required: what Pub/Sub sends (base64-simd: SIMD).
                base64_simd::STANDARD
                    .decode_to_vec(b64.as_bytes())
                    .map_err(|_| DecodeError::Base64)?
            }
        };
        Ok(PushMessage {
            message_id,
            publish_time,
            subscription: env.subscription.filter(|s| !s.is_empty()),
            delivery_attempt: env.delivery_attempt.filter(|n| *n > 0),
            attributes: msg.attributes.unwrap_or_default(),
            data: RawData::new(data),
            format: PushFormat::Wrapped,
        })
    }

    fn decode_unwrapped(headers: &HeaderMap, body: &[u8]) -> Result<Self, DecodeError> {
        if body.len() > MAX_MESSAGE_DATA_BYTES {
            return Err(DecodeError::DataTooLarge);
        }
        let header = |name: &str| -> Result<Option<String>, DecodeError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .map_err(|_| DecodeError::BadHeader(name.to_owned()))
                })
                .transpose()
        };
        let message_id = header("x-goog-pubsub-message-id")?
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::NoMessageId)?;
        let publish_time = header("x-goog-pubsub-publish-time")?
            .map(|s| parse_time(&s, "x-goog-pubsub-publish-time"))
            .transpose()?;
        let subscription = header("x-goog-pubsub-subscription-name")?.filter(|s| !s.is_empty());
        let delivery_attempt = header("x-goog-pubsub-delivery-attempt")?
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0);

        let mut attributes = BTreeMap::new();
        for (name, value) in headers {
            let name = name.as_str();
            if is_transport_header(name) {
                continue;
            }
            // Attribute values are UTF-8, not just the visible ASCII that `to_str` accepts.
            let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
                return Err(DecodeError::BadHeader(name.to_owned()));
            };
            attributes.insert(canonical_attribute(name), value.to_owned());
        }
        Ok(PushMessage {
            message_id,
            publish_time,
            subscription,
            delivery_attempt,
            attributes,
            data: RawData::new(body.to_vec()),
            format: PushFormat::Unwrapped,
        })
    }
}

fn parse_time(s: &str, field: &'static str) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| DecodeError::BadTime { field })
}

/// Headers that HTTP, Cloud Run, Google's front end or tracing add: never message attributes.
fn is_transport_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "content-encoding",
        "expect",
        "forwarded",
        "from",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        "traceparent",
        "tracestate",
        "x-cloud-trace-context",
        "cookie",
        "origin",
        "referer",
    ];
    EXACT.contains(&name)
        || name.starts_with("x-goog-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("x-envoy-")
        || name.starts_with("x-request-")
        || name.starts_with("x-cloud-")
}

fn canonical_attribute(lower: &str) -> String {
    KNOWN_ATTRIBUTES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(lower))
        .map(|k| (*k).to_owned())
        .unwrap_or_else(|| lower.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn wrapped_envelope_as_pubsub_and_the_emulator_send_it() {
        let body = format!(
            r#"{{"subscription":"projects\/test\/subscriptions\/s","message":{{"publishTime":"2026-11-27T18:36:36.963Z",
            "data":"{}","publish_time":"2026-11-27T18:36:36.963Z","messageId":"1",
            "attributes":{{"a":"1"}},"message_id":"1"}},"deliveryAttempt":3}}"#,
            b64("{\"hello\":1}")
        );
        let m = PushMessage::decode(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(m.message_id, "1");
        assert_eq!(
            m.subscription.as_deref(),
            Some("projects/test/subscriptions/s")
        );
        assert_eq!(m.delivery_attempt, Some(3));
        assert_eq!(m.attributes["a"], "1");
        assert_eq!(m.data.bytes().as_ref(), b"{\"hello\":1}");
        assert_eq!(
            m.publish_time.unwrap().to_rfc3339(),
            "2026-11-27T18:36:36.963+00:00"
        );
    }

    #[test]
    fn snake_case_only_and_optional_fields() {
        let body = r#"{"message":{"message_id":"42","attributes":{"k":"v"}}}"#;
        let m = PushMessage::decode(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(m.message_id, "42");
        assert!(m.data.is_empty());
        assert!(m.publish_time.is_none());
        assert!(m.subscription.is_none());
    }

    #[test]
    fn malformed_envelopes_have_clear_errors() {
        let h = HeaderMap::new();
        let cases: &[(&str, &str)] = &[
            ("not json", "invalid_envelope"),
            ("{\"message\":", "invalid_envelope"),
            ("{\"subscription\":\"s\"}", "invalid_envelope"),
            ("{\"message\":{\"data\":\"e30=\"}}", "no_message_id"),
            (
                "{\"message\":{\"messageId\":\"1\",\"data\":\"%%%\"}}",
                "invalid_base64",
            ),
            (
                "{\"message\":{\"messageId\":\"1\",\"publishTime\":\"yesterday\"}}",
                "invalid_publish_time",
            ),
            ("{\"message\":{\"messageId\":1}}", "invalid_envelope"),
        ];
        for (body, code) in cases {
            let err = PushMessage::decode(&h, body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), *code, "{body}: {err}");
        }
    }

    #[test]
    fn envelope_errors_do_not_quote_the_body() {
        let body = r#"{"message":{"messageId":"1","attributes":{"k":["SECRET TEXT"]}}}"#;
        let err = PushMessage::decode(&HeaderMap::new(), body.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn unwrapped_push_reads_metadata_and_attribute_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-goog-pubsub-message-id", HeaderValue::from_static("7"));
        h.insert(
            "x-goog-pubsub-publish-time",
            HeaderValue::from_static("2026-11-27T18:36:36.963Z"),
        );
        h.insert(
            "x-goog-pubsub-subscription-name",
            HeaderValue::from_static("projects/test/subscriptions/s-nowrap"),
        );
        h.insert(
            http::HeaderName::from_bytes(b"event.recordsPrivateMetadataTranscript").unwrap(),
            HeaderValue::from_static("true"),
        );
        h.insert("kind", HeaderValue::from_static("keep"));
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h.insert("user-agent", HeaderValue::from_static("Java/17.0.15"));
        let m = PushMessage::decode(&h, b"{\"hello\":1}").unwrap();
        assert_eq!(m.format, PushFormat::Unwrapped);
        assert_eq!(m.message_id, "7");
        assert_eq!(
            m.subscription.as_deref(),
            Some("projects/test/subscriptions/s-nowrap")
        );
        assert_eq!(m.attributes.len(), 2, "{:?}", m.attributes);
        assert_eq!(
            m.attributes["event.recordsPrivateMetadataTranscript"],
            "true"
        );
        assert_eq!(m.attributes["kind"], "keep");
        assert_eq!(m.data.bytes().as_ref(), b"{\"hello\":1}");
    }

    #[test]
    fn the_largest_message_fits_and_a_larger_body_is_refused() {
        let data = "x".repeat(MAX_MESSAGE_DATA_BYTES);
        let attrs: BTreeMap<String, String> = (0..100)
            .map(|i| (format!("{i:0>256}"), "v".repeat(1024)))
            .collect();
        let body = serde_json::json!({
            "message": {"data": b64(&data), "messageId": "1", "message_id": "1",
                        "publishTime": "2026-11-27T18:36:36.963Z", "attributes": attrs},
            "subscription": "projects/p/subscriptions/s",
        })
        .to_string();
        assert!(body.len() < MAX_PUSH_BODY_BYTES, "{}", body.len());
        let m = PushMessage::decode(&HeaderMap::new(), body.as_bytes()).unwrap();
        assert_eq!(m.data.len(), MAX_MESSAGE_DATA_BYTES);

        let too_big = vec![b' '; MAX_PUSH_BODY_BYTES + 1];
        assert_eq!(
            PushMessage::decode(&HeaderMap::new(), &too_big)
                .unwrap_err()
                .code(),
            "body_too_large"
        );
    }
}
