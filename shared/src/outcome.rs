//! What became of one push, in one vocabulary: the [`Label`] (the `outcome` of the log line, of
//! the response body and of Terraform's log-based metrics), the HTTP status, the reason code and a
//! detail without payload text, and the one outcome log line per push.
//!
//! [`Label::ALL`] is the list that `terraform/monitoring.tf` and the docs are held to by
//! `tests/tests/terraform.rs`: a label added here and not counted there fails the test; so is
//! [`Label::is_success`], the outcomes whose lines Terraform samples instead of storing them all
//! (`tests/tests/terraform_bill.rs`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::decode::PushMessage;
use crate::failure::{Failure, FailureKind};

/// A successful outcome of a handler: the push can be acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now: the object name, or the row's insert id.
    Written { target: String },
    /// The object already existed (a redelivery or a duplicate publish).
    AlreadyStored { target: String },
    /// Deliberately not written by this handler.
    Skipped { reason: String },
}

/// The skip reason of a BigQuery handler for a message of the other BigQuery handler's route.
pub const NOT_FOR_THIS_SUBSCRIPTION: &str = "not_for_this_subscription";

/// The `outcome` of a push, as logged, answered and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// Durable in the bucket or table.
    Written,
    /// The object existed already (redelivery): acked.
    AlreadyStored,
    /// Deliberately not written, with a reason: acked.
    Skipped,
    /// A permanent failure, published to the dead-letter topic, then acked.
    DeadLettered,
    /// A permanent failure answered 4xx (no dead-letter topic, a replay, or nothing to keep).
    Rejected,
    /// Nacked (5xx, 408): Pub/Sub redelivers.
    Retry,
    /// Push authentication failed (401): not processed, Pub/Sub redelivers.
    Unauthorized,
}

impl Label {
    pub const ALL: [Label; 7] = [
        Label::Written,
        Label::AlreadyStored,
        Label::Skipped,
        Label::DeadLettered,
        Label::Rejected,
        Label::Retry,
        Label::Unauthorized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Written => "written",
            Label::AlreadyStored => "already_stored",
            Label::Skipped => "skipped",
            Label::DeadLettered => "dead_lettered",
            Label::Rejected => "rejected",
            Label::Retry => "retry",
            Label::Unauthorized => "unauthorized",
        }
    }

    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// A success: the message is where it belongs, or deliberately nowhere. Terraform keeps only
    /// a sample of these outcomes' log lines in Cloud Logging (`success_outcomes` in
    /// `terraform/monitoring.tf`, held to this by `tests/tests/terraform_bill.rs`); every other line is
    /// stored. The match names every label, so a new one cannot be added without deciding.
    pub fn is_success(self) -> bool {
        match self {
            Label::Written | Label::AlreadyStored | Label::Skipped => true,
            Label::DeadLettered | Label::Rejected | Label::Retry | Label::Unauthorized => false,
        }
    }

    /// Acked: the message is where it belongs, or deliberately nowhere, or in the dead letters.
    pub fn is_ack(self) -> bool {
        matches!(
            self,
            Label::Written | Label::AlreadyStored | Label::Skipped | Label::DeadLettered
        )
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Safe facts about the message for the outcome log line (ids and names, no payload text).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub message_id: Option<String>,
    pub subscription: Option<String>,
    pub delivery_attempt: Option<u32>,
    pub event_id: Option<String>,
    pub feature: Option<String>,
    pub action: Option<String>,
    pub route: Option<&'static str>,
    pub transcript: Option<bool>,
    pub mismatches: Vec<&'static str>,
    pub redacted_keys: usize,
    /// Rows in the `insertAll` that carried this push's row (group commit at work).
    pub call_rows: Option<usize>,
    /// Push-body bytes the instance held in flight when this push was admitted, its own included.
    pub bytes_in_flight: Option<usize>,
}

impl Summary {
    pub fn of_message(message: &PushMessage) -> Self {
        Self {
            message_id: Some(message.message_id.clone()),
            subscription: message.subscription.clone(),
            delivery_attempt: message.delivery_attempt,
            ..Self::default()
        }
    }
}

/// What a push came to: the handler's result, the facts for the log line, and for a permanent
/// failure the dead-letter message id (or why it could not be published).
#[derive(Debug, Clone)]
pub struct Report {
    pub result: Result<Outcome, Failure>,
    pub summary: Summary,
    pub dead_letter: Option<Result<String, String>>,
}

impl Report {
    pub fn failed(failure: Failure) -> Self {
        Self {
            result: Err(failure),
            summary: Summary::default(),
            dead_letter: None,
        }
    }

    /// The verdict: label, status, reason and detail, decided here once for the response body
    /// and the log line alike.
    pub fn verdict(&self) -> Verdict<'_> {
        let ok = |label, reason| Verdict {
            label,
            status: StatusCode::OK,
            reason,
            detail: Cow::Borrowed(""),
        };
        match (&self.result, &self.dead_letter) {
            (Ok(Outcome::Written { .. }), _) => ok(Label::Written, ""),
            (Ok(Outcome::AlreadyStored { .. }), _) => ok(Label::AlreadyStored, ""),
            (Ok(Outcome::Skipped { reason }), _) => ok(Label::Skipped, reason),
            (Err(f), Some(Ok(_))) => Verdict {
                detail: Cow::Borrowed(&f.detail),
                ..ok(Label::DeadLettered, f.code)
            },
            (Err(f), Some(Err(e))) => Verdict {
                label: Label::Retry,
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: f.code,
                detail: Cow::Owned(format!("{}; {e}", f.detail)),
            },
            (Err(f), None) => Verdict {
                label: match f.kind {
                    FailureKind::Unauthorized => Label::Unauthorized,
                    k if k.is_retryable() => Label::Retry,
                    _ => Label::Rejected,
                },
                status: f.status(),
                reason: f.code,
                detail: Cow::Borrowed(&f.detail),
            },
        }
    }
}

/// How one push is answered and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub label: Label,
    pub status: StatusCode,
    /// The skip reason or the failure code; empty for writes.
    pub reason: &'a str,
    pub detail: Cow<'a, str>,
}

/// The body of every answer to a push, one serde type for the server that writes it and for
/// `replay` (and the tests) that read it: `outcome` always; `target` or `reason` for a success;
/// `error` and `detail` for a failure, with the dead-letter message id or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushAnswer<'a> {
    pub outcome: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_message_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_error: Option<Cow<'a, str>>,
}

impl Report {
    /// The answer's body for this report.
    pub fn answer(&self) -> PushAnswer<'_> {
        let verdict = self.verdict();
        let mut answer = PushAnswer {
            outcome: Cow::Borrowed(verdict.label.as_str()),
            event_id: self.summary.event_id.as_deref().map(Cow::Borrowed),
            ..PushAnswer::default()
        };
        match &self.result {
            Ok(Outcome::Written { target } | Outcome::AlreadyStored { target }) => {
                answer.target = Some(Cow::Borrowed(target));
            }
            Ok(Outcome::Skipped { reason }) => answer.reason = Some(Cow::Borrowed(reason)),
            Err(f) => {
                answer.error = Some(Cow::Borrowed(f.code));
                answer.detail = Some(Cow::Borrowed(&f.detail));
                match &self.dead_letter {
                    Some(Ok(id)) => answer.dead_letter_message_id = Some(Cow::Borrowed(id)),
                    Some(Err(e)) => answer.dead_letter_error = Some(Cow::Borrowed(e)),
                    None => {}
                }
            }
        }
        answer
    }
}

/// The numeric fields of the outcome log line (as Cloud Logging reads them) that Terraform counts
/// as distributions and charts on the dashboard (`terraform/dashboard.tf`, `measured_fields`; a
/// test holds the two to each other, another that each line carries them).
pub const MEASURED_FIELDS: [&str; 2] = ["callRows", "bytesInFlight"];

/// Messages whose attributes disagreed with their payload, since start-up (`routingMismatchTotal`).
static ROUTING_MISMATCHES: AtomicU64 = AtomicU64::new(0);

/// Where a log line joins its request's trace.
#[derive(Debug, Clone, Default)]
pub struct TraceFields {
    /// `projects/P/traces/T`.
    pub trace: Option<String>,
    pub span_id: Option<String>,
    pub sampled: Option<bool>,
}

/// The one outcome log line of a push. Errors are logged at ERROR, refusals at WARNING.
pub fn log(service: &str, report: &Report, trace: &TraceFields, latency: Duration) {
    let s = &report.summary;
    let v = report.verdict();
    let mismatch_total = if s.mismatches.is_empty() {
        ROUTING_MISMATCHES.load(Ordering::Relaxed)
    } else {
        ROUTING_MISMATCHES.fetch_add(1, Ordering::Relaxed) + 1
    };
    let (outcome, status) = (v.label.as_str(), v.status.as_u16());
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                service,
                message_id = s.message_id.as_deref().unwrap_or(""),
                subscription = s.subscription.as_deref().unwrap_or(""),
                delivery_attempt = s.delivery_attempt.unwrap_or(0),
                event_id = s.event_id.as_deref().unwrap_or(""),
                feature = s.feature.as_deref().unwrap_or(""),
                action = s.action.as_deref().unwrap_or(""),
                route = s.route.unwrap_or(""),
                transcript = s.transcript.unwrap_or(false),
                outcome,
                reason = v.reason,
                detail = v.detail.as_ref(),
                status,
                redacted_keys = s.redacted_keys,
                routing_mismatch = s.mismatches.join(","),
                routing_mismatch_total = mismatch_total,
                latency_ms = latency.as_millis() as u64,
                call_rows = s.call_rows.map(|n| n as u64),
                bytes_in_flight = s.bytes_in_flight.map(|n| n as u64),
                http_request.request_method = "POST",
                http_request.status = status,
                http_request.latency = format!("{:.6}s", latency.as_secs_f64()),
                trace = trace.trace.as_deref(),
                span_id = trace.span_id.as_deref(),
                trace_sampled = trace.sampled,
                "push {outcome}"
            )
        };
    }
    match level(v.label) {
        tracing::Level::ERROR => line!(error),
        tracing::Level::WARN => line!(warn),
        _ => line!(info),
    }
}

/// The severity of an outcome's line: errors at ERROR, refusals at WARNING, successes at INFO.
pub fn level(label: Label) -> tracing::Level {
    match label {
        Label::Retry => tracing::Level::ERROR,
        Label::Rejected | Label::DeadLettered | Label::Unauthorized => tracing::Level::WARN,
        Label::Written | Label::AlreadyStored | Label::Skipped => tracing::Level::INFO,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
            lines.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_outcome_line_carries_the_measured_fields_as_numbers() {
        use tracing_subscriber::layer::SubscriberExt;
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_stackdriver::layer()
                .with_writer(crate::logging::CloudLogging(move || writer.clone())),
        );
        let report = Report {
            result: Ok(Outcome::Written { target: "t".into() }),
            summary: Summary {
                call_rows: Some(37),
                bytes_in_flight: Some(5 << 20),
                ..Summary::default()
            },
            dead_letter: None,
        };
        tracing::subscriber::with_default(subscriber, || {
            log(
                "sub-v2",
                &report,
                &TraceFields::default(),
                Duration::from_millis(3),
            )
        });
        let text = lines.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let line: serde_json::Value = serde_json::from_slice(&text).expect("one JSON line");
        for field in MEASURED_FIELDS {
            assert!(line[field].as_u64().is_some(), "{field} missing: {line}");
        }
        assert_eq!(line["callRows"], 37);
        assert_eq!(line["bytesInFlight"], 5 << 20);
        assert_eq!(line["service"], "sub-v2");
    }

    #[test]
    fn a_success_is_acked_and_logged_at_info_and_nothing_else_is_at_info() {
        let successes: Vec<_> = Label::ALL.into_iter().filter(|l| l.is_success()).collect();
        assert_eq!(
            successes,
            [Label::Written, Label::AlreadyStored, Label::Skipped]
        );
        for l in Label::ALL {
            assert!(!l.is_success() || l.is_ack(), "{l}");
            assert_eq!(l.is_success(), level(l) == tracing::Level::INFO, "{l}");
        }
    }

    #[test]
    fn labels_round_trip_and_are_unique() {
        for l in Label::ALL {
            assert_eq!(Label::parse(l.as_str()), Some(l));
        }
        let mut names: Vec<_> = Label::ALL.iter().map(|l| l.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Label::ALL.len());
    }

    #[test]
    fn verdicts() {
        let report = |result, dead_letter| Report {
            result,
            summary: Summary::default(),
            dead_letter,
        };
        let bad = Failure::malformed("invalid_json", "x");
        let cases = [
            (
                report(Ok(Outcome::Written { target: "t".into() }), None),
                Label::Written,
                200,
            ),
            (
                report(Err(bad.clone()), Some(Ok("1".into()))),
                Label::DeadLettered,
                200,
            ),
            (
                report(Err(bad.clone()), Some(Err("down".into()))),
                Label::Retry,
                503,
            ),
            (report(Err(bad), None), Label::Rejected, 400),
            (
                report(
                    Err(Failure::new(FailureKind::Unauthorized, "no_token", "x")),
                    None,
                ),
                Label::Unauthorized,
                401,
            ),
            (
                report(
                    Err(Failure::new(FailureKind::BodyTimeout, "body_timeout", "x")),
                    None,
                ),
                Label::Retry,
                408,
            ),
        ];
        for (r, label, status) in cases {
            let v = r.verdict();
            assert_eq!((v.label, v.status.as_u16()), (label, status), "{r:?}");
            assert_eq!(v.label.is_ack(), status == 200);
        }
    }
}
