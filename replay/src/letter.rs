//! One dead letter, read back: where it came from, why it failed, and the original push it was.
//!
//! Two kinds arrive on a dead-letter subscription:
//! - published by a handler itself for a permanent failure: it carries `dead_letter.*` attributes
//!   (handler, subscription, reason, detail, time, original message id);
//! - moved by Pub/Sub after too many failed deliveries (a transient failure that lasted): it
//!   carries Pub/Sub's `CloudPubSubDeadLetterSource*` attributes and no reason of ours.
//!
//! Either way the original data and attributes are unchanged, so the original push can be
//! rebuilt exactly: [`Letter::push_body`] strips the added attributes again.

use std::collections::BTreeMap;

use pipeline::dead_letter as dl;
use pipeline::decode::PushMessage;
use pipeline::pubsub::ReceivedMessage;
use serde_json::{Value, json};

const SOURCE_SUBSCRIPTION: &str = "CloudPubSubDeadLetterSourceSubscription";
const SOURCE_PROJECT: &str = "CloudPubSubDeadLetterSourceSubscriptionProject";
const SOURCE_COUNT: &str = "CloudPubSubDeadLetterSourceDeliveryCount";
const SOURCE_PUBLISH_TIME: &str = "CloudPubSubDeadLetterSourceTopicPublishTime";

pub struct Letter {
    pub received: ReceivedMessage,
}

impl Letter {
    pub fn new(received: ReceivedMessage) -> Self {
        Self { received }
    }

    fn attr(&self, k: &str) -> Option<&str> {
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
        ["to-gcs", "to-bq", "sub-v2"]
            .into_iter()
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
                !k.starts_with("dead_letter.") && !k.starts_with("CloudPubSubDeadLetterSource")
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
        let id = self.original_message_id();
        let mut message = json!({
            "attributes": self.original_attributes(),
            "messageId": id, "message_id": id,
        });
        if let Some(data) = &self.received.message.data {
            message["data"] = json!(data);
        }
        if let Some(t) = self.original_publish_time() {
            message["publishTime"] = json!(t);
            message["publish_time"] = json!(t);
        }
        let mut body = json!({ "message": message });
        if let Some(s) = self.subscription() {
            body["subscription"] = json!(s);
        }
        serde_json::to_vec(&body).unwrap_or_default()
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
