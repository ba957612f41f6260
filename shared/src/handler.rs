//! The three handlers: decode → classify → redact → write, composed per service.
//!
//! [`Handler::handle`] takes a decoded [`PushMessage`] and returns a [`Report`]: what happened
//! ([`Outcome`]) or why not ([`Failure`]), plus the few safe facts the outcome log line needs.
//! Turning that into an HTTP status (the ack) is the server's job; nothing here logs payload text,
//! and no [`Failure`] detail contains any.
//!
//! - `to-gcs` writes every transcript event it receives (the payload decides) and skips anything
//!   else with the reason.
//! - `to-bq` and `sub-v2` each own one side of the attribute predicate ([`Route`]) and skip the
//!   other side as `not_for_this_subscription`, so a message is written to BigQuery by exactly one
//!   of them even when the subscription filters are missing (as on the emulator) or wrong.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Timelike, Utc};

use crate::classify::{Classification, Route};
use crate::config::{Rules, Service};
use crate::decode::PushMessage;
use crate::event::{Event, TelemetryPayload};
use crate::row::{EventRow, RowSource};
use crate::sink::{NewObject, ObjectStore, PreparedRow, RowSink, SinkError, Stored};

/// Where a handler writes.
#[derive(Clone)]
pub enum Destination {
    /// Cloud Storage: one object per transcript event under `prefix`.
    Objects {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
    /// BigQuery `event_telemetry`.
    Rows(Arc<dyn RowSink>),
}

/// A successful outcome: the push can be acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now: the object name, or the row's insert id.
    Written { target: String },
    /// The object already existed (a redelivery or a duplicate publish).
    AlreadyStored { target: String },
    /// Deliberately not written by this handler.
    Skipped { reason: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Written { .. } => "written",
            Outcome::AlreadyStored { .. } => "already_stored",
            Outcome::Skipped { .. } => "skipped",
        }
    }
}

/// Why a message was not handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request or message is not what Pub/Sub and the gateway send: 4xx, never retried into
    /// success; the subscription's dead-letter policy collects it.
    Malformed,
    /// The destination refused the data itself (BigQuery `invalid`): 4xx as well.
    Rejected,
    /// The destination failed or was unreachable: 5xx, Pub/Sub redelivers.
    Transient,
}

/// A failure: a stable code (`invalid_json`, `sink_unavailable`, …) and a detail without payload text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub code: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn malformed(code: &'static str, detail: impl ToString) -> Self {
        Self {
            kind: FailureKind::Malformed,
            code,
            detail: detail.to_string(),
        }
    }

    fn from_sink(e: SinkError) -> Self {
        match e {
            SinkError::Transient(detail) => Self {
                kind: FailureKind::Transient,
                code: "sink_unavailable",
                detail,
            },
            SinkError::Permanent(detail) => Self {
                kind: FailureKind::Rejected,
                code: "sink_rejected",
                detail,
            },
        }
    }
}

/// Safe facts about the message for the outcome log line (no payload text).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub event_id: Option<String>,
    pub feature: Option<String>,
    pub action: Option<String>,
    pub route: Option<&'static str>,
    pub transcript: Option<bool>,
    pub mismatches: Vec<&'static str>,
    pub redacted_keys: usize,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub result: Result<Outcome, Failure>,
    pub summary: Summary,
    /// For a permanent failure: the dead-letter message id, or why it could not be published.
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
}

/// One service's handler.
#[derive(Clone)]
pub struct Handler {
    service: Service,
    rules: Rules,
    destination: Destination,
}

impl Handler {
    /// `destination` must fit the service: objects for `to-gcs`, rows for the other two.
    pub fn new(service: Service, rules: Rules, destination: Destination) -> Result<Self, String> {
        match (service, &destination) {
            (Service::ToGcs, Destination::Objects { .. })
            | (Service::ToBq | Service::SubV2, Destination::Rows(_)) => Ok(Self {
                service,
                rules,
                destination,
            }),
            _ => Err(format!("{service} cannot write to this destination")),
        }
    }

    pub fn service(&self) -> Service {
        self.service
    }

    pub async fn handle(&self, message: &PushMessage) -> Report {
        let mut summary = Summary::default();
        let payload = match TelemetryPayload::parse(message.data.bytes()) {
            Ok(p) => p,
            Err(e) => {
                return Report {
                    result: Err(Failure::malformed(e.code(), e)),
                    summary,
                    dead_letter: None,
                };
            }
        };
        let event = &payload.event;
        let classification = Classification::of(
            event,
            &payload.metadata,
            &message.attributes,
            &self.rules.dotcom,
        );
        summary.event_id = Some(event.id.to_string());
        summary.feature = Some(clip(&event.feature));
        summary.action = Some(clip(&event.action));
        summary.route = Some(classification.route.as_str());
        summary.transcript = Some(classification.is_transcript());
        summary.mismatches = classification.mismatches.clone();

        let result = match (&self.destination, self.service) {
            (Destination::Objects { store, prefix }, _) => {
                self.write_object(store.as_ref(), prefix, message, &payload, &classification)
                    .await
            }
            (Destination::Rows(sink), service) => {
                let owned = match service {
                    Service::ToBq => Route::Transcript,
                    _ => Route::NonTranscript,
                };
                if classification.route != owned {
                    Ok(Outcome::Skipped {
                        reason: "not_for_this_subscription".into(),
                    })
                } else {
                    let row = EventRow::build(
                        RowSource {
                            message,
                            payload: &payload,
                            classification: &classification,
                            handler: self.service.name(),
                        },
                        &self.rules.redactor,
                        Utc::now(),
                    );
                    summary.redacted_keys = row.redacted_keys.len();
                    write_row(sink.as_ref(), event, row).await
                }
            }
        };
        Report {
            result,
            summary,
            dead_letter: None,
        }
    }

    async fn write_object(
        &self,
        store: &dyn ObjectStore,
        prefix: &str,
        message: &PushMessage,
        payload: &TelemetryPayload,
        classification: &Classification,
    ) -> Result<Outcome, Failure> {
        if let Some(reason) = classification.checks.skip_reason() {
            return Ok(Outcome::Skipped { reason });
        }
        let event = &payload.event;
        let name = object_name(prefix, event);
        let mut metadata = BTreeMap::new();
        metadata.insert("pubsub-message-id".into(), message.message_id.clone());
        metadata.insert("event-id".into(), event.id.to_string());
        metadata.insert("event-feature".into(), clip(&event.feature));
        metadata.insert("event-action".into(), clip(&event.action));
        let object = NewObject {
            name: name.clone(),
            data: message.data.bytes().clone(),
            content_type: "application/json",
            metadata,
        };
        match store.create_once(object).await {
            Ok(Stored::Created) => Ok(Outcome::Written { target: name }),
            Ok(Stored::AlreadyExists) => Ok(Outcome::AlreadyStored { target: name }),
            Err(e) => Err(Failure::from_sink(e)),
        }
    }
}

async fn write_row(sink: &dyn RowSink, event: &Event, row: EventRow) -> Result<Outcome, Failure> {
    let prepared = PreparedRow {
        insert_id: event.id.to_string(),
        json: row.to_json(),
    };
    let results = sink
        .insert(vec![prepared])
        .await
        .map_err(Failure::from_sink)?;
    match results.into_iter().next() {
        Some(Ok(())) => Ok(Outcome::Written {
            target: event.id.to_string(),
        }),
        Some(Err(e)) if e.is_permanent() => Err(Failure {
            kind: FailureKind::Rejected,
            code: "row_invalid",
            detail: format!("BigQuery rejected the row: {e}"),
        }),
        Some(Err(e)) => Err(Failure {
            kind: FailureKind::Transient,
            code: "row_not_inserted",
            detail: format!("BigQuery did not insert the row: {e}"),
        }),
        None => Err(Failure {
            kind: FailureKind::Transient,
            code: "row_not_inserted",
            detail: "BigQuery returned no result for the row".into(),
        }),
    }
}

/// `{prefix}/YYYY/MM/DD/HH/{event id}.json`, from the event's own time (UTC): deterministic, so
/// every redelivery of an event targets the same object.
pub fn object_name(prefix: &str, event: &Event) -> String {
    let t = event.timestamp;
    let tail = format!(
        "{:04}/{:02}/{:02}/{:02}/{}.json",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        event.id.for_object_name()
    );
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

/// Feature and action are short identifiers (`^[a-z][a-zA-Z-.]+$`, at most 64 characters, checked
/// by the gateway); clip anything longer before it reaches a log line or object metadata.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
