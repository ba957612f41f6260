//! `replay`: the on-call engineer's tool for the pipeline's dead-letter subscriptions.
//!
//! Each push subscription (`to-gcs`, `to-bq`, `sub-v2`) has its own dead-letter topic with a pull
//! subscription on it. `replay` reads those subscriptions, explains each message, and re-delivers
//! it as a push to the one handler that failed. It never publishes to the main topic: that would
//! fan the message out to all three subscriptions again and write it twice to BigQuery.
//!
//! Where things are:
//! - the command line (flags, help, exit codes) and the dispatch to one function per
//!   subcommand: here;
//! - the subcommands, one file each: [`cmd::pull`] (save letters, ack nothing), [`cmd::inspect`]
//!   (what each handler would do now, through the real handlers and in-memory sinks),
//!   [`cmd::push`] (re-deliver to the handler that failed, ack what it took), [`cmd::drop`] (ack
//!   for good, by message id);
//! - one dead letter read back (origin, reason, the original push rebuilt): [`letter`];
//! - the dead-letter subscription (name, connection, pull, release, ack): [`subscription`];
//! - the handler at `--to` (which service it is, one push, judging its answer): [`target`];
//! - the ID token a push to Cloud Run carries: [`id_token`];
//! - what [`cmd::audit`] reads (the bucket, the table, the queries in one file): [`audit`].

mod audit;
mod cmd;
mod id_token;
mod letter;
mod subscription;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::subscription::subscription_path;

const AFTER_HELP: &str = "\
A dead letter at 3 a.m., step by step:
  1. Save what is there (nothing is acked):
       replay pull --subscription event-telemetry-sub-v2-dead-letter --out dlq.json
  2. See why each message failed and what each handler would do with it now:
       replay inspect --file dlq.json --rules \"$(terraform output -json rules)\"
  3. Fix the cause (deploy the fix, restore the bucket or table, correct the configuration).
  4. Re-deliver to the handler that failed, first as a dry run:
       replay push --subscription event-telemetry-sub-v2-dead-letter --to https://sub-v2-xxxx.a.run.app --dry-run
       replay push --subscription event-telemetry-sub-v2-dead-letter --to https://sub-v2-xxxx.a.run.app
     A message is acked on the dead-letter subscription only after the handler answered 2xx.
     Replaying twice loses nothing: objects are create-once, but a row is written again each time
     (the Storage Write API's default stream does not deduplicate): query event_telemetry_once.
  5. A message that can never succeed (inspect says dead-letter for its handler): keep the file
     from step 1, then remove it from the subscription:
       replay drop --subscription event-telemetry-sub-v2-dead-letter --message-id 1234567890

Subscriptions are `projects/P/subscriptions/S` or a bare `S` in $GOOGLE_CLOUD_PROJECT (or --project).
Credentials: Application Default Credentials (gcloud auth application-default login); pushes to
Cloud Run carry an ID token for the --to URL. PUBSUB_EMULATOR_HOST targets the emulator instead, and
pushes to localhost/127.0.0.1 carry no token. `pull` output holds the message data (transcripts):
keep it as restricted as the bucket. `inspect` never prints the data itself: it judges each letter
by the deployment's rules (--rules, or the replay job's environment; never your shell's) and shows
the BigQuery row a handler would write, redacted exactly as BigQuery would get it.
In production `push` runs as the replay job Terraform creates (an identity the services accept,
inside the VPC): gcloud run jobs execute PREFIX-replay --wait --args=push,--subscription,SUB,--to,URL
`audit --from DAY --to DAY` (or --yesterday) holds the bucket and the table to each other; it reads
the services' variables (TRANSCRIPT_BUCKET, BIGQUERY_*, REDACT_KEYS, ...) and prints ids only.
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
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print raw letters (transcripts) even when standard output is a terminal, where they
        /// would land in scrollback and session recordings; refused without it.
        #[arg(long)]
        to_terminal: bool,
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
        /// The deployment's rules, `terraform output -json rules` (DOTCOM_URL,
        /// DOTCOM_INSTANCE_IDS, REDACT_KEYS as JSON), to judge each letter and print its row as
        /// the services would. Without it the decisions are withheld, except in the replay job,
        /// whose environment Terraform sets to the services' values.
        #[arg(long)]
        rules: Option<String>,
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
        /// At most this many pushes started per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// At most this many pushes under way at once (1 pushes one letter at a time).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=100))]
        concurrency: u16,
        /// Keep going after a message fails again (default: stop at the first failure).
        #[arg(long)]
        continue_on_error: bool,
    },
    /// Hold the bucket and the table to each other over a window of UTC hours: transcripts
    /// without an object or a row, events with several, rows that kept a redacted key, objects
    /// that are not transcript events. Read-only; prints a JSON summary (ids only); exit 1 when
    /// anything is off.
    Audit {
        /// Start of the window, UTC: YYYY-MM-DD or YYYY-MM-DDTHH (inclusive).
        #[arg(long, requires = "to", conflicts_with = "yesterday")]
        from: Option<String>,
        /// End of the window, UTC: YYYY-MM-DD or YYYY-MM-DDTHH (exclusive).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// The whole UTC day before today (what the daily run audits).
        #[arg(long, required_unless_present = "from")]
        yesterday: bool,
    },
    /// Remove messages from a dead-letter subscription (ack them), by message id (the dead-letter
    /// message id or the original one, as `inspect` shows them). Save them first. A seek can
    /// bring them back until the dead-letter retention ends.
    Drop {
        #[arg(long)]
        subscription: String,
        /// A message id to drop; repeat for several.
        #[arg(long = "message-id", required = true)]
        message_ids: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let project = cli.project.as_deref();
    let sub = |s: &str| subscription_path(project, s);
    match cli.command {
        Command::Pull {
            subscription,
            limit,
            out,
            to_terminal,
        } => cmd::pull::run(&sub(&subscription)?, limit, out.as_deref(), to_terminal).await,
        Command::Inspect {
            file,
            subscription,
            limit,
            rules,
        } => cmd::inspect::run(project, file, subscription, limit, rules).await,
        Command::Push {
            subscription,
            to,
            dry_run,
            limit,
            rate,
            concurrency,
            continue_on_error,
        } => {
            let options = cmd::push::Options {
                dry_run,
                limit,
                rate,
                concurrency: concurrency.into(),
                continue_on_error,
            };
            cmd::push::run(&sub(&subscription)?, &to, options).await
        }
        Command::Drop {
            subscription,
            message_ids,
        } => cmd::drop::run(&sub(&subscription)?, &message_ids).await,
        Command::Audit {
            from,
            to,
            yesterday,
        } => {
            let window = match (from, to) {
                (Some(from), Some(to)) if !yesterday => audit::Window::parse(&from, &to)?,
                _ => audit::Window::yesterday(chrono::Utc::now()),
            };
            cmd::audit::run(window).await
        }
    }
}
