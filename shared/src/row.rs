//! The BigQuery row: one `event_telemetry` row per event, mapped to `schema/event_telemetry.json`.
//!
//! Built only from typed fields of the parsed event, so unknown fields of the payload never reach
//! BigQuery, and `privateMetadata` only ever after redaction ([`EventRow::build`] takes a
//! [`Redacted`], which only a redactor makes, so there is no way to build a row that skipped it). The raw
//! license key is replaced by its SHA-256. JSON columns are sent as JSON-encoded strings (accepted
//! by BigQuery, and the only form the emulator takes); timestamps as RFC 3339 strings. The
//! `private_metadata` column arrives already written as that string by the one-pass redaction
//! ([`JsonColumnText::Literal`]) and is copied into the row as it is.

pub mod arrow;
mod ipc;
pub mod tokens;

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::classify::Classification;
use crate::decode::PushMessage;
use crate::event::EventId;
use crate::event::{Event, Interaction, Parameters, RequestMetadata, TelemetryPayload, User};
use crate::google::bigquery::InsertRow;
use crate::limits;
use crate::redact::Redacted;
use tokens::RowTokens;

/// One `event_telemetry` row. Field names are the column names.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow<'a> {
    pub message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_attempt: Option<u32>,
    pub attributes: JsonColumnText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_source: Option<&'a str>,
    pub handler: &'static str,
    pub event_id: &'a str,
    /// The event's time, clamped into the partition bounds BigQuery accepts ([`limits`]).
    pub event_timestamp: String,
    pub feature: &'a str,
    pub action: &'a str,
    pub source: SourceCols<'a>,
    pub parameters: ParameterCols<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserCols<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<JsonColumnText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marketing_tracking: Option<MarketingCols<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<InteractionCols<'a>>,
    pub request_metadata: RequestMetadataCols<'a>,
    pub is_transcript: bool,
    pub is_dotcom: bool,
    pub transcript_flag: bool,
    pub redacted_keys: Vec<String>,
    pub routing_mismatches: &'a [&'static str],
    pub ingested_at: String,
    /// The event's own time when it was outside those bounds (a wrong clock, a replay of old
    /// data); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_timestamp_original: Option<String>,
    /// JSON columns left out so that the row could be inserted at all ([`EventRow::encode`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_columns: Vec<DroppedColumn>,
}

/// A JSON column the row had to leave out: which, why, and how large it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedColumn {
    /// The column, e.g. `parameters.private_metadata`.
    pub path: &'static str,
    /// `too_large` (the row would exceed [`limits::MAX_ROW_BYTES`]) or `too_deep` (nested
    /// deeper than [`limits::JSON_COLUMN_MAX_DEPTH`]).
    pub reason: &'static str,
    /// The column's encoded size.
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<&'a str>,
}

/// A JSON column's value as the row carries it: a JSON string literal holding the column's JSON
/// text (BigQuery takes JSON columns as JSON-encoded strings), written once and copied into the
/// row as it is.
#[derive(Debug, Clone)]
pub struct JsonColumnText {
    literal: Box<RawValue>,
    /// How deep the column's JSON is nested.
    depth: usize,
}

impl JsonColumnText {
    /// The column for `value` (a flat map: nesting 1): its JSON text, as a JSON string literal,
    /// both written by serde_json.
    fn of<T: Serialize>(value: &T) -> Self {
        // Serialising maps of strings and numbers, and then a string, cannot fail.
        let literal = serde_json::to_string(value)
            .and_then(|text| serde_json::value::to_raw_value(&text))
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self { literal, depth: 1 }
    }

    /// The column from a literal the redaction wrote ([`Redacted::literal`]), checked to be one
    /// JSON value by serde_json. The redaction's walk writes valid literals (its proptest holds
    /// it); one that is not would be a bug there, and the column is then left empty (null)
    /// rather than sent as text BigQuery could misread.
    fn from_literal(literal: String, depth: usize) -> Self {
        let literal = RawValue::from_string(literal).unwrap_or_else(|_| {
            debug_assert!(false, "the redaction wrote a literal that is not JSON");
            RawValue::NULL.to_owned()
        });
        Self { literal, depth }
    }

    /// The bytes it adds to the encoded row.
    pub fn len(&self) -> usize {
        self.literal.get().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Serialize for JsonColumnText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.literal.serialize(serializer)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ParameterCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonColumnText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_metadata: Option<JsonColumnText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_metadata: Option<JsonColumnText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_category: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserCols<'a> {
    /// int64 as a string: BigQuery accepts it for INTEGER, and no JSON layer rounds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sams_external_id: Option<&'a str>,
}

/// `event.marketingTracking`, column names in snake_case.
#[derive(Debug, Clone, Serialize)]
pub struct MarketingCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_source_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_source_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_referrer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_first_url: Option<&'a str>,
}

impl<'a> From<&'a crate::event::MarketingTracking> for MarketingCols<'a> {
    fn from(m: &'a crate::event::MarketingTracking) -> Self {
        Self {
            url: m.url.as_deref(),
            first_source_url: m.first_source_url.as_deref(),
            cohort_id: m.cohort_id.as_deref(),
            referrer: m.referrer.as_deref(),
            last_source_url: m.last_source_url.as_deref(),
            device_session_id: m.device_session_id.as_deref(),
            session_referrer: m.session_referrer.as_deref(),
            session_first_url: m.session_first_url.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InteractionCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestMetadataCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    pub identifier_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_key_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_environment: Option<&'a str>,
}

impl<'a> SourceCols<'a> {
    fn of(event: &'a Event) -> Self {
        let server = event.source.as_ref().and_then(|s| s.server.as_ref());
        let client = event.source.as_ref().and_then(|s| s.client.as_ref());
        Self {
            server_version: server.and_then(|s| s.version.as_deref()),
            client_name: client.and_then(|c| c.name.as_deref()),
            client_version: client.and_then(|c| c.version.as_deref()),
        }
    }
}

impl<'a> ParameterCols<'a> {
    fn of(p: &'a Parameters, private_metadata: Option<JsonColumnText>) -> Self {
        Self {
            version: p.version,
            metadata: p.metadata.as_ref().map(JsonColumnText::of),
            legacy_metadata: p.legacy_metadata.as_ref().map(JsonColumnText::of),
            private_metadata,
            billing_product: p
                .billing_metadata
                .as_ref()
                .and_then(|b| b.product.as_deref()),
            billing_category: p
                .billing_metadata
                .as_ref()
                .and_then(|b| b.category.as_deref()),
        }
    }
}

impl<'a> UserCols<'a> {
    fn of(u: &'a User) -> Self {
        Self {
            user_id: u.user_id.map(|id| id.0.to_string()),
            anonymous_user_id: u.anonymous_user_id.as_deref(),
            sams_external_id: u.sams_external_id.as_deref(),
        }
    }
}

impl<'a> InteractionCols<'a> {
    fn of(i: &'a Interaction) -> Self {
        Self {
            trace_id: i.trace_id.as_deref(),
            interaction_id: i.interaction_id.as_deref(),
            country_code: i
                .geolocation
                .as_ref()
                .and_then(|g| g.country_code.as_deref()),
        }
    }
}

impl<'a> RequestMetadataCols<'a> {
    fn of(metadata: &'a RequestMetadata) -> Self {
        let identifier = metadata.identifier.as_ref();
        let instance = identifier.and_then(|i| i.instance());
        let service = identifier.and_then(|i| i.managed_service.as_ref());
        Self {
            request_id: metadata.request_id.as_deref(),
            identifier_type: identifier.map_or("unknown", |i| i.kind()),
            instance_id: instance.and_then(|i| i.instance_id.as_deref()),
            external_url: instance.and_then(|i| i.external_url.as_deref()),
            license_key_sha256: identifier
                .and_then(|i| i.licensed_instance.as_ref())
                .and_then(|i| i.license_key.as_deref())
                .map(license_key_sha256),
            service_id: service.and_then(|s| s.service_id.as_deref()),
            service_environment: service.and_then(|s| s.service_environment.as_deref()),
        }
    }
}

/// What the row mapper needs about one message.
pub struct RowSource<'a> {
    pub message: &'a PushMessage,
    pub payload: &'a TelemetryPayload<'a>,
    pub classification: &'a Classification,
    pub handler: &'static str,
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The row's `insertId`: the event id, or, for an id longer than BigQuery accepts, `sha256:` and
/// the hex digest of it (deterministic, so a redelivery still gets the same insert id).
pub fn insert_id(id: &EventId) -> String {
    if id.as_str().chars().count() <= limits::INSERT_ID_MAX_CHARS {
        id.as_str().to_owned()
    } else {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(id.as_str().as_bytes()))
        )
    }
}

/// Hex SHA-256 of a license key: lets analysts group by key without storing it.
pub fn license_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl<'a> EventRow<'a> {
    /// Builds the row from typed fields only, with `privateMetadata` as the redactor left it.
    pub fn build(src: RowSource<'a>, redacted: Redacted, ingested_at: DateTime<Utc>) -> Self {
        let RowSource {
            message,
            payload,
            classification,
            handler,
        } = src;
        let event = &payload.event;
        let (literal, redacted_keys, private_depth) = redacted.into_parts();
        let private_metadata = literal.map(|l| JsonColumnText::from_literal(l, private_depth));
        let (earliest, latest) = limits::partition_bounds(ingested_at);
        let clamped = event.timestamp.clamp(earliest, latest);
        EventRow {
            message_id: &message.message_id,
            publish_time: message.publish_time.as_ref().map(ts),
            subscription: message.subscription.as_deref(),
            delivery_attempt: message.delivery_attempt,
            attributes: JsonColumnText::of(&message.attributes),
            publisher_source: message
                .attributes
                .get("publisher.source")
                .map(String::as_str),
            handler,
            event_id: event.id.as_str(),
            event_timestamp: ts(&clamped),
            feature: &event.feature,
            action: &event.action,
            source: SourceCols::of(event),
            parameters: ParameterCols::of(&event.parameters, private_metadata),
            user: event.user.as_ref().map(UserCols::of),
            feature_flags: event
                .feature_flags
                .as_ref()
                .and_then(|f| f.flags.as_ref())
                .map(JsonColumnText::of),
            marketing_tracking: event.marketing_tracking.as_ref().map(MarketingCols::from),
            interaction: event.interaction.as_ref().map(InteractionCols::of),
            request_metadata: RequestMetadataCols::of(&payload.metadata),
            is_transcript: classification.is_transcript(),
            is_dotcom: classification.checks.dotcom,
            transcript_flag: classification.checks.flagged,
            redacted_keys,
            routing_mismatches: &classification.mismatches,
            ingested_at: ts(&ingested_at),
            event_timestamp_original: (clamped != event.timestamp).then(|| ts(&event.timestamp)),
            dropped_columns: Vec::new(),
        }
    }

    /// Step 4a: encodes the row once, made insertable first. A JSON column nested deeper than
    /// BigQuery accepts is left out; while the encoded row is larger than [`limits::MAX_ROW_BYTES`],
    /// the largest JSON column left is too (only they can be that large, and the transcript keys
    /// are gone already). Each is recorded in `dropped_columns`, never silently. A row still too
    /// large without them is an error, and the message is dead-lettered with it.
    pub fn encode(mut self, insert_id: String, form: RowForm) -> Result<PreparedRow, EncodeError> {
        for column in JsonColumn::ALL {
            // Measured when the column was written (by the redaction's walk for privateMetadata).
            let too_deep = column
                .slot(&mut self)
                .as_ref()
                .is_some_and(|c| c.depth > limits::JSON_COLUMN_MAX_DEPTH);
            if too_deep {
                self.drop_column(column, "too_deep");
            }
        }
        loop {
            let row = PreparedRow::in_form(insert_id.clone(), &self, form)?;
            let len = row.json_len();
            if len <= limits::MAX_ROW_BYTES {
                return Ok(row);
            }
            let largest = JsonColumn::ALL
                .into_iter()
                .filter_map(|c| c.slot(&mut self).as_ref().map(|col| (col.len(), c)))
                .max_by_key(|(len, _)| *len);
            match largest {
                Some((_, column)) => self.drop_column(column, "too_large"),
                None => return Err(EncodeError::TooLarge(len)),
            }
        }
    }

    fn drop_column(&mut self, column: JsonColumn, reason: &'static str) {
        let bytes = column.slot(self).take().map_or(0, |col| col.len());
        self.dropped_columns.push(DroppedColumn {
            path: column.name(),
            reason,
            bytes,
        });
    }
}

/// Why a row cannot be sent at all. Neither says anything about the row's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the row cannot be encoded as JSON")]
    Unencodable,
    #[error(
        "the row is {0} bytes without its JSON columns, more than BigQuery accepts in a request"
    )]
    TooLarge(usize),
}

impl EncodeError {
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::Unencodable => "row_unencodable",
            EncodeError::TooLarge(_) => "row_too_large",
        }
    }
}

/// The JSON columns a row can do without, to be insertable ([`EventRow::encode`]). `attributes`
/// is not one: Pub/Sub bounds it (100 attributes, about 130 KB, one level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonColumn {
    PrivateMetadata,
    Metadata,
    LegacyMetadata,
    FeatureFlags,
}

impl JsonColumn {
    const ALL: [JsonColumn; 4] = [
        JsonColumn::PrivateMetadata,
        JsonColumn::Metadata,
        JsonColumn::LegacyMetadata,
        JsonColumn::FeatureFlags,
    ];

    fn name(self) -> &'static str {
        match self {
            JsonColumn::PrivateMetadata => "parameters.private_metadata",
            JsonColumn::Metadata => "parameters.metadata",
            JsonColumn::LegacyMetadata => "parameters.legacy_metadata",
            JsonColumn::FeatureFlags => "feature_flags",
        }
    }

    fn slot<'r>(self, row: &'r mut EventRow<'_>) -> &'r mut Option<JsonColumnText> {
        match self {
            JsonColumn::PrivateMetadata => &mut row.parameters.private_metadata,
            JsonColumn::Metadata => &mut row.parameters.metadata,
            JsonColumn::LegacyMetadata => &mut row.parameters.legacy_metadata,
            JsonColumn::FeatureFlags => &mut row.feature_flags,
        }
    }
}

/// One row, encoded once, in the form its sink writes ([`RowForm`]).
#[derive(Debug, Clone)]
pub struct PreparedRow {
    /// BigQuery's best-effort deduplication key: the event id.
    pub insert_id: String,
    /// Shared, so that a batch BigQuery refuses as a whole can be sent again in halves without
    /// copying its rows ([`crate::sink::batch`]).
    body: RowBody,
}

/// The two forms of a row: the same values, written two ways.
#[derive(Debug, Clone)]
enum RowBody {
    /// The row object as JSON text: `insertAll`'s request is written from it.
    Json(Arc<RawValue>),
    /// The row's serde calls, recorded: the Storage Write path fills Arrow columns from them.
    Tokens(Arc<RowTokens>),
}

/// Which form a sink wants its rows in ([`crate::sink::RowSink::row_form`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowForm {
    /// JSON text (`insertAll`, the tests' table in memory).
    #[default]
    Json,
    /// Recorded values ([`RowTokens`]): Arrow columns without parsing JSON (the Storage Write API).
    Tokens,
}

impl PreparedRow {
    /// `row` as JSON text.
    pub fn new(insert_id: String, row: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self {
            insert_id,
            body: RowBody::Json(Arc::from(serde_json::value::to_raw_value(row)?)),
        })
    }

    /// `row` in `form`.
    pub fn in_form(
        insert_id: String,
        row: &impl Serialize,
        form: RowForm,
    ) -> Result<Self, EncodeError> {
        match form {
            RowForm::Json => Self::new(insert_id, row).map_err(|_| EncodeError::Unencodable),
            RowForm::Tokens => Ok(Self {
                insert_id,
                body: RowBody::Tokens(Arc::new(
                    RowTokens::record(row).map_err(|_| EncodeError::Unencodable)?,
                )),
            }),
        }
    }

    /// The length of the row's JSON text (for a recorded row, without writing it).
    pub fn json_len(&self) -> usize {
        match &self.body {
            RowBody::Json(json) => json.get().len(),
            RowBody::Tokens(tokens) => tokens.json_len(),
        }
    }

    /// The row's JSON text (written now for a recorded row: only the tests and a misconfigured
    /// sink ask a recorded row for it).
    pub fn json(&self) -> Cow<'_, str> {
        match &self.body {
            RowBody::Json(json) => Cow::Borrowed(json.get()),
            RowBody::Tokens(tokens) => {
                Cow::Owned(serde_json::to_string(tokens.as_ref()).unwrap_or_else(|_| "null".into()))
            }
        }
    }

    /// The row's recorded values (recorded now from its JSON text for a JSON row, which only
    /// the tests give a Storage Write sink).
    pub fn tokens(&self) -> Result<Cow<'_, RowTokens>, EncodeError> {
        match &self.body {
            RowBody::Tokens(tokens) => Ok(Cow::Borrowed(tokens.as_ref())),
            RowBody::Json(json) => serde_json::from_str::<Value>(json.get())
                .ok()
                .and_then(|value| RowTokens::record(&value).ok())
                .map(Cow::Owned)
                .ok_or(EncodeError::Unencodable),
        }
    }

    /// The bytes this row adds to an `insertAll` request ([`InsertRow::encoded_len`]), which
    /// also bounds what it adds to an append.
    pub fn encoded_len(&self) -> usize {
        InsertRow::encoded_len_of(&self.insert_id, self.json_len())
    }

    /// The row in an `insertAll` request, its JSON text `json` ([`PreparedRow::json`]).
    pub fn insert_row<'a>(&'a self, json: &'a str) -> InsertRow<'a> {
        InsertRow {
            insert_id: &self.insert_id,
            json,
        }
    }

    /// The row as a JSON tree (tests and `replay inspect` look at it).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json()).unwrap_or(Value::Null)
    }
}
