//! `replay pull`: save dead letters without acking them, in the shape `gcloud pubsub
//! subscriptions pull --format=json` prints (what `replay inspect --file` reads).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::client::Subscription;

pub async fn run(sub: &str, limit: usize, out: Option<&Path>) -> Result<ExitCode> {
    // In a Cloud Run job (the replay job) standard output and files end up in Cloud Logging or a
    // throwaway disk: raw letters hold transcripts, so they are only saved from a person's machine.
    if std::env::var_os("CLOUD_RUN_JOB").is_some() {
        anyhow::bail!(
            "`pull` prints raw dead letters (transcripts); it does not run as a Cloud Run job, whose \
             output goes to Cloud Logging. Run it where the file stays as restricted as the bucket."
        );
    }
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
