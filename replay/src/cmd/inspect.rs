//! `replay inspect`: what each handler would do with a dead letter now, without doing it.
//!
//! The real handlers run, against in-memory sinks that only keep what they were given: the
//! decision is the production code's, and nothing is written anywhere. For the BigQuery handlers
//! the row they would write is shown (already redacted); for `to-gcs` only the object name. The
//! message data is never printed.
//!
//! Rows are redacted with the **deployment's** `REDACT_KEYS`, never the shell's: `--redact-keys`
//! (`terraform output -raw redact_keys`), or, in the replay job, the job's own `REDACT_KEYS`,
//! which Terraform sets to the services' value. Without either, the rows are withheld (the
//! decisions are still shown): an engineer's shell without the deployment's extra keys would
//! otherwise print what the table never holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pipeline::config::{Env, Rules, Service};
use pipeline::failure::FailureKind;
use pipeline::google::pubsub::ReceivedMessage;
use pipeline::handler::{Destination, Handler};
use pipeline::outcome::Outcome;
use pipeline::sink::memory::{MemoryRows, MemoryStore};
use serde_json::{Value, json};

use crate::letter::Letter;
use crate::subscription::{Subscription, subscription_path};

/// One JSON line per letter, read from `file` or else from `subscription` (released, not acked).
pub async fn run(
    project: Option<&str>,
    file: Option<PathBuf>,
    subscription: Option<String>,
    limit: usize,
    redact_keys: Option<String>,
) -> Result<ExitCode> {
    let in_job = std::env::var_os("CLOUD_RUN_JOB").is_some();
    let keys = deployment_keys(redact_keys, in_job, std::env::var("REDACT_KEYS").ok());
    if keys.is_none() {
        eprintln!(
            "replay: rows withheld: give the deployment's keys, --redact-keys \"$(terraform output -raw redact_keys)\""
        );
    }
    // Exactly the services' parser: REDACT_KEYS can only add to the transcript keys.
    let rules = Rules::from_env(&Env::from_fn(|name| match name {
        "REDACT_KEYS" => keys.clone(),
        _ => std::env::var(name).ok(),
    }))?;
    let shown = Shown {
        rules,
        rows: keys.is_some(),
    };
    let messages = match (file, subscription) {
        (Some(path), _) => read_pull_file(&path)?,
        (None, Some(s)) => {
            let sub = subscription_path(project, &s)?;
            Subscription::connect(&sub)?.peek(limit).await?
        }
        (None, None) => bail!("give --file or --subscription"),
    };
    let mut stdout = std::io::stdout().lock();
    for m in messages.into_iter().take(limit) {
        let v = inspect(&shown, &Letter::new(m)).await;
        writeln!(stdout, "{}", serde_json::to_string(&v)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A file written by `replay pull` (or by `gcloud ... pull --format=json`).
fn read_pull_file(path: &Path) -> Result<Vec<ReceivedMessage>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a pull result", path.display()))
}

/// The deployment's `REDACT_KEYS`: the flag, or the replay job's own environment (Terraform's
/// value); `None` when neither (a person's shell is not the deployment).
fn deployment_keys(flag: Option<String>, in_job: bool, env: Option<String>) -> Option<String> {
    flag.or_else(|| in_job.then(|| env.unwrap_or_default()))
}

/// How letters are judged, and whether their rows may be printed.
struct Shown {
    rules: Rules,
    rows: bool,
}

/// One JSON object per letter: where it came from, why it failed, and each handler's decision.
async fn inspect(shown: &Shown, letter: &Letter) -> Value {
    let mut v = letter.describe();
    let mut now = serde_json::Map::new();
    for service in Service::ALL {
        now.insert(service.name().into(), decide(shown, service, letter).await);
    }
    v["now"] = Value::Object(now);
    v
}

/// What `service` would do with the letter now: `write`, `skip`, `retry` or `dead-letter`.
async fn decide(shown: &Shown, service: Service, letter: &Letter) -> Value {
    let rules = &shown.rules;
    let rows = Arc::new(MemoryRows::default());
    let destination = match service {
        Service::ToGcs => Destination::Objects {
            store: Arc::new(MemoryStore::default()),
            prefix: "transcripts".into(),
        },
        _ => Destination::Rows(rows.clone()),
    };
    let handler = match Handler::new(service, rules.clone(), destination) {
        Ok(h) => h,
        Err(e) => return json!({"action": "error", "reason": e}),
    };
    let message = match letter.decoded() {
        Ok(m) => m,
        Err(e) => {
            return json!({"action": "dead-letter", "reason": e.code(), "detail": e.to_string()});
        }
    };
    match handler.handle(&message).await.result {
        Ok(Outcome::Skipped { reason }) => json!({"action": "skip", "reason": reason}),
        Ok(Outcome::Written { target } | Outcome::AlreadyStored { target }) => {
            let mut v = json!({"action": "write", "target": target});
            if service != Service::ToGcs {
                v["row"] = match shown.rows {
                    true => rows.last().map_or(Value::Null, |r| r.value()),
                    false => Value::String("withheld: no --redact-keys".into()),
                };
            }
            v
        }
        Err(f) if f.kind == FailureKind::Transient => {
            json!({"action": "retry", "reason": f.code, "detail": f.detail})
        }
        Err(f) => json!({"action": "dead-letter", "reason": f.code, "detail": f.detail}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_redacted_with_the_deployments_keys_or_withheld() {
        let flag = Some("diff".to_owned());
        let shell = Some("other".to_owned());
        // The flag wins wherever it runs.
        assert_eq!(deployment_keys(flag.clone(), false, shell.clone()), flag);
        assert_eq!(deployment_keys(flag.clone(), true, shell.clone()), flag);
        // A person's shell is not the deployment: rows withheld.
        assert_eq!(deployment_keys(None, false, shell.clone()), None);
        // The replay job's environment is Terraform's value (none set: no extra keys).
        assert_eq!(deployment_keys(None, true, shell.clone()), shell);
        assert_eq!(deployment_keys(None, true, None), Some(String::new()));
    }
}
