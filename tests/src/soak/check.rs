//! After the run: what landed, held to what was published. Each check fills its part of the
//! [`Report`]; none stops at the first difference, so the report counts them all.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pipeline::Service;
use serde_json::Value;

use super::report::Report;
use super::run::Plan;
use super::services::ServiceProc;
use crate::samples::Message;
use crate::stack::{BUCKET, DATASET, PROJECT, Stack, TABLE, TOPIC, dead_letter_topic};

/// Cloud Storage: exactly the transcript events, byte for byte, nothing else.
pub async fn bucket(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let objects = stack
        .gcs
        .list(BUCKET, "")
        .await
        .context("listing the bucket")?;
    report.objects = objects.len();
    let expected: HashMap<String, &Message> = plan
        .transcripts()
        .filter_map(|m| Some((m.expected_object("transcripts")?, m)))
        .collect();
    let names: HashSet<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    report.objects_extra = names.iter().filter(|n| !expected.contains_key(**n)).count();
    for (name, m) in &expected {
        if !names.contains(name.as_str()) {
            report.objects_missing += 1;
        } else if let Ok(stored) = stack.gcs.download(BUCKET, name).await {
            if stored == m.data {
                report.objects_identical += 1;
            }
            report.secrets_in_bucket += plan.needles.count(&String::from_utf8_lossy(&stored));
        }
    }
    Ok(())
}

/// BigQuery: one distinct event id per event without a permanent fault, each by its own handler,
/// no transcript text.
pub async fn table(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let rows = stack.bigquery.all_rows(DATASET, TABLE).await?;
    let by_event = plan.by_event();
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        let id = r["event_id"].as_str().unwrap_or_default().to_owned();
        if let Some(m) = by_event.get(id.as_str())
            && r["handler"].as_str() != Some(m.bq_handler)
        {
            report.rows_wrong_handler += 1;
        }
        *count.entry(id).or_default() += 1;
        let mut all = Vec::new();
        crate::samples::all_strings(r, &mut all);
        report.leaks_bigquery += all.iter().map(|s| plan.needles.count(s)).sum::<usize>();
    }
    report.rows = rows.len();
    report.distinct_rows = count.len();
    // What analysts count: the view Terraform deploys, one row per event however many were
    // written (the default stream does not deduplicate).
    let view = crate::bigquery::once_view_sql(PROJECT, DATASET, TABLE)?;
    report.view_rows = stack
        .bigquery
        .query(&format!("SELECT event_id FROM ({view})"))
        .await?
        .len();
    report.duplicate_rows = rows.len() - count.len();
    report.rows_missing = plan
        .messages
        .iter()
        .filter(|m| !plan.permanent.contains(&m.event_id) && !count.contains_key(&m.event_id))
        .count();
    report.rows_unexpected = count
        .keys()
        .filter(|id| plan.permanent.contains(*id) || !by_event.contains_key(id.as_str()))
        .count();
    Ok(())
}

/// Dead letters: every permanent fault in its BigQuery handler's subscription, with the reason;
/// nothing else.
pub async fn dead_letters(stack: &Stack, plan: &Plan, report: &mut Report) -> Result<()> {
    let by_event = plan.by_event();
    let mut found: HashSet<String> = HashSet::new();
    for service in Service::ALL {
        let sub = dead_letter_topic(TOPIC, service);
        for d in drain(stack, &sub).await? {
            if !d.attributes.contains_key("dead_letter.reason") {
                report.policy_dead_letters += 1;
                continue;
            }
            let id = serde_json::from_slice::<Value>(&d.data)
                .ok()
                .and_then(|v| v["event"]["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let right = plan.permanent.contains(&id)
                && by_event
                    .get(id.as_str())
                    .is_some_and(|m| m.bq_handler == service.name());
            if right {
                found.insert(id);
            } else {
                report.dead_letters_unexpected += 1;
            }
        }
    }
    report.dead_letters_found = found.len();
    report.dead_letters_missing = plan.permanent.len() - found.len();
    Ok(())
}

/// Logs: no transcript text in anything the services wrote.
pub fn logs(procs: &BTreeMap<Service, ServiceProc>, plan: &Plan, report: &mut Report) {
    for p in procs.values() {
        report.leaks_logs += p
            .log_text()
            .lines()
            .map(|l| plan.needles.count(l))
            .sum::<usize>();
    }
}

/// Takes every message from a pull subscription (acknowledging them), until three pulls in a row
/// come back empty or 60 s have passed.
async fn drain(stack: &Stack, sub: &str) -> Result<Vec<crate::pubsub::Pulled>> {
    let mut out = Vec::new();
    let mut empty = 0;
    let started = Instant::now();
    while empty < 3 && started.elapsed() < Duration::from_secs(60) {
        let got = stack.pubsub.pull(sub, 100).await?;
        if got.is_empty() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        empty = 0;
        let ids: Vec<String> = got.iter().map(|m| m.ack_id.clone()).collect();
        stack.pubsub.acknowledge(sub, &ids).await?;
        out.extend(got);
    }
    Ok(out)
}

/// What counts as a leak: each planted string, by its ASCII head (the generator's markers are
/// `MARKER-{seed}-{i}-{key} …`; logs may escape the non-ASCII tail).
pub struct Needles {
    generated: Vec<String>,
    other: Vec<String>,
}

impl Needles {
    pub fn new(messages: &[Message]) -> Self {
        let mut generated = BTreeSet::new();
        let mut other = BTreeSet::new();
        for s in messages.iter().flat_map(|m| &m.secrets) {
            if s.starts_with("MARKER-") {
                let head = s.split(' ').next().unwrap_or(s);
                generated.insert(head.to_owned());
            } else {
                other.insert(s.clone());
            }
        }
        Self {
            generated: generated.into_iter().collect(),
            other: other.into_iter().collect(),
        }
    }

    /// How many planted strings `text` contains.
    pub fn count(&self, text: &str) -> usize {
        let mut n = self
            .other
            .iter()
            .filter(|s| text.contains(s.as_str()))
            .count();
        if text.contains("MARKER-") {
            n += self
                .generated
                .iter()
                .filter(|s| {
                    text.match_indices(s.as_str()).any(|(i, _)| {
                        // `MARKER-1-2-prompt` must not match inside `MARKER-1-23-prompt`.
                        !text[i + s.len()..]
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphanumeric())
                    })
                })
                .count();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::generate;

    #[test]
    fn the_leak_detector_finds_planted_strings_by_their_head() {
        let messages = generate(120, 7);
        let needles = Needles::new(&messages);
        let secret = messages
            .iter()
            .flat_map(|m| &m.secrets)
            .next()
            .expect("the generator plants strings");
        assert_eq!(needles.count(secret), 1);
        let head = secret.split(' ').next().expect("a head");
        assert_eq!(needles.count(&format!("{{\"x\":\"{head} \\u201c\"}}")), 1);
        assert_eq!(needles.count("MARKER-7-"), 0);
        assert_eq!(needles.count(&format!("{head}9")), 0);
        assert_eq!(needles.count("nothing here"), 0);
    }
}
