//! `replay drop`: remove messages from a dead-letter subscription for good (ack them), by message
//! id: the dead-letter message id or the original one, as `inspect` shows them.

use std::process::ExitCode;

use anyhow::Result;
use pipeline::google::pubsub::ReceivedMessage;

use crate::letter::Letter;
use crate::subscription::DeadLetterSubscription;

/// Acks the given messages; releases the others. Exit 1 when some id was not found.
pub async fn run(sub: &str, message_ids: &[String]) -> Result<ExitCode> {
    let letters = DeadLetterSubscription::connect(sub)?;
    let messages = letters.pull_distinct(10_000).await?;
    let (chosen, rest): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| is_one_of(message_ids, m));
    letters.release(&rest).await?;
    letters.ack(&chosen).await?;
    for m in &chosen {
        let l = Letter::new(m.clone());
        eprintln!(
            "replay: dropped {} (message {}, reason {})",
            l.dead_letter_message_id(),
            l.original_message_id(),
            l.reason()
        );
    }
    let found = message_ids
        .iter()
        .filter(|id| {
            chosen
                .iter()
                .any(|m| is_one_of(std::slice::from_ref(id), m))
        })
        .count();
    if found < message_ids.len() {
        eprintln!(
            "replay: {} of the given message ids were not found on {sub}",
            message_ids.len() - found
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the message is named by one of the ids (dead-letter or original message id).
fn is_one_of(ids: &[String], m: &ReceivedMessage) -> bool {
    let l = Letter::new(m.clone());
    ids.iter()
        .any(|id| *id == l.dead_letter_message_id() || *id == l.original_message_id())
}
