//! Dead letters: a message that can never succeed is published at once to the service's own
//! dead-letter topic (`DEAD_LETTER_TOPIC`), with the reason, and only then acked.
//!
//! What is published: the original data and attributes unchanged, plus the attributes below, so
//! the on-call engineer sees which handler and subscription failed, why, and when, and `replay`
//! can send it back to the one handler that failed. When the push could not even be decoded (no
//! envelope, bad base64, no message id) the whole request body is the data instead, marked
//! `dead_letter.payload = push_body`. The detail comes from the pipeline's own error types, which
//! never quote payload text.
//!
//! Pub/Sub takes at most 100 attributes a message ([`limits::PUBSUB_MAX_ATTRIBUTES`]). When the
//! original attributes leave no room for the added ones, the added ones are packed into one
//! attribute, [`PACKED`], a JSON object with the same names (`{"handler": "to-bq", "reason":
//! …}`); when the original has all 100, the letter's data is the whole push body instead (its
//! attributes inside), marked `dead_letter.payload = push_body`, as for an undecodable push.
//! [`added_attributes`] reads either form back, so `replay` sees the same reason either way.
//!
//! If the publish fails the push is nacked (503), so nothing is acked before it is safe. Transient
//! failures are never dead-lettered here: they are nacked, and Pub/Sub's own dead-letter policy
//! moves them after the configured attempts (adding its `CloudPubSubDeadLetterSource*`
//! attributes). Without `DEAD_LETTER_TOPIC`, permanent failures are answered 4xx and Pub/Sub's
//! policy collects them too, just later. A request marked `x-pipeline-replay` (the `replay` tool)
//! is never dead-lettered again: a permanent failure is answered 4xx, so the message stays in the
//! dead-letter subscription.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};

use crate::config::Service;
use crate::decode::{PushEnvelope, PushMessage};
use crate::error::CallError;
use crate::failure::Failure;
use crate::google::pubsub::Publisher;
use crate::limits::MAX_MESSAGE_DATA_BYTES;
use crate::limits::{self, PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES, PUBSUB_MAX_ATTRIBUTES, clip_bytes};

pub const HANDLER: &str = "dead_letter.handler";
pub const SUBSCRIPTION: &str = "dead_letter.subscription";
pub const REASON: &str = "dead_letter.reason";
pub const DETAIL: &str = "dead_letter.detail";
pub const TIME: &str = "dead_letter.time";
pub const MESSAGE_ID: &str = "dead_letter.message_id";
pub const PUBLISH_TIME: &str = "dead_letter.publish_time";
pub const PAYLOAD: &str = "dead_letter.payload";
/// All the added attributes in one, when the original's leave no room for them one by one.
pub const PACKED: &str = "dead_letter";
/// The prefix of the added attributes' names.
const PREFIX: &str = "dead_letter.";
/// The header `replay` sets on re-delivered pushes.
pub const REPLAY_HEADER: &str = "x-pipeline-replay";

/// One message to dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

impl DeadLetter {
    /// The dead letter for `failure`; `None` when it is too large to publish (then the push is
    /// refused and Pub/Sub's own dead-letter policy takes over).
    pub fn new(service: Service, source: Source<'_>, failure: &Failure) -> Option<Self> {
        let mut added = vec![
            (HANDLER, service.name().to_owned()),
            (REASON, failure.code.to_owned()),
            (DETAIL, failure.detail.clone()),
            (
                TIME,
                Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ];
        let m = match source {
            Source::Message(m)
                if m.attributes.len() < PUBSUB_MAX_ATTRIBUTES
                    && !m.attributes.keys().any(|k| is_added(k)) =>
            {
                m
            }
            // No attribute to spare, attributes named like ours (a publisher's `dead_letter` or
            // `dead_letter.handler` would be overwritten by, or read as, ours), or undecodable:
            // a push body is the data, the message's written again as a wrapped push (data and
            // attributes inside), or the one that came.
            Source::Message(m) => {
                added.push((MESSAGE_ID, m.message_id.clone()));
                return Self::push_body(wrapped(m), added);
            }
            Source::Undecoded(body) => return Self::push_body(body.to_vec(), added),
        };
        added.push((PAYLOAD, "message_data".to_owned()));
        added.push((MESSAGE_ID, m.message_id.clone()));
        if let Some(s) = &m.subscription {
            added.push((SUBSCRIPTION, s.clone()));
        }
        if let Some(t) = &m.publish_time {
            added.push((PUBLISH_TIME, t.to_rfc3339_opts(SecondsFormat::Millis, true)));
        }
        let mut attributes = m.attributes.clone();
        if attributes.len() + added.len() <= PUBSUB_MAX_ATTRIBUTES {
            attributes.extend(one_by_one(added));
        } else {
            attributes.insert(PACKED.to_owned(), packed(added));
        }
        Self {
            data: m.data.bytes().to_vec(),
            attributes,
        }
        .publishable()
    }

    /// A letter whose data is a push body (`payload=push_body`); `replay` pushes it as it is.
    fn push_body(body: Vec<u8>, mut added: Vec<(&str, String)>) -> Option<Self> {
        if body.len() > MAX_MESSAGE_DATA_BYTES {
            return None;
        }
        added.push((PAYLOAD, "push_body".to_owned()));
        Self {
            data: body,
            attributes: one_by_one(added),
        }
        .publishable()
    }

    /// `None` when Pub/Sub would refuse it (a message near 10 MB, with the added attributes).
    fn publishable(self) -> Option<Self> {
        limits::publishable(&self.data, &self.attributes)
            .is_ok()
            .then_some(self)
    }
}

/// What a dead letter is made from. Each kind holds the bytes the letter keeps, so that no letter
/// can be made without its message's data: a decoded message is kept as its data and attributes,
/// or, with no attribute to spare, as a push written again from it.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A message that decoded (wrapped or unwrapped).
    Message(&'a PushMessage),
    /// A push that did not decode: its body, as it came.
    Undecoded(&'a [u8]),
}

/// `m` as a wrapped push body: its id, data, attributes, publish time and subscription.
fn wrapped(m: &PushMessage) -> Vec<u8> {
    let mut push =
        PushEnvelope::new(m.message_id.clone(), m.data.bytes()).attributes(&m.attributes);
    if let Some(t) = &m.publish_time {
        push = push.publish_time(t.to_rfc3339_opts(SecondsFormat::Nanos, true));
    }
    if let Some(s) = &m.subscription {
        push = push.subscription(s.clone());
    }
    push.to_bytes()
}

/// The added attributes, one each, every value within Pub/Sub's limit.
fn one_by_one(added: Vec<(&str, String)>) -> BTreeMap<String, String> {
    added
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                clip_bytes(&v, PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES).to_owned(),
            )
        })
        .collect()
}

/// The added attributes as one JSON object within Pub/Sub's value limit: the detail (the only
/// long one) keeps the longest prefix that fits once written as JSON.
fn packed(added: Vec<(&str, String)>) -> String {
    let detail_key = DETAIL.trim_start_matches(PREFIX);
    let mut fields: BTreeMap<&str, String> = added
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches(PREFIX), v))
        .collect();
    let detail = fields.remove(detail_key).unwrap_or_default();
    let with = |fields: &mut BTreeMap<&str, String>, d: &str| {
        fields.insert(detail_key, d.to_owned());
        serde_json::to_string(&*fields).unwrap_or_default()
    };
    // Binary search over the detail's length (bytes; cut at a character boundary).
    let (mut fits, mut over) = (0, detail.len() + 1);
    while fits + 1 < over {
        let mid = (fits + over) / 2;
        if with(&mut fields, clip_bytes(&detail, mid)).len() <= PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES {
            fits = mid;
        } else {
            over = mid;
        }
    }
    with(&mut fields, clip_bytes(&detail, fits))
}

/// The attributes dead-lettering added (`dead_letter.*`, by their full names), from either form:
/// one by one, or packed into [`PACKED`].
pub fn added_attributes(attributes: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut added: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let packed = attributes
        .get(PACKED)
        .and_then(|p| serde_json::from_str::<BTreeMap<String, String>>(p).ok());
    for (k, v) in packed.into_iter().flatten() {
        added.insert(format!("{PREFIX}{k}"), v);
    }
    added
}

/// Whether an attribute was added by dead-lettering (not the message's own).
pub fn is_added(key: &str) -> bool {
    key == PACKED || key.starts_with(PREFIX)
}

/// Where dead letters go.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Publishes the dead letter; returns its message id.
    async fn publish(&self, letter: &DeadLetter) -> Result<String, CallError>;
}

/// The service's dead-letter topic, through Google's Pub/Sub publisher
/// ([`crate::google::pubsub::Publisher`]).
pub struct PubSubDeadLetters {
    publisher: Publisher,
}

impl PubSubDeadLetters {
    pub fn new(publisher: Publisher) -> Self {
        Self { publisher }
    }
}

#[async_trait]
impl DeadLetterSink for PubSubDeadLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<String, CallError> {
        // A refused publish (400) is permanent for the letter; the push is then answered 503
        // all the same (`routes.rs`): nothing is acked that was not kept.
        self.publisher
            .publish(&letter.data, &letter.attributes)
            .await
            .map_err(CallError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PushFormat;
    use crate::event::RawData;
    use crate::failure::FailureKind;

    #[test]
    fn attributes_named_like_ours_are_kept_apart_from_ours() {
        let attrs: BTreeMap<String, String> = [
            ("dead_letter", "the publisher's"),
            ("dead_letter.handler", "to-gcs"),
            ("event.feature", "cody.chat-question"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let m = PushMessage {
            message_id: "78".into(),
            publish_time: None,
            subscription: Some("projects/p/subscriptions/s-sub-v2".into()),
            delivery_attempt: None,
            attributes: attrs.clone(),
            data: RawData::new(b"not json".to_vec()),
            format: PushFormat::Wrapped,
        };
        let d = DeadLetter::new(Service::SubV2, Source::Message(&m), &failure()).unwrap();
        // Ours alone on the letter; the publisher's, untouched, inside the push it carries.
        assert_eq!(d.attributes[HANDLER], "sub-v2");
        assert_eq!(d.attributes[PAYLOAD], "push_body");
        assert!(!d.attributes.contains_key(PACKED), "{:?}", d.attributes);
        let back = PushMessage::decode(&Default::default(), &d.data).unwrap();
        assert_eq!(back.attributes, attrs);
        assert_eq!(back.data.bytes().as_ref(), b"not json");
        assert_eq!(back.message_id, "78");
    }

    #[test]
    fn keeps_data_and_attributes_and_adds_the_reason() {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "publisher.source".to_string(),
            "licensed_instance".to_string(),
        );
        let m = PushMessage {
            message_id: "77".into(),
            publish_time: None,
            subscription: Some("projects/p/subscriptions/s".into()),
            delivery_attempt: None,
            attributes: attrs,
            data: RawData::new(b"not json".to_vec()),
            format: PushFormat::Wrapped,
        };
        let f = Failure {
            kind: FailureKind::Malformed,
            code: "invalid_json",
            detail: "x".repeat(5000),
        };
        let d = DeadLetter::new(Service::ToBq, Source::Message(&m), &f).unwrap();
        assert_eq!(d.data, b"not json");
        assert_eq!(d.attributes["publisher.source"], "licensed_instance");
        assert_eq!(d.attributes[HANDLER], "to-bq");
        assert_eq!(d.attributes[REASON], "invalid_json");
        assert_eq!(d.attributes[MESSAGE_ID], "77");
        assert_eq!(d.attributes[SUBSCRIPTION], "projects/p/subscriptions/s");
        assert_eq!(d.attributes[PAYLOAD], "message_data");
        assert_eq!(d.attributes[DETAIL].len(), 1024);
        assert!(d.attributes.contains_key(TIME));

        let d =
            DeadLetter::new(Service::ToGcs, Source::Undecoded(b"{not an envelope"), &f).unwrap();
        assert_eq!(d.data, b"{not an envelope");
        assert_eq!(d.attributes[PAYLOAD], "push_body");
        assert!(
            DeadLetter::new(
                Service::ToGcs,
                Source::Undecoded(&vec![0; MAX_MESSAGE_DATA_BYTES + 1]),
                &f
            )
            .is_none()
        );
    }

    /// A message with `n` attributes as large as Pub/Sub allows (256-byte keys, 1024-byte values).
    fn with_maximal_attributes(n: usize) -> PushMessage {
        let attributes = (0..n)
            .map(|i| {
                let key = format!(
                    "{i:03}{}",
                    "k".repeat(limits::PUBSUB_MAX_ATTRIBUTE_KEY_BYTES - 3)
                );
                (key, "v".repeat(PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES))
            })
            .collect();
        PushMessage {
            message_id: "88".into(),
            publish_time: Some(Utc::now()),
            subscription: Some("projects/p/subscriptions/s".into()),
            delivery_attempt: None,
            attributes,
            data: RawData::new(b"{}".to_vec()),
            format: PushFormat::Wrapped,
        }
    }

    fn failure() -> Failure {
        Failure {
            kind: FailureKind::Malformed,
            code: "invalid_event",
            // Quotes and backslashes grow when written as JSON.
            detail: "\"\\".repeat(2000),
        }
    }

    #[test]
    fn a_message_with_many_attributes_is_dead_lettered_within_pubsubs_limits() {
        let f = failure();
        for n in [0, 1, 92, 93, 95, 99, 100] {
            let m = with_maximal_attributes(n);
            let d = DeadLetter::new(Service::SubV2, Source::Message(&m), &f)
                .unwrap_or_else(|| panic!("{n} attributes: no dead letter"));
            assert_eq!(limits::publishable(&d.data, &d.attributes), Ok(()), "{n}");
            let added = added_attributes(&d.attributes);
            assert_eq!(added[REASON], "invalid_event", "{n}");
            assert_eq!(added[HANDLER], "sub-v2", "{n}");
            assert_eq!(added[MESSAGE_ID], "88", "{n}");
            assert!(!added[DETAIL].is_empty(), "{n}");
            let originals: BTreeMap<_, _> = d
                .attributes
                .iter()
                .filter(|(k, _)| !is_added(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if n < PUBSUB_MAX_ATTRIBUTES {
                // The original data and attributes, unchanged.
                assert_eq!(d.data, b"{}", "{n}");
                assert_eq!(originals, m.attributes, "{n}");
                assert_eq!(added[PAYLOAD], "message_data", "{n}");
                assert_eq!(
                    d.attributes.contains_key(PACKED),
                    n + 8 > PUBSUB_MAX_ATTRIBUTES,
                    "{n}: packed only when needed"
                );
            } else {
                // No room for even one: the push, written again from the message, is the data.
                let back = crate::decode::PushMessage::decode(&http::HeaderMap::new(), &d.data)
                    .unwrap_or_else(|e| panic!("{n}: {e}"));
                assert_eq!(back.data.bytes(), m.data.bytes(), "{n}");
                assert_eq!(back.attributes, m.attributes, "{n}");
                assert_eq!(back.message_id, m.message_id, "{n}");
                assert!(originals.is_empty(), "{n}");
                assert_eq!(added[PAYLOAD], "push_body", "{n}");
            }
        }
    }

    #[test]
    fn a_letter_pubsub_would_refuse_is_not_made() {
        let mut m = with_maximal_attributes(50);
        m.data = RawData::new(vec![b'x'; MAX_MESSAGE_DATA_BYTES - 50 * 1280]);
        assert!(DeadLetter::new(Service::ToBq, Source::Message(&m), &failure()).is_none());
    }
}
