//! A small REST client for the Pub/Sub emulator: topics, push and pull subscriptions, publish,
//! pull, acknowledge. (The same JSON API as production Pub/Sub, minus authentication.)

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use pipeline::google::pubsub::Subscription;

use crate::emulators::json_answer;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct PubSub {
    http: reqwest::Client,
    base: String,
    pub project: String,
    /// The pipeline's own subscription client (pull, acknowledge, release), for any subscription.
    subscriptions: Subscription,
}

/// A push subscription to create.
#[derive(Debug, Clone)]
pub struct PushSubscription {
    pub name: String,
    pub topic: String,
    pub endpoint: String,
    /// Stored by the emulator but ignored: it delivers every message whatever the filter.
    pub filter: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub max_delivery_attempts: u32,
    /// Unwrapped push (`noWrapper`, with `writeMetadata`).
    pub no_wrapper: bool,
}

/// A message as pulled.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub ack_id: String,
    pub message_id: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub delivery_attempt: Option<u64>,
}

impl PubSub {
    pub fn new(emulator_url: &str, project: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{emulator_url}/v1/projects/{project}"),
            project: project.to_owned(),
            subscriptions: Subscription::connect(
                "projects/-/subscriptions/-",
                Some(emulator_url),
                Duration::from_secs(30),
            )
            .expect("an emulator client needs no credentials"),
        }
    }

    pub fn subscription_path(&self, subscription: &str) -> String {
        format!("projects/{}/subscriptions/{subscription}", self.project)
    }

    pub fn topic_path(&self, topic: &str) -> String {
        format!("projects/{}/topics/{topic}", self.project)
    }

    fn subscription(&self, subscription: &str) -> Subscription {
        self.subscriptions
            .other(&self.subscription_path(subscription))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}/{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        json_answer(req, &format!("Pub/Sub {path}")).await
    }

    pub async fn create_topic(&self, topic: &str) -> Result<()> {
        self.call(reqwest::Method::PUT, &format!("topics/{topic}"), None)
            .await
            .map(|_| ())
    }

    pub async fn create_push_subscription(&self, s: &PushSubscription) -> Result<()> {
        let mut push = json!({"pushEndpoint": s.endpoint});
        if s.no_wrapper {
            push["noWrapper"] = json!({"writeMetadata": true});
        }
        let mut body = json!({
            "topic": self.topic_path(&s.topic),
            "pushConfig": push,
            // 10 s, not the production 120 s: with a longer deadline the emulator redelivers
            // nacked pushes only a few times and then holds them, so its dead-letter policy
            // never triggers within a test (measured: 8 pushes and no dead letter in 40 s at
            // 60 s, against 5 pushes and a dead letter in ~10 s at 10 s). Handlers here answer
            // well within 10 s (SINK_TIMEOUT_SECONDS=5).
            "ackDeadlineSeconds": 10,
            "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "2s"},
        });
        if let Some(f) = &s.filter {
            body["filter"] = json!(f);
        }
        if let Some(dlq) = &s.dead_letter_topic {
            body["deadLetterPolicy"] = json!({
                "deadLetterTopic": self.topic_path(dlq),
                "maxDeliveryAttempts": s.max_delivery_attempts,
            });
        }
        self.call(
            reqwest::Method::PUT,
            &format!("subscriptions/{}", s.name),
            Some(body),
        )
        .await
        .map(|_| ())
    }

    pub async fn create_pull_subscription(&self, name: &str, topic: &str) -> Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("subscriptions/{name}"),
            Some(json!({"topic": self.topic_path(topic), "ackDeadlineSeconds": 30})),
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("subscriptions/{name}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Publishes one message; returns its message id.
    pub async fn publish(
        &self,
        topic: &str,
        data: &[u8],
        attributes: &BTreeMap<String, String>,
    ) -> Result<String> {
        let mut message = json!({ "attributes": attributes });
        if !data.is_empty() {
            message["data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("topics/{topic}:publish"),
                Some(json!({ "messages": [message] })),
            )
            .await?;
        answer["messageIds"][0]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("publish to {topic}: no message id"))
    }

    /// Pulls up to `max` messages (does not acknowledge them).
    pub async fn pull(&self, subscription: &str, max: u32) -> Result<Vec<Pulled>> {
        let got = self
            .subscription(subscription)
            .pull(max)
            .await
            .map_err(|e| anyhow::anyhow!("pull {subscription}: {e}"))?;
        Ok(got
            .into_iter()
            .map(|m| Pulled {
                data: m.message.data_bytes(),
                ack_id: m.ack_id,
                message_id: m.message.message_id,
                attributes: m.message.attributes,
                delivery_attempt: m.delivery_attempt.map(u64::from),
            })
            .collect())
    }

    /// Pulls up to `max` messages and releases them again at once: a look that leaves them
    /// available (otherwise they stay leased for the subscription's ack deadline).
    pub async fn peek(&self, subscription: &str, max: u32) -> Result<Vec<Pulled>> {
        let got = self.pull(subscription, max).await?;
        let ids: Vec<String> = got.iter().map(|m| m.ack_id.clone()).collect();
        self.subscription(subscription)
            .release(&ids)
            .await
            .map_err(|e| anyhow::anyhow!("release on {subscription}: {e}"))?;
        Ok(got)
    }

    pub async fn acknowledge(&self, subscription: &str, ack_ids: &[String]) -> Result<()> {
        self.subscription(subscription)
            .acknowledge(ack_ids)
            .await
            .map_err(|e| anyhow::anyhow!("acknowledge on {subscription}: {e}"))
    }
}

/// A wrapped push body as Pub/Sub sends it (camelCase and snake_case fields), for requests that
/// a test sends to a handler directly.
pub fn push_body(
    message_id: &str,
    data: &[u8],
    attributes: &BTreeMap<String, String>,
    subscription: &str,
) -> Value {
    pipeline::decode::PushEnvelope::new(message_id, data)
        .attributes(attributes)
        .publish_time("2026-11-27T18:36:36.963Z")
        .subscription(subscription)
        .to_json()
}
