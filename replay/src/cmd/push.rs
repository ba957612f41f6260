//! `replay push`: re-deliver dead letters to the handler that failed them, and ack each one only
//! after that handler took it.
//!
//! The steps, in order:
//! 1. refuse letters from the emulator to a deployed handler, or from Pub/Sub to a local one
//!    ([`crate::target::check_pairing`]), then find which handler answers at `--to`
//!    ([`Target::find`]);
//! 2. pull a small batch ([`Replay::next_batch`]) and sort it: letters another handler failed, or
//!    whose handler is unknown, are reported and released at once; a dry run reports and releases
//!    the rest too ([`Replay::sort`]);
//! 3. push this handler's letters, at most `--concurrency` at a time and `--rate` starts a
//!    second; before each push, lease the letters not yet started for one more push ([`LEASE_MARGIN`]),
//!    so that no lease expires before its ack ([`Replay::push_all`], [`Target::push`]);
//! 4. ack each letter the handler took as soon as it answers, release the rest;
//! 5. print the tally ([`Tally`]): a line on stderr, the JSON summary on stdout.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::google::pubsub::ReceivedMessage;
use pipeline::outcome::Label;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::letter::Letter;
use crate::subscription::DeadLetterSubscription;
use crate::target::{Decision, Target};

/// How long the letters of a batch stay leased from the start of each push, beyond one push's
/// longest time ([`Target::timeout`]), so that no lease ends before its letter's ack or release.
/// A letter waits for its start at most one push (for a free slot) or one interval of the
/// slowest `--rate` (100 s), both within one push and this margin.
/// (Pub/Sub leases for 600 s at most, [`DeadLetterSubscription::extend`]: with `SINK_TIMEOUT_SECONDS`
/// above 239 a lease can end during a push; this run still never pushes a letter twice, since it
/// skips message ids it has seen.)
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// Letters pulled at a time, at least: enough to keep `--concurrency` pushes busy, few enough
/// that a failure stops the run with most letters never leased.
const BATCH: usize = 10;

/// The flags of `replay push`.
pub struct Options {
    pub dry_run: bool,
    pub limit: usize,
    /// Pushes started per second, at most.
    pub rate: f64,
    /// Pushes under way at once, at most (at least 1).
    pub concurrency: usize,
    pub continue_on_error: bool,
}

/// Exit 0 when no letter is still failing, 1 otherwise.
pub async fn run(sub: &str, to: &str, options: Options) -> Result<ExitCode> {
    let emulator = pipeline::config::pubsub_emulator(&pipeline::config::Env::process())?;
    crate::target::check_pairing(emulator.as_deref(), to)?;
    let letters = DeadLetterSubscription::connect(sub)?;
    let env = pipeline::config::Env::process();
    let target = Target::find(to, crate::target::push_timeout(&env)?).await?;
    let mut replay = Replay::new(&letters, &target, &options);
    replay.drain().await?;
    replay.bar.finish_and_clear();
    Ok(replay.report(sub))
}

/// One `replay push` under way.
struct Replay<'a> {
    letters: &'a DeadLetterSubscription,
    target: &'a Target,
    options: &'a Options,
    /// The time between two push starts at `--rate`.
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

/// What became of one push.
enum Pushed {
    /// The handler took it; the letter is acked.
    Acked(Label, String),
    /// The handler did not take it: what it answered.
    Kept(String),
    /// Not started: the run stopped at a failure first.
    NotStarted,
}

impl<'a> Replay<'a> {
    fn new(letters: &'a DeadLetterSubscription, target: &'a Target, options: &'a Options) -> Self {
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
            let mine = self.sort(batch).await?;
            self.push_all(mine).await?;
        }
        Ok(())
    }

    /// The next few messages not seen before (`None`: the subscription looks drained).
    async fn next_batch(&mut self) -> Result<Option<Vec<ReceivedMessage>>> {
        loop {
            let want =
                (self.options.limit - self.processed).min(BATCH.max(self.options.concurrency));
            let (fresh, repeat): (Vec<_>, Vec<_>) = (self.letters.pull(want as u32).await?)
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

    /// Keeps the letters this handler should take now; reports the others (another handler's,
    /// a handler nobody can tell, or everything in a dry run) and releases them at once.
    async fn sort(
        &mut self,
        batch: Vec<ReceivedMessage>,
    ) -> Result<Vec<(ReceivedMessage, Letter)>> {
        let mut mine = Vec::new();
        let mut others = Vec::new();
        for m in batch {
            self.processed += 1;
            self.bar.inc(1);
            let letter = Letter::new(m.clone());
            if self.takes(&letter) {
                mine.push((m, letter));
            } else {
                others.push(m);
            }
        }
        self.letters.release(&others).await?;
        Ok(mine)
    }

    /// Whether the letter is this run's to push; says why not on the progress bar.
    fn takes(&mut self, letter: &Letter) -> bool {
        let name = name(letter);
        let service = &self.target.service;
        match whose(letter.handler(), service) {
            Whose::This => {}
            Whose::Other(handler) => {
                self.tally.not_this_handler += 1;
                self.bar.println(format!(
                    "left alone: {name} failed in {handler}, not {service}"
                ));
                return false;
            }
            Whose::Unknown => {
                self.tally.handler_unknown += 1;
                self.bar.println(format!(
                    "left alone: {name}: which handler failed it is unknown (no dead_letter.handler, \
                     and its subscription names none); look at it with `replay inspect`"
                ));
                return false;
            }
        }
        if self.options.dry_run {
            self.tally.would_send += 1;
            self.bar.println(format!(
                "would push {name} to {} (dead-lettered for: {})",
                self.target.endpoint,
                letter.reason()
            ));
            return false;
        }
        true
    }

    /// Pushes the letters, at most `--concurrency` at once and `--rate` starts a second; acks
    /// each the handler took as soon as it answers; releases the rest. Without
    /// `--continue-on-error`, no push starts after a failure (those under way finish).
    async fn push_all(&mut self, mine: Vec<(ReceivedMessage, Letter)>) -> Result<()> {
        if mine.is_empty() {
            return Ok(());
        }
        let (letters, target, interval) = (self.letters, self.target, self.interval);
        let messages: Vec<ReceivedMessage> = mine.iter().map(|(m, _)| m.clone()).collect();
        let halted = Cell::new(false);
        let next_start = Cell::new(Instant::now());
        let pushes = stream::iter(mine.iter().enumerate()).map(|(i, (m, letter))| {
            let (messages, halted, next_start) = (&messages, &halted, &next_start);
            async move {
                // Futures are made in order, one as a slot frees: each takes the next start time.
                let at = next_start.get().max(Instant::now());
                next_start.set(at + interval);
                tokio::time::sleep_until(at).await;
                if halted.get() {
                    return Ok((i, Pushed::NotStarted));
                }
                // The subscription's own deadline (60 s) is shorter than a push may take: the
                // letters not yet started are leased for one more.
                letters
                    .extend(&messages[i..], target.timeout + LEASE_MARGIN)
                    .await?;
                let pushed = match target.push(letter).await? {
                    Decision::Ack(outcome, reason) => {
                        letters.ack(std::slice::from_ref(m)).await?;
                        Pushed::Acked(outcome, reason)
                    }
                    Decision::Keep(why) => Pushed::Kept(why),
                };
                anyhow::Ok((i, pushed))
            }
        });
        let mut pushes = pushes.buffer_unordered(self.options.concurrency.max(1));
        let mut kept = Vec::new();
        while let Some(done) = pushes.next().await {
            let (i, pushed) = done?;
            match pushed {
                Pushed::Acked(outcome, reason) => self.tally.acked(outcome, &reason),
                Pushed::Kept(why) => {
                    self.bar
                        .println(format!("still failing: {}: {why}", name(&mine[i].1)));
                    self.tally.failed(why);
                    kept.push(messages[i].clone());
                    if !self.options.continue_on_error {
                        halted.set(true);
                    }
                }
                Pushed::NotStarted => kept.push(messages[i].clone()),
            }
            self.bar.set_message(self.tally.progress());
        }
        drop(pushes);
        self.stopped = halted.get();
        self.letters.release(&kept).await
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
