//! A push bridge: pulls from a pull subscription and delivers like Pub/Sub push.
//!
//! Like push flow control, the pushes in flight are a window: one more per 2xx (up to the
//! bridge's concurrency), halved on a failure (at most once a second). Without it, a slow sink
//! (the BigQuery emulator under load) gets more concurrent rows than it can insert within the
//! services' sink timeout, every call times out, and the run livelocks.
//!
//! Google's Pub/Sub emulator loses pushed messages after failed pushes when many are in flight
//! (`../shared/notes/emulators.md`), so the soak uses pull subscriptions with the same
//! dead-letter policy and this bridge: up to `concurrency` pushes in flight, each a wrapped push
//! body (with `deliveryAttempt`, as production sends it) POSTed to the service; acknowledged only
//! after a 2xx; anything else, a refused connection or a timeout included, is nacked with
//! `modifyAckDeadline` 0 after a backoff that grows with the delivery attempt (1, 2, 4, 8 s),
//! like a push subscription's retry policy; so the emulator redelivers it and, after the
//! subscription's `maxDeliveryAttempts`, moves it to the dead-letter topic. (The backoff is the
//! bridge's own: with a `retryPolicy` on the subscription, or a nack with a deadline above 0,
//! the emulator lost nacked messages in a trial run, 2026-11-28.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use pipeline::decode::PushEnvelope;
use pipeline::google::pubsub::{ReceivedMessage, Subscription};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

/// Counters of one bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub pushes: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    /// Nacks because the service could not be reached at all (refused, reset, timed out).
    pub unreachable: AtomicU64,
    pub in_flight: AtomicU64,
    /// Milliseconds since the bridge started, at the last pull that returned messages.
    pub last_busy_ms: AtomicU64,
    /// Milliseconds since the bridge started, at the last 2xx.
    pub last_ack_ms: AtomicU64,
    /// Pushes allowed in flight now (push flow control: +1 per 2xx up to the bridge's
    /// concurrency, halved on a failure at most once a second).
    pub window: AtomicU64,
    pub max_window: AtomicU64,
    last_cut_ms: AtomicU64,
}

pub struct Bridge {
    pub subscription: String,
    pub stats: Arc<BridgeStats>,
    started: Instant,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The emulator's subscription, through the pipeline's own client (pull, acknowledge,
/// modifyAckDeadline, each retried within its timeout: a lost ack only means a redelivery).
type Sub = Subscription;

/// Acknowledges in batches (every 100 ms or 250 ids), to spare the emulator one call per message.
/// Returns the sender; the task ends when every sender is dropped, after a last flush.
fn ack_batcher(sub: Sub) -> (mpsc::UnboundedSender<String>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut open = true;
        while open {
            let mut ids = Vec::new();
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(tick);
            while ids.len() < 250 {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(id) => ids.push(id),
                        None => { open = false; break; }
                    },
                    _ = &mut tick => break,
                }
            }
            if !ids.is_empty() {
                let _ = sub.acknowledge(&ids).await;
            }
        }
    });
    (tx, task)
}

impl Bridge {
    /// Starts bridging `subscription` (short name) on the emulator at `emulator_url` to
    /// `endpoint` (`http://127.0.0.1:PORT/`).
    pub fn start(
        emulator_url: &str,
        project: &str,
        subscription: &str,
        endpoint: &str,
        concurrency: usize,
    ) -> Result<Bridge> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let path = format!("projects/{project}/subscriptions/{subscription}");
        let sub = Sub::connect(&path, Some(emulator_url), Duration::from_secs(10))
            .map_err(anyhow::Error::msg)?;
        let stats = Arc::new(BridgeStats::default());
        let c = u64::try_from(concurrency).unwrap_or(u64::MAX);
        stats.window.store(c, Ordering::Relaxed);
        stats.max_window.store(c, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let task = tokio::spawn(run(
            sub,
            http,
            path,
            endpoint.to_owned(),
            concurrency,
            stats.clone(),
            stop.clone(),
            started,
        ));
        Ok(Bridge {
            subscription: subscription.to_owned(),
            stats,
            started,
            stop,
            task: Some(task),
        })
    }

    /// How long since a pull last returned messages.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.stats.last_busy_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// When the service last answered a push with a 2xx.
    pub fn last_ack(&self) -> Instant {
        self.started + Duration::from_millis(self.stats.last_ack_ms.load(Ordering::Relaxed))
    }

    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    /// Stops pulling and waits (at most 45 s) for the pushes in flight and their acknowledgements.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(45), task).await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sub: Sub,
    http: reqwest::Client,
    path: String,
    endpoint: String,
    concurrency: usize,
    stats: Arc<BridgeStats>,
    stop: Arc<AtomicBool>,
    started: Instant,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let (acks, ack_task) = ack_batcher(sub.clone());
    while !stop.load(Ordering::Relaxed) {
        // Wait for at least one free slot (and briefly for a quarter of them, so that pulls are
        // not of one message each), then pull as many as are free.
        let Ok(first) = permits.clone().acquire_owned().await else {
            break;
        };
        if permits.available_permits() + 1 < concurrency / 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let window = stats.window.load(Ordering::Relaxed);
        let allowed = window.saturating_sub(stats.in_flight.load(Ordering::Relaxed));
        if allowed == 0 {
            drop(first);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let free = (1 + permits.available_permits())
            .min(usize::try_from(allowed).unwrap_or(usize::MAX))
            .min(100);
        let got = match sub.pull(u32::try_from(free).unwrap_or(100)).await {
            Ok(g) => g,
            Err(_) => {
                drop(first);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if got.is_empty() {
            drop(first);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        stats.last_busy_ms.store(
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut first = Some(first);
        for m in got {
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (sub, acks, http, path, endpoint, stats) = (
                sub.clone(),
                acks.clone(),
                http.clone(),
                path.clone(),
                endpoint.clone(),
                stats.clone(),
            );
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                deliver(&sub, &acks, &http, (&path, &endpoint), &stats, started, m).await;
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
    // Wait (bounded) for the deliveries in flight, then for the last acknowledgements.
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        permits.acquire_many(u32::try_from(concurrency).unwrap_or(u32::MAX)),
    )
    .await;
    drop(acks);
    let _ = tokio::time::timeout(Duration::from_secs(10), ack_task).await;
}

async fn deliver(
    sub: &Sub,
    acks: &mpsc::UnboundedSender<String>,
    http: &reqwest::Client,
    (path, endpoint): (&str, &str),
    stats: &BridgeStats,
    started: Instant,
    m: ReceivedMessage,
) {
    stats.pushes.fetch_add(1, Ordering::Relaxed);
    let attempt = m.delivery_attempt.unwrap_or(1).max(1);
    let mut envelope = PushEnvelope {
        message_id: m.message.message_id.clone(),
        data_base64: m.message.data.clone(),
        attributes: m.message.attributes.clone(),
        publish_time: m.message.publish_time.clone(),
        subscription: Some(path.to_owned()),
    }
    .to_json();
    envelope["deliveryAttempt"] = json!(attempt);
    let result = http.post(endpoint).json(&envelope).send().await;
    let ok = match result {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => {
            stats.unreachable.fetch_add(1, Ordering::Relaxed);
            false
        }
    };
    if ok {
        stats.acked.fetch_add(1, Ordering::Relaxed);
        let max = stats.max_window.load(Ordering::Relaxed);
        let _ = stats
            .window
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                (w < max).then_some(w + 1)
            });
        stats.last_ack_ms.store(
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if acks.send(m.ack_id.clone()).is_err() {
            let _ = sub.acknowledge(&[m.ack_id]).await;
        }
    } else {
        stats.nacked.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = stats.last_cut_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && stats
                .last_cut_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = stats
                .window
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    Some((w / 2).max(1))
                });
        }
        // The backoff runs outside the delivery slot (the lease of 30 s covers it); then
        // modifyAckDeadline 0 makes the message available again at once.
        let backoff = Duration::from_secs(1 << (attempt - 1).min(3));
        let sub = sub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            let _ = sub.release(&[m.ack_id]).await;
        });
    }
}
