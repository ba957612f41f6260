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
pub struct EventRow {
    pub message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_attempt: Option<u32>,
    pub attributes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_source: Option<String>,
    pub handler: &'static str,
    pub event_id: String,
    pub event_timestamp: String,
    pub feature: String,
    pub action: String,
    pub source: SourceCols,
    pub parameters: ParameterCols,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserCols>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marketing_tracking: Option<MarketingCols>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<InteractionCols>,
    pub request_metadata: RequestMetadataCols,
    pub is_transcript: bool,
    pub is_dotcom: bool,
    pub transcript_flag: bool,
    pub redacted_keys: Vec<String>,
    pub routing_mismatches: Vec<&'static str>,
    pub ingested_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceCols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParameterCols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_category: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserCols {
    /// int64 as a string: BigQuery accepts it for INTEGER, and no JSON layer rounds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sams_external_id: Option<String>,
}

/// `event.marketingTracking`, column names in snake_case.
#[derive(Debug, Clone, Serialize)]
pub struct MarketingCols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_first_url: Option<String>,
}

impl From<&crate::event::MarketingTracking> for MarketingCols {
    fn from(m: &crate::event::MarketingTracking) -> Self {
        Self {
            url: m.url.clone(),
            first_source_url: m.first_source_url.clone(),
            cohort_id: m.cohort_id.clone(),
            referrer: m.referrer.clone(),
            last_source_url: m.last_source_url.clone(),
            device_session_id: m.device_session_id.clone(),
            session_referrer: m.session_referrer.clone(),
            session_first_url: m.session_first_url.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InteractionCols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestMetadataCols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub identifier_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_key_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_environment: Option<String>,
}

impl SourceCols {
    fn of(event: &Event) -> Self {
        let server = event.source.as_ref().and_then(|s| s.server.as_ref());
        let client = event.source.as_ref().and_then(|s| s.client.as_ref());
        Self {
            server_version: server.and_then(|s| s.version.clone()),
            client_name: client.and_then(|c| c.name.clone()),
            client_version: client.and_then(|c| c.version.clone()),
        }
    }
}

impl ParameterCols {
    fn of(p: &Parameters, private_metadata: Option<String>) -> Self {
        Self {
            version: p.version,
            metadata: p.metadata.as_ref().map(json_string),
            legacy_metadata: p.legacy_metadata.as_ref().map(json_string),
            private_metadata,
            billing_product: p.billing_metadata.as_ref().and_then(|b| b.product.clone()),
            billing_category: p.billing_metadata.as_ref().and_then(|b| b.category.clone()),
        }
    }
}

impl UserCols {
    fn of(u: &User) -> Self {
        Self {
            user_id: u.user_id.map(|id| id.0.to_string()),
            anonymous_user_id: u.anonymous_user_id.clone(),
            sams_external_id: u.sams_external_id.clone(),
        }
    }
}

impl InteractionCols {
    fn of(i: &Interaction) -> Self {
        Self {
            trace_id: i.trace_id.clone(),
            interaction_id: i.interaction_id.clone(),
            country_code: i.geolocation.as_ref().and_then(|g| g.country_code.clone()),
        }
    }
}

impl RequestMetadataCols {
    fn of(metadata: &RequestMetadata) -> Self {
        let identifier = metadata.identifier.as_ref();
        let instance = identifier.and_then(|i| i.instance());
        let service = identifier.and_then(|i| i.managed_service.as_ref());
        Self {
            request_id: metadata.request_id.clone(),
            identifier_type: identifier.map_or("unknown", |i| i.kind()),
            instance_id: instance.and_then(|i| i.instance_id.clone()),
            external_url: instance.and_then(|i| i.external_url.clone()),
            license_key_sha256: identifier
                .and_then(|i| i.licensed_instance.as_ref())
                .and_then(|i| i.license_key.as_deref())
                .map(license_key_sha256),
            service_id: service.and_then(|s| s.service_id.clone()),
            service_environment: service.and_then(|s| s.service_environment.clone()),
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

impl EventRow {
    /// Builds the row from typed fields only, with `privateMetadata` as the redactor left it.
    pub fn build(src: RowSource<'_>, redacted: Redacted, ingested_at: DateTime<Utc>) -> Self {
        let RowSource {
            message,
            payload,
            classification,
            handler,
        } = src;
        let event = &payload.event;
        let (private_metadata, redacted_keys) = redacted.into_parts();
        EventRow {
            message_id: message.message_id.clone(),
            publish_time: message.publish_time.as_ref().map(ts),
            subscription: message.subscription.clone(),
            delivery_attempt: message.delivery_attempt,
            attributes: json_string(&message.attributes),
            publisher_source: message.attributes.get("publisher.source").cloned(),
            handler,
            event_id: event.id.as_str().to_owned(),
            event_timestamp: ts(&event.timestamp),
            feature: event.feature.clone(),
            action: event.action.clone(),
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
            routing_mismatches: classification.mismatches.clone(),
            ingested_at: ts(&ingested_at),
        }
    }
}
