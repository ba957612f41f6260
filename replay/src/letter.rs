//! One dead letter, read back: where it came from, why it failed, and the original push it was.
//!
//! Two kinds arrive on a dead-letter subscription:
//! - published by a handler itself for a permanent failure: it carries `dead_letter.*` attributes
//!   (handler, subscription, reason, detail, time, original message id);
//! - moved by Pub/Sub after too many failed deliveries (a transient failure that lasted): it
//!   carries Pub/Sub's `CloudPubSubDeadLetterSource*` attributes and no reason of ours.
//!
//! Either way the original data and attributes are unchanged, so the original push can be
//! rebuilt exactly: [`Letter::push_body`] strips the added attributes again. A message whose own
//! attributes are named like ours is kept by the handler as a push body (ours alone on the
//! letter), and on a letter Pub/Sub moved such attributes are the publisher's, never read as ours.

use std::collections::BTreeMap;

use pipeline::config::Service;
use pipeline::dead_letter as dl;
use pipeline::decode::{PushEnvelope, PushMessage};
use pipeline::google::pubsub::ReceivedMessage;
use serde_json::{Value, json};

const SOURCE_SUBSCRIPTION: &str = "CloudPubSubDeadLetterSourceSubscription";
const SOURCE_PROJECT: &str = "CloudPubSubDeadLetterSourceSubscriptionProject";
const SOURCE_COUNT: &str = "CloudPubSubDeadLetterSourceDeliveryCount";
const SOURCE_PUBLISH_TIME: &str = "CloudPubSubDeadLetterSourceTopicPublishTime";

pub struct Letter {
    pub received: ReceivedMessage,
    /// What the handler added (`dead_letter.*`), one by one or packed into one attribute.
    added: BTreeMap<String, String>,
}

impl Letter {
    pub fn new(received: ReceivedMessage) -> Self {
        // A message Pub/Sub moved carries only its publisher's attributes (and Pub/Sub's): any
        // named like ours are the publisher's. The handlers never add theirs to such a message.
        let added = if Self::moved_by_pubsub(&received) {
            BTreeMap::new()
        } else {
            dl::added_attributes(&received.message.attributes)
        };
        Self { received, added }
    }

    fn moved_by_pubsub(received: &ReceivedMessage) -> bool {
        received
            .message
            .attributes
            .contains_key(SOURCE_SUBSCRIPTION)
    }

    fn attr(&self, k: &str) -> Option<&str> {
        if dl::is_added(k) {
            return self.added.get(k).map(String::as_str);
        }
        self.received.message.attributes.get(k).map(String::as_str)
    }

    /// The id of the message on the dead-letter topic (what `replay` acks).
    pub fn dead_letter_message_id(&self) -> &str {
        &self.received.message.message_id
    }

    /// The original message id, when the handler recorded it (Pub/Sub's own dead-lettering
    /// assigns a new id and does not keep the old one).
    pub fn original_message_id(&self) -> String {
        self.attr(dl::MESSAGE_ID)
            .unwrap_or(self.dead_letter_message_id())
            .to_owned()
    }

    /// The handler that failed, from our attribute, or guessed from the subscription's name.
    pub fn handler(&self) -> Option<String> {
        if let Some(h) = self.attr(dl::HANDLER) {
            return Some(h.to_owned());
        }
        let sub = self.subscription()?;
        Service::ALL
            .into_iter()
            .map(|s| s.name())
            .find(|h| sub.ends_with(h))
            .map(str::to_owned)
    }

    /// The full name of the subscription that failed.
    pub fn subscription(&self) -> Option<String> {
        if let Some(s) = self.attr(dl::SUBSCRIPTION) {
            return Some(s.to_owned());
        }
        let sub = self.attr(SOURCE_SUBSCRIPTION)?;
        Some(match self.attr(SOURCE_PROJECT) {
            Some(p) if !sub.starts_with("projects/") => format!("projects/{p}/subscriptions/{sub}"),
            _ => sub.to_owned(),
        })
    }

    /// Why it failed: our reason code, or `delivery_attempts_exhausted` for Pub/Sub's own.
    pub fn reason(&self) -> String {
        match (self.attr(dl::REASON), self.attr(SOURCE_SUBSCRIPTION)) {
            (Some(r), _) => r.to_owned(),
            (None, Some(_)) => "delivery_attempts_exhausted".into(),
            (None, None) => "unknown".into(),
        }
    }

    pub fn detail(&self) -> Option<String> {
        self.attr(dl::DETAIL).map(str::to_owned).or_else(|| {
            self.attr(SOURCE_COUNT).map(|n| {
                format!("Pub/Sub gave up after {n} failed deliveries (transient failures: see the handler's logs)")
            })
        })
    }

    /// How many times Pub/Sub delivered it before it was dead-lettered.
    pub fn deliveries(&self) -> Option<u64> {
        self.attr(SOURCE_COUNT)
            .and_then(|n| n.parse().ok())
            .or_else(|| self.received.delivery_attempt.map(u64::from))
    }

    pub fn dead_lettered_at(&self) -> Option<String> {
        self.attr(dl::TIME)
            .map(str::to_owned)
            .or_else(|| self.received.message.publish_time.clone())
    }

    /// The message's own attributes, without what dead-lettering added.
    pub fn original_attributes(&self) -> BTreeMap<String, String> {
        self.received
            .message
            .attributes
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("CloudPubSubDeadLetterSource")
                    && (Self::moved_by_pubsub(&self.received) || !dl::is_added(k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn original_publish_time(&self) -> Option<String> {
        self.attr(dl::PUBLISH_TIME)
            .or(self.attr(SOURCE_PUBLISH_TIME))
            .map(str::to_owned)
            .or_else(|| self.received.message.publish_time.clone())
    }

    /// Whether the data is a whole push body (the push could not be decoded at all).
    pub fn is_push_body(&self) -> bool {
        self.attr(dl::PAYLOAD) == Some("push_body")
    }

    /// The push request body to re-deliver: the original wrapped envelope, rebuilt.
    pub fn push_body(&self) -> Vec<u8> {
        if self.is_push_body() {
            return self.received.message.data_bytes();
        }
        PushEnvelope {
            message_id: self.original_message_id(),
            // The dead letter keeps the data base64-encoded, as it was pushed: passed through.
            data_base64: self.received.message.data.clone(),
            attributes: self.original_attributes(),
            publish_time: self.original_publish_time(),
            subscription: self.subscription(),
        }
        .to_bytes()
    }

    /// The push as the handler would decode it (`Err`: it cannot be decoded).
    pub fn decoded(&self) -> Result<PushMessage, pipeline::decode::DecodeError> {
        PushMessage::decode(&Default::default(), &self.push_body())
    }

    /// The event id, if the data parses.
    pub fn event_id(&self) -> Option<String> {
        let m = self.decoded().ok()?;
        pipeline::TelemetryPayload::parse(m.data.bytes())
            .ok()
            .map(|p| p.event.id.to_string())
    }

    /// Facts for `inspect` (never the data).
    pub fn describe(&self) -> Value {
        json!({
            "deadLetterMessageId": self.dead_letter_message_id(),
            "messageId": self.original_message_id(),
            "eventId": self.event_id(),
            "handler": self.handler(),
            "subscription": self.subscription(),
            "reason": self.reason(),
            "detail": self.detail(),
            "deliveries": self.deliveries(),
            "deadLetteredAt": self.dead_lettered_at(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::google::pubsub::WireMessage;

    #[test]
    fn push_body_is_the_original_push() {
        let attributes = [
            ("event.feature", "cody.chat-question"),
            ("dead_letter.message_id", "orig-1"),
            ("dead_letter.publish_time", "2026-01-01T00:00:00Z"),
            (
                "dead_letter.subscription",
                "projects/p/subscriptions/s-to-bq",
            ),
            ("CloudPubSubDeadLetterSourceDeliveryCount", "5"),
        ];
        let letter = Letter::new(ReceivedMessage {
            ack_id: "ack".into(),
            message: WireMessage {
                data: Some("e30=".into()),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                message_id: "dl-1".into(),
                publish_time: Some("2026-01-02T00:00:00Z".into()),
            },
            delivery_attempt: None,
        });
        let body: Value = serde_json::from_slice(&letter.push_body()).expect("JSON");
        assert_eq!(
            body,
            json!({
                "message": {
                    "attributes": {"event.feature": "cody.chat-question"},
                    "data": "e30=",
                    "messageId": "orig-1", "message_id": "orig-1",
                    "publishTime": "2026-01-01T00:00:00Z", "publish_time": "2026-01-01T00:00:00Z",
                },
                "subscription": "projects/p/subscriptions/s-to-bq",
            })
        );
        assert_eq!(letter.handler().as_deref(), Some("to-bq"));
    }

    /// A message Pub/Sub moved itself (after too many deliveries) keeps its publisher's
    /// attributes as they were: a `dead_letter.handler` among them is the publisher's, and
    /// neither steers replay nor is stripped from the push.
    #[test]
    fn a_publishers_dead_letter_attributes_are_its_own() {
        let attributes = [
            ("dead_letter.handler", "to-gcs"),
            ("dead_letter.payload", "push_body"),
            ("dead_letter", "{}"),
            (
                "CloudPubSubDeadLetterSourceSubscription",
                "event-telemetry-sub-v2",
            ),
            ("CloudPubSubDeadLetterSourceSubscriptionProject", "p"),
            ("CloudPubSubDeadLetterSourceDeliveryCount", "5"),
        ];
        let letter = Letter::new(ReceivedMessage {
            ack_id: "ack".into(),
            message: WireMessage {
                data: Some("e30=".into()),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                message_id: "dl-2".into(),
                publish_time: Some("2026-01-02T00:00:00Z".into()),
            },
            delivery_attempt: None,
        });
        assert_eq!(letter.handler().as_deref(), Some("sub-v2"));
        assert!(!letter.is_push_body());
        let body: Value = serde_json::from_slice(&letter.push_body()).expect("JSON");
        assert_eq!(
            body["message"]["attributes"],
            json!({"dead_letter.handler": "to-gcs", "dead_letter.payload": "push_body", "dead_letter": "{}"})
        );
        assert_eq!(body["message"]["data"], "e30=");
    }

    /// A message with up to Pub/Sub's 100 attributes, each as large as allowed, is dead-lettered
    /// within the limits and read back whole: reason, handler, and the original push.
    #[test]
    fn a_letter_of_a_message_with_maximal_attributes_reads_back_whole() {
        use base64::Engine as _;
        use pipeline::dead_letter::{DeadLetter, Source};
        use pipeline::failure::{Failure, FailureKind};
        use pipeline::limits;

        for n in [95, limits::PUBSUB_MAX_ATTRIBUTES] {
            let attributes: BTreeMap<String, String> = (0..n)
                .map(|i| {
                    let key = format!(
                        "{i:03}{}",
                        "k".repeat(limits::PUBSUB_MAX_ATTRIBUTE_KEY_BYTES - 3)
                    );
                    (key, "v".repeat(limits::PUBSUB_MAX_ATTRIBUTE_VALUE_BYTES))
                })
                .collect();
            let body = PushEnvelope::new("orig-9", b"{\"event\":{}}")
                .attributes(&attributes)
                .subscription("projects/p/subscriptions/s-sub-v2")
                .to_bytes();
            let message = PushMessage::decode(&Default::default(), &body).expect("a push");
            let failure = Failure::new(FailureKind::Malformed, "invalid_event", "no feature");
            let dead = DeadLetter::new(Service::SubV2, Source::Message(&message), &failure)
                .expect("a dead letter");
            assert_eq!(limits::publishable(&dead.data, &dead.attributes), Ok(()));

            let letter = Letter::new(ReceivedMessage {
                ack_id: "ack".into(),
                message: WireMessage {
                    data: Some(base64::engine::general_purpose::STANDARD.encode(&dead.data)),
                    attributes: dead.attributes,
                    message_id: "dl-9".into(),
                    publish_time: None,
                },
                delivery_attempt: None,
            });
            assert_eq!(letter.reason(), "invalid_event", "{n}");
            assert_eq!(letter.detail().as_deref(), Some("no feature"), "{n}");
            assert_eq!(letter.handler().as_deref(), Some("sub-v2"), "{n}");
            assert_eq!(letter.original_message_id(), "orig-9", "{n}");
            let replayed = letter.decoded().expect("the original push");
            assert_eq!(replayed.attributes, attributes, "{n}");
            assert_eq!(&replayed.data.bytes()[..], b"{\"event\":{}}", "{n}");
            assert_eq!(replayed.message_id, "orig-9", "{n}");
        }
    }
}
