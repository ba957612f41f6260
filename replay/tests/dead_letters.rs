//! Dead letters, for real, on the Pub/Sub emulator, and the `replay` binary as the on-call engineer
//! runs it: produce them (a malformed message; a Cloud Storage outage lasting longer than the
//! subscription's 5 delivery attempts), check what they carry, `inspect` them, fix the cause,
//! `push` them back to the handlers that failed, `drop` the one that can never succeed, and check
//! that every event landed exactly once and the dead-letter subscriptions are empty.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Result, ensure};
use e2e::samples::{Message, generate};
use e2e::stack::{
    BUCKET, DATASET, Endpoints, PROJECT, Stack, TABLE, TOPIC, dead_letter_topic, spawn_app,
};
use pipeline::Service;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_replay");

fn replay(stack: &Stack, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("PUBSUB_EMULATOR_HOST", stack.pubsub_host())
        .env("GOOGLE_CLOUD_PROJECT", PROJECT)
        .output()
        .expect("replay runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_explained_replayed_and_drained() -> Result<()> {
    let mut stack = Stack::start("dead-letters").await?;
    let to_gcs = spawn_app(stack.config(Service::ToGcs, &[("SINK_TIMEOUT_SECONDS", "2")])?).await?;
    let to_bq = spawn_app(stack.config(Service::ToBq, &[])?).await?;
    let sub_v2 = spawn_app(stack.config(Service::SubV2, &[])?).await?;
    stack
        .wire_pipeline(
            TOPIC,
            &Endpoints {
                to_gcs: to_gcs.url.clone(),
                to_bq: to_bq.url.clone(),
                sub_v2: sub_v2.url.clone(),
            },
        )
        .await?;

    stack.stop_gcs();
    // Two failing messages per subscription, no more: the emulator stops pushing to a subscription
    // that has a dead-letter policy after about 15 failed pushes (measured: 3 messages × 5
    // attempts reach the dead-letter topic; 5 messages get 3 attempts each, then nothing for
    // minutes; a handler that fails fast, as a misconfigured to-bq does with 404, was not dead-
    // lettered within 2 minutes at all). Production Pub/Sub backs off too, but keeps delivering.
    let generated = generate(360, 4242);
    let transcripts: Vec<&Message> = generated
        .iter()
        .filter(|m| m.to_gcs && m.bq_handler == "to-bq")
        .take(2)
        .collect();
    let others: Vec<&Message> = generated
        .iter()
        .filter(|m| !m.to_gcs && m.bq_handler == "sub-v2")
        .take(3)
        .collect();
    ensure!(transcripts.len() == 2 && others.len() == 3);
    for m in transcripts.iter().chain(&others) {
        stack.pubsub.publish(TOPIC, &m.data, &m.attributes).await?;
    }
    let mut junk_attrs = BTreeMap::new();
    junk_attrs.insert(
        "publisher.source".to_string(),
        "licensed_instance".to_string(),
    );
    let junk_id = stack
        .pubsub
        .publish(TOPIC, b"{\"event\": 42}", &junk_attrs)
        .await?;

    // --- What the dead letters carry.
    let gcs_dlq = dead_letter_topic(TOPIC, Service::ToGcs);
    let bq_dlq = dead_letter_topic(TOPIC, Service::ToBq);
    let v2_dlq = dead_letter_topic(TOPIC, Service::SubV2);
    for (sub, service) in [(&gcs_dlq, Service::ToGcs)] {
        let dead = stack
            .wait_dead_letters(sub, 3, Duration::from_secs(120))
            .await?;
        let mut exhausted = 0;
        for d in &dead {
            let a = &d.attributes;
            if d.message_id.is_empty() {
                continue;
            }
            if a.get("dead_letter.reason").map(String::as_str) == Some("invalid_payload") {
                ensure!(
                    a["dead_letter.handler"] == service.name()
                        && a["dead_letter.message_id"] == junk_id,
                    "{a:?}"
                );
                ensure!(
                    d.data == b"{\"event\": 42}" && a["publisher.source"] == "licensed_instance",
                    "{a:?}"
                );
            } else {
                // Moved by Pub/Sub after the configured attempts, data and attributes intact.
                ensure!(
                    a.get("CloudPubSubDeadLetterSourceDeliveryCount")
                        .is_some_and(|n| n.parse::<u32>().unwrap_or(0) >= 5),
                    "{a:?}"
                );
                ensure!(
                    a["CloudPubSubDeadLetterSourceSubscription"] == format!("{TOPIC}-{service}"),
                    "{a:?}"
                );
                ensure!(
                    transcripts.iter().any(|m| m.data == d.data
                        && m.attributes.iter().all(|(k, v)| a.get(k) == Some(v))),
                    "{a:?}"
                );
                exhausted += 1;
            }
        }
        ensure!(
            exhausted >= 2,
            "{service}: {exhausted} exhausted dead letters"
        );
    }
    for sub in [&bq_dlq, &v2_dlq] {
        let dead = stack
            .wait_dead_letters(sub, 1, Duration::from_secs(120))
            .await?;
        ensure!(
            dead[0].attributes["dead_letter.reason"] == "invalid_payload",
            "{:?}",
            dead[0].attributes
        );
    }

    // --- pull (nothing acked) and inspect.
    let file = stack.dir.join("to-gcs-dead-letters.json");
    let out = replay(
        &stack,
        &[
            "pull",
            "--subscription",
            &gcs_dlq,
            "--out",
            file.to_str().unwrap_or_default(),
        ],
    );
    ensure!(
        out.status.success(),
        "pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    ensure!(saved.len() >= 3, "saved {}", saved.len());
    ensure!(saved.iter().all(|m| m["ackId"].is_string()
        && m["message"]["messageId"].is_string()
        && m["message"]["data"].is_string()));

    let out = replay(
        &stack,
        &[
            "inspect",
            "--file",
            file.to_str().unwrap_or_default(),
            // The rules the stack's services were given, as Terraform's `rules` output.
            "--rules",
            &stack.rules_json(),
        ],
    );
    ensure!(
        out.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    for m in &transcripts {
        for secret in &m.secrets {
            ensure!(
                !stdout.contains(secret.as_str()),
                "inspect printed transcript text"
            );
        }
    }
    let lines: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for line in &lines {
        if line["messageId"] == junk_id.as_str() {
            ensure!(
                line["reason"] == "invalid_payload" && line["handler"] == "to-gcs",
                "{line}"
            );
            for h in ["to-gcs", "to-bq", "sub-v2"] {
                ensure!(line["now"][h]["action"] == "dead-letter", "{line}");
            }
        } else {
            ensure!(line["reason"] == "delivery_attempts_exhausted", "{line}");
            ensure!(
                line["handler"] == "to-gcs" && line["deliveries"].as_u64().is_some_and(|n| n >= 5),
                "{line}"
            );
            ensure!(
                transcripts
                    .iter()
                    .any(|m| line["eventId"] == m.event_id.as_str()),
                "{line}"
            );
            ensure!(line["now"]["to-gcs"]["action"] == "write", "{line}");
            ensure!(line["now"]["to-bq"]["action"] == "write", "{line}");
            ensure!(
                line["now"]["to-bq"]["row"]["redacted_keys"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
                "{line}"
            );
            ensure!(
                line["now"]["sub-v2"]
                    == serde_json::json!({"action": "skip", "reason": "not_for_this_subscription"}),
                "{line}"
            );
        }
    }

    // --- Fix the cause: storage is back. A dry run first sends and acks nothing.
    stack.restart_gcs().await?;
    let out = replay(
        &stack,
        &[
            "push",
            "--subscription",
            &gcs_dlq,
            "--to",
            &to_gcs.url,
            "--dry-run",
        ],
    );
    ensure!(
        out.status.success(),
        "dry run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())?;
    ensure!(
        summary["wouldPush"] == 3 && summary["replayed"] == 0,
        "{summary}"
    );
    ensure!(stack.gcs.list(BUCKET, "transcripts/").await?.is_empty());
    // Sent to the wrong handler by mistake: every letter is left alone, nothing is acked.
    let out = replay(
        &stack,
        &["push", "--subscription", &gcs_dlq, "--to", &sub_v2.url],
    );
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())?;
    ensure!(
        summary["notForThisHandler"] == 3 && summary["replayed"] == 0,
        "{summary}"
    );

    for (sub, url) in [
        (&gcs_dlq, &to_gcs.url),
        (&bq_dlq, &to_bq.url),
        (&v2_dlq, &sub_v2.url),
    ] {
        // Stops at the first failure unless told to go on; the junk fails again (and stays).
        let out = replay(
            &stack,
            &[
                "push",
                "--subscription",
                sub,
                "--to",
                url,
                "--continue-on-error",
                "--rate",
                "50",
            ],
        );
        let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())?;
        ensure!(out.status.code() == Some(1), "{sub}: {summary}");
        let expected_replayed = if sub == &gcs_dlq { 2 } else { 0 };
        ensure!(summary["replayed"] == expected_replayed, "{sub}: {summary}");
        ensure!(
            summary["stillFailing"] == serde_json::json!({"HTTP 400 invalid_payload": 1}),
            "{sub}: {summary}"
        );
        // Replaying again is safe: only the junk is left, and it still fails.
        let again = replay(&stack, &["push", "--subscription", sub, "--to", url]);
        let summary: Value = serde_json::from_str(String::from_utf8_lossy(&again.stdout).trim())?;
        ensure!(
            summary["replayed"] == 0 && again.status.code() == Some(1),
            "{sub}: {summary}"
        );
        // The on-call drops the message that can never succeed (its copy is in the pull file).
        let out = replay(
            &stack,
            &["drop", "--subscription", sub, "--message-id", &junk_id],
        );
        ensure!(
            out.status.success(),
            "drop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // --- Every event landed exactly once; the dead-letter subscriptions are empty.
    let objects = stack.gcs.list(BUCKET, "transcripts/").await?;
    let names: BTreeSet<String> = objects.iter().map(|o| o.name.clone()).collect();
    let want: BTreeSet<String> = transcripts
        .iter()
        .filter_map(|m| m.expected_object("transcripts"))
        .collect();
    ensure!(names == want && objects.len() == 2, "objects: {names:?}");
    let rows = stack.bigquery.all_rows(DATASET, TABLE).await?;
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| r["event_id"].as_str().unwrap_or("").to_owned())
        .collect();
    ids.sort();
    let mut want: Vec<String> = transcripts
        .iter()
        .chain(&others)
        .map(|m| m.event_id.clone())
        .collect();
    want.sort();
    ensure!(ids == want, "rows {ids:?}, expected {want:?}");
    for sub in [&gcs_dlq, &bq_dlq, &v2_dlq] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = stack.pubsub.pull(sub, 10).await?;
        ensure!(
            left.is_empty(),
            "{sub} still holds {} message(s)",
            left.len()
        );
    }
    let help = Command::new(BIN).arg("--help").output()?;
    ensure!(String::from_utf8_lossy(&help.stdout).contains("step by step"));
    Ok(())
}
