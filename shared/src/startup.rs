//! Start-up: from a typed [`Config`] to a listening [`Application`], and the `main` of the three
//! binaries.
//!
//! [`Application::build`] connects the service's sink, checks it (the bucket or table exists and
//! this service may write to it; [`check_sink`]) and binds its port before anything is served, so
//! a service that listens is ready, and a misconfigured one exits naming the problem. Binding port 0 picks a free port ([`Application::port`]
//! says which): that is how the tests spawn real services side by side.
//! [`Application::run_until_stopped`] serves until the [`Shutdown`] fires, then stops accepting and
//! lets in-flight requests finish (Pub/Sub redelivers anything not acked, so nothing is lost even
//! if the platform kills the process first).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

use std::time::Duration;

use crate::admission::Admission;
use crate::config::{Config, Service, SinkTarget};
use crate::dead_letter::{DeadLetterSink, PubSubDeadLetters};
use crate::google::pubsub::Publisher;
use crate::handler::{Destination, Handler};
use crate::push_auth::Verifier;
use crate::routes::{AppState, router};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sink::SinkCheck;
use crate::sink::batch::GroupCommit;
use crate::sink::bigquery::BigQuerySink;
use crate::sink::gcs::GcsStore;
use crate::sink::storage_write::StorageWriteSink;
use crate::sink::{RowSink, WriteMethod};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

/// Why a service could not start, by stage; the text names the bucket, table, topic, address or
/// client concerned. Every kind stops the service (Cloud Run's deploy then fails, naming it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    /// A client could not be made (credentials, the HTTP or gRPC client, the row schema).
    #[error("{what}: {why}")]
    Client { what: &'static str, why: String },
    /// The sink's start-up check: the bucket or table is missing, wrong or not writable, or
    /// Google stayed unavailable for [`SINK_CHECK_PATIENCE`].
    #[error("sink check failed: {0}")]
    SinkCheck(String),
    /// The push handler's rules or the push authentication could not be set up.
    #[error("{what}: {why}")]
    Handler { what: &'static str, why: String },
    /// The port could not be bound.
    #[error("cannot listen on {address}: {why}")]
    Listen { address: String, why: String },
}

impl StartupError {
    /// The stage, for the log line's `stage` field (one alert condition per stage).
    pub fn stage(&self) -> &'static str {
        match self {
            StartupError::Client { .. } => "client",
            StartupError::SinkCheck(_) => "sink_check",
            StartupError::Handler { .. } => "handler",
            StartupError::Listen { .. } => "listen",
        }
    }
}

/// A client constructor's message as a [`StartupError::Client`] about `what`.
fn client(what: &'static str) -> impl FnOnce(String) -> StartupError {
    move |why| StartupError::Client { what, why }
}

impl Application {
    /// Connects the configured sink (and dead-letter topic) and binds `HOST:PORT`.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let destination = connect_sink(config).await?;
        let dead_letters = connect_dead_letters(config).await?;
        Self::build_with(config, destination, dead_letters).await
    }

    /// Binds with a given destination (tests use in-process fakes or pre-built clients).
    pub async fn build_with(
        config: &Config,
        destination: Destination,
        dead_letters: Option<Arc<dyn DeadLetterSink>>,
    ) -> Result<Self, StartupError> {
        let handler =
            Handler::new(config.service, config.rules.clone(), destination).map_err(|why| {
                StartupError::Handler {
                    what: "the push handler",
                    why,
                }
            })?;
        let address = config.server.address();
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|e| StartupError::Listen {
                address: address.clone(),
                why: e.to_string(),
            })?;
        let verifier = (config.auth.clone().map(Verifier::new).transpose()).map_err(|why| {
            StartupError::Handler {
                what: "push authentication",
                why,
            }
        })?;
        Ok(Self {
            listener,
            state: AppState {
                handler,
                project: config.project.clone(),
                dead_letters,
                verifier,
                admission: Admission::new(config.server.body_budget),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        crate::listener::serve(self.listener, router(self.state), shutdown).await
    }

    /// Serves in the background of this process (tests, the demo) until [`RunningApp::stop`] or
    /// until dropped.
    pub fn spawn(self) -> RunningApp {
        let service = self.state.handler.service();
        let port = self.port();
        let (trigger, shutdown) = ShutdownTrigger::new();
        let handle = tokio::spawn(self.run_until_stopped(shutdown));
        RunningApp {
            service,
            port,
            url: format!("http://127.0.0.1:{port}"),
            trigger,
            handle,
        }
    }
}

/// A service running inside this process on its own port; the one way tests spawn a service.
pub struct RunningApp {
    pub service: Service,
    pub port: u16,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    trigger: ShutdownTrigger,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// Graceful shutdown: in-flight requests finish first.
    pub async fn stop(self) -> std::io::Result<()> {
        self.trigger.trigger();
        let service = self.service;
        match tokio::time::timeout(Duration::from_secs(30), self.handle).await {
            Err(_) => Err(std::io::Error::other(format!(
                "{service} did not stop within 30 s"
            ))),
            Ok(joined) => joined.map_err(|e| std::io::Error::other(format!("{service}: {e}")))?,
        }
    }
}

/// Builds the service's real sink client from its configuration.
pub async fn connect_sink(config: &Config) -> Result<Destination, StartupError> {
    let timeout = config.sink.timeout;
    Ok(match &config.sink.target {
        SinkTarget::Gcs {
            bucket,
            prefix,
            emulator,
        } => {
            let store = GcsStore::connect(bucket, emulator.as_deref(), timeout)
                .await
                .map_err(client("the Cloud Storage client"))?;
            check_sink(|| store.check()).await?;
            Destination::Objects {
                store: Arc::new(store),
                prefix: prefix.clone(),
            }
        }
        SinkTarget::BigQuery {
            table,
            emulator,
            storage_emulator,
            batch,
            method,
            insert,
        } => {
            let sink: Arc<dyn RowSink> = match method {
                WriteMethod::StorageWrite => {
                    let sink = StorageWriteSink::connect(
                        table.clone(),
                        emulator.as_deref(),
                        storage_emulator.as_deref(),
                        timeout,
                    )
                    .await
                    .map_err(client("the BigQuery Storage Write client"))?;
                    check_sink(|| sink.check()).await?;
                    Arc::new(sink)
                }
                WriteMethod::InsertAll => {
                    let sink =
                        BigQuerySink::connect(table.clone(), emulator.as_deref(), timeout, *insert)
                            .await
                            .map_err(client("the BigQuery client"))?;
                    check_sink(|| sink.check()).await?;
                    Arc::new(sink)
                }
            };
            Destination::Rows(Arc::new(GroupCommit::new(sink, *batch)))
        }
    })
}

/// How long start-up keeps asking a sink that cannot be reached (a wrong bucket, table or grant
/// fails at once). Terraform's startup probe allows 60 s.
pub const SINK_CHECK_PATIENCE: Duration = Duration::from_secs(30);

/// Runs a sink's start-up check: a wrong bucket, table, schema or grant stops the service with
/// a message that names it (and Cloud Run's deploy fails) instead of 503 loops for 40 minutes.
async fn check_sink<F, Fut>(check: F) -> Result<(), StartupError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), SinkCheck>>,
{
    let deadline = tokio::time::Instant::now() + SINK_CHECK_PATIENCE;
    loop {
        // One attempt never outlasts the patience (a hung connection would take the sink timeout).
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = tokio::time::timeout(left.max(Duration::from_secs(1)), check()).await;
        let result = attempt.unwrap_or_else(|_| Err(SinkCheck::Unavailable("no answer".into())));
        match result {
            Ok(()) => return Ok(()),
            Err(SinkCheck::Wrong(problem)) => return Err(StartupError::SinkCheck(problem)),
            Err(SinkCheck::Unavailable(why)) if tokio::time::Instant::now() >= deadline => {
                return Err(StartupError::SinkCheck(format!(
                    "still unavailable after {SINK_CHECK_PATIENCE:?}: {why}"
                )));
            }
            Err(SinkCheck::Unavailable(why)) => {
                tracing::warn!("sink check: {why}; asking again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The dead-letter topic's publisher, when `DEAD_LETTER_TOPIC` is set.
pub async fn connect_dead_letters(
    config: &Config,
) -> Result<Option<Arc<dyn DeadLetterSink>>, StartupError> {
    let Some(topic) = &config.dead_letters.topic else {
        return Ok(None);
    };
    let emulator = config.dead_letters.pubsub_emulator.as_deref();
    let publisher = Publisher::connect(topic, emulator, crate::limits::DEAD_LETTER_TIMEOUT)
        .await
        .map_err(client("the dead-letter publisher"))?;
    Ok(Some(Arc::new(PubSubDeadLetters::new(publisher))))
}

/// The whole `main` of a service binary: logging, configuration (fail fast, naming the
/// variable), sink, listen, serve until SIGTERM.
pub fn main(service: Service) -> ExitCode {
    crate::logging::init();
    let config = match Config::from_env(service) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                service = service.name(),
                variable = e.var,
                "configuration error: {e}"
            );
            eprintln!("{service}: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{service}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

/// Builds the service and serves until SIGTERM; the exit code says how it ended.
async fn serve(config: Config) -> ExitCode {
    let service = config.service;
    let shutdown = match Shutdown::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{service}: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(
                service = service.name(),
                stage = e.stage(),
                "start-up failed: {e}"
            );
            eprintln!("{service}: start-up failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    log_start(&config, &app);
    match app.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!(service = service.name(), "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(service = service.name(), "server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log_start(config: &Config, app: &Application) {
    let service = config.service.name();
    if config.auth.is_none() {
        tracing::warn!(
            service,
            "PUSH_AUTH=off: pushes are NOT authenticated; only for the emulators and the local demo"
        );
    }
    tracing::info!(
        service,
        address = %app.local_addr(),
        push_auth = config.auth.is_some(),
        redact_keys = config.rules.redactor.keys().join(","),
        dotcom_url = config.rules.dotcom.url(),
        dead_letter_topic = config.dead_letters.topic.as_deref().unwrap_or("(none: Pub/Sub's policy only)"),
        "listening"
    );
}
