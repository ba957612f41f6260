//! `replay`: the on-call engineer's tool for the pipeline's dead-letter subscriptions.
//!
//! Each push subscription (`to-gcs`, `to-bq`, `sub-v2`) has its own dead-letter topic with a pull
//! subscription on it. `replay` reads those subscriptions, explains each message, and re-delivers
//! it as a push to the one handler that failed. It never publishes to the main topic: that would
//! fan the message out to all three subscriptions again and write it twice to BigQuery.

mod inspect;
mod letter;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::pubsub::{PubSubClient, ReceivedMessage};
use serde_json::{Value, json};

use crate::letter::Letter;
use pipeline::config::{Env, Rules};

const AFTER_HELP: &str = "\
A dead letter at 3 a.m., step by step:
  1. Save what is there (nothing is acked):
       replay pull --subscription event-telemetry-sub-v2-dead-letter --out dlq.json
  2. See why each message failed and what each handler would do with it now:
       replay inspect --file dlq.json
  3. Fix the cause (deploy the fix, restore the bucket or table, correct the configuration).
  4. Re-deliver to the handler that failed, first as a dry run:
       replay push --subscription event-telemetry-sub-v2-dead-letter --to https://sub-v2-xxxx.a.run.app --dry-run
       replay push --subscription event-telemetry-sub-v2-dead-letter --to https://sub-v2-xxxx.a.run.app
     A message is acked on the dead-letter subscription only after the handler answered 2xx.
     Replaying twice is safe: the handlers are idempotent (create-once objects, insertId rows).
  5. A message that can never succeed (inspect says dead-letter for its handler): keep the file
     from step 1, then remove it from the subscription:
       replay drop --subscription event-telemetry-sub-v2-dead-letter --message-id 1234567890

Subscriptions are `projects/P/subscriptions/S` or a bare `S` in $GOOGLE_CLOUD_PROJECT (or --project).
Credentials: Application Default Credentials (gcloud auth application-default login); pushes to
Cloud Run carry an ID token for the --to URL. PUBSUB_EMULATOR_HOST targets the emulator instead, and
pushes to localhost/127.0.0.1 carry no token. DOTCOM_URL, DOTCOM_INSTANCE_IDS and REDACT_KEYS are read
like the services read them. `pull` output holds the message data (transcripts): keep it as
restricted as the bucket. `inspect` never prints the data itself: it shows the BigQuery row a handler
would write, redacted exactly as BigQuery would get it.
In production the identity replay runs as must be accepted by the services: allowed in
PUSH_AUTH_SERVICE_ACCOUNTS and granted roles/run.invoker, from a network that the services'
internal ingress admits (a VM or job in the project's VPC).
`push` only pushes letters whose failing handler is the one answering at --to (its /healthz), acks a
letter only when that handler answered written, already_stored or a deliberate skip, and never
follows redirects.";

#[derive(Parser)]
#[command(name = "replay", version, about = "Pull, inspect and re-deliver the pipeline's dead letters", after_help = AFTER_HELP)]
struct Cli {
    /// Project of bare subscription names (default: $GOOGLE_CLOUD_PROJECT).
    #[arg(long, global = true)]
    project: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Save dead letters without acking them, as `gcloud pubsub subscriptions pull --format=json` prints.
    Pull {
        /// The dead-letter subscription.
        #[arg(long)]
        subscription: String,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Explain each dead letter: where it came from, why it failed, and what each handler would
    /// do with it now (write, skip, dead-letter), with the (redacted) BigQuery row it would write.
    /// No side effects.
    Inspect {
        /// A file written by `replay pull` (or by gcloud ... pull --format=json).
        #[arg(
            long,
            conflicts_with = "subscription",
            required_unless_present = "subscription"
        )]
        file: Option<PathBuf>,
        /// Read the dead-letter subscription directly (messages are released, not acked).
        #[arg(long)]
        subscription: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-deliver dead letters as push requests to the handler that failed; ack each one only
    /// after the handler answered 2xx.
    Push {
        /// The dead-letter subscription to drain.
        #[arg(long)]
        subscription: String,
        /// The handler's URL (its Cloud Run URL, or http://127.0.0.1:PORT locally).
        #[arg(long)]
        to: String,
        /// Show what would be sent; send nothing, ack nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// At most this many pushes per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Keep going after a message fails again (default: stop at the first failure).
        #[arg(long)]
        continue_on_error: bool,
    },
    /// Remove messages from a dead-letter subscription for good (ack them), by message id (the
    /// dead-letter message id or the original one, as `inspect` shows them). Save them first.
    Drop {
        #[arg(long)]
        subscription: String,
        /// A message id to drop; repeat for several.
        #[arg(long = "message-id", required = true)]
        message_ids: Vec<String>,
    },
}

fn subscription_path(cli_project: &Option<String>, s: &str) -> Result<String> {
    if s.starts_with("projects/") {
        return Ok(s.to_owned());
    }
    let project = cli_project
        .clone()
        .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
        .context("a bare subscription name needs --project or GOOGLE_CLOUD_PROJECT")?;
    Ok(format!("projects/{project}/subscriptions/{s}"))
}

fn pubsub() -> Result<PubSubClient> {
    let emulator = pipeline::config::pubsub_emulator(&Env::process())?;
    PubSubClient::connect(emulator.as_deref(), Duration::from_secs(30)).map_err(anyhow::Error::msg)
}

/// Pulls up to `limit` distinct messages, leasing them; the caller acks or releases.
async fn pull_distinct(
    client: &PubSubClient,
    sub: &str,
    limit: usize,
) -> Result<Vec<ReceivedMessage>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < limit {
        let want = (limit - out.len()).min(100) as u32;
        let batch = client
            .pull(sub, want)
            .await
            .map_err(|e| anyhow::anyhow!("pull {sub}: {e}"))?;
        let fresh: Vec<_> = batch
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

async fn release(client: &PubSubClient, sub: &str, messages: &[ReceivedMessage]) -> Result<()> {
    let ids: Vec<String> = messages.iter().map(|m| m.ack_id.clone()).collect();
    client
        .release(sub, &ids)
        .await
        .map_err(|e| anyhow::anyhow!("release {sub}: {e}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("replay: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Pull {
            subscription,
            limit,
            out,
        } => {
            let sub = subscription_path(&cli.project, &subscription)?;
            let client = pubsub()?;
            let messages = pull_distinct(&client, &sub, limit).await?;
            release(&client, &sub, &messages).await?;
            let text = serde_json::to_string_pretty(&messages)? + "\n";
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "replay: saved {} message(s) to {} (not acked)",
                        messages.len(),
                        path.display()
                    );
                }
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Inspect {
            file,
            subscription,
            limit,
        } => {
            // Exactly the services' parser: REDACT_KEYS can only add to the transcript keys.
            let rules = Rules::from_env(&Env::process())?;
            let messages: Vec<ReceivedMessage> = match (file, subscription) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a pull result", path.display()))?
                }
                (None, Some(s)) => {
                    let sub = subscription_path(&cli.project, &s)?;
                    let client = pubsub()?;
                    let messages = pull_distinct(&client, &sub, limit).await?;
                    release(&client, &sub, &messages).await?;
                    messages
                }
                (None, None) => bail!("give --file or --subscription"),
            };
            let mut stdout = std::io::stdout().lock();
            for m in messages.into_iter().take(limit) {
                let v = inspect::inspect(&rules, &Letter::new(m)).await;
                writeln!(stdout, "{}", serde_json::to_string(&v)?)?;
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Push {
            subscription,
            to,
            dry_run,
            limit,
            rate,
            continue_on_error,
        } => {
            let sub = subscription_path(&cli.project, &subscription)?;
            push(&sub, &to, dry_run, limit, rate, continue_on_error).await
        }
        Command::Drop {
            subscription,
            message_ids,
        } => {
            let sub = subscription_path(&cli.project, &subscription)?;
            drop_messages(&sub, &message_ids).await
        }
    }
}

/// Acks the given messages (by dead-letter or original message id); releases the others.
async fn drop_messages(sub: &str, message_ids: &[String]) -> Result<std::process::ExitCode> {
    let client = pubsub()?;
    let messages = pull_distinct(&client, sub, 10_000).await?;
    let (chosen, rest): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| {
        let l = Letter::new(m.clone());
        message_ids
            .iter()
            .any(|id| *id == l.dead_letter_message_id() || *id == l.original_message_id())
    });
    release(&client, sub, &rest).await?;
    let ack_ids: Vec<String> = chosen.iter().map(|m| m.ack_id.clone()).collect();
    client
        .acknowledge(sub, &ack_ids)
        .await
        .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
    for m in &chosen {
        let l = Letter::new(m.clone());
        eprintln!(
            "replay: dropped {} (message {}, reason {})",
            l.dead_letter_message_id(),
            l.original_message_id(),
            l.reason()
        );
    }
    let found: usize = message_ids
        .iter()
        .filter(|id| {
            chosen.iter().any(|m| {
                let l = Letter::new(m.clone());
                **id == l.dead_letter_message_id() || **id == l.original_message_id()
            })
        })
        .count();
    if found < message_ids.len() {
        eprintln!(
            "replay: {} of the given message ids were not found on {sub}",
            message_ids.len() - found
        );
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// ID tokens for Cloud Run; none for a local handler.
enum Auth {
    None,
    IdToken(google_cloud_auth::credentials::idtoken::IDTokenCredentials),
}

impl Auth {
    fn for_url(url: &str) -> Result<Self> {
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or(url)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(Auth::None);
        }
        let audience = url.trim_end_matches('/').to_owned();
        let creds = google_cloud_auth::credentials::idtoken::Builder::new(audience)
            .build()
            .map_err(|e| {
                anyhow::anyhow!("cannot get ID tokens from Application Default Credentials: {e}")
            })?;
        Ok(Auth::IdToken(creds))
    }

    async fn header(&self) -> Result<Option<String>> {
        match self {
            Auth::None => Ok(None),
            Auth::IdToken(c) => Ok(Some(format!(
                "Bearer {}",
                c.id_token()
                    .await
                    .map_err(|e| anyhow::anyhow!("ID token: {e}"))?
            ))),
        }
    }
}

#[derive(Default)]
struct Tally {
    written: usize,
    already_stored: usize,
    skipped: BTreeMap<String, usize>,
    failing: BTreeMap<String, usize>,
    not_this_handler: usize,
    would_send: usize,
}

/// What the handler answered, and whether that is a reason to ack the dead letter.
fn judge(status: reqwest::StatusCode, body: &Value) -> (bool, String) {
    let outcome = body["outcome"].as_str().unwrap_or("");
    let reason = body["reason"].as_str().unwrap_or("");
    if !status.is_success() {
        return (
            false,
            format!(
                "HTTP {} {}",
                status.as_u16(),
                body["error"].as_str().unwrap_or("")
            ),
        );
    }
    match (outcome, reason) {
        ("written" | "already_stored", _) => (true, outcome.to_owned()),
        // Sent to a handler that does not own it: nothing was stored, keep the dead letter.
        ("skipped", "not_for_this_subscription") => {
            (false, "skipped: not_for_this_subscription".into())
        }
        ("skipped", r) if !r.is_empty() => (true, format!("skipped:{r}")),
        // A 2xx that is not one of the handler's answers (a proxy, a login page): keep it.
        _ => (
            false,
            format!("HTTP {} without a handler outcome", status.as_u16()),
        ),
    }
}

async fn push(
    sub: &str,
    to: &str,
    dry_run: bool,
    limit: usize,
    rate: f64,
    continue_on_error: bool,
) -> Result<std::process::ExitCode> {
    let client = pubsub()?;
    let auth = Auth::for_url(to)?;
    // Never follow redirects: a 307 would re-send the message (transcripts included) elsewhere.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = to.trim_end_matches('/').to_owned();
    let endpoint = format!("{base}/");
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.01));

    // Which handler is listening at --to? A letter goes only to the handler that failed it.
    let mut health = http.get(format!("{base}/healthz"));
    if let Some(h) = auth.header().await? {
        health = health.header("authorization", h);
    }
    let target: Value = health
        .send()
        .await
        .with_context(|| format!("cannot reach {base}/healthz"))?
        .json()
        .await
        .with_context(|| format!("{base}/healthz is not one of the pipeline's services"))?;
    let target = target["service"]
        .as_str()
        .context("healthz names no service")?
        .to_owned();

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} processed {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut tally = Tally::default();
    let mut stopped = false;
    let mut seen = std::collections::BTreeSet::new();
    let mut processed = 0;
    let mut empty_pulls = 0;
    // Pull small batches just before pushing them, so no lease expires before its ack.
    while processed < limit && !stopped {
        let want = (limit - processed).min(10) as u32;
        let batch = client
            .pull(sub, want)
            .await
            .map_err(|e| anyhow::anyhow!("pull {sub}: {e}"))?;
        let (fresh, repeat): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|m| seen.insert(m.message.message_id.clone()));
        release(&client, sub, &repeat).await?;
        if fresh.is_empty() {
            // An empty pull does not prove an empty subscription: ask twice more.
            empty_pulls += 1;
            if empty_pulls > 2 || !repeat.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let mut untouched = Vec::new();
        for m in fresh {
            if stopped {
                untouched.push(m);
                continue;
            }
            processed += 1;
            bar.inc(1);
            let started = Instant::now();
            let letter = Letter::new(m.clone());
            let label = format!(
                "{} (event {})",
                letter.original_message_id(),
                letter.event_id().unwrap_or_else(|| "?".into())
            );
            if letter.handler().is_some_and(|h| h != target) {
                tally.not_this_handler += 1;
                bar.println(format!(
                    "left alone: {label} failed in {}, not {target}",
                    letter.handler().unwrap_or_default()
                ));
                untouched.push(m);
                continue;
            }
            if dry_run {
                tally.would_send += 1;
                bar.println(format!(
                    "would push {label} to {endpoint} (dead-lettered for: {})",
                    letter.reason()
                ));
                untouched.push(m);
                continue;
            }
            let mut req = http
                .post(&endpoint)
                .header("content-type", "application/json")
                .header(pipeline::dead_letter::REPLAY_HEADER, "1")
                .body(letter.push_body());
            if let Some(h) = auth.header().await? {
                req = req.header("authorization", h);
            }
            let (ok, verdict) = match req.send().await {
                Err(e) => (false, format!("unreachable: {}", e.without_url())),
                Ok(resp) => {
                    let status = resp.status();
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    judge(status, &body)
                }
            };
            if ok {
                client
                    .acknowledge(sub, std::slice::from_ref(&m.ack_id))
                    .await
                    .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                match verdict.as_str() {
                    "written" => tally.written += 1,
                    "already_stored" => tally.already_stored += 1,
                    _ => *tally.skipped.entry(verdict.clone()).or_default() += 1,
                }
            } else {
                bar.println(format!("still failing: {label}: {verdict}"));
                *tally.failing.entry(verdict).or_default() += 1;
                untouched.push(m);
                if !continue_on_error {
                    stopped = true;
                }
            }
            bar.set_message(format!(
                "{} replayed, {} failing",
                tally.written + tally.already_stored,
                tally.failing.values().sum::<usize>()
            ));
            let spent = started.elapsed();
            if spent < interval {
                tokio::time::sleep(interval - spent).await;
            }
        }
        release(&client, sub, &untouched).await?;
    }
    bar.finish_and_clear();

    let failing: usize = tally.failing.values().sum();
    let summary = json!({
        "subscription": sub, "to": endpoint, "handler": target, "dryRun": dry_run,
        "replayed": tally.written + tally.already_stored,
        "written": tally.written, "alreadyStored": tally.already_stored,
        "skipped": tally.skipped, "stillFailing": tally.failing,
        "notForThisHandler": tally.not_this_handler,
        "wouldPush": tally.would_send,
    });
    if dry_run {
        eprintln!(
            "replay: dry run: {} message(s) would be pushed to {target}; nothing sent, nothing acked",
            tally.would_send
        );
    } else {
        eprintln!(
            "replay: replayed {} ({} written, {} already stored), skipped {}, still failing {}, left for another handler {}{}",
            tally.written + tally.already_stored,
            tally.written,
            tally.already_stored,
            tally.skipped.values().sum::<usize>(),
            failing,
            tally.not_this_handler,
            if stopped {
                " (stopped at the first failure; --continue-on-error to go on)"
            } else {
                ""
            },
        );
    }
    println!("{summary}");
    Ok(if failing == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}
