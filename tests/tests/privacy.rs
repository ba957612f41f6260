//! Privacy, proven end to end on the emulators: unique marker strings are planted in every key the
//! redaction covers (top level and nested, in arrays, in several letter cases, with characters the
//! publisher escapes as `\u003c`…, and with the key or the text itself written with JSON escapes),
//! in transcript events and in events that are not, and in messages that are malformed. After the
//! pipeline has run, no marker appears in any BigQuery row, in anything the services logged, in any
//! HTTP response body, or in any dead-letter attribute; the markers appear, intact, in Cloud Storage
//! for transcript events only. The raw license key appears nowhere but in the stored message data.
//!
//! The services run in this test process, so their log lines are captured here (this file is its
//! own test binary, so the capture is the only logging set-up in the process).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use e2e::pubsub::push_body;
use e2e::samples::go_json;
use e2e::stack::{Apps, BUCKET, Stack, TOPIC, dead_letter_topic};
use pipeline::Service;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Every string in a JSON value, keys included; strings that hold JSON themselves (JSON columns,
/// `attributes`) are decoded and searched too.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            if s.starts_with(['{', '['])
                && let Ok(inner) = serde_json::from_str::<Value>(s)
            {
                strings(&inner, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

/// Finds any of `needles` in `text`, raw or inside any JSON it contains once decoded.
fn leaks<'a>(text: &str, needles: &'a [String]) -> Option<&'a str> {
    let mut hay = vec![text.to_owned()];
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            strings(&v, &mut hay);
        }
    }
    needles
        .iter()
        .find(|n| hay.iter().any(|h| h.contains(n.as_str())))
        .map(String::as_str)
}

struct Planted {
    data: Vec<u8>,
    attributes: BTreeMap<String, String>,
    id: String,
    transcript: bool,
    markers: Vec<String>,
    license: String,
}

/// One event with markers under every shape of redacted key.
fn event(n: usize, flagged: bool, dotcom: bool, escape_keys: bool) -> Planted {
    let m = |k: &str| format!("PRIVMARK-{n}-{k}-<b>&\"q\"\\ é 漢字\n");
    let keys = [
        "promptText",
        "responseText",
        "PROMPTTEXT",
        "ResponseText",
        "pRoMpTtExT",
    ];
    let markers: Vec<String> = keys
        .iter()
        .map(|k| m(k))
        .chain([m("nested"), m("array"), m("deep")])
        .collect();
    let private = json!({
        keys[0]: markers[0], keys[1]: markers[1], keys[2]: markers[2], keys[3]: markers[3], keys[4]: markers[4],
        "chatModel": "anthropic/claude",
        "context": {"responseText": markers[5], "kept": "fine"},
        "turns": [{"promptText": markers[6]}, {"other": 1}],
        "a": {"b": {"c": [{"d": {"ResponseText": {"text": markers[7]}}}]}},
    });
    let id = format!("privacy-{n}");
    let license = format!("LICENSEKEY-{n}-RAW");
    let mut metadata = json!({"tier": 1});
    if flagged {
        metadata["recordsPrivateMetadataTranscript"] = json!(1);
    }
    let url = if dotcom {
        "https://sourcegraph.com"
    } else {
        "https://sourcegraph.customer.example"
    };
    let data = json!({"event": {"id": id, "timestamp": "2024-05-14T21:12:07.903Z", "feature": "cody.chat-question",
        "action": "submitted", "parameters": {"metadata": metadata, "privateMetadata": private}},
        "metadata": {"identifier": {"licensedInstance": {"licenseKey": license, "instanceId": "i", "externalUrl": url}}}});
    let mut raw = String::from_utf8(go_json(&data)).expect("utf-8");
    if escape_keys {
        // The key and the text written with JSON escapes: the same strings once decoded.
        raw = raw
            .replacen("\"promptText\"", "\"prompt\\u0054ext\"", 1)
            .replace("PRIVMARK-", "\\u0050RIVMARK-");
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("event.hasPrivateMetadata".to_string(), "true".to_string());
    if flagged {
        attributes.insert(
            "event.recordsPrivateMetadataTranscript".to_string(),
            "true".to_string(),
        );
    }
    Planted {
        data: raw.into_bytes(),
        attributes,
        id,
        transcript: flagged && dotcom,
        markers,
        license,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transcript_text_reaches_the_bucket_and_nothing_else() -> Result<()> {
    let logs = Capture::default();
    pipeline::logging::init_with_writer(logs.clone());

    let stack = Stack::start("privacy").await?;
    let apps = Apps::spawn(&stack).await?;
    stack.wire_pipeline(TOPIC, &apps.endpoints()).await?;

    let mut valid = Vec::new();
    let mut n = 0;
    for flagged in [true, false] {
        for dotcom in [true, false] {
            for escape in [false, true] {
                n += 1;
                valid.push(event(n, flagged, dotcom, escape));
            }
        }
    }
    // Malformed messages that still carry markers: refused and dead-lettered, never echoed.
    let bad_marker = |k: &str| format!("PRIVMARK-bad-{k}");
    let malformed: Vec<(Vec<u8>, String)> = vec![
        (json!({"event": {"id": "bad-1", "timestamp": "2024-05-14T21:12:07Z", "feature": "f", "action": "a",
            "parameters": {"privateMetadata": bad_marker("as-string")}}}).to_string().into_bytes(), bad_marker("as-string")),
        (json!({"event": {"id": "bad-2", "timestamp": "2024-05-14T21:12:07Z", "feature": "f", "action": "a",
            "user": {"userId": bad_marker("user-id")}}}).to_string().into_bytes(), bad_marker("user-id")),
        (json!({"event": {"timestamp": "2024-05-14T21:12:07Z", "feature": "f", "action": "a",
            "parameters": {"privateMetadata": {"promptText": bad_marker("no-id")}}}}).to_string().into_bytes(), bad_marker("no-id")),
        (format!("{{\"event\": \"{}\"", bad_marker("truncated")).into_bytes(), bad_marker("truncated")),
    ];

    let mut secrets: Vec<String> = valid.iter().flat_map(|p| p.markers.clone()).collect();
    secrets.extend(malformed.iter().map(|(_, m)| m.clone()));
    let licenses: Vec<String> = valid.iter().map(|p| p.license.clone()).collect();
    let mut forbidden = secrets.clone();
    forbidden.extend(licenses.clone());
    // The markers' distinctive prefix alone must not leak either (a partial echo is a leak).
    let prefixes: Vec<String> = (1..=n)
        .map(|i| format!("PRIVMARK-{i}-"))
        .chain(["PRIVMARK-bad-".to_string()])
        .collect();
    forbidden.extend(prefixes);

    for p in &valid {
        stack.pubsub.publish(TOPIC, &p.data, &p.attributes).await?;
    }
    for (data, _) in &malformed {
        stack.pubsub.publish(TOPIC, data, &BTreeMap::new()).await?;
    }

    // The same messages pushed straight to every handler: every response body is checked. (These
    // deliveries add a second BigQuery row per event: the default stream does not deduplicate.)
    let client = reqwest::Client::new();
    let mut responses = String::new();
    for (i, (data, attrs)) in valid
        .iter()
        .map(|p| (p.data.clone(), p.attributes.clone()))
        .chain(malformed.iter().map(|(d, _)| (d.clone(), BTreeMap::new())))
        .enumerate()
    {
        for url in [&apps.to_gcs.url, &apps.to_bq.url, &apps.sub_v2.url] {
            let body = push_body(
                &format!("direct-{i}"),
                &data,
                &attrs,
                "projects/p/subscriptions/direct",
            );
            let r = client.post(format!("{url}/")).json(&body).send().await?;
            responses.push_str(&r.text().await?);
            responses.push('\n');
        }
    }

    let want_rows = valid.len() * 2;
    let rows = stack.wait_rows(want_rows, Duration::from_secs(120)).await?;
    let mut dead = Vec::new();
    for service in Service::ALL {
        let sub = dead_letter_topic(TOPIC, service);
        let want = malformed.len() * 2; // through Pub/Sub and pushed directly
        let got = stack
            .wait_dead_letters(&sub, want, Duration::from_secs(60))
            .await?;
        dead.extend(got);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // BigQuery: none of it, however encoded.
    let rows_text = serde_json::to_string(&rows)?;
    ensure!(
        leaks(&rows_text, &forbidden).is_none(),
        "BigQuery holds {:?}",
        leaks(&rows_text, &forbidden)
    );
    for p in &valid {
        let mine: Vec<&Value> = rows
            .iter()
            .filter(|r| r["event_id"] == p.id.as_str())
            .collect();
        ensure!(mine.len() == 2, "{}: {} rows", p.id, mine.len());
        for r in mine {
            let removed = r["redacted_keys"].as_array().map(Vec::len).unwrap_or(0);
            ensure!(
                removed == 8,
                "{}: {removed} keys redacted: {}",
                p.id,
                r["redacted_keys"]
            );
            let pm = &r["parameters"]["private_metadata"];
            let pm: Value = match pm.as_str() {
                Some(s) => serde_json::from_str(s)?,
                None => pm.clone(),
            };
            ensure!(pm["context"]["kept"] == "fine", "{pm}");
        }
    }
    // Logs: not one line.
    let log_text = String::from_utf8(logs.0.lock().unwrap_or_else(|e| e.into_inner()).clone())?;
    ensure!(
        log_text.lines().count() > valid.len() * 3,
        "the services logged too little: {} lines",
        log_text.lines().count()
    );
    ensure!(
        leaks(&log_text, &forbidden).is_none(),
        "the logs hold {:?}",
        leaks(&log_text, &forbidden)
    );
    // Responses.
    ensure!(responses.lines().count() == (valid.len() + malformed.len()) * 3);
    ensure!(
        leaks(&responses, &forbidden).is_none(),
        "a response holds {:?}",
        leaks(&responses, &forbidden)
    );
    // Dead letters: the data is the message (as restricted as the bucket); the attributes are ours.
    for d in &dead {
        let attrs = serde_json::to_string(&d.attributes)?;
        ensure!(attrs.contains("dead_letter.reason"), "{attrs}");
        ensure!(
            leaks(&attrs, &forbidden).is_none(),
            "dead-letter attributes hold {:?}",
            leaks(&attrs, &forbidden)
        );
    }
    // Cloud Storage: exactly the transcript events, with every marker intact once decoded.
    let objects = stack.gcs.list(BUCKET, "").await?;
    for p in &valid {
        let object = objects
            .iter()
            .find(|o| o.metadata["event-id"].as_str() == Some(p.id.as_str()));
        ensure!(
            object.is_some() == p.transcript,
            "{}: in the bucket: {}",
            p.id,
            object.is_some()
        );
        if let Some(o) = object {
            let stored = stack.gcs.download(BUCKET, &o.name).await?;
            ensure!(stored == p.data, "{}: not the published bytes", p.id);
            let mut all = Vec::new();
            strings(&serde_json::from_slice(&stored)?, &mut all);
            for m in &p.markers {
                ensure!(
                    all.contains(m),
                    "{}: marker {m:?} missing from the bucket",
                    p.id
                );
            }
            ensure!(
                all.contains(&p.license),
                "the stored message keeps its data, license key included"
            );
        }
    }
    ensure!(objects.len() == valid.iter().filter(|p| p.transcript).count());
    apps.stop().await
}
