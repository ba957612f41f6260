//! The soak itself, as a short chain of named phases: choose the events and faults ([`Plan`]),
//! start the rig ([`Rig::start`]: emulators, fault proxies, the three binaries, the wiring, the
//! bridges), publish and inject the faults while the deliveries run ([`Rig::deliver`]), count
//! what the rig saw ([`Rig::tally`]), then hold what landed to what was published ([`check`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine as _;
use pipeline::Service;
use serde_json::json;

use super::bridge::Bridge;
use super::check::{self, Needles};
use super::grpc_proxy::GrpcProxy;
use super::proxy::{FaultRates, Proxy, ProxyCounts};
use super::report::Report;
use super::services::{ServiceProc, bin_dir};
use crate::emulators::free_port;
use crate::samples::{Message, generate, load_samples};
use crate::stack::{BUCKET, PROJECT, Stack, TOPIC, dead_letter_topic, filter_of};

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

/// Runs the soak: see the module documentation.
pub async fn run(opts: &SoakOptions) -> Result<Report> {
    let say = Say {
        t0: Instant::now(),
        verbose: opts.verbose,
    };
    let plan = Plan::new(opts)?;
    let mut report = plan.report();
    let mut rig = Rig::start(opts, &plan, &say).await?;
    rig.deliver(opts, &plan, &mut report, &say).await?;
    rig.tally(&mut report).await;
    check::bucket(&rig.stack, &plan, &mut report).await?;
    check::table(&rig.stack, &plan, &mut report).await?;
    check::dead_letters(&rig.stack, &plan, &mut report).await?;
    check::logs(&rig.procs, &plan, &mut report);
    rig.stop().await;
    report.total_time = say.t0.elapsed();
    Ok(report)
}

/// Progress lines on stderr, with the time since the start (`--verbose`).
struct Say {
    t0: Instant,
    verbose: bool,
}

impl Say {
    fn line(&self, s: impl AsRef<str>) {
        if self.verbose {
            eprintln!(
                "[soak {:>6.1}s] {}",
                self.t0.elapsed().as_secs_f64(),
                s.as_ref()
            );
        }
    }
}

/// The events and the faults, chosen up front.
pub struct Plan {
    pub messages: Vec<Message>,
    /// Event ids whose BigQuery row always gets a permanent `invalid` error.
    pub permanent: HashSet<String>,
    /// The planted strings, to look for where they must not be.
    pub needles: Needles,
}

impl Plan {
    fn new(opts: &SoakOptions) -> Result<Self> {
        let mut messages = load_samples()?;
        messages.truncate(opts.events);
        let more = opts.events.saturating_sub(messages.len());
        messages.extend(generate(more, opts.seed));
        let permanent = messages
            .iter()
            .filter(|m| fnv(&m.event_id) % 1000 < opts.permanent_per_mille)
            .map(|m| m.event_id.clone())
            .collect();
        let needles = Needles::new(&messages);
        Ok(Self {
            messages,
            permanent,
            needles,
        })
    }

    pub fn transcripts(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| m.to_gcs)
    }

    pub fn by_event(&self) -> HashMap<&str, &Message> {
        self.messages
            .iter()
            .map(|m| (m.event_id.as_str(), m))
            .collect()
    }

    /// The report's expectations, before anything runs.
    fn report(&self) -> Report {
        Report {
            published: self.messages.len(),
            transcripts: self.transcripts().count(),
            permanent: self.permanent.len(),
            expected_rows: self.messages.len() - self.permanent.len(),
            dead_letters_expected: self.permanent.len(),
            ..Report::default()
        }
    }
}

/// Everything the soak runs on: the emulators, a fault proxy in front of Cloud Storage and
/// BigQuery, the three service binaries, and a push bridge per subscription.
struct Rig {
    stack: Stack,
    gcs_proxy: Proxy,
    bq_proxy: Proxy,
    grpc_proxy: GrpcProxy,
    procs: BTreeMap<Service, ServiceProc>,
    bridges: Vec<Bridge>,
    http: reqwest::Client,
}

/// The three faults injected while deliveries run, in this order.
#[derive(Default)]
struct Injected {
    to_gcs_killed: bool,
    to_bq_terminated: bool,
    storage_outage: bool,
}

impl Injected {
    fn all(&self) -> bool {
        self.to_gcs_killed && self.to_bq_terminated && self.storage_outage
    }
}

impl Rig {
    async fn start(opts: &SoakOptions, plan: &Plan, say: &Say) -> Result<Self> {
        let stack = Stack::start("soak").await?;
        let hold = Duration::from_secs(6);
        // Service → fault proxy → recorder → emulator: what the proxy forwards is held to
        // Google's API descriptions, and the services still meet the proxy's resets themselves.
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
            plan.permanent.clone(),
            opts.seed ^ 2,
        )
        .await?;
        // The Storage Write API: faults on appends, refused rows for the permanent set.
        let grpc_proxy = GrpcProxy::start(
            &format!("http://{}", stack.bigquery_storage_host()),
            opts.bq_rates,
            hold,
            plan.permanent.clone(),
            opts.seed ^ 3,
        )
        .await?;
        let bins = bin_dir()?;
        let mut procs: BTreeMap<Service, ServiceProc> = BTreeMap::new();
        for service in Service::ALL {
            let mut env = stack.service_env(service);
            match service {
                Service::ToGcs => env.insert("STORAGE_EMULATOR_HOST".into(), gcs_proxy.host()),
                _ => {
                    env.insert("BIGQUERY_STORAGE_EMULATOR_HOST".into(), grpc_proxy.host());
                    // The services' default, which the stack's environment does not use.
                    env.insert("BIGQUERY_WRITE_METHOD".into(), "storage_write".into());
                    env.insert("BIGQUERY_EMULATOR_HOST".into(), bq_proxy.host())
                }
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
        say.line(format!(
            "stack up; publishing {} events ({} transcripts, {} permanent row faults); logs in {}",
            plan.messages.len(),
            plan.transcripts().count(),
            plan.permanent.len(),
            stack.dir.display()
        ));
        Ok(Self {
            stack,
            gcs_proxy,
            bq_proxy,
            grpc_proxy,
            procs,
            bridges,
            http,
        })
    }

    /// Deliveries acked so far, over all subscriptions.
    fn acked(&self) -> u64 {
        self.bridges
            .iter()
            .map(|b| b.stats.acked.load(Ordering::Relaxed))
            .sum()
    }

    /// The share of `service`'s own deliveries acked so far.
    fn progress_of(&self, service: Service, events: usize) -> f64 {
        Service::ALL
            .iter()
            .position(|s| *s == service)
            .and_then(|i| self.bridges.get(i))
            .map(|b| b.stats.acked.load(Ordering::Relaxed) as f64 / events as f64)
            .unwrap_or(0.0)
    }

    /// Every bridge idle, with nothing in flight, for `seconds`.
    fn quiet(&self, seconds: u64) -> bool {
        self.bridges
            .iter()
            .all(|b| b.in_flight() == 0 && b.idle_for() > Duration::from_secs(seconds))
    }

    /// Publishes every event, injects the faults as deliveries progress, and waits until every
    /// delivery is acked (or the run's timeout). Records when the last event landed.
    async fn deliver(
        &mut self,
        opts: &SoakOptions,
        plan: &Plan,
        report: &mut Report,
        say: &Say,
    ) -> Result<()> {
        let t_publish = Instant::now();
        let publisher = {
            let (http, url) = (self.http.clone(), self.stack.pubsub_emulator.url());
            let messages = plan.messages.clone();
            tokio::spawn(async move { publish_all(&http, &url, &messages).await })
        };
        let total_deliveries = (plan.messages.len() * Service::ALL.len()) as u64;
        let mut injected = Injected::default();
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
            let published = publisher.is_finished();
            self.inject(opts, plan, &mut injected, report, say).await?;
            // Progress every 5 s once everything is published. (BigQuery is not polled: a
            // query on the emulator takes seconds under this load and slows the inserts down.)
            if published && last_check.elapsed() > Duration::from_secs(5) {
                last_check = Instant::now();
                self.progress(plan, total_deliveries, say).await;
            }
            // Done: every delivery acked once and the bridges idle for 10 s (longer than the
            // longest backoff, so stragglers and redeliveries are in); or idle for 60 s whatever
            // the count.
            if published
                && injected.all()
                && (self.quiet(10) && self.acked() >= total_deliveries || self.quiet(60))
            {
                landed_at = self.bridges.iter().map(Bridge::last_ack).max();
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
        for (fault, done) in [
            ("to-gcs SIGKILL", injected.to_gcs_killed),
            ("to-bq SIGTERM", injected.to_bq_terminated),
            ("storage emulator outage", injected.storage_outage),
        ] {
            report.faults.insert(fault.into(), u64::from(done));
        }
        Ok(())
    }

    /// The next fault, when the service it hits is part-way through its own deliveries: to-gcs
    /// SIGKILLed at 25 %, to-bq SIGTERMed at 40 %, the Cloud Storage emulator down at 60 % of
    /// to-gcs's.
    async fn inject(
        &mut self,
        opts: &SoakOptions,
        plan: &Plan,
        injected: &mut Injected,
        report: &mut Report,
        say: &Say,
    ) -> Result<()> {
        let events = plan.messages.len();
        let gcs = self.progress_of(Service::ToGcs, events);
        let bq = self.progress_of(Service::ToBq, events);
        if !injected.to_gcs_killed && gcs >= 0.25 {
            injected.to_gcs_killed = true;
            if let Some(p) = self.procs.get_mut(&Service::ToGcs) {
                say.line(format!(
                    "SIGKILL to-gcs at {:.0}% of its deliveries",
                    gcs * 100.0
                ));
                p.signal(libc::SIGKILL, Duration::from_secs(5)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                p.start().await?;
                say.line("to-gcs restarted");
            }
        } else if !injected.to_bq_terminated && bq >= 0.4 {
            injected.to_bq_terminated = true;
            if let Some(p) = self.procs.get_mut(&Service::ToBq) {
                say.line(format!(
                    "SIGTERM to-bq at {:.0}% of its deliveries",
                    bq * 100.0
                ));
                let clean = p.signal(libc::SIGTERM, Duration::from_secs(30)).await;
                if !clean {
                    report
                        .notes
                        .push("to-bq did not exit within 30 s of SIGTERM".into());
                }
                p.start().await?;
                say.line(format!("to-bq restarted (exited by itself: {clean})"));
            }
        } else if !injected.storage_outage && injected.to_gcs_killed && gcs >= 0.6 {
            injected.storage_outage = true;
            say.line(format!(
                "Cloud Storage emulator down for {:?} at {:.0}% of to-gcs deliveries",
                opts.gcs_outage,
                gcs * 100.0
            ));
            self.stack.stop_gcs();
            tokio::time::sleep(opts.gcs_outage).await;
            self.stack.restart_gcs().await?;
            say.line("Cloud Storage emulator back");
        }
        Ok(())
    }

    /// One progress line: deliveries acked, in flight, objects in the bucket.
    async fn progress(&self, plan: &Plan, total_deliveries: u64, say: &Say) {
        let objects = self
            .stack
            .gcs
            .list(BUCKET, "")
            .await
            .map(|o| o.len())
            .unwrap_or(0);
        let per: Vec<String> = self
            .bridges
            .iter()
            .map(|b| b.stats.acked.load(Ordering::Relaxed).to_string())
            .collect();
        say.line(format!(
            "acked {:.0}% of deliveries (to-gcs/to-bq/sub-v2 {}), in flight {}, objects {objects}/{}",
            self.acked() as f64 / total_deliveries as f64 * 100.0,
            per.join("/"),
            self.bridges.iter().map(Bridge::in_flight).sum::<u64>(),
            plan.transcripts().count(),
        ));
    }

    /// Stops the bridges and counts what they and the proxies saw.
    async fn tally(&mut self, report: &mut Report) {
        for b in &mut self.bridges {
            b.stop().await;
            report.pushes += b.stats.pushes.load(Ordering::Relaxed);
            report.nacks += b.stats.nacked.load(Ordering::Relaxed);
            report.unreachable += b.stats.unreachable.load(Ordering::Relaxed);
        }
        for (name, c) in [
            ("gcs", &self.gcs_proxy.counts),
            ("bigquery", &self.bq_proxy.counts),
            ("storage write", &self.grpc_proxy.counts),
        ] {
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
    }

    /// SIGTERM to every service.
    async fn stop(mut self) {
        for (_, mut p) in std::mem::take(&mut self.procs) {
            p.signal(libc::SIGTERM, Duration::from_secs(15)).await;
        }
    }
}

/// FNV-1a: a stable hash, so the permanent-fault set depends on the event id only.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permanent_set_depends_on_the_event_id_only() {
        assert_eq!(fnv("gen-1-00001"), fnv("gen-1-00001"));
        assert_ne!(fnv("gen-1-00001"), fnv("gen-1-00002"));
    }
}
