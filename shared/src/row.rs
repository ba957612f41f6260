//! The BigQuery row: one `event_telemetry` row per event, mapped to `schema/event_telemetry.json`.
//!
//! Built only from typed fields of the parsed event, so unknown fields of the payload never reach
//! BigQuery, and `privateMetadata` only ever after redaction ([`EventRow::build`] takes a
//! [`Redacted`], which only a redactor makes, so there is no way to build a row that skipped it). The raw
//! license key is replaced by its SHA-256. JSON columns are sent as JSON-encoded strings (accepted
//! by BigQuery, and the only form the emulator takes); timestamps as RFC 3339 strings.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::classify::Classification;
use crate::decode::PushMessage;
use crate::event::{Event, Interaction, Parameters, RequestMetadata, TelemetryPayload, User};
use crate::redact::Redacted;

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
    pub attributes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_source: Option<&'a str>,
    pub handler: &'static str,
    pub event_id: &'a str,
    pub event_timestamp: String,
    pub feature: &'a str,
    pub action: &'a str,
    pub source: SourceCols<'a>,
    pub parameters: ParameterCols<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserCols<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<String>,
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

#[derive(Debug, Clone, Serialize)]
pub struct ParameterCols<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_metadata: Option<String>,
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
    fn of(p: &'a Parameters, private_metadata: Option<String>) -> Self {
        Self {
            version: p.version,
            metadata: p.metadata.as_ref().map(json_string),
            legacy_metadata: p.legacy_metadata.as_ref().map(json_string),
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
    pub payload: &'a TelemetryPayload,
    pub classification: &'a Classification,
    pub handler: &'static str,
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn json_string<T: Serialize>(v: &T) -> String {
    // Serialising maps of strings and numbers cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
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
        let (private_metadata, redacted_keys) = redacted.into_parts();
        EventRow {
            message_id: &message.message_id,
            publish_time: message.publish_time.as_ref().map(ts),
            subscription: message.subscription.as_deref(),
            delivery_attempt: message.delivery_attempt,
            attributes: json_string(&message.attributes),
            publisher_source: message
                .attributes
                .get("publisher.source")
                .map(String::as_str),
            handler,
            event_id: event.id.as_str(),
            event_timestamp: ts(&event.timestamp),
            feature: &event.feature,
            action: &event.action,
            source: SourceCols::of(event),
            parameters: ParameterCols::of(&event.parameters, private_metadata),
            user: event.user.as_ref().map(UserCols::of),
            feature_flags: event
                .feature_flags
                .as_ref()
                .and_then(|f| f.flags.as_ref())
                .map(json_string),
            marketing_tracking: event.marketing_tracking.as_ref().map(MarketingCols::from),
            interaction: event.interaction.as_ref().map(InteractionCols::of),
            request_metadata: RequestMetadataCols::of(&payload.metadata),
            is_transcript: classification.is_transcript(),
            is_dotcom: classification.checks.dotcom,
            transcript_flag: classification.checks.flagged,
            redacted_keys,
            routing_mismatches: &classification.mismatches,
            ingested_at: ts(&ingested_at),
        }
    }
}
