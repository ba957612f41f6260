//! Step 2, classify: is this a transcript event, and which subscription owns its BigQuery row?
//!
//! Two questions, answered from two different sources on purpose:
//!
//! - **Is it a transcript event?** decided by the *payload* alone (attributes can be missing, on
//!   older gateways, or wrong). All three rules of the seed must hold ([`TranscriptChecks`]):
//!   1. `event.parameters.metadata.recordsPrivateMetadataTranscript` > 0 (the gateway's own test);
//!   2. it came from DotCom: `metadata.identifier.{licensed,unlicensed}Instance.externalUrl`,
//!      normalised, equals the configured DotCom URL (and, when instance ids are configured, the
//!      `instanceId` is one of them too: pinning only ever narrows);
//!   3. `privateMetadata` holds the text: it is a non-empty object.
//!
//!   Only a transcript event is written to Cloud Storage. A wrong "no" costs one transcript in the
//!   bucket; a wrong "yes" puts a customer's text there, so every rule errs towards "no".
//!
//! - **Which BigQuery handler writes the row?** decided by the *attribute*
//!   `event.recordsPrivateMetadataTranscript = "true"` ([`Route`]), the same predicate as the
//!   subscription filters. `to-bq` owns [`Route::Transcript`], `sub-v2` owns
//!   [`Route::NonTranscript`]; whatever the filters do, each message is written by exactly one of
//!   them. Both redact, so the route never decides what text reaches BigQuery.
//!
//! Where an attribute the gateway derives from the payload disagrees with it, the payload wins and
//! the disagreement is reported ([`attribute_mismatches`]) for the log line and the row.

use std::collections::BTreeMap;

use crate::event::{Event, RequestMetadata};

/// The attribute the subscription filters and the BigQuery routing read.
pub const TRANSCRIPT_ATTRIBUTE: &str = "event.recordsPrivateMetadataTranscript";
/// The attribute that says whether `privateMetadata` was set at all.
pub const HAS_PRIVATE_METADATA_ATTRIBUTE: &str = "event.hasPrivateMetadata";

/// The default DotCom URL.
pub const DEFAULT_DOTCOM_URL: &str = "https://sourcegraph.com";

/// How DotCom is recognised in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotCom {
    url: String,
    instance_ids: Vec<String>,
}

impl DotCom {
    /// `url` must be an absolute `http(s)://host[:port][/path]` URL; `instance_ids` may be empty.
    pub fn new(url: &str, instance_ids: Vec<String>) -> Result<Self, String> {
        let url = normalize_url(url).ok_or_else(|| {
            "must be an absolute http(s) URL such as https://sourcegraph.com".to_string()
        })?;
        let instance_ids = instance_ids
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Self { url, instance_ids })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the request metadata says the event came from DotCom.
    pub fn matches(&self, metadata: &RequestMetadata) -> bool {
        let Some(instance) = metadata.identifier.as_ref().and_then(|i| i.instance()) else {
            return false;
        };
        let url_ok = instance
            .external_url
            .as_deref()
            .and_then(normalize_url)
            .is_some_and(|u| u == self.url);
        let id_ok = self.instance_ids.is_empty()
            || instance
                .instance_id
                .as_deref()
                .is_some_and(|id| self.instance_ids.contains(&id.trim().to_ascii_lowercase()));
        url_ok && id_ok
    }
}

impl Default for DotCom {
    fn default() -> Self {
        Self::new(DEFAULT_DOTCOM_URL, Vec::new()).expect("the default DotCom URL is valid")
    }
}

/// Lower-cases scheme and host, drops a default port and trailing slashes. `None` when the value
/// is not an absolute http(s) URL with a host.
pub fn normalize_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    if let Some(stripped) = host.strip_suffix(default_port) {
        host = stripped.to_owned();
    }
    let host = host.trim_end_matches('.');
    let path = path.trim_end_matches('/');
    Some(format!("{scheme}://{host}{path}"))
}

/// The three transcript rules, each evaluated on the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptChecks {
    /// Rule 3 of the seed: `recordsPrivateMetadataTranscript` > 0.
    pub flagged: bool,
    /// Rule 2: sent by DotCom.
    pub dotcom: bool,
    /// Rule 1: `privateMetadata` is a non-empty object.
    pub private_text: bool,
}

impl TranscriptChecks {
    pub fn evaluate(event: &Event, metadata: &RequestMetadata, dotcom: &DotCom) -> Self {
        Self {
            // NaN > 0 is false, +Infinity > 0 is true: exactly the gateway's `value > 0`.
            flagged: event.transcript_flag().is_some_and(|v| v > 0.0),
            dotcom: dotcom.matches(metadata),
            private_text: event
                .parameters
                .private_metadata
                .as_ref()
                .is_some_and(|m| !m.is_empty()),
        }
    }

    pub fn is_transcript(&self) -> bool {
        self.flagged && self.dotcom && self.private_text
    }

    /// Why this is not a transcript event, e.g. `not_dotcom` or `no_flag+no_private_text`;
    /// `None` for a transcript event.
    pub fn skip_reason(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.flagged {
            why.push("no_flag");
        }
        if !self.dotcom {
            why.push("not_dotcom");
        }
        if !self.private_text {
            why.push("no_private_text");
        }
        (!why.is_empty()).then(|| why.join("+"))
    }
}

/// Which BigQuery handler owns a message: the subscription filters' predicate, in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `attributes."event.recordsPrivateMetadataTranscript" = "true"`: owned by `to-bq`.
    Transcript,
    /// Everything else: owned by `sub-v2`.
    NonTranscript,
}

impl Route {
    pub fn from_attributes(attributes: &BTreeMap<String, String>) -> Self {
        match attributes.get(TRANSCRIPT_ATTRIBUTE).map(String::as_str) {
            Some("true") => Route::Transcript,
            _ => Route::NonTranscript,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Route::Transcript => "transcript",
            Route::NonTranscript => "non_transcript",
        }
    }
}

/// Whether a message with these attributes can be a transcript event, i.e. what `to-gcs` must be
/// offered: a transcript needs non-empty `privateMetadata`, and every gateway version sets
/// `event.hasPrivateMetadata`, so only `"false"` rules one out. (The transcript-flag attribute is
/// no guide: older gateways never set it.) `to-gcs` itself still decides on the payload; this is
/// the predicate its subscription filter must implement, checked against `terraform/routing.json`.
pub fn may_carry_transcript(attributes: &BTreeMap<String, String>) -> bool {
    attributes
        .get(HAS_PRIVATE_METADATA_ATTRIBUTE)
        .map(String::as_str)
        != Some("false")
}

/// The attributes that disagree with the payload they were derived from (names only, never
/// values). A missing attribute counts only for the transcript flag, since its absence routes the
/// message; older gateways omit the others.
pub fn attribute_mismatches(
    attributes: &BTreeMap<String, String>,
    event: &Event,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    let flagged = event.transcript_flag().is_some_and(|v| v > 0.0);
    if (attributes.get(TRANSCRIPT_ATTRIBUTE).map(String::as_str) == Some("true")) != flagged {
        out.push(TRANSCRIPT_ATTRIBUTE);
    }
    if let Some(v) = attributes.get(HAS_PRIVATE_METADATA_ATTRIBUTE) {
        let has = event.parameters.private_metadata.is_some();
        if (v == "true") != has {
            out.push(HAS_PRIVATE_METADATA_ATTRIBUTE);
        }
    }
    if attributes
        .get("event.feature")
        .is_some_and(|v| *v != event.feature)
    {
        out.push("event.feature");
    }
    if attributes
        .get("event.action")
        .is_some_and(|v| *v != event.action)
    {
        out.push("event.action");
    }
    out
}

/// Everything the handlers need to know about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub checks: TranscriptChecks,
    pub route: Route,
    pub mismatches: Vec<&'static str>,
}

impl Classification {
    pub fn of(
        event: &Event,
        metadata: &RequestMetadata,
        attributes: &BTreeMap<String, String>,
        dotcom: &DotCom,
    ) -> Self {
        Self {
            checks: TranscriptChecks::evaluate(event, metadata, dotcom),
            route: Route::from_attributes(attributes),
            mismatches: attribute_mismatches(attributes, event),
        }
    }

    pub fn is_transcript(&self) -> bool {
        self.checks.is_transcript()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TelemetryPayload;
    use serde_json::json;

    #[test]
    fn urls_are_normalised() {
        for same in [
            "https://sourcegraph.com",
            "https://sourcegraph.com/",
            "HTTPS://SourceGraph.COM//",
            " https://sourcegraph.com:443 ",
            "https://sourcegraph.com.",
        ] {
            assert_eq!(
                normalize_url(same).as_deref(),
                Some("https://sourcegraph.com"),
                "{same}"
            );
        }
        for other in [
            "http://sourcegraph.com",
            "https://sourcegraph.com.evil.example",
            "https://sourcegraph.sourcegraph.com",
            "https://sourcegraph.com:8443",
            "https://sourcegraph.com/foo",
        ] {
            assert_ne!(
                normalize_url(other).as_deref(),
                Some("https://sourcegraph.com"),
                "{other}"
            );
        }
        for bad in [
            "sourcegraph.com",
            "ftp://x",
            "https://",
            "https://u@sourcegraph.com",
        ] {
            assert_eq!(normalize_url(bad), None, "{bad}");
        }
    }

    fn payload(identifier: serde_json::Value) -> TelemetryPayload<'static> {
        let data = json!({"event": {"id": "e", "timestamp": "2024-05-14T21:12:07Z",
            "feature": "f", "action": "a"}, "metadata": {"identifier": identifier}});
        // The payload borrows from its bytes: kept for the test's length.
        let bytes: &'static [u8] = Box::leak(data.to_string().into_bytes().into_boxed_slice());
        TelemetryPayload::parse(bytes).unwrap()
    }

    #[test]
    fn dotcom_is_recognised_from_licensed_or_unlicensed_instances_only() {
        let d = DotCom::default();
        let cases = [
            (
                json!({"licensedInstance": {"externalUrl": "https://sourcegraph.com/"}}),
                true,
            ),
            (
                json!({"unlicensedInstance": {"externalUrl": "https://SOURCEGRAPH.com"}}),
                true,
            ),
            (
                json!({"licensedInstance": {"externalUrl": "https://acme.example"}}),
                false,
            ),
            (json!({"licensedInstance": {"instanceId": "x"}}), false),
            (
                json!({"managedService": {"serviceId": "cody-gateway"}}),
                false,
            ),
            (json!({}), false),
        ];
        for (identifier, expected) in cases {
            let p = payload(identifier.clone());
            assert_eq!(d.matches(&p.metadata), expected, "{identifier}");
        }
    }

    #[test]
    fn configured_instance_ids_pin_dotcom() {
        let d = DotCom::new("https://sourcegraph.com", vec!["ABC-1".into()]).unwrap();
        let yes = payload(json!({"licensedInstance":
            {"externalUrl": "https://sourcegraph.com", "instanceId": "abc-1"}}));
        let wrong_id = payload(json!({"licensedInstance":
            {"externalUrl": "https://sourcegraph.com", "instanceId": "other"}}));
        let wrong_url = payload(json!({"licensedInstance":
            {"externalUrl": "https://acme.example", "instanceId": "abc-1"}}));
        assert!(d.matches(&yes.metadata));
        assert!(!d.matches(&wrong_id.metadata));
        assert!(!d.matches(&wrong_url.metadata));
    }

    #[test]
    fn routes_follow_the_attribute_exactly() {
        let mut a = BTreeMap::new();
        assert_eq!(Route::from_attributes(&a), Route::NonTranscript);
        a.insert(TRANSCRIPT_ATTRIBUTE.to_string(), "false".to_string());
        assert_eq!(Route::from_attributes(&a), Route::NonTranscript);
        a.insert(TRANSCRIPT_ATTRIBUTE.to_string(), "TRUE".to_string());
        assert_eq!(Route::from_attributes(&a), Route::NonTranscript);
        a.insert(TRANSCRIPT_ATTRIBUTE.to_string(), "true".to_string());
        assert_eq!(Route::from_attributes(&a), Route::Transcript);
    }
}
