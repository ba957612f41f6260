//! `replay inspect`: what each handler would do with a dead letter now, without doing it.
//!
//! The real handlers run, against in-memory sinks that only keep what they were given: the
//! decision is the production code's, and nothing is written anywhere. For the BigQuery handlers
//! the row they would write is shown (already redacted); for `to-gcs` only the object name. The
//! message data is never printed.
//!
//! Letters are judged by the **deployment's** rules (`DOTCOM_URL`, `DOTCOM_INSTANCE_IDS`,
//! `REDACT_KEYS`), never the shell's: `--rules` (`terraform output -json rules`), or, in the
//! replay job, the job's own environment, which Terraform sets from the same values as the
//! services'. Without either, only what the letter says of itself is printed and the decisions
//! are withheld: a shell without the deployment's extra keys would print rows the table never
//! holds, and one with another DotCom URL would call transcripts skips.

use std::collections::BTreeMap;
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
use crate::subscription::{DeadLetterSubscription, subscription_path};

/// One JSON line per letter, read from `file` or else from `subscription` (released, not acked).
pub async fn run(
    project: Option<&str>,
    file: Option<PathBuf>,
    subscription: Option<String>,
    limit: usize,
    rules: Option<String>,
) -> Result<ExitCode> {
    let in_job = std::env::var_os("CLOUD_RUN_JOB").is_some();
    let rules = deployment_rules(rules.as_deref(), in_job, &Env::process())?;
    if rules.is_none() {
        eprintln!("replay: decisions withheld: {WITHHELD}");
    }
    let messages = match (file, subscription) {
        (Some(path), _) => read_pull_file(&path)?,
        (None, Some(s)) => {
            let sub = subscription_path(project, &s)?;
            DeadLetterSubscription::connect(&sub)?.peek(limit).await?
        }
        (None, None) => bail!("give --file or --subscription"),
    };
    let mut stdout = std::io::stdout().lock();
    for m in messages.into_iter().take(limit) {
        let v = inspect(rules.as_ref(), &Letter::new(m)).await;
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

/// What is printed instead of the decisions, and why.
const WITHHELD: &str = "give the deployment's rules, --rules \"$(terraform output -json rules)\"";

/// The deployment's rules: `--rules`, a JSON object of exactly [`Rules::VARIABLES`] (Terraform's
/// `rules` output), or the replay job's own environment (Terraform's values); `None` when
/// neither (a person's shell is not the deployment).
fn deployment_rules(flag: Option<&str>, in_job: bool, env: &Env<'_>) -> Result<Option<Rules>> {
    let Some(text) = flag else {
        return Ok(if in_job {
            Some(Rules::from_env(env)?)
        } else {
            None
        });
    };
    let given: BTreeMap<String, String> = serde_json::from_str(text)
        .context("--rules takes a JSON object of strings: terraform output -json rules")?;
    let names: Vec<&str> = given.keys().map(String::as_str).collect();
    let mut want = Rules::VARIABLES.to_vec();
    want.sort_unstable();
    if names != want {
        bail!("--rules must give exactly {want:?}, it gives {names:?}");
    }
    // Exactly the services' parser: REDACT_KEYS can only add to the transcript keys.
    Ok(Some(Rules::from_env(&Env::from_fn(|name| {
        given.get(name).cloned()
    }))?))
}

/// One JSON object per letter: where it came from, why it failed, and each handler's decision
/// (by the deployment's rules; withheld without them).
async fn inspect(rules: Option<&Rules>, letter: &Letter) -> Value {
    let mut v = letter.describe();
    let Some(rules) = rules else {
        v["now"] = Value::String(format!("withheld: {WITHHELD}"));
        return v;
    };
    let mut now = serde_json::Map::new();
    for service in Service::ALL {
        now.insert(service.name().into(), decide(rules, service, letter).await);
    }
    v["now"] = Value::Object(now);
    v
}

/// What `service` would do with the letter now: `write`, `skip`, `retry` or `dead-letter`.
async fn decide(rules: &Rules, service: Service, letter: &Letter) -> Value {
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
                v["row"] = rows.last().map_or(Value::Null, |r| r.value());
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

    fn redact_keys(rules: &Option<Rules>) -> Option<Vec<String>> {
        rules.as_ref().map(|r| r.redactor.keys().to_vec())
    }

    #[test]
    fn letters_are_judged_by_the_deployments_rules_or_not_at_all() {
        let shell = Env::from_fn(|name| (name == "REDACT_KEYS").then(|| "other".to_owned()));
        let flag = r#"{"DOTCOM_URL": "https://sourcegraph.com", "DOTCOM_INSTANCE_IDS": "", "REDACT_KEYS": "diff"}"#;
        // The flag wins wherever it runs.
        for in_job in [false, true] {
            let rules = deployment_rules(Some(flag), in_job, &shell).expect("valid");
            let keys = redact_keys(&rules).expect("rules");
            assert!(keys.contains(&"diff".to_owned()) && !keys.contains(&"other".to_owned()));
        }
        // A person's shell is not the deployment: nothing judged.
        assert!(deployment_rules(None, false, &shell).expect("ok").is_none());
        // The replay job's environment is Terraform's.
        let keys = redact_keys(&deployment_rules(None, true, &shell).expect("ok")).expect("rules");
        assert!(keys.contains(&"other".to_owned()));
        // Only exactly the rules' variables.
        for bad in [
            r#"{"REDACT_KEYS": "diff"}"#,
            r#"{"DOTCOM_URL": "", "DOTCOM_INSTANCE_IDS": "", "REDACT_KEYS": "", "X": ""}"#,
            "diff",
        ] {
            assert!(deployment_rules(Some(bad), false, &shell).is_err(), "{bad}");
        }
    }
}
