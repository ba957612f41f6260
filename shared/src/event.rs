//! The telemetry v2 event model: what `message.data` holds once the push envelope is decoded.
//!
//! The telemetry gateway publishes one compact JSON object per event,
//! `{"event": <telemetrygateway.v1.Event>, "metadata": <RecordEventsRequestMetadata>}`, written by Go's
//! `protojson` with default options. So field names are lowerCamelCase (snake_case is accepted too, as
//! protojson parsers do), zero values are absent, int64 values are JSON strings (numbers are accepted
//! too), the numeric `parameters.metadata` map may hold the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, and unknown fields are tolerated (the proto grows). Fields that the gateway requires
//! (`id`, `timestamp`, `feature`, `action`) are required here as well.
//!
//! [`TelemetryPayload::parse`] parses, it does not validate: what comes out is typed, and the
//! [`RawData`] it was parsed from is kept, so that Cloud Storage gets exactly the published bytes.
//!
//! Privacy: `privateMetadata` and the license key never appear in `Debug` output or in parse errors.
//! A parse error names the field path and what was wrong with it, never the offending value.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The bytes of `message.data`, exactly as published.
#[derive(Clone, PartialEq, Eq)]
pub struct RawData(Bytes);

impl RawData {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for RawData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawData({} bytes)", self.0.len())
    }
}

/// Why `message.data` is not a telemetry v2 payload. Never contains a value from the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("message data is empty")]
    Empty,
    #[error("message data is not valid JSON ({kind}) at line {line} column {column}")]
    Syntax {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("message data is not a telemetry v2 payload: {problem} at `{path}`")]
    Shape { path: String, problem: String },
    #[error("event id is invalid: {0}")]
    InvalidId(&'static str),
    #[error("message data is nested {0} levels deep, deeper than any event the gateway accepts")]
    TooDeep(usize),
}

impl EventError {
    /// A short, stable code for logs, metrics and dead-letter attributes.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Empty => "empty_data",
            EventError::Syntax { .. } => "invalid_json",
            EventError::Shape { .. } => "invalid_payload",
            EventError::InvalidId(_) => "invalid_event_id",
            EventError::TooDeep(_) => "too_deep",
        }
    }
}

/// `{"event": …, "metadata": …}`: one telemetry v2 event and the metadata of the request that carried it.
/// `privateMetadata` is borrowed from the bytes it was parsed from, never copied.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryPayload<'a> {
    #[serde(borrow)]
    pub event: Event<'a>,
    #[serde(default)]
    pub metadata: RequestMetadata,
}

impl<'a> TelemetryPayload<'a> {
    /// Parses `message.data`. The error says where and what, never which value.
    pub fn parse(data: &'a [u8]) -> Result<Self, EventError> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err(EventError::Empty);
        }
        // The fast path parses without tracking paths, within serde_json's default nesting
        // limit (128); only a payload that fails is parsed again, with path tracking to say where
        // (it costs about a third of the parse), and with any nesting the gateway can send, on a
        // stack that grows as needed.
        if let Ok(payload) = serde_json::from_slice::<Self>(data) {
            return Ok(payload);
        }
        let depth = crate::limits::json_depth(data);
        if depth > crate::limits::MAX_EVENT_DEPTH {
            return Err(EventError::TooDeep(depth));
        }
        // On a stack of its own: a payload that fails after a deep value was built drops that
        // value inside the parser, recursively, before any iterative `Drop` can take it apart.
        stacker::grow(crate::limits::DEEP_PARSE_STACK, || Self::parse_deep(data))
    }

    /// `privateMetadata` is kept as text, so the parser never walked its nesting: an event whose
    /// `privateMetadata` is deeper than any the gateway accepts is refused, like any other
    /// too-deep event, by this check (a scan; text shorter than twice the limit cannot be that
    /// deep and is not scanned), or, on the row path, by the redaction's walk, which measures it
    /// anyway ([`TelemetryPayload::check_private_depth`]).
    pub fn check_depth(&self) -> Result<(), EventError> {
        let Some(pm) = &self.event.parameters.private_metadata else {
            return Ok(());
        };
        if pm.json().len() <= 2 * crate::limits::MAX_EVENT_DEPTH {
            return Ok(());
        }
        Self::check_private_depth(crate::limits::json_depth(pm.json().as_bytes()))
    }

    /// Whether `privateMetadata` nested `depth` deep keeps the event within the gateway's limit
    /// (`{"event":{"parameters":{"privateMetadata":…`: three levels above it).
    pub fn check_private_depth(depth: usize) -> Result<(), EventError> {
        let whole = 3 + depth;
        if whole > crate::limits::MAX_EVENT_DEPTH {
            Err(EventError::TooDeep(whole))
        } else {
            Ok(())
        }
    }

    /// The slow path: any nesting up to [`crate::limits::MAX_EVENT_DEPTH`], with the path of
    /// whatever is wrong.
    fn parse_deep(data: &'a [u8]) -> Result<Self, EventError> {
        let mut de = serde_json::Deserializer::from_slice(data);
        de.disable_recursion_limit();
        let stacked = serde_stacker::Deserializer {
            de: &mut de,
            red_zone: crate::limits::STACK_RED_ZONE,
            stack_size: crate::limits::STACK_GROWTH,
        };
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(stacked);
        let payload = match parsed {
            Ok(payload) => payload,
            Err(err) => return Err(describe(err)),
        };
        de.end().map_err(|e| syntax(&e))?;
        Ok(payload)
    }
}

fn syntax(err: &serde_json::Error) -> EventError {
    let kind = match err.classify() {
        serde_json::error::Category::Eof => "truncated",
        _ => "syntax error",
    };
    EventError::Syntax {
        kind,
        line: err.line(),
        column: err.column(),
    }
}

fn describe(err: serde_path_to_error::Error<serde_json::Error>) -> EventError {
    let path = safe_path(err.path());
    let inner = err.inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            // serde's own message may quote the offending value (`invalid type: string "…"`), and the
            // value may be transcript text. Keep only the part before the value.
            let msg = inner.to_string();
            let problem = if let Some(rest) = msg.strip_prefix("missing field `") {
                format!("missing field `{}`", rest.split('`').next().unwrap_or(""))
            } else if msg.starts_with("invalid type") {
                // `invalid type: <value>, expected <what> at line L column C`: the value may hold
                // ", expected " itself, so take serde's part from the right, and only if it looks
                // like serde's own wording.
                let core = msg
                    .rsplit_once(" at line ")
                    .map_or(msg.as_str(), |(a, _)| a);
                let expected = core
                    .rsplit_once(", expected ")
                    .map(|(_, e)| e)
                    .filter(|e| {
                        e.len() <= 80
                            && e.chars()
                                .all(|c| c.is_ascii_alphanumeric() || " ,-_()\"".contains(c))
                    })
                    .unwrap_or("another type");
                format!("wrong type (expected {expected})")
            } else if msg.starts_with("duplicate field") {
                "duplicate field".to_string()
            } else {
                "invalid value".to_string()
            };
            EventError::Shape { path, problem }
        }
        _ => syntax(inner),
    }
}

/// Renders a serde path without echoing map keys that could be free text.
fn safe_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                let plain = key.len() <= 64
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if plain { key } else { "<key>" });
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// The event's id: the deduplication key (BigQuery `insertId`, the Cloud Storage object name).
///
/// The gateway sends a UUID (v7 today, v4 earlier) but does not promise one, so any string is
/// accepted that is 1 to 256 bytes long and has no control characters. Where it becomes part of an
/// object name it is percent-encoded ([`EventId::for_object_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, EventError> {
        if s.is_empty() {
            return Err(EventError::InvalidId("empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(EventError::InvalidId("longer than 256 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(EventError::InvalidId("contains control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as one safe object-name segment: `A-Z a-z 0-9 - _ .` stay, everything else
    /// (including `/`) is percent-encoded, and the names `.` and `..` are encoded too.
    pub fn for_object_name(&self) -> String {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
        match self.0.as_str() {
            "." => "%2E".into(),
            ".." => "%2E%2E".into(),
            s => utf8_percent_encode(s, KEEP).to_string(),
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventId::parse(&s).map_err(|e| match e {
            EventError::InvalidId(why) => de::Error::custom(why),
            _ => de::Error::custom("invalid event id"),
        })
    }
}

/// `telemetrygateway.v1.Event`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub id: EventId,
    pub timestamp: DateTime<Utc>,
    pub feature: String,
    pub action: String,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default, borrow)]
    pub parameters: Parameters<'a>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default, alias = "feature_flags")]
    pub feature_flags: Option<FeatureFlags>,
    #[serde(default, alias = "marketing_tracking")]
    pub marketing_tracking: Option<MarketingTracking>,
    #[serde(default)]
    pub interaction: Option<Interaction>,
}

impl Event<'_> {
    /// The name of the transcript flag in `parameters.metadata` (and, prefixed with `event.`, the
    /// attribute the gateway derives from it).
    pub const TRANSCRIPT_FLAG: &'static str = "recordsPrivateMetadataTranscript";

    /// The value of `parameters.metadata.recordsPrivateMetadataTranscript`, if present.
    pub fn transcript_flag(&self) -> Option<f64> {
        self.parameters
            .metadata
            .as_ref()
            .and_then(|m| m.get(Self::TRANSCRIPT_FLAG))
            .map(|v| v.0)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default)]
    pub server: Option<ServerSource>,
    #[serde(default)]
    pub client: Option<ClientSource>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ServerSource {
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ClientSource {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// `Event.parameters`. `Debug` does not print `privateMetadata`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameters<'a> {
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default, alias = "legacy_metadata")]
    pub legacy_metadata: Option<BTreeMap<String, I64>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, F64>>,
    /// `google.protobuf.Struct`: any JSON object, kept as its published JSON text. `None` when
    /// absent (or `null`), `Some({})` when set but empty; the gateway tells these apart too
    /// (`event.hasPrivateMetadata`).
    #[serde(default, borrow, alias = "private_metadata")]
    pub private_metadata: Option<PrivateMetadata<'a>>,
    #[serde(default, alias = "billing_metadata")]
    pub billing_metadata: Option<BillingMetadata>,
}

impl fmt::Debug for Parameters<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parameters")
            .field("version", &self.version)
            .field("legacy_metadata", &self.legacy_metadata)
            .field("metadata", &self.metadata)
            .field(
                "private_metadata",
                &self
                    .private_metadata
                    .as_ref()
                    .map(|m| format!("<{} bytes, not shown>", m.json().len())),
            )
            .field("billing_metadata", &self.billing_metadata)
            .finish()
    }
}

/// `parameters.privateMetadata` (a `google.protobuf.Struct`, so always a JSON object), kept as the
/// JSON text it was published as: validated by the parser, never built into a tree. Redaction
/// walks it once ([`crate::redact`]); `to-gcs` never looks inside. `Debug` shows its size only.
#[derive(Clone)]
pub struct PrivateMetadata<'a>(Cow<'a, RawValue>);

impl PrivateMetadata<'_> {
    /// The published JSON text (insignificant whitespace included).
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// `{}`: set, but without a member.
    pub fn is_empty(&self) -> bool {
        let inner = self.json().trim();
        inner
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(|r| r.trim().is_empty())
    }

    /// From JSON text (tests and tools): must be an object.
    pub fn from_json(text: &str) -> Result<PrivateMetadata<'static>, String> {
        let raw = RawValue::from_string(text.to_owned()).map_err(|e| e.to_string())?;
        PrivateMetadata::object(Cow::Owned(raw))
            .map_err(|_| "privateMetadata must be a JSON object".to_owned())
    }
}

impl<'a> PrivateMetadata<'a> {
    fn object(raw: Cow<'a, RawValue>) -> Result<Self, ()> {
        if raw.get().trim_start().starts_with('{') {
            Ok(Self(raw))
        } else {
            Err(())
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PrivateMetadata<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Borrowed from the message's bytes: the parser checks the JSON, nothing is copied.
        let raw = Cow::Borrowed(<&'de RawValue>::deserialize(d)?);
        // The value itself is never quoted in the error: it may be transcript text.
        Self::object(raw)
            .map_err(|_| de::Error::invalid_type(de::Unexpected::Other("a non-object"), &"a map"))
    }
}

impl fmt::Debug for PrivateMetadata<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateMetadata(<{} bytes, not shown>)",
            self.json().len()
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BillingMetadata {
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default, alias = "user_id")]
    pub user_id: Option<I64>,
    #[serde(default, alias = "anonymous_user_id")]
    pub anonymous_user_id: Option<String>,
    #[serde(default, alias = "sams_external_id")]
    pub sams_external_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeatureFlags {
    #[serde(default)]
    pub flags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketingTracking {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, alias = "first_source_url")]
    pub first_source_url: Option<String>,
    #[serde(default, alias = "cohort_id")]
    pub cohort_id: Option<String>,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default, alias = "last_source_url")]
    pub last_source_url: Option<String>,
    #[serde(default, alias = "device_session_id")]
    pub device_session_id: Option<String>,
    #[serde(default, alias = "session_referrer")]
    pub session_referrer: Option<String>,
    #[serde(default, alias = "session_first_url")]
    pub session_first_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interaction {
    #[serde(default, alias = "trace_id")]
    pub trace_id: Option<String>,
    #[serde(default, alias = "interaction_id")]
    pub interaction_id: Option<String>,
    #[serde(default)]
    pub geolocation: Option<Geolocation>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Geolocation {
    #[serde(default, alias = "country_code")]
    pub country_code: Option<String>,
}

/// The top-level `metadata`: `RecordEventsRequestMetadata`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    #[serde(default, alias = "request_id")]
    pub request_id: Option<String>,
    #[serde(default)]
    pub identifier: Option<Identifier>,
}

/// The `identifier` oneof. Modelled as a struct of options rather than an enum, so that `{}` or a
/// variant this code does not know yet still parses (and simply is not DotCom).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identifier {
    #[serde(default, alias = "licensed_instance")]
    pub licensed_instance: Option<Instance>,
    #[serde(default, alias = "unlicensed_instance")]
    pub unlicensed_instance: Option<Instance>,
    #[serde(default, alias = "managed_service")]
    pub managed_service: Option<ManagedService>,
}

impl Identifier {
    /// `licensed_instance`, `unlicensed_instance`, `managed_service`, or `unknown`.
    pub fn kind(&self) -> &'static str {
        if self.licensed_instance.is_some() {
            "licensed_instance"
        } else if self.unlicensed_instance.is_some() {
            "unlicensed_instance"
        } else if self.managed_service.is_some() {
            "managed_service"
        } else {
            "unknown"
        }
    }

    /// The Sourcegraph instance that sent the event, licensed or not.
    pub fn instance(&self) -> Option<&Instance> {
        self.licensed_instance
            .as_ref()
            .or(self.unlicensed_instance.as_ref())
    }
}

/// A Sourcegraph instance. `Debug` never prints the license key.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    #[serde(default, alias = "license_key")]
    pub license_key: Option<String>,
    #[serde(default, alias = "instance_id")]
    pub instance_id: Option<String>,
    #[serde(default, alias = "external_url")]
    pub external_url: Option<String>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field(
                "license_key",
                &self.license_key.as_ref().map(|_| "<not shown>"),
            )
            .field("instance_id", &self.instance_id)
            .field("external_url", &self.external_url)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedService {
    #[serde(default, alias = "service_id")]
    pub service_id: Option<String>,
    #[serde(default, alias = "service_environment")]
    pub service_environment: Option<String>,
}

/// A protojson int64: a JSON string of digits, or (defensively) a JSON integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I64(pub i64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = I64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an int64 as a string or number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<I64, E> {
                Ok(I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<I64, E> {
                i64::try_from(v)
                    .map(I64)
                    .map_err(|_| E::custom("int64 out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<I64, E> {
                v.parse()
                    .map(I64)
                    .map_err(|_| E::custom("not an int64 string"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A protojson double: a JSON number, or one of the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F64(pub f64);

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = F64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a double (a number, \"NaN\", \"Infinity\" or \"-Infinity\")")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
                Ok(F64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F64, E> {
                match v {
                    "NaN" => Ok(F64(f64::NAN)),
                    "Infinity" => Ok(F64(f64::INFINITY)),
                    "-Infinity" => Ok(F64(f64::NEG_INFINITY)),
                    // protojson also accepts numbers written as strings.
                    _ => v.parse().map(F64).map_err(|_| E::custom("not a double")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for F64 {
    /// Finite values as JSON numbers, non-finite ones as protojson's strings.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

impl Serialize for I64 {
    /// As a string, like protojson, so no precision is lost in JSON consumers.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = r#"{"event":{"id":"018f7b0e-2a41-7f93-8c5d-0e6b3a9f1c28","timestamp":"2024-05-14T21:12:07.903Z","feature":"cody.chat-question","action":"submitted","source":{"server":{"version":"281744"},"client":{"name":"VSCode.Cody","version":"1.16.4"}},"parameters":{"metadata":{"recordsPrivateMetadataTranscript":1,"tier":1},"privateMetadata":{"promptText":"secret prompt"},"billingMetadata":{"product":"cody","category":"billable"}},"user":{"userId":"4821377"}},"metadata":{"requestId":"r1","identifier":{"licensedInstance":{"licenseKey":"LK-SECRET","instanceId":"i1","externalUrl":"https://sourcegraph.com"}}}}"#;

    #[test]
    fn parses_a_dotcom_transcript_event() {
        let p = TelemetryPayload::parse(PROMPT.as_bytes()).expect("parses");
        assert_eq!(p.event.id.as_str(), "018f7b0e-2a41-7f93-8c5d-0e6b3a9f1c28");
        assert_eq!(p.event.feature, "cody.chat-question");
        assert_eq!(p.event.transcript_flag(), Some(1.0));
        assert_eq!(p.event.user.unwrap().user_id, Some(I64(4821377)));
        assert_eq!(p.metadata.identifier.unwrap().kind(), "licensed_instance");
    }

    #[test]
    fn debug_output_hides_private_metadata_and_license_key() {
        let p = TelemetryPayload::parse(PROMPT.as_bytes()).unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("secret prompt"), "{dbg}");
        assert!(!dbg.contains("LK-SECRET"), "{dbg}");
        assert!(dbg.contains("not shown"));
    }

    #[test]
    fn accepts_snake_case_numbers_for_int64_and_special_doubles() {
        let data = br#"{"event":{"id":"a","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a",
            "parameters":{"legacy_metadata":{"x":7},"metadata":{"n":"NaN","i":"Infinity","m":"-Infinity","s":"2.5"}},
            "user":{"user_id":12}},"metadata":{}, "somethingNew": {"k": 1}}"#;
        let p = TelemetryPayload::parse(data).expect("parses");
        let m = p.event.parameters.metadata.clone().unwrap();
        assert!(m["n"].0.is_nan());
        assert_eq!(m["i"].0, f64::INFINITY);
        assert_eq!(m["m"].0, f64::NEG_INFINITY);
        assert_eq!(m["s"].0, 2.5);
        assert_eq!(
            p.event.parameters.legacy_metadata.clone().unwrap()["x"],
            I64(7)
        );
        assert_eq!(p.event.user.unwrap().user_id, Some(I64(12)));
    }

    #[test]
    fn errors_name_the_field_but_never_the_value() {
        let data =
            br#"{"event":{"id":"a","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a",
            "parameters":{"privateMetadata":"TOP SECRET TRANSCRIPT"}}}"#;
        let err = TelemetryPayload::parse(data).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("TOP SECRET"), "{msg}");
        assert!(msg.contains("event.parameters.privateMetadata"), "{msg}");

        let data =
            br#"{"event":{"id":"a","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a",
            "user":{"userId":"TOP SECRET"}}}"#;
        let msg = TelemetryPayload::parse(data).unwrap_err().to_string();
        assert!(!msg.contains("TOP SECRET"), "{msg}");
        assert!(msg.contains("event.user.userId"), "{msg}");
    }

    #[test]
    fn required_fields_are_required() {
        for (field, data) in [
            (
                "id",
                r#"{"event":{"timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a"}}"#,
            ),
            (
                "timestamp",
                r#"{"event":{"id":"x","feature":"f","action":"a"}}"#,
            ),
            (
                "feature",
                r#"{"event":{"id":"x","timestamp":"2024-05-14T21:12:07Z","action":"a"}}"#,
            ),
            ("event", r#"{"metadata":{}}"#),
        ] {
            let msg = TelemetryPayload::parse(data.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(&format!("missing field `{field}`")), "{msg}");
        }
        let msg = TelemetryPayload::parse(
            br#"{"event":{"id":"","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("event.id"), "{msg}");
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_errors() {
        assert_eq!(
            TelemetryPayload::parse(b"  ").unwrap_err(),
            EventError::Empty
        );
        assert_eq!(
            TelemetryPayload::parse(b"{\"event\":").unwrap_err().code(),
            "invalid_json"
        );
        let ok = PROMPT.to_string() + " x";
        assert_eq!(
            TelemetryPayload::parse(ok.as_bytes()).unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn event_ids_are_safe_object_name_segments() {
        let id = EventId::parse("018f7b0e-2a41-7f93.x_y").unwrap();
        assert_eq!(id.for_object_name(), "018f7b0e-2a41-7f93.x_y");
        assert_eq!(
            EventId::parse("../a/b c").unwrap().for_object_name(),
            "..%2Fa%2Fb%20c"
        );
        assert_eq!(EventId::parse("..").unwrap().for_object_name(), "%2E%2E");
        assert!(EventId::parse("a\nb").is_err());
        assert!(EventId::parse(&"x".repeat(257)).is_err());
    }
}
