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
use crate::decode::{MAX_MESSAGE_DATA_BYTES, PushMessage};
use crate::google::pubsub::Publisher;
use crate::handler::Failure;
use crate::sink::SinkError;

pub const HANDLER: &str = "dead_letter.handler";
pub const SUBSCRIPTION: &str = "dead_letter.subscription";
pub const REASON: &str = "dead_letter.reason";
pub const DETAIL: &str = "dead_letter.detail";
pub const TIME: &str = "dead_letter.time";
pub const MESSAGE_ID: &str = "dead_letter.message_id";
pub const PUBLISH_TIME: &str = "dead_letter.publish_time";
pub const PAYLOAD: &str = "dead_letter.payload";
/// The header `replay` sets on re-delivered pushes.
pub const REPLAY_HEADER: &str = "x-pipeline-replay";

/// Pub/Sub's attribute value limit is 1024 bytes.
const MAX_ATTRIBUTE_VALUE: usize = 1024;

/// One message to dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

impl DeadLetter {
    /// The dead letter for `failure`; `None` when the body is too large to publish (then the push
    /// is refused and Pub/Sub's own dead-letter policy takes over).
    pub fn new(
        service: Service,
        message: Option<&PushMessage>,
        body: &[u8],
        failure: &Failure,
    ) -> Option<Self> {
        let (data, mut attributes, payload) = match message {
            Some(m) => (
                m.data.bytes().to_vec(),
                m.attributes.clone(),
                "message_data",
            ),
            None if body.len() <= MAX_MESSAGE_DATA_BYTES => {
                (body.to_vec(), BTreeMap::new(), "push_body")
            }
            None => return None,
        };
        let mut put = |k: &str, v: &str| {
            attributes.insert(k.to_owned(), clip(v, MAX_ATTRIBUTE_VALUE));
        };
        put(HANDLER, service.name());
        put(REASON, failure.code);
        put(DETAIL, &failure.detail);
        put(
            TIME,
            &Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        put(PAYLOAD, payload);
        if let Some(m) = message {
            put(MESSAGE_ID, &m.message_id);
            if let Some(s) = &m.subscription {
                put(SUBSCRIPTION, s);
            }
            if let Some(t) = &m.publish_time {
                put(
                    PUBLISH_TIME,
                    &t.to_rfc3339_opts(SecondsFormat::Millis, true),
                );
            }
        }
        Some(Self { data, attributes })
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Where dead letters go.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Publishes the dead letter; returns its message id.
    async fn publish(&self, letter: &DeadLetter) -> Result<String, SinkError>;
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
    async fn publish(&self, letter: &DeadLetter) -> Result<String, SinkError> {
        // A refused publish (400) is permanent for the letter; the push is then answered 503
        // all the same (`server.rs`): nothing is acked that was not kept.
        self.publisher
            .publish(&letter.data, &letter.attributes)
            .await
            .map_err(SinkError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PushFormat;
    use crate::event::RawData;
    use crate::handler::FailureKind;

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
        let d = DeadLetter::new(Service::ToBq, Some(&m), b"ignored", &f).unwrap();
        assert_eq!(d.data, b"not json");
        assert_eq!(d.attributes["publisher.source"], "licensed_instance");
        assert_eq!(d.attributes[HANDLER], "to-bq");
        assert_eq!(d.attributes[REASON], "invalid_json");
        assert_eq!(d.attributes[MESSAGE_ID], "77");
        assert_eq!(d.attributes[SUBSCRIPTION], "projects/p/subscriptions/s");
        assert_eq!(d.attributes[PAYLOAD], "message_data");
        assert_eq!(d.attributes[DETAIL].len(), 1024);
        assert!(d.attributes.contains_key(TIME));

        let d = DeadLetter::new(Service::ToGcs, None, b"{not an envelope", &f).unwrap();
        assert_eq!(d.data, b"{not an envelope");
        assert_eq!(d.attributes[PAYLOAD], "push_body");
        assert!(
            DeadLetter::new(
                Service::ToGcs,
                None,
                &vec![0; MAX_MESSAGE_DATA_BYTES + 1],
                &f
            )
            .is_none()
        );
    }
}
