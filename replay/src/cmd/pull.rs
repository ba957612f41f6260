//! `replay pull`: save dead letters without acking them, in the shape `gcloud pubsub
//! subscriptions pull --format=json` prints (what `replay inspect --file` reads).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::client::Subscription;

pub async fn run(sub: &str, limit: usize, out: Option<&Path>) -> Result<ExitCode> {
    let messages = Subscription::connect(sub)?.peek(limit).await?;
    let text = serde_json::to_string_pretty(&messages)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "replay: saved {} message(s) to {} (not acked)",
                messages.len(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
