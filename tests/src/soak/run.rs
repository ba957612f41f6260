//! The soak itself: set up, publish, inject faults, wait, check, report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use pipeline::Service;
use serde_json::{Value, json};

use super::bridge::Bridge;
use super::proxy::{FaultRates, Proxy, ProxyCounts};
use super::services::{ServiceProc, bin_dir};
use crate::emulators::free_port;
use crate::samples::{Message, generate, load_samples};
use crate::stack::{BUCKET, DATASET, PROJECT, Stack, TABLE, TOPIC, dead_letter_topic, filter_of};

#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Events to publish (the samples plus generated ones).
    pub events: usize,
    pub seed: u64,
    /// Events (per thousand, chosen by event-id hash) whose BigQuery row always gets a permanent
    /// `invalid` error.
    pub permanent_per_mille: u64,
    pub gcs_rates: FaultRates,
    pub bq_rates: FaultRates,
    /// Pushes in flight per subscription.
    pub concurrency: usize,
    /// How long the Cloud Storage emulator stays down (longer than the 5 s sink timeout).
    pub gcs_outage: Duration,
    /// Overall bound for the wait after publishing.
    pub timeout: Duration,
    /// Print progress lines to stderr.
    pub verbose: bool,
}

impl SoakOptions {
    pub fn new(events: usize) -> Self {
        let rates = FaultRates {
            error: 0.03,
            delay: 0.005,
            late: 0.005,
            reset: 0.02,
            row_transient: 0.0,
        };
        Self {
            events,
            seed: 20261128,
            permanent_per_mille: 5,
            gcs_rates: rates,
            bq_rates: FaultRates {
                row_transient: 0.05,
                ..rates
            },
            concurrency: 32,
            gcs_outage: Duration::from_secs(8),
            timeout: Duration::from_secs(300 + (events as u64) / 20),
            verbose: false,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub published: usize,
    pub transcripts: usize,
    pub objects: usize,
    pub objects_identical: usize,
    pub objects_missing: usize,
    pub objects_extra: usize,
    pub permanent: usize,
    pub expected_rows: usize,
    pub rows: usize,
    pub distinct_rows: usize,
    pub duplicate_rows: usize,
    pub rows_missing: usize,
    pub rows_unexpected: usize,
    pub rows_wrong_handler: usize,
    pub dead_letters_expected: usize,
    pub dead_letters_found: usize,
    pub dead_letters_missing: usize,
    pub dead_letters_unexpected: usize,
    pub policy_dead_letters: usize,
    pub leaks_bigquery: usize,
    pub leaks_logs: usize,
    /// Planted strings the same detector finds in the bucket (where they belong): proves it works.
    pub secrets_in_bucket: usize,
    pub pushes: u64,
    pub nacks: u64,
    pub unreachable: u64,
    pub faults: BTreeMap<String, u64>,
    pub events_done_after: Duration,
    pub total_time: Duration,
    pub notes: Vec<String>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.published as f64 / self.events_done_after.as_secs_f64().max(0.001)
    }

    /// What is wrong; empty when nothing was lost, duplicated in the bucket, or leaked.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                f.push(what);
            }
        };
        check(
            self.objects_identical == self.transcripts
                && self.objects_missing == 0
                && self.objects_extra == 0
                && self.objects == self.transcripts,
            format!(
                "bucket: {} objects, {} identical, {} missing, {} extra, for {} transcript events",
                self.objects,
                self.objects_identical,
                self.objects_missing,
                self.objects_extra,
                self.transcripts
            ),
        );
        check(
            self.distinct_rows == self.expected_rows
                && self.rows_missing == 0
                && self.rows_unexpected == 0,
            format!(
                "BigQuery: {} distinct event ids, expected {}; {} missing, {} unexpected",
                self.distinct_rows, self.expected_rows, self.rows_missing, self.rows_unexpected
            ),
        );
        check(
            self.rows_wrong_handler == 0,
            format!("{} rows by the wrong handler", self.rows_wrong_handler),
        );
        check(
            self.dead_letters_found == self.dead_letters_expected
                && self.dead_letters_missing == 0
                && self.dead_letters_unexpected == 0
                && self.policy_dead_letters == 0,
            format!(
                "dead letters: {} of {} found, {} missing, {} unexpected, {} moved by the \
                 delivery-attempt policy",
                self.dead_letters_found,
                self.dead_letters_expected,
                self.dead_letters_missing,
                self.dead_letters_unexpected,
                self.policy_dead_letters
            ),
        );
        check(
            self.transcripts == 0 || self.secrets_in_bucket > 0,
            "the leak detector found no planted string even in the bucket".into(),
        );
        check(
            self.leaks_bigquery == 0 && self.leaks_logs == 0,
            format!(
                "transcript text leaked: {} in BigQuery, {} in logs",
                self.leaks_bigquery, self.leaks_logs
            ),
        );
        f
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "| {k:<44} | {v:>14} |");
        };
        row("figure", "value".into());
        row("events published", self.published.to_string());
        row("transcript events", self.transcripts.to_string());
        row("objects in the bucket", self.objects.to_string());
        row(
            "  identical to the published bytes",
            self.objects_identical.to_string(),
        );
        row(
            "  missing / extra",
            format!("{} / {}", self.objects_missing, self.objects_extra),
        );
        row("permanent row faults injected", self.permanent.to_string());
        row("BigQuery rows", self.rows.to_string());
        row(
            "distinct event_id (expected)",
            format!("{} ({})", self.distinct_rows, self.expected_rows),
        );
        row(
            "duplicate rows (at-least-once)",
            self.duplicate_rows.to_string(),
        );
        row(
            "event ids missing / unexpected",
            format!("{} / {}", self.rows_missing, self.rows_unexpected),
        );
        row(
            "rows by the wrong handler",
            self.rows_wrong_handler.to_string(),
        );
        row(
            "dead letters with reason (expected)",
            format!(
                "{} ({})",
                self.dead_letters_found, self.dead_letters_expected
            ),
        );
        row(
            "dead letters missing / unexpected",
            format!(
                "{} / {}",
                self.dead_letters_missing, self.dead_letters_unexpected
            ),
        );
        row(
            "dead-lettered by attempt policy",
            self.policy_dead_letters.to_string(),
        );
        row(
            "leaks (BigQuery / logs)",
            format!("{} / {}", self.leaks_bigquery, self.leaks_logs),
        );
        row(
            "planted strings found in the bucket",
            self.secrets_in_bucket.to_string(),
        );
        row(
            "pushes / nacks",
            format!("{} / {}", self.pushes, self.nacks),
        );
        row("  of which unreachable", self.unreachable.to_string());
        for (k, v) in &self.faults {
            row(&format!("fault: {k}"), v.to_string());
        }
        row(
            "all events landed after",
            format!("{:.1} s", self.events_done_after.as_secs_f64()),
        );
        row("rate achieved (events/s)", format!("{:.1}", self.rate()));
        row(
            "total run time",
            format!("{:.1} s", self.total_time.as_secs_f64()),
        );
        t
    }
}

/// FNV-1a: a stable hash, so the permanent-fault set depends on the event id only.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What counts as a leak: each planted string, by its ASCII head (the generator's markers are
/// `MARKER-{seed}-{i}-{key} …`; logs may escape the non-ASCII tail).
struct Needles {
    generated: Vec<String>,
    other: Vec<String>,
}

impl Needles {
    fn new(messages: &[Message]) -> Self {
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
    fn count(&self, text: &str) -> usize {
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

async fn publish_all(http: &reqwest::Client, emulator: &str, messages: &[Message]) -> Result<()> {
    let url = format!("{emulator}/v1/projects/{PROJECT}/topics/{TOPIC}:publish");
    let mut set = tokio::task::JoinSet::new();
    for chunk in messages.chunks(100) {
        let body = json!({"messages": chunk.iter().map(|m| json!({
            "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
            "attributes": m.attributes,
        })).collect::<Vec<_>>()});
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move {
            for attempt in 0..5 {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    _ if attempt < 4 => tokio::time::sleep(Duration::from_millis(500)).await,
                    Ok(r) => anyhow::bail!("publish: HTTP {}", r.status()),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        });
        if set.len() >= 4
            && let Some(r) = set.join_next().await
        {
            r??;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Creates the topic, the dead-letter topics with their pull subscriptions, and one pull
/// subscription per service with the dead-letter policy (as `Stack::wire_pipeline` does for push).
async fn wire(stack: &Stack, http: &reqwest::Client, max_attempts: u32) -> Result<()> {
    stack.pubsub.create_topic(TOPIC).await?;
    for service in Service::ALL {
        let dlq = dead_letter_topic(TOPIC, service);
        stack.pubsub.create_topic(&dlq).await?;
        stack.pubsub.create_pull_subscription(&dlq, &dlq).await?;
        let body = json!({
            "topic": stack.pubsub.topic_path(TOPIC),
            // Ignored by the emulator, kept for the record.
            "filter": filter_of(service)?,
            "ackDeadlineSeconds": 30,
            "deadLetterPolicy": {
                "deadLetterTopic": stack.pubsub.topic_path(&dlq),
                "maxDeliveryAttempts": max_attempts,
            },
            // No retryPolicy: with one, the emulator lost nacked messages (the bridge backs off).
        });
        let url = format!(
            "{}/v1/projects/{PROJECT}/subscriptions/{TOPIC}-{}",
            stack.pubsub_emulator.url(),
            service.name()
        );
        let r = http.put(&url).json(&body).send().await?;
        if !r.status().is_success() {
            anyhow::bail!(
                "create subscription {url}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
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

/// Runs the soak: see the module documentation.
pub async fn run(opts: &SoakOptions) -> Result<Report> {
    let t0 = Instant::now();
    let say = |s: String| {
        if opts.verbose {
            eprintln!("[soak {:>6.1}s] {s}", t0.elapsed().as_secs_f64());
        }
    };
    let mut report = Report::default();

    // --- The events and the faults chosen up front.
    let mut messages = load_samples()?;
    messages.truncate(opts.events);
    let more = opts.events.saturating_sub(messages.len());
    messages.extend(generate(more, opts.seed));
    let permanent: HashSet<String> = messages
        .iter()
        .filter(|m| fnv(&m.event_id) % 1000 < opts.permanent_per_mille)
        .map(|m| m.event_id.clone())
        .collect();
    let transcripts: Vec<&Message> = messages.iter().filter(|m| m.to_gcs).collect();
    report.published = messages.len();
    report.transcripts = transcripts.len();
    report.permanent = permanent.len();
    report.expected_rows = messages.len() - permanent.len();
    report.dead_letters_expected = permanent.len();

    // --- The stack: emulators, proxies, the three binaries, the wiring, the bridges.
    let mut stack = Stack::start("soak").await?;
    let hold = Duration::from_secs(6);
    // Service → fault proxy → recorder → emulator: what the proxy forwards is held to Google's
    // API descriptions, and the services still meet the proxy's resets themselves.
    let gcs_proxy = Proxy::start(
        &format!("http://{}", stack.storage_host()),
        opts.gcs_rates,
        hold,
        HashSet::new(),
        opts.seed ^ 1,
    )
    .await?;
    let bq_proxy = Proxy::start(
        &format!("http://{}", stack.bigquery_host()),
        opts.bq_rates,
        hold,
        permanent.clone(),
        opts.seed ^ 2,
    )
    .await?;
    let bins = bin_dir()?;
    let mut procs: BTreeMap<Service, ServiceProc> = BTreeMap::new();
    for service in Service::ALL {
        let mut env = stack.service_env(service);
        match service {
            Service::ToGcs => env.insert("STORAGE_EMULATOR_HOST".into(), gcs_proxy.host()),
            _ => env.insert("BIGQUERY_EMULATOR_HOST".into(), bq_proxy.host()),
        };
        let mut p = ServiceProc::new(service, &bins, &stack.dir, free_port(), env);
        p.start().await?;
        procs.insert(service, p);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wire(&stack, &http, 10).await?;
    let mut bridges: Vec<Bridge> = Vec::new();
    for service in Service::ALL {
        bridges.push(Bridge::start(
            &stack.pubsub_emulator.url(),
            PROJECT,
            &format!("{TOPIC}-{}", service.name()),
            &procs[&service].url(),
            opts.concurrency,
        )?);
    }
    say(format!(
        "stack up; publishing {} events ({} transcripts, {} permanent row faults); logs in {}",
        messages.len(),
        transcripts.len(),
        permanent.len(),
        stack.dir.display()
    ));

    // --- Publish, and inject the process and outage faults as deliveries progress.
    let t_publish = Instant::now();
    let publisher = {
        let (http, url, msgs) = (http.clone(), stack.pubsub_emulator.url(), messages.clone());
        tokio::spawn(async move { publish_all(&http, &url, &msgs).await })
    };
    let total_deliveries = (messages.len() * Service::ALL.len()) as u64;
    let acked = |bridges: &[Bridge]| -> u64 {
        bridges
            .iter()
            .map(|b| b.stats.acked.load(Ordering::Relaxed))
            .sum()
    };
    let mut faults = [false; 3];
    let mut published = false;
    let mut landed_at: Option<Instant> = None;
    let mut last_check = Instant::now() - Duration::from_secs(10);
    let deadline = Instant::now() + opts.timeout;
    loop {
        if Instant::now() > deadline {
            report.notes.push(format!(
                "timed out after {:?} waiting for the events",
                opts.timeout
            ));
            break;
        }
        if !published && publisher.is_finished() {
            published = true;
        }
        let progress = acked(&bridges) as f64 / total_deliveries as f64;
        // Each fault when the service it hits is part-way through its own deliveries.
        let own = |service: Service| {
            Service::ALL
                .iter()
                .position(|s| *s == service)
                .and_then(|i| bridges.get(i))
                .map(|b| b.stats.acked.load(Ordering::Relaxed) as f64 / messages.len() as f64)
                .unwrap_or(0.0)
        };
        if !faults[0] && own(Service::ToGcs) >= 0.25 {
            faults[0] = true;
            if let Some(p) = procs.get_mut(&Service::ToGcs) {
                say(format!(
                    "SIGKILL to-gcs at {:.0}% of its deliveries",
                    own(Service::ToGcs) * 100.0
                ));
                p.signal(libc::SIGKILL, Duration::from_secs(5)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                p.start().await?;
                say("to-gcs restarted".into());
            }
        } else if !faults[1] && own(Service::ToBq) >= 0.4 {
            faults[1] = true;
            if let Some(p) = procs.get_mut(&Service::ToBq) {
                say(format!(
                    "SIGTERM to-bq at {:.0}% of its deliveries",
                    own(Service::ToBq) * 100.0
                ));
                let clean = p.signal(libc::SIGTERM, Duration::from_secs(30)).await;
                if !clean {
                    report
                        .notes
                        .push("to-bq did not exit within 30 s of SIGTERM".into());
                }
                p.start().await?;
                say(format!("to-bq restarted (exited by itself: {clean})"));
            }
        } else if !faults[2] && faults[0] && own(Service::ToGcs) >= 0.6 {
            faults[2] = true;
            say(format!(
                "Cloud Storage emulator down for {:?} at {:.0}% of to-gcs deliveries",
                opts.gcs_outage,
                own(Service::ToGcs) * 100.0
            ));
            stack.stop_gcs();
            tokio::time::sleep(opts.gcs_outage).await;
            stack.restart_gcs().await?;
            say("Cloud Storage emulator back".into());
        }
        // Progress every 5 s once everything is published. (BigQuery is not polled: a query on
        // the emulator takes seconds under this load and slows the inserts down.)
        if published && last_check.elapsed() > Duration::from_secs(5) {
            last_check = Instant::now();
            let objects = stack
                .gcs
                .list(BUCKET, "")
                .await
                .map(|o| o.len())
                .unwrap_or(0);
            let per: Vec<String> = bridges
                .iter()
                .map(|b| b.stats.acked.load(Ordering::Relaxed).to_string())
                .collect();
            say(format!(
                "acked {:.0}% of deliveries (to-gcs/to-bq/sub-v2 {}), in flight {}, objects {objects}/{}",
                progress * 100.0,
                per.join("/"),
                bridges.iter().map(Bridge::in_flight).sum::<u64>(),
                transcripts.len(),
            ));
        }
        // Done: every delivery acked once and the bridges idle for 10 s (longer than the longest
        // backoff, so stragglers and redeliveries are in); or idle for 60 s whatever the count.
        let quiet = |after: u64| {
            bridges
                .iter()
                .all(|b| b.in_flight() == 0 && b.idle_for() > Duration::from_secs(after))
        };
        if published
            && faults.iter().all(|f| *f)
            && (quiet(10) && acked(&bridges) >= total_deliveries || quiet(60))
        {
            landed_at = bridges.iter().map(Bridge::last_ack).max();
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.events_done_after = landed_at
        .map(|t| t.saturating_duration_since(t_publish))
        .unwrap_or_else(|| t_publish.elapsed());
    match publisher.await {
        Ok(Err(e)) => report.notes.push(format!("publishing failed: {e:#}")),
        Err(e) => report.notes.push(format!("publisher task: {e}")),
        Ok(Ok(())) => {}
    }
    for b in &mut bridges {
        b.stop().await;
        report.pushes += b.stats.pushes.load(Ordering::Relaxed);
        report.nacks += b.stats.nacked.load(Ordering::Relaxed);
        report.unreachable += b.stats.unreachable.load(Ordering::Relaxed);
    }
    for (name, p) in [("gcs", &gcs_proxy), ("bigquery", &bq_proxy)] {
        let c = &p.counts;
        for (k, v) in [
            ("HTTP 500/503/429", &c.errors),
            ("held past timeout", &c.delays),
            ("answer held (write landed)", &c.late),
            ("connection reset", &c.resets),
            ("upstream down (502)", &c.upstream_down),
            ("row invalid", &c.rows_invalid),
            ("row backendError", &c.rows_transient),
        ] {
            let n = ProxyCounts::get(v);
            if n > 0 || k == "upstream down (502)" && name == "gcs" {
                report.faults.insert(format!("{name} {k}"), n);
            }
        }
    }
    report
        .faults
        .insert("to-gcs SIGKILL".into(), u64::from(faults[0]));
    report
        .faults
        .insert("to-bq SIGTERM".into(), u64::from(faults[1]));
    report
        .faults
        .insert("storage emulator outage".into(), u64::from(faults[2]));

    // --- Cloud Storage: exactly the transcript events, byte for byte, nothing else.
    let objects = stack
        .gcs
        .list(BUCKET, "")
        .await
        .context("listing the bucket")?;
    report.objects = objects.len();
    let expected: HashMap<String, &Message> = transcripts
        .iter()
        .filter_map(|m| Some((m.expected_object("transcripts")?, *m)))
        .collect();
    let names: HashSet<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    let needles = Needles::new(&messages);
    report.objects_extra = names.iter().filter(|n| !expected.contains_key(**n)).count();
    for (name, m) in &expected {
        if !names.contains(name.as_str()) {
            report.objects_missing += 1;
        } else if let Ok(stored) = stack.gcs.download(BUCKET, name).await {
            if stored == m.data {
                report.objects_identical += 1;
            }
            report.secrets_in_bucket += needles.count(&String::from_utf8_lossy(&stored));
        }
    }

    // --- BigQuery: one distinct event id per event without a permanent fault, no transcript text.
    let rows = stack.bigquery.all_rows(DATASET, TABLE).await?;
    let by_event: HashMap<&str, &Message> =
        messages.iter().map(|m| (m.event_id.as_str(), m)).collect();
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
        report.leaks_bigquery += all.iter().map(|s| needles.count(s)).sum::<usize>();
    }
    report.rows = rows.len();
    report.distinct_rows = count.len();
    report.duplicate_rows = rows.len() - count.len();
    for m in &messages {
        let present = count.contains_key(&m.event_id);
        let want = !permanent.contains(&m.event_id);
        if want && !present {
            report.rows_missing += 1;
        }
    }
    report.rows_unexpected = count
        .keys()
        .filter(|id| permanent.contains(*id) || !by_event.contains_key(id.as_str()))
        .count();

    // --- Dead letters: every permanent fault in its BigQuery handler's subscription, with the
    // reason; nothing else.
    let mut found: HashSet<String> = HashSet::new();
    for service in Service::ALL {
        let sub = dead_letter_topic(TOPIC, service);
        for d in drain(&stack, &sub).await? {
            if !d.attributes.contains_key("dead_letter.reason") {
                report.policy_dead_letters += 1;
                continue;
            }
            let id = serde_json::from_slice::<Value>(&d.data)
                .ok()
                .and_then(|v| v["event"]["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let right = permanent.contains(&id)
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
    report.dead_letters_missing = permanent.len() - found.len();

    // --- Logs: no transcript text in anything the services wrote.
    for p in procs.values() {
        report.leaks_logs += p
            .log_text()
            .lines()
            .map(|l| needles.count(l))
            .sum::<usize>();
    }

    for (_, mut p) in std::mem::take(&mut procs) {
        p.signal(libc::SIGTERM, Duration::from_secs(15)).await;
    }
    report.total_time = t0.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_permanent_set_depends_on_the_event_id_only() {
        assert_eq!(fnv("gen-1-00001"), fnv("gen-1-00001"));
        assert_ne!(fnv("gen-1-00001"), fnv("gen-1-00002"));
    }
}
