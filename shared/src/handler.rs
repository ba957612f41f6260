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

use chrono::Utc;

use crate::classify::{Classification, Route};
use crate::config::{Rules, Service};
use crate::decode::PushMessage;
use crate::event::{Event, TelemetryPayload};
use crate::failure::{Failure, FailureKind};
use crate::object_name;
use crate::outcome::{NOT_FOR_THIS_SUBSCRIPTION, Outcome, Report, Summary};
use crate::redact::Redacted;
use crate::row::{EventRow, PreparedRow, RowForm, RowSource, insert_id};
use crate::sink::{NewObject, ObjectStore, RowSink, Stored};

/// Where a handler writes: objects for `to-gcs`, rows for the other two.
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

/// A destination bound to its service: the table writer knows the route it owns.
#[derive(Clone)]
enum Writer {
    Bucket {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
    Table {
        sink: Arc<dyn RowSink>,
        owns: Route,
    },
}

/// One service's handler.
#[derive(Clone)]
pub struct Handler {
    service: Service,
    rules: Rules,
    writer: Writer,
}

impl Handler {
    /// `destination` must fit the service: objects for `to-gcs`, rows for the other two.
    pub fn new(service: Service, rules: Rules, destination: Destination) -> Result<Self, String> {
        let writer = match (service.bigquery_route(), destination) {
            (None, Destination::Objects { store, prefix }) => Writer::Bucket { store, prefix },
            (Some(owns), Destination::Rows(sink)) => Writer::Table { sink, owns },
            _ => return Err(format!("{service} cannot write to this destination")),
        };
        Ok(Self {
            service,
            rules,
            writer,
        })
    }

    pub fn service(&self) -> Service {
        self.service
    }

    /// Handles one message; the [`Report`] says what became of it.
    pub async fn handle(&self, message: &PushMessage) -> Report {
        let mut summary = Summary::of_message(message);
        let result = self.steps(message, &mut summary).await;
        Report {
            result,
            summary,
            dead_letter: None,
        }
    }

    /// The pipeline: parse the payload, classify it, then (for a row) redact and write.
    async fn steps(
        &self,
        message: &PushMessage,
        summary: &mut Summary,
    ) -> Result<Outcome, Failure> {
        let payload = TelemetryPayload::parse(message.data.bytes())?;
        let classification = self.classify(message, &payload, summary);
        match &self.writer {
            Writer::Bucket { store, prefix } => {
                payload.check_depth()?;
                if let Some(reason) = classification.checks.skip_reason() {
                    return Ok(Outcome::Skipped { reason });
                }
                let object = new_object(prefix, message, &payload.event);
                drop(payload); // not needed while the object is written
                write_object(store.as_ref(), object).await
            }
            Writer::Table { sink, owns } => {
                if classification.route != *owns {
                    payload.check_depth()?;
                    return Ok(Outcome::Skipped {
                        reason: NOT_FOR_THIS_SUBSCRIPTION.into(),
                    });
                }
                // The parsed tree and the row are dropped here, before the wait on the sink:
                // only the encoded row stays in memory.
                let form = sink.row_form();
                let row = self.prepare_row(message, payload, &classification, form, summary)?;
                write_row(sink.as_ref(), row, summary).await
            }
        }
    }

    /// Steps 3 and 4a: redact, build the row, encode it once.
    fn prepare_row(
        &self,
        message: &PushMessage,
        payload: TelemetryPayload,
        classification: &Classification,
        form: RowForm,
        summary: &mut Summary,
    ) -> Result<PreparedRow, Failure> {
        let redacted = self.redact(&payload, summary);
        // The walk measured how deep privateMetadata is: no scan of its own.
        TelemetryPayload::check_private_depth(redacted.whole_depth())?;
        let row = self.row(message, &payload, classification, redacted);
        row.encode(insert_id(&payload.event.id), form)
            .map_err(|e| Failure::new(FailureKind::Rejected, e.code(), e.to_string()))
    }

    /// Step 2: is it a transcript event, which route does it take; recorded for the log line.
    fn classify(
        &self,
        message: &PushMessage,
        payload: &TelemetryPayload,
        summary: &mut Summary,
    ) -> Classification {
        let event = &payload.event;
        let c = Classification::of(
            event,
            &payload.metadata,
            &message.attributes,
            &self.rules.dotcom,
        );
        summary.event_id = Some(event.id.to_string());
        summary.feature = Some(clip(&event.feature));
        summary.action = Some(clip(&event.action));
        summary.route = Some(c.route.as_str());
        summary.transcript = Some(c.is_transcript());
        summary.mismatches = c.mismatches.clone();
        c
    }

    /// Step 3: `privateMetadata` without the redacted keys (a row can only be built from this).
    fn redact(&self, payload: &TelemetryPayload, summary: &mut Summary) -> Redacted {
        let redacted = self
            .rules
            .redactor
            .redact_private(payload.event.parameters.private_metadata.as_ref());
        summary.redacted_keys = redacted.removed().len();
        redacted
    }

    fn row<'a>(
        &self,
        message: &'a PushMessage,
        payload: &'a TelemetryPayload,
        classification: &'a Classification,
        redacted: Redacted,
    ) -> EventRow<'a> {
        let source = RowSource {
            message,
            payload,
            classification,
            handler: self.service.name(),
        };
        EventRow::build(source, redacted, Utc::now())
    }
}

/// The object for `to-gcs`: the exact published bytes under a name from the event's id and time.
fn new_object(prefix: &str, message: &PushMessage, event: &Event) -> NewObject {
    let metadata = BTreeMap::from([
        ("pubsub-message-id".into(), message.message_id.clone()),
        ("event-id".into(), event.id.to_string()),
        ("event-feature".into(), clip(&event.feature)),
        ("event-action".into(), clip(&event.action)),
    ]);
    NewObject {
        name: object_name::for_event(prefix, event, message.data.bytes()),
        data: message.data.bytes().clone(),
        content_type: "application/json",
        metadata,
    }
}

/// Step 4 for `to-gcs`: create-once.
async fn write_object(store: &dyn ObjectStore, object: NewObject) -> Result<Outcome, Failure> {
    let name = object.name.clone();
    match store.create_once(object).await? {
        Stored::Created => Ok(Outcome::Written { target: name }),
        Stored::AlreadyExists => Ok(Outcome::AlreadyStored { target: name }),
    }
}

/// Step 4 for the BigQuery handlers: one row, its own verdict; the size of the call (append or
/// `insertAll`) that carried it goes to the log line.
async fn write_row(
    sink: &dyn RowSink,
    row: PreparedRow,
    summary: &mut Summary,
) -> Result<Outcome, Failure> {
    let target = row.insert_id.clone();
    let inserted = sink.write_one(row).await?;
    summary.call_rows = Some(inserted.request_rows);
    match inserted.verdict {
        Some(Ok(())) => Ok(Outcome::Written { target }),
        Some(Err(e)) if e.is_permanent() => Err(Failure::new(
            FailureKind::Rejected,
            "row_invalid",
            format!("BigQuery rejected the row: {e}"),
        )),
        Some(Err(e)) => Err(Failure::new(
            FailureKind::Transient,
            "row_not_inserted",
            format!("BigQuery did not insert the row: {e}"),
        )),
        None => Err(Failure::new(
            FailureKind::Transient,
            "row_not_inserted",
            "BigQuery returned no result for the row",
        )),
    }
}

/// Feature and action are short identifiers (`^[a-z][a-zA-Z-.]+$`, at most 64 characters, checked
/// by the gateway); clip anything longer before it reaches a log line or object metadata.
fn clip(s: &str) -> String {
    crate::limits::clip_chars(s, crate::limits::MAX_LOGGED_NAME_CHARS)
}
