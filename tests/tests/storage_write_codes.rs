//! The Storage Write API's gRPC answers as Google's own write client treats them (issue 34, §3),
//! through the real sub-v2 and the BigQuery emulator, with the soak's gRPC proxy in between
//! scripting how the next appends end:
//! - a stream closed with ABORTED, as BigQuery closes one idle for 600 s: the append is sent
//!   again on a new stream and the push written at once, never nacked;
//! - a call CANCELLED (its outcome unknown): retried like Google's client retries it, so a push is
//!   written, or nacked (503) when every attempt was cancelled and written on its next delivery,
//!   never dead-lettered.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use e2e::pubsub::push_body;
use e2e::samples::{Message, generate};
use e2e::soak::grpc_proxy::GrpcProxy;
use e2e::soak::proxy::FaultRates;
use e2e::stack::{Stack, spawn_app};
use pipeline::config::Service;
use serde_json::Value;

/// ABORTED and CANCELLED, as gRPC sends them.
const ABORTED: &str = "10";
const CANCELLED: &str = "1";

/// Pushes `m` straight to the service as delivery `id`: the status and the answer's outcome.
async fn push(url: &str, id: &str, m: &Message) -> Result<(u16, String)> {
    let response = reqwest::Client::new()
        .post(format!("{url}/"))
        .json(&push_body(
            id,
            &m.data,
            &m.attributes,
            "projects/p/subscriptions/sub-v2",
        ))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body["outcome"].as_str().unwrap_or("").to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_and_cancelled_appends_are_sent_again_never_refused() -> Result<()> {
    let stack = Stack::start("grpc-codes").await?;
    let proxy = GrpcProxy::start(
        &format!("http://{}", stack.bigquery_storage_host()),
        FaultRates::default(),
        Duration::from_secs(1),
        HashSet::new(),
        34,
    )
    .await?;
    let host = proxy.host();
    let sub_v2 = spawn_app(stack.config(
        Service::SubV2,
        &[
            ("BIGQUERY_STORAGE_EMULATOR_HOST", host.as_str()),
            ("SINK_TIMEOUT_SECONDS", "4"),
        ],
    )?)
    .await?;
    let plain: Vec<Message> = generate(200, 34)
        .into_iter()
        .filter(|m| !m.to_gcs && m.bq_handler == "sub-v2")
        .take(5)
        .collect();
    ensure!(
        plain.len() == 5,
        "the generator gave {} plain events",
        plain.len()
    );

    // The streams open and carry a first row.
    ensure!(push(&sub_v2.url, "m0", &plain[0]).await? == (200, "written".into()));

    // BigQuery closes the stream (idle for 600 s): the next push is written, not nacked.
    proxy.close_next(
        1,
        ABORTED,
        "Closing the stream because it has been inactive for 600 seconds",
    );
    let answer = push(&sub_v2.url, "m1", &plain[1]).await?;
    ensure!(
        answer == (200, "written".into()),
        "after ABORTED: {answer:?}"
    );
    ensure!(proxy.scripted() == 0, "the ABORTED close was not reached");

    // One cancelled call: sent again at once.
    proxy.close_next(1, CANCELLED, "The operation was cancelled");
    let answer = push(&sub_v2.url, "m2", &plain[2]).await?;
    ensure!(
        answer == (200, "written".into()),
        "after one CANCELLED: {answer:?}"
    );

    // Every attempt cancelled: nacked for redelivery, not dead-lettered; the next delivery lands.
    proxy.close_next(1000, CANCELLED, "The operation was cancelled");
    let answer = push(&sub_v2.url, "m3", &plain[3]).await?;
    ensure!(
        answer.0 == 503,
        "every attempt CANCELLED: {answer:?}, want a nack"
    );
    ensure!(answer.1 == "retry", "every attempt CANCELLED: {answer:?}");
    ensure!(proxy.scripted() < 1000, "no append reached the proxy");
    proxy.clear_script();
    let answer = push(&sub_v2.url, "m3", &plain[3]).await?;
    ensure!(
        answer == (200, "written".into()),
        "the redelivery: {answer:?}"
    );

    let rows = stack.wait_rows(4, Duration::from_secs(30)).await?;
    for m in &plain[..4] {
        ensure!(
            rows.iter().any(|r| r["event_id"] == m.event_id.as_str()),
            "no row for {}",
            m.event_id
        );
    }
    sub_v2.stop().await?;
    Ok(())
}
