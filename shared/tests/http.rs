//! The HTTP contract with Pub/Sub push, over real HTTP on a random port (the real server, with
//! in-process sinks): the status code is the ack.

mod support;
use pipeline::startup::RunningApp;

use pipeline::sink::memory::{MemoryRows, MemoryStore};
use pipeline::testing::{Down, MemoryDeadLetters, Rejecting};

use std::sync::Arc;

use base64::Engine as _;
use pipeline::config::Service;
use pipeline::handler::Destination;
use pipeline::limits::{MAX_MESSAGE_DATA_BYTES, MAX_PUSH_BODY_BYTES};
use pipeline::sink::{ObjectStore, RowSink};
use serde_json::{Value, json};
use sha2::Digest as _;

const SECRET: &str = "SECRET-PROMPT-4711";

const VARS: &[(&str, &str)] = &[("TRANSCRIPT_BUCKET", "b-1"), ("BIGQUERY_DATASET", "d")];

async fn spawn(service: Service, destination: Destination) -> RunningApp {
    support::spawn_local(service, VARS, destination, None).await
}

fn objects(store: Arc<dyn ObjectStore>) -> Destination {
    Destination::Objects {
        store,
        prefix: "transcripts".into(),
    }
}

fn transcript_data(id: &str) -> Vec<u8> {
    json!({"event": {"id": id, "timestamp": "2024-05-14T21:12:07.903Z", "feature": "cody.chat-question",
        "action": "submitted", "parameters": {"metadata": {"recordsPrivateMetadataTranscript": 1},
        "privateMetadata": {"promptText": SECRET}}},
        "metadata": {"identifier": {"licensedInstance": {"externalUrl": "https://sourcegraph.com"}}}})
    .to_string()
    .into_bytes()
}

fn envelope(data: &[u8]) -> Value {
    let flagged = [(
        "event.recordsPrivateMetadataTranscript".to_string(),
        "true".to_string(),
    )];
    support::push("1", data)
        .attributes(&flagged.into_iter().collect())
        .publish_time("2026-11-27T18:36:36.963Z")
        .subscription("projects/p/subscriptions/s")
        .to_json()
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(SECRET),
        "response body leaks transcript text: {text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn health_and_methods() {
    let app = spawn(Service::ToGcs, objects(Arc::new(MemoryStore::default()))).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["service"], "to-gcs");
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = client
            .request(method.clone(), format!("{}/", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn writes_ack_and_redelivery_is_already_stored() {
    let store = Arc::new(MemoryStore::default());
    let app = spawn(Service::ToGcs, objects(store.clone())).await;
    let body = envelope(&transcript_data("e-1")).to_string();
    let (status, v) = post(&app.url, body.clone()).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("written")),
        "{v}"
    );
    let target = v["target"].as_str().unwrap();
    let content = sha2::Sha256::digest(transcript_data("e-1"));
    let expected = format!(
        "transcripts/2024/05/14/21/e-1.{}.json",
        hex::encode(&content[..8])
    );
    assert_eq!(target, expected);
    let (status, v) = post(&app.url, body).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("already_stored")),
        "{v}"
    );
    assert_eq!(store.objects().len(), 1);
}

#[tokio::test]
async fn malformed_pushes_are_refused_with_a_reason_never_acked() {
    let app = spawn(
        Service::SubV2,
        Destination::Rows(Arc::new(MemoryRows::default())),
    )
    .await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases: Vec<(String, u16, &str)> = vec![
        ("not json".into(), 400, "invalid_envelope"),
        (json!({"subscription": "s"}).to_string(), 400, "invalid_envelope"),
        (json!({"message": {"data": b64("{}")}}).to_string(), 400, "no_message_id"),
        (json!({"message": {"messageId": "1", "data": "***"}}).to_string(), 400, "invalid_base64"),
        (json!({"message": {"messageId": "1", "data": b64("garbage")}}).to_string(), 400, "invalid_json"),
        (json!({"message": {"messageId": "1"}}).to_string(), 400, "empty_data"),
        (json!({"message": {"messageId": "1", "data": b64(r#"{"event":{"timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a"}}"#)}}).to_string(), 400, "invalid_payload"),
        (json!({"message": {"messageId": "1", "data": b64(&format!(r#"{{"event":{{"id":"x","timestamp":"2024-05-14T21:12:07Z","feature":"f","action":"a","parameters":{{"privateMetadata":"{SECRET}"}}}}}}"#))}}).to_string(), 400, "invalid_payload"),
    ];
    for (body, status, code) in cases {
        let (got, v) = post(&app.url, body.clone()).await;
        assert_eq!(
            (got, v["error"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    }
}

#[tokio::test]
async fn the_largest_message_is_accepted_and_a_larger_body_refused() {
    let store = Arc::new(MemoryStore::default());
    let app = spawn(Service::ToGcs, objects(store.clone())).await;
    // A transcript event padded to exactly Pub/Sub's 10 MB limit.
    let small = transcript_data("big-1");
    let pad = MAX_MESSAGE_DATA_BYTES - small.len() - r#","pad":"""#.len();
    let text = String::from_utf8(small).unwrap();
    let big = format!(
        "{},\"pad\":\"{}\"}}",
        &text[..text.len() - 1],
        "x".repeat(pad)
    );
    assert_eq!(big.len(), MAX_MESSAGE_DATA_BYTES);
    let (status, v) = post(&app.url, envelope(big.as_bytes()).to_string()).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("written")),
        "{v}"
    );
    assert_eq!(
        store.objects().values().next().unwrap().len(),
        MAX_MESSAGE_DATA_BYTES
    );

    let (status, v) = post(&app.url, vec![b' '; MAX_PUSH_BODY_BYTES + 1]).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
}

#[tokio::test]
async fn sink_failures_are_nacked_and_invalid_rows_rejected() {
    let body = envelope(&transcript_data("e-2")).to_string();

    let app = spawn(Service::ToGcs, objects(Arc::new(Down))).await;
    let (status, v) = post(&app.url, body.clone()).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("sink_unavailable")),
        "{v}"
    );

    let down: Arc<dyn RowSink> = Arc::new(Down);
    let app = spawn(Service::ToBq, Destination::Rows(down)).await;
    let (status, v) = post(&app.url, body.clone()).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("sink_unavailable")),
        "{v}"
    );

    let app = spawn(Service::ToBq, Destination::Rows(Arc::new(Rejecting))).await;
    let (status, v) = post(&app.url, body).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("row_invalid")),
        "{v}"
    );
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_before_the_ack() {
    let dlq = Arc::new(MemoryDeadLetters::default());
    let app = support::spawn_local(
        Service::ToBq,
        VARS,
        Destination::Rows(Arc::new(Rejecting)),
        Some(dlq.clone()),
    )
    .await;
    let url = app.url.clone();

    // The row is rejected: dead-lettered with the reason, then acked.
    let data = transcript_data("e-3");
    let (status, v) = post(&url, envelope(&data).to_string()).await;
    assert_eq!(
        (status, v["outcome"].as_str(), v["error"].as_str()),
        (200, Some("dead_lettered"), Some("row_invalid")),
        "{v}"
    );
    // Not an envelope at all: the body itself is dead-lettered.
    let (status, v) = post(&url, "{oops").await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("dead_lettered")),
        "{v}"
    );
    {
        let letters = dlq.letters();
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0].data, data, "original data unchanged");
        assert_eq!(
            letters[0].attributes["event.recordsPrivateMetadataTranscript"],
            "true"
        );
        assert_eq!(letters[0].attributes["dead_letter.reason"], "row_invalid");
        assert_eq!(letters[0].attributes["dead_letter.handler"], "to-bq");
        assert_eq!(
            letters[0].attributes["dead_letter.subscription"],
            "projects/p/subscriptions/s"
        );
        assert_eq!(letters[0].attributes["dead_letter.message_id"], "1");
        assert_eq!(letters[1].data, b"{oops");
        assert_eq!(letters[1].attributes["dead_letter.payload"], "push_body");
        for l in letters.iter() {
            assert!(
                !l.attributes.values().any(|v| v.contains(SECRET)),
                "{:?}",
                l.attributes
            );
        }
    }

    // A replayed push that still fails is answered 4xx and not dead-lettered again.
    let r = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("x-pipeline-replay", "1")
        .body(envelope(&data).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(dlq.letters().len(), 2);
}

#[tokio::test]
async fn a_failed_dead_letter_publish_is_nacked() {
    let dlq = Arc::new(MemoryDeadLetters::failing());
    let app = support::spawn_local(
        Service::SubV2,
        VARS,
        Destination::Rows(Arc::new(MemoryRows::default())),
        Some(dlq),
    )
    .await;
    let url = app.url.clone();
    let (status, v) = post(&url, "not json").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("invalid_envelope")),
        "{v}"
    );
    assert!(
        v["deadLetterError"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{v}"
    );
}

#[tokio::test]
async fn oversized_requests_are_refused_and_never_dead_lettered() {
    let dlq = Arc::new(MemoryDeadLetters::default());
    let app = support::spawn_local(
        Service::ToGcs,
        VARS,
        objects(Arc::new(MemoryStore::default())),
        Some(dlq.clone()),
    )
    .await;
    let url = format!("{}/", app.url);
    let client = reqwest::Client::new();

    // Headers beyond what an unwrapped push with 100 maximal attributes needs.
    let mut req = client.post(&url).body("{}");
    for i in 0..140 {
        req = req.header(format!("x-attr-{i}"), "v".repeat(1200));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 431);

    // A body larger than any push: refused, and not dead-lettered (there is nothing to keep).
    let (status, _) = post(
        url.trim_end_matches('/'),
        vec![b' '; MAX_PUSH_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(status, 413);
    assert!(dlq.letters().is_empty());
}

/// SIGTERM while a row waits in the group-commit batch: the push is still answered after its
/// row's verdict, and the service stops only then.
#[tokio::test]
async fn shutdown_waits_for_the_batched_row_of_an_in_flight_push() {
    // The insertAll call is held open until the test lets it go: no timing to race.
    let (app, table, push) = push_held_in_its_call("e-9").await;
    let mut stop = tokio::spawn(app.stop());
    tokio::select! {
        _ = &mut stop => panic!("stop returned before the row's call was answered"),
        _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
    }
    table.release.notify_one();
    stop.await.unwrap().expect("graceful stop");
    let (status, v) = push.await.unwrap();
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("written")),
        "{v}"
    );
    assert_eq!(table.rows.len(), 1);
}

/// A client that opens a connection and stalls in the middle of a request head is cut off
/// (hyper's header-read timeout, which needs a timer to apply at all).
#[tokio::test]
async fn a_connection_that_stalls_mid_header_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn(
        Service::SubV2,
        Destination::Rows(Arc::new(MemoryRows::default())),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        pipeline::limits::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open {:?} after the head stalled",
        started.elapsed()
    );
    app.stop().await.expect("graceful stop");
}

/// SIGTERM while a push can never finish (its `insertAll` hangs): the server still exits
/// within Cloud Run's grace period instead of waiting for ever.
#[tokio::test]
async fn shutdown_waits_for_in_flight_pushes_within_cloud_runs_grace() {
    let (app, _table, _push) = push_held_in_its_call("e-10").await;
    let started = std::time::Instant::now();
    app.stop().await.expect("stopped within the grace period");
    let took = started.elapsed();
    assert!(
        took >= pipeline::limits::SHUTDOWN_DRAIN - std::time::Duration::from_millis(500)
            && took < pipeline::limits::CLOUD_RUN_SIGTERM_GRACE,
        "stopped after {took:?}"
    );
}

/// to-bq under group commit on a [`HeldTable`], with one push (event `id`) whose `insertAll`
/// call is under way and held.
async fn push_held_in_its_call(
    id: &'static str,
) -> (
    RunningApp,
    Arc<HeldTable>,
    tokio::task::JoinHandle<(u16, Value)>,
) {
    use pipeline::sink::batch::{BatchSettings, GroupCommit};
    let table = Arc::new(HeldTable::default());
    let batched = GroupCommit::new(table.clone(), BatchSettings::default());
    let app = spawn(Service::ToBq, Destination::Rows(Arc::new(batched))).await;
    let url = app.url.clone();
    let push =
        tokio::spawn(async move { post(&url, envelope(&transcript_data(id)).to_string()).await });
    while !table.called.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (app, table, push)
}

/// Pushes refused for the byte budget are answered 429 in a way every client reads: one that
/// sends the whole body before it reads the answer (as curl does) must not find the connection
/// closed under it mid-send (a broken pipe is a transport error to it, not back-pressure).
#[tokio::test]
async fn a_push_refused_for_the_budget_reads_its_429_after_sending_it_all() {
    let table = Arc::new(HeldTable::default());
    let app = spawn_with_budget(table.clone(), BUDGET).await;
    // One push near the largest takes most of the budget and stays in its insertAll call.
    let first = tokio::spawn({
        let url = app.url.clone();
        async move { post(&url, big_push(0)).await }
    });
    while !table.called.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let answers: Vec<_> = (1..=4)
        .map(|i| tokio::spawn(send_all_then_read(app.port, big_push(i))))
        .collect();
    for answer in answers {
        let status_line = answer.await.unwrap().expect("the client read an answer");
        assert!(status_line.starts_with("HTTP/1.1 429"), "{status_line}");
    }
    table.release.notify_one();
    assert_eq!(first.await.unwrap().0, 200);
    app.stop().await.expect("graceful stop");
}

/// The byte budget of the admission tests: one near-largest push fits, two do not.
const BUDGET: usize = 12 * 1024 * 1024;

/// sub-v2 writing to `table` with a budget of `budget` push-body bytes in flight.
async fn spawn_with_budget(table: Arc<dyn RowSink>, budget: usize) -> RunningApp {
    let budget = budget.to_string();
    let vars = [
        ("BIGQUERY_DATASET", "d"),
        ("MAX_BODY_BYTES_IN_FLIGHT", budget.as_str()),
    ];
    support::spawn_local(Service::SubV2, &vars, Destination::Rows(table), None).await
}

/// A push of about 9.3 MB (7 MB of data): near the largest Pub/Sub sends.
fn big_push(i: usize) -> Vec<u8> {
    let data = json!({"event": {"id": format!("big-{i}"), "timestamp": "2024-05-14T21:12:07.903Z",
        "feature": "search.results", "action": "viewed",
        "parameters": {"privateMetadata": {"query": "q".repeat(7 * 1000 * 1000)}}}});
    support::push(&format!("m-{i}"), data.to_string().as_bytes()).to_bytes()
}

/// A client that writes the whole request before reading the answer; the answer's status line.
async fn send_all_then_read(port: u16, body: Vec<u8>) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A table whose first `insertAll` waits until the test releases it.
#[derive(Default)]
struct HeldTable {
    rows: MemoryRows,
    called: std::sync::atomic::AtomicBool,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl RowSink for HeldTable {
    async fn insert(
        &self,
        rows: Vec<pipeline::row::PreparedRow>,
    ) -> Result<Vec<Result<(), pipeline::sink::RowError>>, pipeline::error::CallError> {
        self.called.store(true, std::sync::atomic::Ordering::SeqCst);
        self.release.notified().await;
        self.rows.insert(rows).await
    }
}

/// A table that takes its time and records how many inserts ran at once.
#[derive(Default)]
struct SlowTable {
    rows: MemoryRows,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl RowSink for SlowTable {
    async fn insert(
        &self,
        rows: Vec<pipeline::row::PreparedRow>,
    ) -> Result<Vec<Result<(), pipeline::sink::RowError>>, pipeline::error::CallError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.now.fetch_sub(1, SeqCst);
        self.rows.insert(rows).await
    }
}

/// Many concurrent near-maximum pushes against a budget that admits one at a time: every answer
/// is 200 or 429, never more than the budget is in the handlers at once, and retried 429s all land.
#[tokio::test]
async fn large_pushes_beyond_the_byte_budget_are_answered_429_and_land_on_retry() {
    let table = Arc::new(SlowTable::default());
    let budget = BUDGET;
    let app = spawn_with_budget(table.clone(), budget).await;
    let body = big_push;
    assert!(
        body(0).len() > budget / 2,
        "two bodies do not fit the budget"
    );
    // Near the largest push: 7 MB of data, about 9.3 MB wrapped.
    assert!(body(0).len() > 9_000_000);
    let mut waiting: Vec<usize> = (0..8).collect();
    let mut refused = 0;
    for _round in 0..20 {
        let answers: Vec<_> = waiting
            .iter()
            .map(|&i| {
                let (url, b) = (app.url.clone(), body(i));
                tokio::spawn(async move { (i, post(&url, b).await) })
            })
            .collect();
        let mut again = Vec::new();
        for answer in answers {
            let (i, (status, v)) = answer.await.unwrap();
            match status {
                200 => assert_eq!(v["outcome"], "written", "{v}"),
                429 => {
                    assert_eq!(
                        (v["outcome"].as_str(), v["error"].as_str()),
                        (Some("retry"), Some("over_budget"))
                    );
                    refused += 1;
                    again.push(i);
                }
                other => panic!("push {i}: unexpected {other}: {v}"),
            }
        }
        waiting = again;
        if waiting.is_empty() {
            break;
        }
    }
    assert!(
        waiting.is_empty(),
        "still refused after 20 rounds: {waiting:?}"
    );
    assert!(
        refused > 0,
        "12 pushes of 300 ms each, one at a time, must outlast the 2 s wait"
    );
    assert_eq!(
        table.most.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one push at a time"
    );
    let mut ids: Vec<String> = table
        .rows
        .rows()
        .iter()
        .map(|r| r.insert_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every push landed");
}

/// An unwrapped push with the most attributes Pub/Sub sends (100, each a header, keys of 256
/// bytes and values of 1024) and the headers Pub/Sub, Cloud Run and tracing add: hyper's default
/// limit of 100 headers refused it with 431 before the handler ran.
#[tokio::test]
async fn an_unwrapped_push_with_the_most_attributes_pubsub_sends_is_handled() {
    let store = Arc::new(MemoryStore::default());
    let app = spawn(Service::ToGcs, objects(store.clone())).await;
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{}/", app.url))
        .header("content-type", "application/json")
        .header("authorization", "Bearer not-checked-here")
        .header("x-goog-pubsub-message-id", "77")
        .header("x-goog-pubsub-publish-time", "2026-11-27T18:36:36.963Z")
        .header(
            "x-goog-pubsub-subscription-name",
            "projects/p/subscriptions/s",
        )
        .header("x-goog-pubsub-delivery-attempt", "1")
        .header(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1",
        )
        .header(
            "traceparent",
            "00-105445aa7843bc8bf206b12000100000-0000000000000001-01",
        )
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=10.0.0.1;proto=https")
        .header("user-agent", "APIs-Google")
        .header("event.recordsprivatemetadatatranscript", "true");
    let attributes = pipeline::limits::PUBSUB_MAX_ATTRIBUTES - 1;
    for i in 0..attributes {
        let key = format!("attr-{i:03}-{}", "k".repeat(247));
        req = req.header(key, "v".repeat(1024));
    }
    let r = req.body(transcript_data("e-many")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(store.objects().len(), 1);
    app.stop().await.unwrap();
}

/// A push with 100 attributes (Pub/Sub's most) whose data is not JSON fails permanently: its dead
/// letter has no attribute to spare, so the push itself is the letter's data, written again from the
/// message (issue 24: it used to be empty, and the message was acked and lost). Wrapped and
/// unwrapped, the letter decodes back to the original data and attributes, which is what `replay`
/// pushes.
#[tokio::test]
async fn a_message_with_100_attributes_is_dead_lettered_with_its_data() {
    let dlq = Arc::new(MemoryDeadLetters::default());
    let app = support::spawn_local(
        Service::SubV2,
        VARS,
        Destination::Rows(Arc::new(MemoryRows::default())),
        Some(dlq.clone()),
    )
    .await;
    let attributes: std::collections::BTreeMap<String, String> = (0..100)
        .map(|i| (format!("attr-{i:03}"), format!("value-{i}")))
        .collect();
    let client = reqwest::Client::new();
    // Wrapped.
    let wrapped = support::push("100", b"not json")
        .attributes(&attributes)
        .subscription("projects/p/subscriptions/s")
        .to_json()
        .to_string();
    let (status, v) = post(&app.url, wrapped).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("dead_lettered")),
        "{v}"
    );
    // Unwrapped: every attribute a header.
    let mut req = client
        .post(format!("{}/", app.url))
        .header("x-goog-pubsub-message-id", "101")
        .header("x-goog-pubsub-publish-time", "2026-11-27T18:36:36.963Z")
        .header(
            "x-goog-pubsub-subscription-name",
            "projects/p/subscriptions/s",
        );
    for (k, v) in &attributes {
        req = req.header(k, v);
    }
    let r = req.body("not json").send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("dead_lettered")),
        "{v}"
    );

    let letters = dlq.letters();
    assert_eq!(letters.len(), 2);
    for (letter, id) in letters.iter().zip(["100", "101"]) {
        assert_eq!(
            letter.attributes["dead_letter.payload"], "push_body",
            "{id}"
        );
        assert!(!letter.data.is_empty(), "{id}: the letter lost the message");
        let back = pipeline::PushMessage::decode(&http::HeaderMap::new(), &letter.data)
            .unwrap_or_else(|e| panic!("{id}: the letter is not a push: {e}"));
        assert_eq!(back.message_id, id);
        assert_eq!(&back.data.bytes()[..], b"not json", "{id}");
        assert_eq!(back.attributes, attributes, "{id}");
    }
    app.stop().await.unwrap();
}
