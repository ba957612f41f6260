//! The HTTP surface shared by the three services, and the ack contract with Pub/Sub push.
//!
//! - `POST /`: the push endpoint. The status code is the ack: 200 only after the write is durable,
//!   after a deliberate skip, or after a message that can never succeed has been published to the
//!   dead-letter topic ([`crate::dead_letter`]); without a dead-letter topic (or for a replay)
//!   such a message gets 400 (malformed), 413 (body too large) or 422 (BigQuery rejected the row),
//!   so the subscription's dead-letter policy collects it; 503 for sink failures and failed
//!   dead-letter publishes, so Pub/Sub redelivers. Any other method: 405.
//! - Before anything else, unless `PUSH_AUTH=off`, the push's OIDC token is verified
//!   ([`crate::auth`]); a push that fails gets 401 and nothing of it is processed.
//! - `GET /healthz`: 200 once the service is up (the server only listens after its clients are
//!   built, so a listening service is a ready one).
//!
//! Each push produces exactly one outcome log line (message id, event id, feature, action, route,
//! outcome, reason, latency, status, trace). Response bodies and log lines carry codes, ids and
//! sanitised details only, never payload text.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::auth::Verifier;
use crate::dead_letter::{DeadLetter, DeadLetterSink, REPLAY_HEADER};
use crate::decode::{MAX_PUSH_BODY_BYTES, PushMessage};
use crate::handler::{Failure, FailureKind, Handler, Outcome, Report};
use crate::telemetry::TraceContext;

/// Counts messages whose attributes disagreed with their payload, since start-up; logged with
/// each such message as `routingMismatchTotal`.
static ROUTING_MISMATCHES: AtomicU64 = AtomicU64::new(0);

#[derive(Clone)]
pub struct AppState {
    pub handler: Arc<Handler>,
    pub project: Arc<str>,
    /// Where permanent failures are published before the push is acked (`DEAD_LETTER_TOPIC`).
    pub dead_letters: Option<Arc<dyn DeadLetterSink>>,
    /// Push authentication; `None` with `PUSH_AUTH=off`.
    pub verifier: Option<Arc<Verifier>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(push))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"status": "ok", "service": state.handler.service().name()})),
    )
        .into_response()
}

/// The most header bytes a push may carry: an unwrapped push puts up to 100 attributes (256-byte
/// keys, 1024-byte values) into headers, about 128 KiB, plus the request's own headers.
pub const MAX_HEADER_BYTES: usize = 160 * 1024;

/// How long reading a push body may take. Pub/Sub sends it at once; a trickling body is not a push.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

async fn push(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let trace = TraceContext::from_headers(&headers);
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        let report = Report::failed(Failure {
            kind: FailureKind::Malformed,
            code: "headers_too_large",
            detail: format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
        });
        log_outcome(&state, &report, None, trace.as_ref(), started);
        return respond(&report);
    }
    if let Some(verifier) = &state.verifier {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(e) = verifier.verify_header(header).await {
            // Nothing of the request is read or processed; the token is never logged.
            tracing::warn!(
                service = state.handler.service().name(),
                outcome = "unauthorized",
                reason = e.code(),
                detail = %e,
                status = 401,
                trace = trace.as_ref().map(|t| t.resource_name(&state.project)),
                "push unauthorized"
            );
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": e.code(), "detail": e.to_string()})),
            )
                .into_response();
        }
    }
    let replay = headers.contains_key(REPLAY_HEADER);
    let (bytes, message, mut report) = match read_body(&headers, body).await {
        // Never dead-lettered: there is no body to keep, so only a nack loses nothing.
        Err(failure) => {
            let report = Report::failed(failure);
            log_outcome(&state, &report, None, trace.as_ref(), started);
            return respond(&report);
        }
        Ok(bytes) => match PushMessage::decode(&headers, &bytes) {
            Err(e) => (
                bytes,
                None,
                Report::failed(Failure::malformed(e.code(), &e)),
            ),
            Ok(message) => {
                let report = state.handler.handle(&message).await;
                (bytes, Some(message), report)
            }
        },
    };
    if let (Some(dead_letters), Err(failure)) = (&state.dead_letters, &report.result)
        && failure.kind != FailureKind::Transient
        && !replay
    {
        report.dead_letter = Some(
            match DeadLetter::new(state.handler.service(), message.as_ref(), &bytes, failure) {
                None => Err("too large to dead-letter; left to the subscription's policy".into()),
                Some(letter) => dead_letters
                    .publish(&letter)
                    .await
                    .map_err(|e| format!("dead-letter publish failed: {e}")),
            },
        );
    }
    log_outcome(&state, &report, message.as_ref(), trace.as_ref(), started);
    respond(&report)
}

/// Reads the body up to the push limit; a larger one is refused without reading it all.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Failure> {
    let too_large = || Failure {
        kind: FailureKind::Malformed,
        code: "body_too_large",
        detail: format!(
            "request body is larger than {MAX_PUSH_BODY_BYTES} bytes, the most a Pub/Sub push can carry"
        ),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PUSH_BODY_BYTES) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_PUSH_BODY_BYTES),
    );
    let Ok(read) = read.await else {
        return Err(Failure {
            kind: FailureKind::Transient,
            code: "body_timeout",
            detail: format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
        });
    };
    read.map_err(|e| {
        let limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit {
            too_large()
        } else {
            Failure {
                kind: FailureKind::Transient,
                code: "body_read_failed",
                detail: "the request body could not be read".into(),
            }
        }
    })
}

fn status_of(report: &Report) -> StatusCode {
    match (&report.result, &report.dead_letter) {
        (Ok(_), _) | (Err(_), Some(Ok(_))) => StatusCode::OK,
        (Err(_), Some(Err(_))) => StatusCode::SERVICE_UNAVAILABLE,
        (Err(f), None) => match (f.kind, f.code) {
            (_, "body_too_large") => StatusCode::PAYLOAD_TOO_LARGE,
            (_, "headers_too_large") => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            (_, "body_timeout") => StatusCode::REQUEST_TIMEOUT,
            (FailureKind::Malformed, _) => StatusCode::BAD_REQUEST,
            (FailureKind::Rejected, _) => StatusCode::UNPROCESSABLE_ENTITY,
            (FailureKind::Transient, _) => StatusCode::SERVICE_UNAVAILABLE,
        },
    }
}

fn respond(report: &Report) -> Response {
    let status = status_of(report);
    let body = match &report.result {
        Ok(outcome) => {
            let mut b = json!({"outcome": outcome.label(), "eventId": report.summary.event_id});
            match outcome {
                Outcome::Written { target } | Outcome::AlreadyStored { target } => {
                    b["target"] = json!(target)
                }
                Outcome::Skipped { reason } => b["reason"] = json!(reason),
            }
            b
        }
        Err(f) => {
            let mut b =
                json!({"error": f.code, "detail": f.detail, "eventId": report.summary.event_id});
            match &report.dead_letter {
                Some(Ok(id)) => {
                    b["outcome"] = json!("dead_lettered");
                    b["deadLetterMessageId"] = json!(id);
                }
                Some(Err(e)) => b["deadLetterError"] = json!(e),
                None => {}
            }
            b
        }
    };
    (status, axum::Json(body)).into_response()
}

fn log_outcome(
    state: &AppState,
    report: &Report,
    message: Option<&PushMessage>,
    trace: Option<&TraceContext>,
    started: Instant,
) {
    let s = &report.summary;
    let status = status_of(report).as_u16();
    let dead_letter_error;
    let (outcome, reason, detail) = match (&report.result, &report.dead_letter) {
        (Ok(o @ Outcome::Skipped { reason }), _) => (o.label(), reason.as_str(), ""),
        (Ok(o), _) => (o.label(), "", ""),
        (Err(f), Some(Ok(_))) => ("dead_lettered", f.code, f.detail.as_str()),
        (Err(f), Some(Err(e))) => {
            dead_letter_error = format!("{}; {e}", f.detail);
            ("retry", f.code, dead_letter_error.as_str())
        }
        (Err(f), None) => (
            match f.kind {
                FailureKind::Transient => "retry",
                _ => "rejected",
            },
            f.code,
            f.detail.as_str(),
        ),
    };
    let mismatch = s.mismatches.join(",");
    let mismatch_total = if s.mismatches.is_empty() {
        ROUTING_MISMATCHES.load(Ordering::Relaxed)
    } else {
        ROUTING_MISMATCHES.fetch_add(1, Ordering::Relaxed) + 1
    };
    let latency = started.elapsed();
    let trace_name = trace.map(|t| t.resource_name(&state.project));
    let span_id = trace.and_then(|t| t.span_id.clone());
    macro_rules! outcome_line {
        ($level:ident) => {
            tracing::$level!(
                service = state.handler.service().name(),
                message_id = message.map(|m| m.message_id.as_str()).unwrap_or(""),
                subscription = message
                    .and_then(|m| m.subscription.as_deref())
                    .unwrap_or(""),
                delivery_attempt = message.and_then(|m| m.delivery_attempt).unwrap_or(0),
                event_id = s.event_id.as_deref().unwrap_or(""),
                feature = s.feature.as_deref().unwrap_or(""),
                action = s.action.as_deref().unwrap_or(""),
                route = s.route.unwrap_or(""),
                transcript = s.transcript.unwrap_or(false),
                outcome,
                reason,
                detail,
                status,
                redacted_keys = s.redacted_keys,
                routing_mismatch = mismatch.as_str(),
                routing_mismatch_total = mismatch_total,
                latency_ms = latency.as_millis() as u64,
                http_request.request_method = "POST",
                http_request.status = status,
                http_request.latency = format!("{:.6}s", latency.as_secs_f64()),
                trace = trace_name.as_deref(),
                span_id = span_id.as_deref(),
                trace_sampled = trace.map(|t| t.sampled),
                "push {outcome}"
            )
        };
    }
    match outcome {
        "retry" => outcome_line!(error),
        "rejected" | "dead_lettered" => outcome_line!(warn),
        _ => outcome_line!(info),
    }
}
