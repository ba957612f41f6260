//! The local pipeline: emulators, their clients, the services, and the Pub/Sub wiring.
//!
//! [`Stack::start`] starts the three emulators side by side (each on a free port), creates the
//! bucket, dataset and table, and returns clients for all three. [`spawn_app`] runs one service
//! in-process on a random port, exactly as its binary would (same `Config`, same `Application`),
//! in the style of zero-to-production's `spawn_app`. [`Stack::wire_pipeline`] creates the topic and
//! the three push subscriptions with their filters and dead-letter topics.
//!
//! The pipeline's code (the services, `replay`, the audit) reaches each emulator through a
//! recorder ([`crate::contract::Recorder`]) that holds every request to Google's discovery
//! documents: [`Stack::service_env`] and the `*_url`/`*_host` methods give its address. The
//! harness's own clients (creating the bucket and table, reading back what landed) go to the
//! emulators directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use pipeline::config::{Config, Service};
use pipeline::startup::{Application, RunningApp};

use crate::bigquery::BigQuery;
use crate::contract::Recorder;
use crate::emulators::{self, Emulator};
use crate::gcs::Gcs;
use crate::pubsub::{PubSub, Pulled, PushSubscription};

pub const PROJECT: &str = "local-project";
pub const BUCKET: &str = "transcripts-local";
pub const DATASET: &str = "telemetry";
pub const TABLE: &str = "event_telemetry";
pub const TOPIC: &str = "telemetry-events";

/// The subscription filter of `service`, from `terraform/routing.json`, the one definition that
/// Terraform deploys. (The emulator stores filters but ignores them; `tests/tests/terraform.rs`
/// proves them against the handlers' own predicates.)
pub fn filter_of(service: Service) -> Result<String> {
    crate::filter::routing()?
        .remove(service.name())
        .with_context(|| format!("terraform/routing.json has no filter for {service}"))
}

pub struct Stack {
    pub dir: PathBuf,
    pub pubsub_emulator: Emulator,
    pub gcs_emulator: Emulator,
    pub bigquery_emulator: Emulator,
    pub gcs_root: PathBuf,
    pub pubsub: PubSub,
    pub gcs: Gcs,
    pub bigquery: BigQuery,
    pub recorders: Recorders,
}

/// The recorder in front of each emulator.
pub struct Recorders {
    pub storage: Recorder,
    pub bigquery: Recorder,
    /// BigQuery's Storage Write API (gRPC, the emulator's second port).
    pub bigquery_storage: Recorder,
    pub pubsub: Recorder,
}

impl Recorders {
    /// A recorder for each API, in front of the given `http://host:port` addresses.
    pub async fn start(
        storage: &str,
        bigquery: &str,
        bigquery_storage: &str,
        pubsub: &str,
    ) -> Result<Self> {
        Ok(Self {
            storage: Recorder::start("storage", storage).await?,
            bigquery: Recorder::start("bigquery", bigquery).await?,
            bigquery_storage: Recorder::start("bigquerystorage", bigquery_storage).await?,
            pubsub: Recorder::start("pubsub", pubsub).await?,
        })
    }
}

impl Stack {
    /// Starts the three emulators (in parallel) and creates the bucket, dataset and table.
    pub async fn start(label: &str) -> Result<Stack> {
        let dir = emulators::scratch_dir(label);
        let gcs_root = dir.join("gcs-data");
        let (pubsub_emulator, gcs_emulator, bigquery_emulator) = tokio::try_join!(
            emulators::start_pubsub(&dir),
            emulators::start_gcs(&dir, &gcs_root, None),
            emulators::start_bigquery(&dir, PROJECT),
        )?;
        let pubsub = PubSub::new(&pubsub_emulator.url(), PROJECT);
        let gcs = Gcs::new(&gcs_emulator.url());
        let bigquery = BigQuery::new(&bigquery_emulator.url(), PROJECT);
        gcs.create_bucket(PROJECT, BUCKET).await?;
        bigquery.create_event_table(DATASET, TABLE).await?;
        let recorders = Recorders::start(
            &gcs_emulator.url(),
            &bigquery_emulator.url(),
            &bigquery_emulator
                .grpc_url()
                .context("the BigQuery emulator has no gRPC port")?,
            &pubsub_emulator.url(),
        )
        .await?;
        Ok(Stack {
            dir,
            pubsub_emulator,
            gcs_emulator,
            bigquery_emulator,
            gcs_root,
            pubsub,
            gcs,
            bigquery,
            recorders,
        })
    }

    /// `host:port` where the pipeline's code reaches Cloud Storage (`STORAGE_EMULATOR_HOST`).
    pub fn storage_host(&self) -> String {
        self.recorders.storage.host()
    }

    /// `host:port` where the pipeline's code reaches BigQuery (`BIGQUERY_EMULATOR_HOST`).
    pub fn bigquery_host(&self) -> String {
        self.recorders.bigquery.host()
    }

    /// `host:port` where the pipeline's code reaches the Storage Write API
    /// (`BIGQUERY_STORAGE_EMULATOR_HOST`).
    pub fn bigquery_storage_host(&self) -> String {
        self.recorders.bigquery_storage.host()
    }

    /// `host:port` where the pipeline's code reaches Pub/Sub (`PUBSUB_EMULATOR_HOST`).
    pub fn pubsub_host(&self) -> String {
        self.recorders.pubsub.host()
    }

    /// The environment a service gets here: the variables the README documents, pointing at the
    /// emulators, with the dead-letter topic that [`Stack::wire_pipeline`] creates for [`TOPIC`].
    pub fn service_env(&self, service: Service) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("HOST", "127.0.0.1".to_string()),
            ("PORT", "0".to_string()),
            ("GOOGLE_CLOUD_PROJECT", PROJECT.to_string()),
            ("SINK_TIMEOUT_SECONDS", "5".to_string()),
            ("DEAD_LETTER_TOPIC", dead_letter_topic(TOPIC, service)),
            ("PUBSUB_EMULATOR_HOST", self.pubsub_host()),
            // The Pub/Sub emulator sends no OIDC token (push authentication is tested with the
            // project's own signed tokens in shared/tests/push_auth.rs).
            ("PUSH_AUTH", "off".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        match service {
            Service::ToGcs => {
                env.insert("TRANSCRIPT_BUCKET".into(), BUCKET.into());
                env.insert("TRANSCRIPT_PREFIX".into(), "transcripts".into());
                env.insert("STORAGE_EMULATOR_HOST".into(), self.storage_host());
            }
            Service::ToBq | Service::SubV2 => {
                env.insert("BIGQUERY_DATASET".into(), DATASET.into());
                env.insert("BIGQUERY_TABLE".into(), TABLE.into());
                env.insert("BIGQUERY_EMULATOR_HOST".into(), self.bigquery_host());
                env.insert(
                    "BIGQUERY_STORAGE_EMULATOR_HOST".into(),
                    self.bigquery_storage_host(),
                );
            }
        }
        env
    }

    /// The services' rules here, as Terraform's `rules` output gives them to `replay inspect`.
    pub fn rules_json(&self) -> String {
        let env = self.service_env(Service::SubV2);
        let rules: serde_json::Map<String, serde_json::Value> = pipeline::config::Rules::VARIABLES
            .iter()
            .map(|v| {
                (
                    v.to_string(),
                    env.get(*v).cloned().unwrap_or_default().into(),
                )
            })
            .collect();
        serde_json::Value::Object(rules).to_string()
    }

    pub fn config(&self, service: Service, overrides: &[(&str, &str)]) -> Result<Config> {
        let mut env = self.service_env(service);
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(service, |k| env.get(k).cloned()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Waits until the table holds rows of at least `n` publications (event id and message id,
    /// so a redelivery, which the default stream writes again, does not count twice; see
    /// [`crate::bigquery::by_publication`]); returns every row.
    pub async fn wait_rows(&self, n: usize, timeout: Duration) -> Result<Vec<serde_json::Value>> {
        let bq = self.bigquery.clone();
        eventually(&format!("rows of {n} publications"), timeout, || {
            let bq = bq.clone();
            async move {
                let rows = bq.all_rows(DATASET, TABLE).await?;
                let got = crate::bigquery::by_publication(&rows).len();
                Ok(if got >= n {
                    Ok(rows)
                } else {
                    Err(format!("rows of {got} of {n} publications"))
                })
            }
        })
        .await
    }

    /// Waits until at least `n` objects exist under `prefix`. A listing that fails (the emulator
    /// may be stopped on purpose) counts as not yet.
    pub async fn wait_objects(&self, prefix: &str, n: usize, timeout: Duration) -> Result<()> {
        let gcs = self.gcs.clone();
        eventually(&format!("{n} objects under {prefix}"), timeout, || {
            let gcs = gcs.clone();
            async move {
                let got = gcs.list(BUCKET, prefix).await.map(|o| o.len()).unwrap_or(0);
                Ok(if got >= n {
                    Ok(())
                } else {
                    Err(format!("{got} of {n} objects"))
                })
            }
        })
        .await
    }

    /// Waits until the pull subscription `sub` holds at least `n` distinct messages, looking
    /// without taking them (see [`PubSub::peek`]); returns what the last look saw.
    pub async fn wait_dead_letters(
        &self,
        sub: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Pulled>> {
        let ps = self.pubsub.clone();
        eventually(&format!("{n} messages on {sub}"), timeout, || {
            let ps = ps.clone();
            async move {
                let got = ps.peek(sub, 100).await?;
                let distinct: std::collections::BTreeSet<_> =
                    got.iter().map(|m| &m.message_id).collect();
                Ok(if distinct.len() >= n {
                    Ok(got)
                } else {
                    Err(format!("{} of {n}", distinct.len()))
                })
            }
        })
        .await
    }

    /// Stops the Cloud Storage emulator (its files stay).
    pub fn stop_gcs(&mut self) {
        self.gcs_emulator.stop();
    }

    /// Starts the Cloud Storage emulator again, on the same port and the same files.
    pub async fn restart_gcs(&mut self) -> Result<()> {
        let port = self.gcs_emulator.port;
        self.gcs_emulator = emulators::start_gcs(&self.dir, &self.gcs_root, Some(port)).await?;
        Ok(())
    }

    /// Creates `topic`, a dead-letter topic with a pull subscription for each handler, and the
    /// three push subscriptions with their filters. Returns the dead-letter pull subscriptions.
    pub async fn wire_pipeline(&self, topic: &str, endpoints: &Endpoints) -> Result<DeadLetters> {
        self.pubsub.create_topic(topic).await?;
        let mut dead_letters = DeadLetters::default();
        for (service, url) in [
            (Service::ToGcs, &endpoints.to_gcs),
            (Service::ToBq, &endpoints.to_bq),
            (Service::SubV2, &endpoints.sub_v2),
        ] {
            let filter = filter_of(service)?;
            let name = format!("{topic}-{}", service.name());
            let dlq = dead_letter_topic(topic, service);
            self.pubsub.create_topic(&dlq).await?;
            self.pubsub.create_pull_subscription(&dlq, &dlq).await?;
            self.pubsub
                .create_push_subscription(&PushSubscription {
                    name,
                    topic: topic.to_owned(),
                    endpoint: format!("{url}/"),
                    filter: Some(filter),
                    dead_letter_topic: Some(dlq.clone()),
                    max_delivery_attempts: 5,
                    no_wrapper: false,
                })
                .await?;
            dead_letters.0.insert(service, dlq);
        }
        Ok(dead_letters)
    }
}

/// The dead-letter topic (and its pull subscription) of `service` for `topic`.
pub fn dead_letter_topic(topic: &str, service: Service) -> String {
    format!("{topic}-{}-dead-letter", service.name())
}

/// Where the three services listen (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub to_gcs: String,
    pub to_bq: String,
    pub sub_v2: String,
}

/// The dead-letter pull subscription of each handler.
#[derive(Debug, Default, Clone)]
pub struct DeadLetters(pub BTreeMap<Service, String>);

impl DeadLetters {
    pub fn of(&self, service: Service) -> &str {
        &self.0[&service]
    }
}

/// A service running in this process on a random port (the shared crate's one spawn helper).
pub type TestApp = RunningApp;

/// Builds and starts one service from `config` (PORT=0): the same code path as its binary.
/// Its log lines go to the test's captured output (shown when a test fails).
pub async fn spawn_app(config: Config) -> Result<TestApp> {
    pipeline::logging::init_with_writer(tracing_subscriber::fmt::TestWriter::new);
    let service = config.service;
    let app = Application::build(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{service}: {e}"))?;
    Ok(app.spawn())
}

/// The three services.
pub struct Apps {
    pub to_gcs: TestApp,
    pub to_bq: TestApp,
    pub sub_v2: TestApp,
}

impl Apps {
    pub async fn spawn(stack: &Stack) -> Result<Apps> {
        Ok(Apps {
            to_gcs: spawn_app(stack.config(Service::ToGcs, &[])?).await?,
            to_bq: spawn_app(stack.config(Service::ToBq, &[])?).await?,
            sub_v2: spawn_app(stack.config(Service::SubV2, &[])?).await?,
        })
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            to_gcs: self.to_gcs.url.clone(),
            to_bq: self.to_bq.url.clone(),
            sub_v2: self.sub_v2.url.clone(),
        }
    }

    pub async fn stop(self) -> Result<()> {
        for app in [self.to_gcs, self.to_bq, self.sub_v2] {
            app.stop().await?;
        }
        Ok(())
    }
}

/// Polls `check` every 250 ms until it returns `Ok(Some(v))`, or fails after `timeout` with the
/// last state it reported.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<T, String>>>,
{
    let started = std::time::Instant::now();
    loop {
        match check().await? {
            Ok(v) => return Ok(v),
            Err(state) if started.elapsed() > timeout => {
                anyhow::bail!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
