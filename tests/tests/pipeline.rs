//! End-to-end: Pub/Sub emulator → the three services → fake-gcs-server and the BigQuery emulator.
//!
//! Emulator gaps worked around here, each said where it matters:
//! - the Pub/Sub emulator ignores subscription filters, so every service receives every message;
//!   the handlers' own routing is what these tests prove (the filters are proven in `terraform/`'s
//!   tests);
//! - an event the test publishes twice is two rows in BigQuery: the services write through the
//!   Storage Write API's default stream, which never deduplicates (in production either;
//!   `event_telemetry_once` and the audit count by event id);
//! - the Pub/Sub emulator sends no `deliveryAttempt` in pushes and no OIDC token.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::bigquery::by_publication;
use e2e::pubsub::{PushSubscription, push_body};
use e2e::samples::{Message, all_strings, generate, load_samples};
use e2e::soak::bridge::Bridge;
use e2e::stack::{Apps, BUCKET, DATASET, PROJECT, Stack, TABLE, TOPIC, filter_of, spawn_app};
use pipeline::Service;
use pipeline::startup::Application;
use serde_json::Value;

async fn publish_all(stack: &Stack, topic: &str, messages: &[Message]) -> Result<()> {
    for m in messages {
        stack.pubsub.publish(topic, &m.data, &m.attributes).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_land_where_they_belong_and_transcripts_never_reach_bigquery() -> Result<()> {
    let stack = Stack::start("routing").await?;
    let apps = Apps::spawn(&stack).await?;
    let dead_letters = stack.wire_pipeline(TOPIC, &apps.endpoints()).await?;

    // A second to-gcs, behind an unwrapped (no_wrapper + write_metadata) subscription: the same
    // events must land under its own prefix, byte for byte.
    let unwrapped = spawn_app(stack.config(
        Service::ToGcs,
        &[
            ("TRANSCRIPT_PREFIX", "unwrapped"),
            ("DEAD_LETTER_TOPIC", "unwrapped-dead-letter"),
        ],
    )?)
    .await?;
    stack.pubsub.create_topic("unwrapped-dead-letter").await?;
    stack
        .pubsub
        .create_push_subscription(&PushSubscription {
            name: "unwrapped-to-gcs".into(),
            topic: TOPIC.into(),
            endpoint: format!("{}/", unwrapped.url),
            filter: Some(filter_of(Service::ToGcs)?),
            dead_letter_topic: Some("unwrapped-dead-letter".into()),
            max_delivery_attempts: 5,
            no_wrapper: true,
        })
        .await?;

    let mut messages = load_samples()?;
    ensure!(
        messages.len() >= 8,
        "samples/ should hold the sample events"
    );
    messages.extend(generate(360, 20261127));
    publish_all(&stack, TOPIC, &messages).await?;

    // The same transcript event published twice (the gateway's at-least-once delivery).
    let twice = messages
        .iter()
        .find(|m| m.to_gcs && m.bq_handler == "to-bq")
        .expect("a flagged transcript sample")
        .clone();
    publish_all(&stack, TOPIC, std::slice::from_ref(&twice)).await?;

    // A message that is not a telemetry payload: every handler publishes it to its own
    // dead-letter topic with the reason, and only then acks it.
    let mut junk_attrs = BTreeMap::new();
    junk_attrs.insert(
        "event.recordsPrivateMetadataTranscript".to_string(),
        "true".to_string(),
    );
    stack
        .pubsub
        .publish(TOPIC, b"this is not JSON", &junk_attrs)
        .await?;

    let transcripts: Vec<&Message> = messages.iter().filter(|m| m.to_gcs).collect();
    ensure!(
        transcripts.len() > 20,
        "the generator should yield many transcript events"
    );
    // BigQuery: one publication per event, two for the event published twice. A redelivered push
    // (an ack that came too late under load) is written again by the default stream, with the same
    // message id: counted and reported, not required to be absent (see `by_publication`).
    let expected = messages.len() + 1;

    let rows = stack.wait_rows(expected, Duration::from_secs(240)).await?;
    for prefix in ["transcripts/", "unwrapped/"] {
        stack
            .wait_objects(prefix, transcripts.len(), Duration::from_secs(120))
            .await?;
    }
    // Let stragglers (redeliveries) arrive before counting exactly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = {
        let again = stack.bigquery.all_rows(DATASET, TABLE).await?;
        let (before, after) = (by_publication(&rows).len(), by_publication(&again).len());
        ensure!(
            before == after,
            "publications kept arriving: {before} then {after}"
        );
        again
    };
    let publications = by_publication(&rows);
    eprintln!(
        "{} rows of {} publications ({} written again after a redelivery)",
        rows.len(),
        publications.len(),
        rows.len() - publications.len()
    );

    // --- BigQuery: a row for each message, by the right handler, never any transcript text.
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &rows {
        by_id
            .entry(r["event_id"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(r);
    }
    ensure!(
        publications.len() == expected,
        "rows of {} publications, expected {expected}",
        publications.len()
    );
    for m in &messages {
        let found = publications
            .keys()
            .filter(|(event_id, _)| *event_id == m.event_id)
            .count();
        let want = if m.event_id == twice.event_id { 2 } else { 1 };
        ensure!(
            found == want,
            "{} ({}): rows of {found} messages, expected {want}",
            m.name,
            m.event_id
        );
        for row in &by_id[&m.event_id] {
            ensure!(
                row["handler"] == m.bq_handler,
                "{}: written by {} not {}",
                m.name,
                row["handler"],
                m.bq_handler
            );
            ensure!(
                row["is_transcript"] == Value::String(m.transcript.to_string()),
                "{}: is_transcript {} expected {}",
                m.name,
                row["is_transcript"],
                m.transcript
            );
            if !m.secrets.is_empty() {
                ensure!(
                    row["redacted_keys"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty()),
                    "{}: redacted_keys is empty",
                    m.name
                );
            }
        }
    }
    let mut secrets: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.secrets.iter().map(String::as_str))
        .collect();
    secrets.push("LICENSE-KEY-");
    secrets.push("EXAMPLE-OPAQUE-LICENSE-KEY");
    ensure!(
        secrets.len() > 100,
        "the generator should plant many markers"
    );
    for r in &rows {
        let mut all = Vec::new();
        all_strings(r, &mut all);
        for s in &all {
            for secret in &secrets {
                ensure!(
                    !s.contains(secret),
                    "row {} contains planted text {secret:?}",
                    r["event_id"]
                );
            }
        }
    }
    // The customer's flagged event: not in the bucket, in BigQuery without its promptText.
    let customer = &by_id["018f7c40-1e93-7d26-a8b5-2f4c6e8a0d17"][0];
    ensure!(customer["is_transcript"] == "false" && customer["is_dotcom"] == "false");
    ensure!(
        customer["parameters"]["private_metadata"]
            .get("promptText")
            .is_none()
    );
    ensure!(customer["redacted_keys"] == serde_json::json!(["promptText"]));
    ensure!(
        customer["request_metadata"]["license_key_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );

    // --- Cloud Storage: exactly the transcript events, byte for byte, one object each.
    for prefix in ["transcripts", "unwrapped"] {
        let objects = stack.gcs.list(BUCKET, &format!("{prefix}/")).await?;
        let names: BTreeSet<String> = objects.iter().map(|o| o.name.clone()).collect();
        let expected: BTreeSet<String> = transcripts
            .iter()
            .map(|m| m.expected_object(prefix).expect("a timestamp"))
            .collect();
        ensure!(
            names == expected,
            "{prefix}: objects differ from the transcript events:\n  extra {:?}\n  missing {:?}",
            names.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&names).collect::<Vec<_>>()
        );
        for m in &transcripts {
            let name = m.expected_object(prefix).expect("a timestamp");
            let stored = stack.gcs.download(BUCKET, &name).await?;
            ensure!(
                stored == m.data,
                "{name}: stored bytes differ from the published data"
            );
            for secret in &m.secrets {
                let decoded: Value = serde_json::from_slice(&stored)?;
                let mut all = Vec::new();
                all_strings(&decoded, &mut all);
                ensure!(
                    all.iter().any(|s| s == secret),
                    "{name}: transcript text missing from GCS"
                );
            }
        }
        // Custom metadata carries ids only. (The content type is not checked: fake-gcs-server
        // takes it from the media part of the multipart upload, which the official client leaves
        // untyped; real Cloud Storage takes the `contentType` the client sends in the metadata part.)
        for o in &objects {
            let id = o.metadata["event-id"].as_str().unwrap_or_default();
            // `{id}.{16 hex digits of the content's SHA-256}.json`
            let tail = o.name.rsplit('/').next().unwrap_or_default();
            let content = tail.strip_prefix(id).and_then(|t| t.strip_prefix('.'));
            ensure!(
                !id.is_empty()
                    && content.is_some_and(|c| {
                        c.len() == 21
                            && c.ends_with(".json")
                            && c[..16].chars().all(|h| h.is_ascii_hexdigit())
                    }),
                "{}: metadata {:?}",
                o.name,
                o.metadata
            );
        }
    }

    // --- The malformed message went to every handler's dead-letter topic, unchanged.
    for service in Service::ALL {
        let dead = stack
            .wait_dead_letters(dead_letters.of(service), 1, Duration::from_secs(90))
            .await?;
        ensure!(
            dead.len() == 1,
            "{service}: {} dead letters: {:?}",
            dead.len(),
            dead.iter().map(|d| &d.attributes).collect::<Vec<_>>()
        );
        let a = &dead[0].attributes;
        ensure!(dead[0].data == b"this is not JSON", "data changed");
        ensure!(
            a["event.recordsPrivateMetadataTranscript"] == "true",
            "original attributes lost: {a:?}"
        );
        ensure!(a["dead_letter.handler"] == service.name(), "{a:?}");
        ensure!(a["dead_letter.reason"] == "invalid_json", "{a:?}");
        ensure!(
            a["dead_letter.subscription"]
                == format!("projects/{PROJECT}/subscriptions/{TOPIC}-{service}"),
            "{a:?}"
        );
        ensure!(
            !a.contains_key("CloudPubSubDeadLetterSourceSubscription"),
            "acked, so Pub/Sub never dead-lettered it: {a:?}"
        );
    }

    unwrapped.stop().await?;
    apps.stop().await
}

/// Delivered by the pull bridge that behaves like push (`e2e::soak::bridge`), not by the
/// emulator's own push: after a few nacked pushes Google's emulator sometimes never pushes a
/// message again (tests/README.md, emulator gaps), which is the emulator losing it, not the
/// service. The emulator's real pushes are the other tests'.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storage_outage_is_nacked_and_redelivery_loses_nothing() -> Result<()> {
    let mut stack = Stack::start("outage").await?;
    let to_gcs = spawn_app(stack.config(Service::ToGcs, &[("SINK_TIMEOUT_SECONDS", "3")])?).await?;
    let topic = "outage-events";
    stack.pubsub.create_topic(topic).await?;
    // No dead-letter policy: redelivered until it succeeds.
    stack
        .pubsub
        .create_pull_subscription("outage-to-gcs", topic)
        .await?;
    let mut bridge = Bridge::start(
        &stack.pubsub_emulator.url(),
        PROJECT,
        "outage-to-gcs",
        &format!("{}/", to_gcs.url),
        8,
    )?;
    let transcripts: Vec<Message> = generate(240, 99).into_iter().filter(|m| m.to_gcs).collect();
    ensure!(transcripts.len() >= 10);
    let (before, during) = transcripts.split_at(transcripts.len() / 2);

    publish_all(&stack, topic, before).await?;
    stack
        .wait_objects("transcripts/", before.len(), Duration::from_secs(120))
        .await?;

    stack.stop_gcs();
    // A push straight to the handler while storage is down is nacked with a 5xx.
    let m = &during[0];
    let direct = reqwest::Client::new()
        .post(format!("{}/", to_gcs.url))
        .json(&push_body(
            "direct-1",
            &m.data,
            &m.attributes,
            "projects/p/subscriptions/direct",
        ))
        .send()
        .await?;
    ensure!(
        direct.status() == 503,
        "push during the outage answered {}",
        direct.status()
    );
    let body = direct.text().await?;
    ensure!(body.contains("sink_unavailable"), "{body}");
    for secret in &m.secrets {
        ensure!(
            !body.contains(secret.as_str()),
            "the error response contains transcript text"
        );
    }

    publish_all(&stack, topic, during).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    stack.restart_gcs().await?;
    stack
        .wait_objects("transcripts/", transcripts.len(), Duration::from_secs(120))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let objects = stack.gcs.list(BUCKET, "transcripts/").await?;
    ensure!(
        objects.len() == transcripts.len(),
        "{} objects for {} events",
        objects.len(),
        transcripts.len()
    );
    for m in &transcripts {
        let name = m.expected_object("transcripts").expect("a timestamp");
        ensure!(
            stack.gcs.download(BUCKET, &name).await? == m.data,
            "{name} differs"
        );
    }
    bridge.stop().await;
    Ok(to_gcs.stop().await?)
}

/// A wrong bucket or table stops a service at start-up, naming the problem, instead of every
/// push failing with 503 until the messages are dead-lettered; the right ones pass the check on
/// the emulators. (On the real services the bucket check is `testIamPermissions` for
/// `storage.objects.create`, which the Cloud Storage emulator lacks; see `sink::gcs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_a_wrong_bucket_or_table_refuses_to_start() -> Result<()> {
    let stack = Stack::start("startup-check").await?;
    for service in [Service::ToGcs, Service::ToBq] {
        let app = spawn_app(stack.config(service, &[])?).await?;
        app.stop().await?;
    }
    // What a 403 on a create is looked into with: the exact name is listed, a prefix is not it.
    let store = pipeline::sink::gcs::GcsStore::connect(
        BUCKET,
        Some(&format!("http://{}", stack.storage_host())),
        Duration::from_secs(5),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let object = pipeline::sink::NewObject {
        name: "transcripts/2026/01/01/00/e-1.0123456789abcdef.json".into(),
        data: bytes::Bytes::from_static(b"{}"),
        content_type: "application/json",
        metadata: BTreeMap::new(),
    };
    use pipeline::sink::ObjectStore as _;
    store
        .create_once(object)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(
        store
            .exists("transcripts/2026/01/01/00/e-1.0123456789abcdef.json")
            .await
            .map_err(anyhow::Error::msg)?
    );
    ensure!(
        !store
            .exists("transcripts/2026/01/01/00/e-1")
            .await
            .map_err(anyhow::Error::msg)?
    );

    let wrong_bucket = stack.config(Service::ToGcs, &[("TRANSCRIPT_BUCKET", "no-such-bucket")])?;
    let e = Application::build(&wrong_bucket)
        .await
        .err()
        .context("started")?;
    ensure!(e.stage() == "sink_check", "{e:?}");
    ensure!(
        e.to_string().contains("gs://no-such-bucket not found"),
        "{e}"
    );
    let wrong_table = stack.config(Service::SubV2, &[("BIGQUERY_TABLE", "no_such_table")])?;
    let e = Application::build(&wrong_table)
        .await
        .err()
        .context("started")?;
    ensure!(e.stage() == "sink_check", "{e:?}");
    ensure!(
        e.to_string().contains("no_such_table does not exist"),
        "{e}"
    );
    Ok(())
}
