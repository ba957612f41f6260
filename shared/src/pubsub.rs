//! A minimal Pub/Sub client over the REST API: publish, pull, acknowledge, and release (set the
//! ack deadline to 0). The handlers use it to dead-letter, the `replay` tool to read dead-letter
//! subscriptions, the tests to drive the emulator.
//!
//! REST over the reqwest client the BigQuery sink already uses, rather than the gRPC
//! `google-cloud-pubsub` crate: four small calls do not justify a second RPC stack on a two-core
//! build. Authentication is Application Default Credentials through `google-cloud-auth` (cached
//! tokens), or none with `PUBSUB_EMULATOR_HOST`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sink::SinkError;

const PUBSUB_API: &str = "https://pubsub.googleapis.com";
const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

#[derive(Clone)]
pub struct PubSubClient {
    http: reqwest::Client,
    base: String,
    auth: Option<google_cloud_auth::credentials::AccessTokenCredentials>,
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

impl PubSubClient {
    /// Production Pub/Sub with ADC, or the emulator at `emulator` (`http://host:port`).
    pub fn connect(emulator: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let (base, auth) = match emulator {
            Some(e) => (e.trim_end_matches('/').to_owned(), None),
            None => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .with_scopes([PUBSUB_SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        format!("cannot load Application Default Credentials for Pub/Sub: {e}")
                    })?;
                (PUBSUB_API.to_owned(), Some(creds))
            }
        };
        Ok(Self { http, base, auth })
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, SinkError> {
        let mut req = self
            .http
            .post(format!("{}/v1/{path}", self.base))
            .json(&body);
        if let Some(auth) = &self.auth {
            let token = auth
                .access_token()
                .await
                .map_err(|_| SinkError::Transient("no access token for Pub/Sub".into()))?;
            req = req.bearer_auth(token.token);
        }
        let resp = req.send().await.map_err(|e| {
            SinkError::Transient(if e.is_timeout() {
                "Pub/Sub timed out".into()
            } else {
                "Pub/Sub unreachable".into()
            })
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            // Google's error JSON names the resource and the problem, never the message data.
            let msg: String = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let detail = format!("Pub/Sub answered HTTP {status}: {msg}");
            return Err(if status.as_u16() == 400 {
                SinkError::Permanent(detail)
            } else {
                SinkError::Transient(detail)
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Publishes one message to `topic` (`projects/{p}/topics/{t}`); returns its message id.
    pub async fn publish(
        &self,
        topic: &str,
        data: &[u8],
        attributes: &BTreeMap<String, String>,
    ) -> Result<String, SinkError> {
        let mut message = json!({ "attributes": attributes });
        if !data.is_empty() {
            message["data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        let v = self
            .call(
                &format!("{topic}:publish"),
                json!({ "messages": [message] }),
            )
            .await?;
        v["messageIds"][0]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SinkError::Transient("Pub/Sub returned no message id".into()))
    }

    /// Pulls up to `max` messages from `subscription` (`projects/{p}/subscriptions/{s}`) without
    /// acknowledging them.
    pub async fn pull(
        &self,
        subscription: &str,
        max: u32,
    ) -> Result<Vec<ReceivedMessage>, SinkError> {
        let v = self
            .call(
                &format!("{subscription}:pull"),
                json!({ "maxMessages": max, "returnImmediately": true }),
            )
            .await?;
        Ok(v.get("receivedMessages")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| SinkError::Permanent(format!("unexpected pull response: {e}")))?
            .unwrap_or_default())
    }

    pub async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: &[String],
    ) -> Result<(), SinkError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        self.call(
            &format!("{subscription}:acknowledge"),
            json!({ "ackIds": ack_ids }),
        )
        .await
        .map(|_| ())
    }

    /// Makes pulled messages available again at once (ack deadline 0).
    pub async fn release(&self, subscription: &str, ack_ids: &[String]) -> Result<(), SinkError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        self.call(
            &format!("{subscription}:modifyAckDeadline"),
            json!({ "ackIds": ack_ids, "ackDeadlineSeconds": 0 }),
        )
        .await
        .map(|_| ())
    }
}
