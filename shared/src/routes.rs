//! The HTTP surface shared by the three services, and the ack contract with Pub/Sub push.
//!
//! - `POST /`: the push endpoint. The status code is the ack: 200 only after the write is durable,
//!   after a deliberate skip, or after a message that can never succeed has been published to the
//!   dead-letter topic ([`crate::dead_letter`]); without a dead-letter topic (or for a replay)
//!   such a message gets 400 (malformed), 413 (body too large) or 422 (BigQuery rejected the row),
//!   so the subscription's dead-letter policy collects it; 503 for sink failures and failed
//!   dead-letter publishes, so Pub/Sub redelivers. Any other method: 405.
//! - Before anything else, unless `PUSH_AUTH=off`, the push's OIDC token is verified
//!   ([`crate::push_auth`]); a push that fails gets 401 and nothing of it is processed.
//! - `GET /healthz`: 200 once the service is up (the server only listens after its clients are
//!   built, so a listening service is a ready one).
//!
//! Each push produces exactly one outcome log line (message id, event id, feature, action, route,
//! outcome, reason, latency, status, trace). Response bodies and log lines carry codes, ids and
//! sanitised details only, never payload text.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::admission::Admission;
use crate::dead_letter::{DeadLetter, DeadLetterSink, REPLAY_HEADER, Source};
use crate::decode::PushMessage;
use crate::failure::{Failure, FailureKind};
use crate::handler::Handler;
use crate::limits;
use crate::limits::{MAX_HEADER_BYTES, MAX_PUSH_BODY_BYTES};
use crate::logging::TraceContext;
use crate::outcome::{self, Report, TraceFields};
use crate::push_auth::Verifier;

/// What every request reads, behind one `Arc`: axum clones the state for each layer of each
/// request, and one reference count is cheaper than one per field.
type Shared = Arc<AppState>;

pub struct AppState {
    pub handler: Handler,
    pub project: String,
    /// Where permanent failures are published before the push is acked (`DEAD_LETTER_TOPIC`);
    /// shared, as its maker may keep a handle (the tests' in-memory topic).
    pub dead_letters: Option<Arc<dyn DeadLetterSink>>,
    /// Push authentication; `None` with `PUSH_AUTH=off`.
    pub verifier: Option<Verifier>,
    /// The budget of push-body bytes in flight.
    pub admission: Admission,
}

/// `POST /` behind three layers (header limit, authentication, admission); `GET /healthz`.
pub fn router(state: AppState) -> Router {
    let state: Shared = Arc::new(state);
    let push_route = post(push)
        .route_layer(middleware::from_fn_with_state(state.clone(), admit))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_headers));
    Router::new()
        .route("/", push_route)
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz(State(state): State<Shared>) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"status": "ok", "service": state.handler.service().name()})),
    )
        .into_response()
}

/// Layer 1: refuse oversized headers (431) before anything else looks at them.
async fn limit_headers(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes <= MAX_HEADER_BYTES {
        return next.run(request).await;
    }
    let failure = Failure::new(
        FailureKind::HeadersTooLarge,
        "headers_too_large",
        format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
    );
    finish(
        &state,
        request.headers(),
        Report::failed(failure),
        Instant::now(),
    )
}

/// Layer 2: verify the push's OIDC token (unless `PUSH_AUTH=off`); 401 and nothing processed
/// otherwise. The token is never logged.
async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(verifier) = &state.verifier else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match verifier.verify_header(token).await {
        Ok(_) => next.run(request).await,
        Err(e) => finish(&state, request.headers(), Report::failed(e.into()), started),
    }
}

/// Layer 3: reserve the push's body bytes in the budget before the body is read; 429 when there
/// is no room within the admission wait (Pub/Sub redelivers it later).
async fn admit(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match state.admission.admit(declared).await {
        Some(_admitted) => {
            let mut request = request;
            let in_flight = InFlight(state.admission.in_use_bytes());
            request.extensions_mut().insert(in_flight);
            next.run(request).await
        }
        None => {
            let failure = Failure::new(
                FailureKind::Overloaded,
                "over_budget",
                "too many push bytes in flight on this instance; retry later",
            );
            let mut report = Report::failed(failure);
            report.summary.bytes_in_flight = Some(state.admission.in_use_bytes());
            let (parts, body) = request.into_parts();
            discard(body).await;
            finish(&state, &parts.headers, report, started)
        }
    }
}

/// The budget's bytes in use once a push was admitted, its own included: for its log line.
#[derive(Debug, Clone, Copy)]
struct InFlight(usize);

/// Reads a refused push's body to its end and drops it frame by frame (never holding it), up to
/// the push limit and [`limits::BODY_READ_TIMEOUT`]. Answering before the body is read would close the
/// connection under a client that sends the whole body before it reads the answer (as curl
/// does): it gets a broken pipe, a transport error, and never sees the 429.
async fn discard(mut body: Body) {
    use http_body_util::BodyExt as _;
    let drain = async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > MAX_PUSH_BODY_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limits::BODY_READ_TIMEOUT, drain).await;
}

/// The push endpoint: read → decode → handle (classify, redact, write) → dead-letter a permanent
/// failure → answer and log.
async fn push(
    State(state): State<Shared>,
    in_flight: Option<Extension<InFlight>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut report = match read_body(&headers, body).await {
        // Never dead-lettered: there is no body to keep, so only a nack loses nothing.
        Err(failure) => Report::failed(failure),
        Ok(bytes) => handle(&state, &headers, bytes).await,
    };
    report.summary.bytes_in_flight = in_flight.map(|Extension(InFlight(bytes))| bytes);
    finish(&state, &headers, report, started)
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Bytes) -> Report {
    let replay = headers.contains_key(REPLAY_HEADER);
    match PushMessage::decode(headers, &body) {
        Ok(message) => {
            // The message holds what a dead letter needs; the body need not wait for the sink.
            drop(body);
            let mut report = state.handler.handle(&message).await;
            if !replay {
                report.dead_letter = dead_letter(state, Source::Message(&message), &report).await;
            }
            report
        }
        Err(e) => {
            let mut report = Report::failed(e.into());
            if !replay {
                report.dead_letter = dead_letter(state, Source::Undecoded(&body), &report).await;
            }
            report
        }
    }
}

/// Publishes a permanent failure to the dead-letter topic: the message id, or why not.
async fn dead_letter(
    state: &AppState,
    source: Source<'_>,
    report: &Report,
) -> Option<Result<String, String>> {
    let sink = state.dead_letters.as_ref()?;
    let failure = report.result.as_ref().err()?;
    if !failure.kind.is_permanent() {
        return None;
    }
    Some(
        match DeadLetter::new(state.handler.service(), source, failure) {
            None => Err("too large to dead-letter; left to the subscription's policy".into()),
            Some(letter) => sink
                .publish(&letter)
                .await
                .map_err(|e| format!("dead-letter publish failed: {e}")),
        },
    )
}

/// Reads the body up to the push limit; a larger one is refused without reading it all.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::new(
            FailureKind::BodyTooLarge,
            "body_too_large",
            format!(
                "request body is larger than {MAX_PUSH_BODY_BYTES} bytes, the most a Pub/Sub push can carry"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PUSH_BODY_BYTES) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        limits::BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_PUSH_BODY_BYTES),
    );
    let Ok(read) = read.await else {
        return Err(Failure::new(
            FailureKind::BodyTimeout,
            "body_timeout",
            format!(
                "the request body did not arrive within {:?}",
                limits::BODY_READ_TIMEOUT
            ),
        ));
    };
    read.map_err(|e| {
        let limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit {
            too_large()
        } else {
            Failure::new(
                FailureKind::Transient,
                "body_read_failed",
                "the request body could not be read",
            )
        }
    })
}

/// Logs the push's one outcome line and answers it.
fn finish(state: &AppState, headers: &HeaderMap, report: Report, started: Instant) -> Response {
    let trace = TraceContext::from_headers(headers)
        .map(|t| TraceFields {
            trace: Some(t.resource_name(&state.project)),
            span_id: t.span_id.clone(),
            sampled: Some(t.sampled),
        })
        .unwrap_or_default();
    outcome::log(
        state.handler.service().name(),
        &report,
        &trace,
        started.elapsed(),
    );
    respond(&report)
}

/// The answer: the verdict's status, and the report's [`crate::outcome::PushAnswer`] as JSON.
fn respond(report: &Report) -> Response {
    (report.verdict().status, axum::Json(report.answer())).into_response()
}
