//! `replay push`: re-deliver dead letters to the handler that failed them, and ack each one only
//! after that handler took it.
//!
//! The steps, in order:
//! 1. find which handler answers at `--to` ([`Target::find`]);
//! 2. pull a small batch, just before pushing it, and before each push lease the letters not yet
//!    handled for one more push ([`LEASE`]), so that no lease expires before its ack
//!    ([`Replay::next_batch`]);
//! 3. for each letter: leave it alone (another handler's, or a dry run), or push it and judge the
//!    answer ([`Replay::one`], [`Target::push`]);
//! 4. ack what the handler took, release the rest;
//! 5. print the tally ([`Tally`]): a line on stderr, the JSON summary on stdout.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::google::pubsub::ReceivedMessage;
use pipeline::outcome::Label;
use serde_json::{Value, json};

use crate::client::Subscription;
use crate::letter::Letter;
use crate::target::{Target, Verdict};

/// How long the letters of a batch stay leased from the start of each push: one push's longest
/// time and a margin, so that no lease ends before its letter's ack or release.
const LEASE: Duration = Duration::from_secs(crate::target::PUSH_TIMEOUT.as_secs() + 60);

/// The flags of `replay push`.
pub struct Options {
    pub dry_run: bool,
    pub limit: usize,
    pub rate: f64,
    pub continue_on_error: bool,
}

/// Exit 0 when no letter is still failing, 1 otherwise.
pub async fn run(sub: &str, to: &str, options: Options) -> Result<ExitCode> {
    let letters = Subscription::connect(sub)?;
    let target = Target::find(to).await?;
    let mut replay = Replay::new(&letters, &target, &options);
    replay.drain().await?;
    replay.bar.finish_and_clear();
    Ok(replay.report(sub))
}

/// One `replay push` under way.
struct Replay<'a> {
    letters: &'a Subscription,
    target: &'a Target,
    options: &'a Options,
    /// The time one push may take at `--rate`.
    interval: Duration,
    bar: ProgressBar,
    tally: Tally,
    /// Stopped at the first failure (no `--continue-on-error`).
    stopped: bool,
    processed: usize,
    /// Message ids pulled so far: a message pulled again (released earlier) is not pushed twice.
    seen: BTreeSet<String>,
    empty_pulls: u32,
}

impl<'a> Replay<'a> {
    fn new(letters: &'a Subscription, target: &'a Target, options: &'a Options) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} processed {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self {
            letters,
            target,
            options,
            interval: Duration::from_secs_f64(1.0 / options.rate.max(0.01)),
            bar,
            tally: Tally::default(),
            stopped: false,
            processed: 0,
            seen: BTreeSet::new(),
            empty_pulls: 0,
        }
    }

    /// Batch after batch until `--limit`, the first failure, or an empty subscription.
    async fn drain(&mut self) -> Result<()> {
        while self.processed < self.options.limit && !self.stopped {
            let Some(batch) = self.next_batch().await? else {
                break;
            };
            let mut untouched = Vec::new();
            for (i, m) in batch.iter().enumerate() {
                if !self.stopped && !self.options.dry_run {
                    // The subscription's own deadline (60 s) is shorter than a push may take:
                    // before each push, the letters not yet handled are leased for one more.
                    self.letters.extend(&batch[i..], LEASE).await?;
                }
                if self.stopped || !self.one(m).await? {
                    untouched.push(m.clone());
                }
            }
            self.letters.release(&untouched).await?;
        }
        Ok(())
    }

    /// The next few messages not seen before (`None`: the subscription looks drained).
    async fn next_batch(&mut self) -> Result<Option<Vec<ReceivedMessage>>> {
        loop {
            let want = (self.options.limit - self.processed).min(10) as u32;
            let (fresh, repeat): (Vec<_>, Vec<_>) = (self.letters.pull(want).await?)
                .into_iter()
                .partition(|m| self.seen.insert(m.message.message_id.clone()));
            self.letters.release(&repeat).await?;
            if !fresh.is_empty() {
                return Ok(Some(fresh));
            }
            // An empty pull does not prove an empty subscription: ask twice more.
            self.empty_pulls += 1;
            if self.empty_pulls > 2 || !repeat.is_empty() {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// One letter: leave it alone (another handler's, or a dry run), or push it and ack it if the
    /// handler took it. Returns whether it was acked.
    async fn one(&mut self, m: &ReceivedMessage) -> Result<bool> {
        self.processed += 1;
        self.bar.inc(1);
        let started = Instant::now();
        let letter = Letter::new(m.clone());
        let name = name(&letter);
        let service = &self.target.service;
        match whose(letter.handler(), service) {
            Whose::This => {}
            Whose::Other(handler) => {
                self.tally.not_this_handler += 1;
                self.bar.println(format!(
                    "left alone: {name} failed in {handler}, not {service}"
                ));
                return Ok(false);
            }
            Whose::Unknown => {
                self.tally.handler_unknown += 1;
                self.bar.println(format!(
                    "left alone: {name}: which handler failed it is unknown (no dead_letter.handler, \
                     and its subscription names none); look at it with `replay inspect`"
                ));
                return Ok(false);
            }
        }
        if self.options.dry_run {
            self.tally.would_send += 1;
            self.bar.println(format!(
                "would push {name} to {} (dead-lettered for: {})",
                self.target.endpoint,
                letter.reason()
            ));
            return Ok(false);
        }
        let acked = self.push(m, &letter, &name).await?;
        self.bar.set_message(self.tally.progress());
        pace(started, self.interval).await;
        Ok(acked)
    }

    /// Pushes the letter; acks it if the handler took it, else counts it as failing.
    async fn push(&mut self, m: &ReceivedMessage, letter: &Letter, name: &str) -> Result<bool> {
        match self.target.push(letter).await? {
            Verdict::Ack(outcome, reason) => {
                self.letters.ack(std::slice::from_ref(m)).await?;
                self.tally.acked(outcome, &reason);
                Ok(true)
            }
            Verdict::Keep(why) => {
                self.bar.println(format!("still failing: {name}: {why}"));
                self.tally.failed(why);
                if !self.options.continue_on_error {
                    self.stopped = true;
                }
                Ok(false)
            }
        }
    }

    /// Prints the summary: a line for people on stderr, the JSON summary on stdout.
    fn report(&self, sub: &str) -> ExitCode {
        let tally = &self.tally;
        if self.options.dry_run {
            eprintln!(
                "replay: dry run: {} message(s) would be pushed to {}; nothing sent, nothing acked",
                tally.would_send, self.target.service
            );
        } else {
            eprintln!("replay: {}", tally.line(self.stopped));
        }
        println!("{}", tally.summary(sub, self.target, self.options.dry_run));
        if tally.failing() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

/// Whose letter it is, for the handler at `--to`.
#[derive(Debug, PartialEq, Eq)]
enum Whose {
    This,
    Other(String),
    /// Neither our attribute nor the subscription's name says: never pushed anywhere, since the
    /// wrong handler could write what the right one would skip.
    Unknown,
}

fn whose(handler: Option<String>, target: &str) -> Whose {
    match handler {
        Some(h) if h == target => Whose::This,
        Some(h) => Whose::Other(h),
        None => Whose::Unknown,
    }
}

/// How a letter is named in the progress lines.
fn name(letter: &Letter) -> String {
    format!(
        "{} (event {})",
        letter.original_message_id(),
        letter.event_id().unwrap_or_else(|| "?".into())
    )
}

/// Keeps to `--rate`: waits out what is left of one push's interval.
async fn pace(started: Instant, interval: Duration) {
    let spent = started.elapsed();
    if spent < interval {
        tokio::time::sleep(interval - spent).await;
    }
}

/// What became of the letters so far.
#[derive(Default)]
struct Tally {
    written: usize,
    already_stored: usize,
    /// By `skipped:<reason>`.
    skipped: BTreeMap<String, usize>,
    /// By what the handler answered.
    failing: BTreeMap<String, usize>,
    not_this_handler: usize,
    handler_unknown: usize,
    would_send: usize,
}

impl Tally {
    fn acked(&mut self, outcome: Label, reason: &str) {
        match outcome {
            Label::Written => self.written += 1,
            Label::AlreadyStored => self.already_stored += 1,
            _ => {
                *self
                    .skipped
                    .entry(format!("{outcome}:{reason}"))
                    .or_default() += 1
            }
        }
    }

    fn failed(&mut self, why: String) {
        *self.failing.entry(why).or_default() += 1;
    }

    fn replayed(&self) -> usize {
        self.written + self.already_stored
    }

    fn failing(&self) -> usize {
        self.failing.values().sum()
    }

    /// The progress bar's message.
    fn progress(&self) -> String {
        format!("{} replayed, {} failing", self.replayed(), self.failing())
    }

    /// The closing line of a real run (not a dry run).
    fn line(&self, stopped: bool) -> String {
        format!(
            "replayed {} ({} written, {} already stored), skipped {}, still failing {}, left for another handler {}, handler unknown {}{}",
            self.replayed(),
            self.written,
            self.already_stored,
            self.skipped.values().sum::<usize>(),
            self.failing(),
            self.not_this_handler,
            self.handler_unknown,
            if stopped {
                " (stopped at the first failure; --continue-on-error to go on)"
            } else {
                ""
            },
        )
    }

    /// The JSON summary on stdout.
    fn summary(&self, sub: &str, target: &Target, dry_run: bool) -> Value {
        json!({
            "subscription": sub, "to": target.endpoint, "handler": target.service, "dryRun": dry_run,
            "replayed": self.replayed(),
            "written": self.written, "alreadyStored": self.already_stored,
            "skipped": self.skipped, "stillFailing": self.failing,
            "notForThisHandler": self.not_this_handler, "handlerUnknown": self.handler_unknown,
            "wouldPush": self.would_send,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_whose_handler_is_unknown_is_pushed_nowhere() {
        assert_eq!(whose(Some("to-bq".into()), "to-bq"), Whose::This);
        assert_eq!(
            whose(Some("sub-v2".into()), "to-bq"),
            Whose::Other("sub-v2".into())
        );
        assert_eq!(whose(None, "to-bq"), Whose::Unknown);
    }
}
