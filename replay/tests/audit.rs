//! `replay audit` on the emulator stack: the pipeline writes a mix of events, then one of each
//! discrepancy is planted directly (an object deleted, a row duplicated, a row with an unredacted
//! `promptText`, a non-transcript object in the bucket). The audit must report exactly those, by
//! event id, exit 1, and print no transcript text; before the planting it reports nothing.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::bigquery::redelivered_events;
use e2e::samples::{Message, generate, load_samples};
use e2e::stack::{Apps, BUCKET, DATASET, PROJECT, Stack, TABLE, TOPIC};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_replay");
const LEAK: &str = "PLANTED PROMPT TEXT 7731";

/// `replay audit` over May 2024 (where the samples and generated events are), configured like
/// the services against the emulators.
fn audit(stack: &Stack) -> Output {
    Command::new(BIN)
        .args(["audit", "--from", "2024-05-01", "--to", "2024-05-31"])
        .env("GOOGLE_CLOUD_PROJECT", PROJECT)
        .env("TRANSCRIPT_BUCKET", BUCKET)
        .env("TRANSCRIPT_PREFIX", "transcripts")
        .env("BIGQUERY_DATASET", DATASET)
        .env("BIGQUERY_TABLE", TABLE)
        .env("STORAGE_EMULATOR_HOST", stack.storage_host())
        .env("BIGQUERY_EMULATOR_HOST", stack.bigquery_host())
        .env(
            "BIGQUERY_STORAGE_EMULATOR_HOST",
            stack.bigquery_storage_host(),
        )
        .output()
        .expect("replay runs")
}

/// The events with several rows of one message (Pub/Sub delivered it again), read just before
/// and just after an audit: the audit must count at least the first and at most the second.
struct Redelivered {
    before: BTreeSet<String>,
    after: BTreeSet<String>,
}

async fn audit_between_reads(stack: &Stack) -> Result<(Output, Redelivered)> {
    let before = redelivered_events(&stack.bigquery.all_rows(DATASET, TABLE).await?);
    let out = audit(stack);
    let after = redelivered_events(&stack.bigquery.all_rows(DATASET, TABLE).await?);
    if !after.is_empty() {
        eprintln!("redelivered and written twice: {after:?}");
    }
    Ok((out, Redelivered { before, after }))
}

/// The ids of every finding, by name, from the JSON summary.
fn findings(out: &Output) -> Result<Vec<(String, BTreeSet<String>)>> {
    let summary: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "summary: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let found = summary["findings"].as_object().context("findings")?;
    Ok(found
        .iter()
        .map(|(name, f)| {
            let ids = f["first"].as_array().into_iter().flatten();
            (
                name.clone(),
                ids.filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_reports_exactly_the_planted_discrepancies_and_no_text() -> Result<()> {
    let stack = Stack::start("audit").await?;
    let apps = Apps::spawn(&stack).await?;
    stack.wire_pipeline(TOPIC, &apps.endpoints()).await?;
    let mut messages: Vec<Message> = load_samples()?;
    messages.extend(generate(60, 77));
    for m in &messages {
        stack.pubsub.publish(TOPIC, &m.data, &m.attributes).await?;
    }
    let transcripts: Vec<&Message> = messages.iter().filter(|m| m.transcript).collect();
    stack
        .wait_objects("transcripts/", transcripts.len(), Duration::from_secs(120))
        .await?;
    stack
        .wait_rows(messages.len(), Duration::from_secs(120))
        .await?;

    // Before planting, the only finding allowed is an event written twice because Pub/Sub
    // delivered its one message twice (an ack late under load; the default stream does not
    // deduplicate): the audit must count those, and they are told apart by their message id.
    let (clean, redelivered) = audit_between_reads(&stack).await?;
    for (name, ids) in findings(&clean)? {
        let allowed = match name.as_str() {
            "events_with_several_rows" => &redelivered.after,
            _ => &BTreeSet::new(),
        };
        ensure!(
            ids.is_subset(allowed),
            "before planting, {name}: {ids:?} (redelivered: {allowed:?})"
        );
        if name == "events_with_several_rows" {
            ensure!(redelivered.before.is_subset(&ids), "uncounted: {ids:?}");
        }
    }
    let exit = clean.status.code();
    ensure!(
        match exit {
            Some(0) => redelivered.before.is_empty(),
            Some(1) => !redelivered.after.is_empty(),
            _ => false,
        },
        "before planting: exit {exit:?}: {}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // 1. A transcript's object goes missing.
    let gone = transcripts[0];
    stack
        .gcs
        .delete(
            BUCKET,
            &gone.expected_object("transcripts").context("name")?,
        )
        .await?;
    // 2. An event gets a second row.
    let twice = messages
        .iter()
        .find(|m| !m.transcript)
        .context("a plain event")?;
    stack
        .bigquery
        .insert(DATASET, TABLE, &[row(&twice.event_id, None)])
        .await?;
    // 3. A row that kept transcript text (in another letter case, nested).
    let text = json!({"turns": [{"PromptText": LEAK}]}).to_string();
    stack
        .bigquery
        .insert(DATASET, TABLE, &[row("planted-leak", Some(&text))])
        .await?;
    // 4. An object that is not a transcript event (no flag, not DotCom), without metadata.
    let plain = json!({"event": {"id": "planted-plain", "timestamp": "2024-05-02T10:00:00Z",
        "feature": "search.results", "action": "viewed"}});
    let name = "transcripts/2024/05/02/10/planted-plain.0000000000000000.json";
    stack
        .gcs
        .upload(BUCKET, name, plain.to_string().as_bytes())
        .await?;

    let (out, redelivered) = audit_between_reads(&stack).await?;
    ensure!(out.status.code() == Some(1), "exit {:?}", out.status.code());
    let gone_id = gone.event_id.clone();
    let twice_id = twice.event_id.clone();
    let want = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    for (name, ids) in findings(&out)? {
        if name == "events_with_several_rows" {
            // The planted duplicate, and every redelivery, and nothing else.
            let and_planted = |ids: &BTreeSet<String>| {
                let mut ids = ids.clone();
                ids.insert(twice_id.clone());
                ids
            };
            let (at_least, at_most) = (
                and_planted(&redelivered.before),
                and_planted(&redelivered.after),
            );
            ensure!(
                at_least.is_subset(&ids) && ids.is_subset(&at_most),
                "{name}: {ids:?}, expected {at_least:?} (and at most {at_most:?})"
            );
            continue;
        }
        let expected = match name.as_str() {
            "transcripts_without_object" => want(&[&gone_id]),
            "rows_with_unredacted_keys" => want(&["planted-leak"]),
            "objects_not_transcripts" | "objects_without_row" => want(&["planted-plain"]),
            _ => want(&[]),
        };
        ensure!(ids == expected, "{name}: {ids:?}, expected {expected:?}");
    }
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        ensure!(!text.contains(LEAK), "the audit printed transcript text");
        for m in &transcripts {
            for secret in &m.secrets {
                ensure!(
                    !text.contains(secret.as_str()),
                    "the audit printed transcript text"
                );
            }
        }
    }
    apps.stop().await
}

/// A row with the required columns, in the audited window.
fn row(event_id: &str, private_metadata: Option<&str>) -> Value {
    let mut row = json!({"message_id": "planted", "handler": "sub-v2", "event_id": event_id,
        "event_timestamp": "2024-05-03T04:05:06Z", "feature": "f", "action": "a",
        "is_transcript": false, "is_dotcom": false, "transcript_flag": false,
        "ingested_at": "2026-11-28T00:00:00Z"});
    if let Some(text) = private_metadata {
        row["parameters"] = json!({"private_metadata": text});
    }
    row
}

/// The Storage Write API's default stream has no `insertId` deduplication: a push redelivered
/// after its ack was lost writes its row again. The view analysts query
/// (`event_telemetry_once`, its SQL read from terraform/audit.tf) still has one row for the
/// event, and the audit counts the second row by event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivery_after_a_lost_ack_is_one_row_in_the_view_and_counted_by_the_audit()
-> Result<()> {
    let stack = Stack::start("audit-redelivery").await?;
    // The default write method, as deployed, named here so the test keeps it if the default moves.
    let config = stack.config(
        pipeline::Service::SubV2,
        &[(
            "BIGQUERY_WRITE_METHOD",
            pipeline::sink::WriteMethod::default().name(),
        )],
    )?;
    ensure!(
        matches!(
            &config.sink.target,
            pipeline::config::SinkTarget::BigQuery {
                method: pipeline::sink::WriteMethod::StorageWrite,
                ..
            }
        ),
        "the default method is the Storage Write API"
    );
    let app = e2e::stack::spawn_app(config).await?;
    let message = generate(40, 91)
        .into_iter()
        .find(|m| m.bq_handler == "sub-v2")
        .context("a sub-v2 event")?;
    let body = e2e::pubsub::push_body(
        "m-1",
        &message.data,
        &message.attributes,
        "projects/p/subscriptions/s",
    );
    let http = reqwest::Client::new();
    // The first push is written, and its 200 never reaches Pub/Sub: the same push comes again.
    for attempt in 1..=2 {
        let answer: Value = http
            .post(format!("{}/", app.url))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        ensure!(answer["outcome"] == "written", "push {attempt}: {answer}");
    }
    let id = &message.event_id;
    let rows = stack
        .bigquery
        .query(&format!(
            "SELECT event_id FROM `{PROJECT}.{DATASET}.{TABLE}` WHERE event_id = '{id}'"
        ))
        .await?;
    ensure!(rows.len() == 2, "the table keeps both rows: {rows:?}");
    let view = e2e::bigquery::once_view_sql(PROJECT, DATASET, TABLE)?;
    let once = stack
        .bigquery
        .query(&format!(
            "SELECT event_id FROM ({view}) WHERE event_id = '{id}'"
        ))
        .await?;
    ensure!(once.len() == 1, "the view has one row per event: {once:?}");

    let out = audit(&stack);
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let several = findings(&out)?
        .into_iter()
        .find(|(name, _)| name == "events_with_several_rows")
        .context("the finding")?;
    ensure!(
        several.1 == BTreeSet::from([id.clone()]),
        "events_with_several_rows: {:?}",
        several.1
    );
    app.stop().await?;
    Ok(())
}
