//! The dead-letter subscription as `replay` uses it: resolve its name, connect (to Pub/Sub or to
//! the emulator), pull messages, and release or ack them.
//!
//! A pulled message is leased: until it is acked or released, Pub/Sub does not deliver it again.
//! Every command releases what it does not ack, so nothing stays hidden until its lease expires.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use pipeline::config::Env;
use pipeline::google::pubsub::{ReceivedMessage, Subscription as Api};

/// `projects/P/subscriptions/S` as given, or a bare `S` in `--project` or $GOOGLE_CLOUD_PROJECT.
pub fn subscription_path(cli_project: Option<&str>, s: &str) -> Result<String> {
    if s.starts_with("projects/") {
        return Ok(s.to_owned());
    }
    let project = cli_project
        .map(str::to_owned)
        .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
        .context("a bare subscription name needs --project or GOOGLE_CLOUD_PROJECT")?;
    Ok(format!("projects/{project}/subscriptions/{s}"))
}

/// One dead-letter subscription, read through the shared crate's Google layer.
pub struct DeadLetterSubscription {
    api: Api,
}

impl DeadLetterSubscription {
    /// Pub/Sub with Application Default Credentials, or the emulator at PUBSUB_EMULATOR_HOST.
    pub fn connect(path: &str) -> Result<Self> {
        let emulator = pipeline::config::pubsub_emulator(&Env::process())?;
        let api = Api::connect(path, emulator.as_deref(), Duration::from_secs(30))
            .map_err(anyhow::Error::msg)?;
        Ok(Self { api })
    }

    /// One pull of at most `max` messages, leasing them.
    pub async fn pull(&self, max: u32) -> Result<Vec<ReceivedMessage>> {
        let sub = self.api.path();
        self.api
            .pull(max)
            .await
            .map_err(|e| anyhow::anyhow!("pull {sub}: {e}"))
    }

    /// Pulls up to `limit` distinct messages, leasing them; the caller acks or releases.
    pub async fn pull_distinct(&self, limit: usize) -> Result<Vec<ReceivedMessage>> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < limit {
            let want = (limit - out.len()).min(100) as u32;
            let fresh: Vec<_> = (self.pull(want).await?)
                .into_iter()
                .filter(|m| seen.insert(m.message.message_id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            out.extend(fresh);
        }
        Ok(out)
    }

    /// Up to `limit` distinct messages, released again at once: nothing is acked.
    pub async fn peek(&self, limit: usize) -> Result<Vec<ReceivedMessage>> {
        let messages = self.pull_distinct(limit).await?;
        self.release(&messages).await?;
        Ok(messages)
    }

    /// Ends the lease: Pub/Sub may deliver these messages again right away.
    pub async fn release(&self, messages: &[ReceivedMessage]) -> Result<()> {
        let sub = self.api.path();
        self.api
            .release(&ack_ids(messages))
            .await
            .map_err(|e| anyhow::anyhow!("release {sub}: {e}"))
    }

    /// Keeps these messages leased for `lease` from now (whole seconds, at most Pub/Sub's 600).
    pub async fn extend(&self, messages: &[ReceivedMessage], lease: Duration) -> Result<()> {
        let sub = self.api.path();
        let seconds = lease.as_secs().min(600) as u32;
        self.api
            .lease(&ack_ids(messages), seconds)
            .await
            .map_err(|e| anyhow::anyhow!("modifyAckDeadline {sub}: {e}"))
    }

    /// Removes these messages from the subscription for good.
    pub async fn ack(&self, messages: &[ReceivedMessage]) -> Result<()> {
        self.api
            .acknowledge(&ack_ids(messages))
            .await
            .map_err(|e| anyhow::anyhow!("ack: {e}"))
    }
}

fn ack_ids(messages: &[ReceivedMessage]) -> Vec<String> {
    messages.iter().map(|m| m.ack_id.clone()).collect()
}
