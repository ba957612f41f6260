//! `replay push --concurrency`, on the Pub/Sub emulator: a backlog of dead letters is pushed at
//! most N at a time (and more than one at a time), every letter the handler took is acked, and
//! without `--continue-on-error` no push starts after the first failure.
//!
//! The handler is a stand-in that answers like one of ours (`/healthz` names it, a push gets the
//! handlers' JSON answer) after a pause, and counts how many pushes it holds at once: what is
//! under test is `replay`, not a handler.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use e2e::emulators::{scratch_dir, start_pubsub};
use e2e::pubsub::PubSub;
use e2e::stack::PROJECT;
use pipeline::dead_letter;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_replay");
const LETTERS: usize = 12;
const CONCURRENCY: usize = 4;
const SUBSCRIPTION: &str = "dlq-sub";

/// The stand-in handler's counters.
#[derive(Default)]
struct Held {
    now: AtomicUsize,
    most: AtomicUsize,
    pushes: AtomicUsize,
    failing: AtomicBool,
}

async fn push(State(held): State<Arc<Held>>) -> (StatusCode, axum::Json<Value>) {
    let now = held.now.fetch_add(1, Ordering::SeqCst) + 1;
    held.most.fetch_max(now, Ordering::SeqCst);
    held.pushes.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    held.now.fetch_sub(1, Ordering::SeqCst);
    if held.failing.load(Ordering::SeqCst) {
        let answer = json!({"outcome": "retry", "error": "sink_unavailable"});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(answer))
    } else {
        (StatusCode::OK, axum::Json(json!({"outcome": "written"})))
    }
}

async fn handler(held: Arc<Held>) -> Result<String> {
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"service": "sub-v2"})) }),
        )
        .route("/", post(push))
        .with_state(held);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Runs `replay push --concurrency 4` on the test's subscription (off the test's runtime: the
/// binary blocks) and reads its exit code and JSON summary.
async fn replay_push(pubsub: &str, to: &str) -> Result<(i32, Value)> {
    let concurrency = CONCURRENCY.to_string();
    let args = [
        "push",
        "--subscription",
        SUBSCRIPTION,
        "--to",
        to,
        "--rate",
        "1000",
    ];
    let args: Vec<String> = (args.iter().chain(&["--concurrency", concurrency.as_str()]))
        .map(|a| a.to_string())
        .collect();
    let pubsub = pubsub.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("PUBSUB_EMULATOR_HOST", pubsub)
            .env("GOOGLE_CLOUD_PROJECT", PROJECT)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "replay push printed no summary: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.code().unwrap_or(-1), summary))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_pushed_a_bounded_number_at_a_time() -> Result<()> {
    let dir = scratch_dir("replay-push");
    let emulator = start_pubsub(&dir).await?;
    let pubsub = PubSub::new(&emulator.url(), PROJECT);
    pubsub.create_topic("dlq").await?;
    pubsub.create_pull_subscription(SUBSCRIPTION, "dlq").await?;
    let mut attributes = BTreeMap::new();
    attributes.insert(dead_letter::HANDLER.to_owned(), "sub-v2".to_owned());
    attributes.insert(
        dead_letter::REASON.to_owned(),
        "sink_unavailable".to_owned(),
    );
    for i in 0..LETTERS {
        let data = format!("{{\"event\": {{\"id\": \"e{i}\"}}}}");
        pubsub.publish("dlq", data.as_bytes(), &attributes).await?;
    }
    let held = Arc::new(Held::default());
    let to = handler(held.clone()).await?;

    // The handler still fails: the first pushes fail, and no push starts after that.
    held.failing.store(true, Ordering::SeqCst);
    let (code, summary) = replay_push(&emulator.host(), &to).await?;
    let failing = summary["stillFailing"]["HTTP 503 sink_unavailable"].as_u64();
    ensure!(code == 1 && summary["replayed"] == 0, "{summary}");
    ensure!(
        failing.is_some_and(|n| (1..=CONCURRENCY as u64).contains(&n))
            && held.pushes.load(Ordering::SeqCst) <= CONCURRENCY,
        "pushes went on after a failure: {summary}, {} pushed",
        held.pushes.load(Ordering::SeqCst)
    );

    // Fixed: the whole backlog goes, at most --concurrency at once, and more than one at once.
    held.failing.store(false, Ordering::SeqCst);
    held.most.store(0, Ordering::SeqCst);
    let (code, summary) = replay_push(&emulator.host(), &to).await?;
    ensure!(code == 0 && summary["replayed"] == LETTERS, "{summary}");
    let most = held.most.load(Ordering::SeqCst);
    ensure!(
        most == CONCURRENCY,
        "at most {CONCURRENCY} pushes at once, and that many: the handler held {most}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = pubsub.pull(SUBSCRIPTION, 100).await?;
    ensure!(left.is_empty(), "{} letter(s) not acked", left.len());
    Ok(())
}

/// Letters from an emulator never go to a deployed handler (they would carry the replay
/// identity's ID token), and the refusal comes before anything is pulled or any token is minted.
#[test]
fn letters_from_an_emulator_are_not_pushed_to_a_deployed_handler() -> Result<()> {
    let out = Command::new(BIN)
        .args(["push", "--subscription", SUBSCRIPTION])
        .args(["--to", "https://to-bq-abc-uc.a.run.app"])
        // Nothing listens there: the run must stop before it would pull.
        .env("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
        .env("GOOGLE_CLOUD_PROJECT", PROJECT)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "it pushed: {stderr}");
    ensure!(
        stderr.contains("only to a handler on this machine"),
        "not refused for the pairing: {stderr}"
    );
    Ok(())
}
