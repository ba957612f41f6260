//! Pub/Sub: publishing dead letters through `google-cloud-pubsub`'s `Publisher` (gRPC), and the
//! dead-letter subscriptions as `replay` reads them, over JSON through the layer (pull,
//! acknowledge, `modifyAckDeadline`).
//!
//! The `Publisher` works against Google's Pub/Sub emulator as it is: the emulator serves gRPC
//! and JSON on one port, so `PUBSUB_EMULATOR_HOST` is given to the client as its endpoint
//! (`http://host:port`, cleartext) with anonymous credentials. Messages go out at once (no
//! batching delay: a push waits for its dead letter before it is acked).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use google_cloud_pubsub::error::PublishError;
use serde::{Deserialize, Serialize};

use super::{Api, Call, Credentials, GoogleError, PUBSUB, calls};
use crate::limits;

/// The one scope Pub/Sub has.
pub const SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// A topic to publish to, through Google's client.
pub struct Publisher {
    inner: google_cloud_pubsub::client::Publisher,
    timeout: Duration,
}

impl Publisher {
    /// Publishes to `topic` (`projects/P/topics/T`) at Google, or at `emulator`
    /// (`http://host:port`). `timeout` bounds one publish, retries included.
    pub async fn connect(
        topic: &str,
        emulator: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Credentials::new(emulator.is_some(), &[SCOPE], PUBSUB.name)?;
        let builder = google_cloud_pubsub::client::Publisher::builder(topic)
            .set_message_count_threshold(1)
            .set_delay_threshold(Duration::ZERO);
        let inner = configure_google_client!(builder, credentials, timeout, emulator)
            .build()
            .await
            .map_err(|e| format!("cannot create the Pub/Sub publisher for {topic}: {e}"))?;
        Ok(Self { inner, timeout })
    }

    /// Publishes one message; returns its message id.
    pub async fn publish(
        &self,
        data: &[u8],
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, GoogleError> {
        let call = calls::TOPICS_PUBLISH;
        if let Err(problem) = limits::publishable(data, attributes) {
            // Pub/Sub would answer 400; the emulator would take it. Refused here alike.
            return Err(GoogleError {
                call,
                status: Some(400),
                reason: Some("invalidArgument".into()),
                detail: problem,
            });
        }
        let message = google_cloud_pubsub::model::Message::new()
            .set_data(bytes::Bytes::copy_from_slice(data))
            .set_attributes(attributes.clone());
        match tokio::time::timeout(self.timeout, self.inner.publish(message)).await {
            Err(_) => Err(GoogleError::transport(
                call,
                format!("Pub/Sub did not answer within {:?}", self.timeout),
            )),
            Ok(Ok(id)) => Ok(id),
            Ok(Err(PublishError::Rpc(e))) => Err(GoogleError::from_gax(call, &e)),
            Ok(Err(other)) => Err(GoogleError::transport(call, other.to_string())),
        }
    }
}

/// A message as `subscriptions.pull` returns it (the shape `gcloud pubsub subscriptions pull
/// --format=json` prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedMessage {
    #[serde(default)]
    pub ack_id: String,
    pub message: WireMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_attempt: Option<u32>,
}

/// A `PubsubMessage` in JSON (data in base64).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
}

impl WireMessage {
    /// The decoded data (empty when absent or not base64).
    pub fn data_bytes(&self) -> Vec<u8> {
        self.data
            .as_deref()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default()
    }
}

/// `subscriptions.pull`'s answer.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullResponse {
    #[serde(default)]
    pub received_messages: Vec<ReceivedMessage>,
}

/// `acknowledge` and `modifyAckDeadline` answer `{}`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    max_messages: u32,
    return_immediately: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AcknowledgeRequest<'a> {
    ack_ids: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModifyAckDeadlineRequest<'a> {
    ack_ids: &'a [String],
    ack_deadline_seconds: u32,
}

/// A pull subscription (`projects/P/subscriptions/S`), over JSON.
#[derive(Clone)]
pub struct Subscription {
    api: Api,
    path: String,
}

impl Subscription {
    /// The subscription at Google, or at `emulator` (`http://host:port`).
    pub fn connect(path: &str, emulator: Option<&str>, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            api: Api::new(&PUBSUB, emulator, &[SCOPE], timeout)?,
            path: path.to_string(),
        })
    }

    /// The same subscription client for another subscription (shares credentials).
    pub fn other(&self, path: &str) -> Self {
        Self {
            api: self.api.clone(),
            path: path.to_string(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Up to `max` messages, leased until acked, released or their deadline passes.
    pub async fn pull(&self, max: u32) -> Result<Vec<ReceivedMessage>, GoogleError> {
        let body = PullRequest {
            max_messages: max,
            return_immediately: true,
        };
        let answer: PullResponse = self
            .api
            .post(
                calls::SUBSCRIPTIONS_PULL,
                &format!("v1/{}:pull", self.path),
                &body,
            )
            .await?;
        Ok(answer.received_messages)
    }

    /// Removes these messages from the subscription.
    pub async fn acknowledge(&self, ack_ids: &[String]) -> Result<(), GoogleError> {
        let body = AcknowledgeRequest { ack_ids };
        self.on_messages(
            calls::SUBSCRIPTIONS_ACKNOWLEDGE,
            "acknowledge",
            ack_ids,
            &body,
        )
        .await
    }

    /// Makes pulled messages available again at once (ack deadline 0).
    pub async fn release(&self, ack_ids: &[String]) -> Result<(), GoogleError> {
        self.lease(ack_ids, 0).await
    }

    /// Sets the lease of pulled messages to `seconds` from now (Pub/Sub takes 0 to 600).
    pub async fn lease(&self, ack_ids: &[String], seconds: u32) -> Result<(), GoogleError> {
        let body = ModifyAckDeadlineRequest {
            ack_ids,
            ack_deadline_seconds: seconds,
        };
        self.on_messages(
            calls::SUBSCRIPTIONS_MODIFY_ACK_DEADLINE,
            "modifyAckDeadline",
            ack_ids,
            &body,
        )
        .await
    }

    /// `v1/{subscription}:{verb}` with `body`, for pulled messages (none: nothing to send).
    async fn on_messages(
        &self,
        call: Call,
        verb: &str,
        ack_ids: &[String],
        body: &impl Serialize,
    ) -> Result<(), GoogleError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let path = format!("v1/{}:{verb}", self.path);
        let _: Empty = self.api.post(call, &path, body).await?;
        Ok(())
    }
}
