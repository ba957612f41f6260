//! One error for every Google call, and one classifier that says what to do about it.
//!
//! [`classify`] takes what every Google API answers with, an HTTP status (gRPC codes mapped to
//! theirs) and, when there is one, the error's `reason` (`rateLimitExceeded`, `invalid`,
//! `conditionNotMet`, …), and returns a [`Class`]. Every caller acts on the class: the sinks
//! (nack, dead-letter, or "already stored"), the dead-letter publisher, the start-up checks,
//! `replay` and the audit, and the retry loops of the maintained clients
//! ([`ClassifiedRetries`]).
//!
//! A [`GoogleError`]'s text holds the call, the status, the reason and Google's own message
//! (clipped). Google's messages name resources and problems; the pipeline never sends transcript
//! text to BigQuery or Pub/Sub in a form an error could echo (rows are redacted first), and Cloud
//! Storage's errors do not quote object content.

use std::fmt;
use std::time::Duration;

use google_cloud_gax::error::rpc::StatusDetails;
use google_cloud_gax::retry_policy::{RetryPolicy, RetryPolicyExt};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use serde::Deserialize;

use super::Call;
use crate::error::CallError;
use crate::limits;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Google or the network was unavailable, slow or rate-limited (no answer, 408, 429, 5xx,
    /// `backendError`, `rateLimitExceeded`, …): the same request can succeed in a moment.
    Retry,
    /// The deployment is wrong (401, 403, 404: no grant, no such bucket, table or topic): the same
    /// request succeeds once it is fixed, not in a moment. A push is nacked; a start-up check
    /// stops the service.
    Misconfigured,
    /// The request itself is refused (400 and the other 4xx, `invalid`): retrying it cannot
    /// succeed. A push is dead-lettered.
    Permanent,
    /// The resource already exists or a precondition failed (409, 412, `conditionNotMet`): what
    /// that means is the caller's (a create-only write: already stored).
    Conflict,
}

/// The class of an answer: `status` is the HTTP status (`None`: no answer at all), `reason` the
/// Google error reason, when the answer had one. A reason, where it is one of Google's
/// well-known ones, decides over the status: BigQuery answers quota errors with 403.
pub fn classify(status: Option<u16>, reason: Option<&str>) -> Class {
    match reason {
        Some(
            "rateLimitExceeded"
            | "userRateLimitExceeded"
            | "quotaExceeded"
            | "backendError"
            | "internalError"
            | "timeout"
            | "stopped"
            | "RATE_LIMIT_EXCEEDED"
            | "RESOURCE_EXHAUSTED"
            // gRPC codes Google's clients retry (GRPC_RETRIED).
            | "ABORTED"
            | "CANCELLED"
            | "DEADLINE_EXCEEDED"
            | "INTERNAL"
            | "UNAVAILABLE",
        ) => return Class::Retry,
        Some("invalid" | "invalidQuery" | "badRequest" | "required" | "parseError") => {
            return Class::Permanent;
        }
        Some("notFound" | "forbidden" | "accessDenied" | "authError" | "UNIMPLEMENTED") => {
            return Class::Misconfigured;
        }
        Some("conditionNotMet" | "duplicate" | "conflict") => return Class::Conflict,
        _ => {}
    }
    match status {
        None | Some(408 | 429) => Class::Retry,
        Some(409 | 412) => Class::Conflict,
        Some(401 | 403 | 404) => Class::Misconfigured,
        Some(400..=499) => Class::Permanent,
        Some(_) => Class::Retry,
    }
}

/// A failed call to Google.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    pub call: Call,
    /// The HTTP status (a gRPC code mapped to its HTTP status); `None`: no answer.
    pub status: Option<u16>,
    /// Google's error reason, when the answer named one.
    pub reason: Option<String>,
    /// Google's message (clipped), or what went wrong on the way.
    pub detail: String,
}

impl GoogleError {
    /// No answer: the connection failed, broke, or timed out.
    pub fn transport(call: Call, what: impl Into<String>) -> Self {
        Self {
            call,
            status: None,
            reason: None,
            detail: what.into(),
        }
    }

    /// A non-2xx answer with Google's JSON error body (`{"error": {...}}`), or any other body.
    pub fn from_answer(call: Call, status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let (reason, detail) = parsed
            .map(|b| (b.error.reason(), b.error.message))
            .unwrap_or_default();
        Self {
            call,
            status: Some(status),
            reason,
            detail: clip(&detail),
        }
    }

    /// A failure of one of Google's own client libraries (HTTP or gRPC).
    pub fn from_gax(call: Call, e: &google_cloud_gax::error::Error) -> Self {
        let e = answered(e);
        let (status, reason) = answer_of(e);
        let detail = match e.status() {
            Some(s) => clip(&s.message),
            None if e.is_timeout() => "timed out".to_string(),
            None if e.is_connect() => "unreachable (connection failed)".to_string(),
            None if e.is_io() => "connection broken".to_string(),
            None if e.is_authentication() => "no access token".to_string(),
            None => clip(&e.to_string()),
        };
        Self {
            call,
            status,
            reason,
            detail,
        }
    }

    pub fn class(&self) -> Class {
        classify(self.status, self.reason.as_deref())
    }
}

impl fmt::Display for GoogleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.call.id)?;
        match self.status {
            Some(s) => write!(f, "HTTP {s}")?,
            None => write!(f, "no answer")?,
        }
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for GoogleError {}

/// A push whose call failed: retry (nack) unless the request itself was refused. A conflict
/// reaching here was not handled by its caller, so it is not taken for success either.
impl From<GoogleError> for CallError {
    fn from(e: GoogleError) -> Self {
        match e.class() {
            Class::Permanent => CallError::Permanent(e.to_string()),
            Class::Retry | Class::Misconfigured | Class::Conflict => {
                CallError::Transient(e.to_string())
            }
        }
    }
}

/// The retry loop of Google's client libraries, driven by [`classify`]: a [`Class::Retry`] answer
/// is tried again (within the time and attempt limits the caller adds), anything else ends the
/// loop. Every call sent through it is safe to repeat: create-only writes, reads, appends on the
/// default stream (at-least-once: a repeat may add a row), and dead letters
/// (a duplicate dead letter is a second delivery when replayed: objects are create-once, and
/// `event_telemetry_once` reads a row once).
#[derive(Debug, Clone, Copy)]
pub struct ClassifiedRetries;

impl ClassifiedRetries {
    /// At most 5 attempts within `timeout`: the policy every Google client here is given.
    pub fn within(timeout: Duration) -> impl RetryPolicy + 'static {
        ClassifiedRetries
            .with_time_limit(timeout)
            .with_attempt_limit(5)
    }
}

impl RetryPolicy for ClassifiedRetries {
    fn on_error(&self, _state: &RetryState, error: google_cloud_gax::error::Error) -> RetryResult {
        let (status, reason) = answer_of(answered(&error));
        if classify(status, reason.as_deref()) == Class::Retry {
            RetryResult::Continue(error)
        } else {
            RetryResult::Permanent(error)
        }
    }
}

/// The error that carries Google's answer: a retry loop that ran out of time or attempts wraps
/// the last one.
fn answered(e: &google_cloud_gax::error::Error) -> &google_cloud_gax::error::Error {
    let mut current = e;
    for _ in 0..8 {
        if current.http_status_code().is_some() || current.status().is_some() {
            return current;
        }
        match std::error::Error::source(current)
            .and_then(|s| s.downcast_ref::<google_cloud_gax::error::Error>())
        {
            Some(inner) => current = inner,
            None => break,
        }
    }
    e
}

/// The gRPC codes Google's Storage Write client retries (`google-cloud-bigquery` 0.19,
/// `write/retry_policy.rs`, `RetryableErrors`). On a gRPC answer the code is the reason, and
/// decides over the HTTP status it maps to: ABORTED (409) is BigQuery closing a stream, idle for
/// 600 s or moved, not a conflict; CANCELLED (499) a call whose outcome is unknown, not a refusal.
/// The table for every code is in docs/design.md, "Google's APIs".
pub const GRPC_RETRIED: [&str; 6] = [
    "ABORTED",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
];

/// The HTTP status (a gRPC code mapped to its HTTP status) and reason of a client library's error.
fn answer_of(e: &google_cloud_gax::error::Error) -> (Option<u16>, Option<String>) {
    let status = e
        .http_status_code()
        .or_else(|| e.status().map(|s| http_status_of(s.code.name())));
    // A gRPC answer whose code decides over its HTTP status: Google's retried codes, and
    // UNIMPLEMENTED (501: the wrong endpoint, a deployment to fix, not a moment's wait).
    let grpc_decides = e
        .status()
        .filter(|_| e.http_status_code().is_none())
        .map(|s| s.code.name())
        .filter(|code| GRPC_RETRIED.contains(code) || *code == "UNIMPLEMENTED");
    if let Some(code) = grpc_decides {
        return (status, Some(code.to_string()));
    }
    let reason = e
        .status()
        .and_then(|s| {
            s.details.iter().find_map(|d| match d {
                StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => {
                    Some(info.reason.clone())
                }
                _ => None,
            })
        })
        .or_else(|| {
            let payload = e.http_payload()?;
            serde_json::from_slice::<ErrorBody>(payload)
                .ok()?
                .error
                .reason()
        });
    (status, reason)
}

/// The HTTP status a gRPC code stands for (google.rpc.Code's documented mapping).
fn http_status_of(code: &str) -> u16 {
    match code {
        "OK" => 200,
        "CANCELLED" => 499,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "DEADLINE_EXCEEDED" => 504,
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "PERMISSION_DENIED" => 403,
        "UNAUTHENTICATED" => 401,
        "RESOURCE_EXHAUSTED" => 429,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        _ => 500,
    }
}

fn clip(s: &str) -> String {
    limits::clip_chars(s, limits::MAX_GOOGLE_MESSAGE_CHARS)
}

/// Google's JSON error answer, as every JSON API sends it.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Deserialize, Default)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    /// The legacy list, with the reason (`invalid`, `notFound`, …).
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
    /// `google.rpc.Status` details; an `ErrorInfo` carries a reason too.
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ErrorItem {
    #[serde(default)]
    pub reason: Option<String>,
}

impl ErrorDetail {
    fn reason(&self) -> Option<String> {
        self.errors
            .iter()
            .find_map(|e| e.reason.clone())
            .or_else(|| {
                self.details
                    .iter()
                    .find_map(|d| d["reason"].as_str().map(str::to_string))
            })
            .filter(|r| !r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::calls;

    #[test]
    fn the_classes_of_googles_answers() {
        use Class::*;
        let table: [(Option<u16>, Option<&str>, Class); 16] = [
            (None, None, Retry),
            (Some(408), None, Retry),
            (Some(429), None, Retry),
            (Some(500), None, Retry),
            (Some(503), Some("backendError"), Retry),
            // BigQuery's quota errors come as 403.
            (Some(403), Some("quotaExceeded"), Retry),
            (Some(403), Some("rateLimitExceeded"), Retry),
            (Some(403), None, Misconfigured),
            (Some(404), Some("notFound"), Misconfigured),
            (Some(401), None, Misconfigured),
            (Some(400), Some("invalid"), Permanent),
            (Some(400), None, Permanent),
            (Some(413), None, Permanent),
            (Some(412), Some("conditionNotMet"), Conflict),
            (Some(409), Some("duplicate"), Conflict),
            // A per-row BigQuery error has a reason and no status.
            (None, Some("invalid"), Permanent),
        ];
        for (status, reason, class) in table {
            assert_eq!(classify(status, reason), class, "{status:?} {reason:?}");
        }
    }

    #[test]
    fn googles_error_body_gives_the_reason_and_message() {
        let body = br#"{"error":{"code":403,"message":"Quota exceeded","errors":[{"reason":"quotaExceeded","message":"q"}],"status":"PERMISSION_DENIED"}}"#;
        let e = GoogleError::from_answer(calls::TABLEDATA_INSERT_ALL, 403, body);
        assert_eq!(e.reason.as_deref(), Some("quotaExceeded"));
        assert_eq!(e.class(), Class::Retry);
        assert_eq!(
            e.to_string(),
            "bigquery.tabledata.insertAll: HTTP 403 (quotaExceeded): Quota exceeded"
        );
        let info = br#"{"error":{"code":404,"message":"no topic","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RESOURCE_NOT_FOUND"}]}}"#;
        let e = GoogleError::from_answer(calls::TOPICS_PUBLISH, 404, info);
        assert_eq!(e.reason.as_deref(), Some("RESOURCE_NOT_FOUND"));
        assert_eq!(e.class(), Class::Misconfigured);
        let html = GoogleError::from_answer(calls::OBJECTS_LIST, 502, b"<html>bad gateway</html>");
        assert_eq!((html.reason.clone(), html.class()), (None, Class::Retry));
    }

    #[test]
    fn only_a_refused_request_is_a_permanent_sink_error() {
        let e = |status| GoogleError {
            call: calls::TABLEDATA_INSERT_ALL,
            status: Some(status),
            reason: None,
            detail: String::new(),
        };
        assert!(matches!(CallError::from(e(400)), CallError::Permanent(_)));
        for status in [404, 403, 412, 503] {
            assert!(matches!(
                CallError::from(e(status)),
                CallError::Transient(_)
            ));
        }
    }

    /// Google's write client retries these gRPC codes (`google-cloud-bigquery` 0.19,
    /// `write/retry_policy.rs`, `RetryableErrors`), and so does every retry loop here.
    #[test]
    fn grpc_answers_are_retried_as_googles_write_client_retries_them() {
        use google_cloud_gax::error::Error;
        use google_cloud_gax::error::rpc::{Code, Status};
        use google_cloud_gax::retry_state::RetryState;
        let grpc = |code: Code| Error::service(Status::default().set_code(code).set_message("m"));
        for (code, retried) in [
            // Google's list.
            (Code::Aborted, true),
            (Code::Cancelled, true),
            (Code::DeadlineExceeded, true),
            (Code::Internal, true),
            (Code::ResourceExhausted, true),
            (Code::Unavailable, true),
            // Everything else ends the loop.
            (Code::InvalidArgument, false),
            (Code::NotFound, false),
            (Code::AlreadyExists, false),
            (Code::PermissionDenied, false),
            (Code::FailedPrecondition, false),
            (Code::OutOfRange, false),
            (Code::Unimplemented, false),
            (Code::Unauthenticated, false),
        ] {
            let e = grpc(code);
            let looped = matches!(
                ClassifiedRetries.on_error(&RetryState::new(true), grpc(code)),
                RetryResult::Continue(_)
            );
            assert_eq!(looped, retried, "{code:?} in the retry loop");
            let class = GoogleError::from_gax(calls::STORAGE_WRITE_APPEND_ROWS, &e).class();
            assert_eq!(class == Class::Retry, retried, "{code:?}: {class:?}");
        }
        // BigQuery closes an AppendRows stream idle for 600 s with ABORTED: a push then is not
        // refused, and the error still says what Google said.
        let idle = Error::service(
            Status::default()
                .set_code(Code::Aborted)
                .set_message("Closing the stream because it has been inactive for 600 seconds"),
        );
        let e = GoogleError::from_gax(calls::STORAGE_WRITE_APPEND_ROWS, &idle);
        assert!(matches!(
            CallError::from(e.clone()),
            CallError::Transient(_)
        ));
        assert!(e.to_string().contains("ABORTED"), "{e}");
        // A JSON API's 409 stays a conflict (an object or a table that already exists).
        assert_eq!(classify(Some(409), None), Class::Conflict);
    }

    #[test]
    fn grpc_codes_map_to_their_http_statuses() {
        assert_eq!(http_status_of("UNAVAILABLE"), 503);
        assert_eq!(http_status_of("NOT_FOUND"), 404);
        assert_eq!(http_status_of("INVALID_ARGUMENT"), 400);
        assert_eq!(http_status_of("RESOURCE_EXHAUSTED"), 429);
        assert_eq!(
            classify(Some(http_status_of("PERMISSION_DENIED")), None),
            Class::Misconfigured
        );
    }
}
