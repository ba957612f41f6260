//! Configuration, read once at start-up from the environment (Cloud Run style) into typed values.
//!
//! Every problem is reported with the name of the variable, and the service refuses to start:
//! a misconfigured handler must crash-loop visibly, never run with a guessed bucket or table.
//! [`Config::from_lookup`] takes any lookup function, so tests never touch the process environment.
//! The README's "Configuration" section lists every variable; keep the two in step.

use std::time::Duration;

use crate::admission;
use crate::classify::{DEFAULT_DOTCOM_URL, DotCom, Route};
use crate::google::bigquery::TableRef;
use crate::push_auth::{AuthConfig, GOOGLE_JWKS_URL};
use crate::redact::Redactor;
use crate::sink::WriteMethod;
use crate::sink::batch::BatchSettings;
use crate::sink::bigquery::InsertClient;

/// The three services built from this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Transcript events, unredacted, to the restricted bucket.
    ToGcs,
    /// Messages whose attributes mark them as transcripts, redacted, to BigQuery.
    ToBq,
    /// Every other message, redacted, to BigQuery.
    SubV2,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::ToGcs, Service::ToBq, Service::SubV2];

    pub fn name(&self) -> &'static str {
        match self {
            Service::ToGcs => "to-gcs",
            Service::ToBq => "to-bq",
            Service::SubV2 => "sub-v2",
        }
    }

    /// The side of the BigQuery split this service writes (`None`: it writes the bucket).
    pub fn bigquery_route(&self) -> Option<Route> {
        match self {
            Service::ToGcs => None,
            Service::ToBq => Some(Route::Transcript),
            Service::SubV2 => Some(Route::NonTranscript),
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every environment variable a service reads: tests hold the code to this list
/// (`shared/tests/variables.rs`), and this list to the README's Configuration table and
/// Terraform's service environments.
pub const VARIABLES: &[&str] = &[
    "PORT",
    "HOST",
    "MAX_BODY_BYTES_IN_FLIGHT",
    "GOOGLE_CLOUD_PROJECT",
    "DOTCOM_URL",
    "DOTCOM_INSTANCE_IDS",
    "REDACT_KEYS",
    "SINK_TIMEOUT_SECONDS",
    "TRANSCRIPT_BUCKET",
    "TRANSCRIPT_PREFIX",
    "BIGQUERY_DATASET",
    "BIGQUERY_TABLE",
    "BIGQUERY_PROJECT",
    "BIGQUERY_BATCH_MAX_ROWS",
    "BIGQUERY_BATCH_MAX_BYTES",
    "BIGQUERY_BATCH_LINGER_MS",
    "BIGQUERY_WRITE_METHOD",
    "BIGQUERY_INSERT_CLIENT",
    "DEAD_LETTER_TOPIC",
    "STORAGE_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "BIGQUERY_STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "PUSH_AUTH",
    "PUSH_AUTH_AUDIENCE",
    "PUSH_AUTH_SERVICE_ACCOUNTS",
    "PUSH_AUTH_JWKS_URL",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Where configuration comes from: the process environment, or any lookup (tests). A variable
/// that is set but blank counts as unset.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_fn(|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// The trimmed value, `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str, what: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| err(name, format!("not set ({what})")))
    }

    /// Comma-separated values, trimmed, blanks dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A service's whole configuration, one typed part per concern; each part parses itself.
#[derive(Debug, Clone)]
pub struct Config {
    pub service: Service,
    pub server: ServerSettings,
    /// `GOOGLE_CLOUD_PROJECT`.
    pub project: String,
    pub rules: Rules,
    pub sink: SinkConfig,
    pub dead_letters: DeadLetterSettings,
    /// Push authentication (`PUSH_AUTH`, on unless set to `off`).
    pub auth: Option<AuthConfig>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(service: Service) -> Result<Self, ConfigError> {
        Self::from(service, &Env::process())
    }

    /// Reads configuration through `lookup` (tests never touch the process environment).
    pub fn from_lookup(
        service: Service,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from(service, &Env::from_fn(lookup))
    }

    pub fn from(service: Service, env: &Env<'_>) -> Result<Self, ConfigError> {
        let server = ServerSettings::from_env(env)?;
        let project = env.required("GOOGLE_CLOUD_PROJECT", "the Google Cloud project id")?;
        check_id("GOOGLE_CLOUD_PROJECT", &project)?;
        Ok(Config {
            service,
            server,
            rules: Rules::from_env(env)?,
            sink: SinkConfig::from_env(service, env, &project)?,
            dead_letters: DeadLetterSettings::from_env(env, &project)?,
            auth: AuthConfig::from_env(env)?,
            project,
        })
    }
}

/// `HOST`, `PORT` and `MAX_BODY_BYTES_IN_FLIGHT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// The budget of push-body bytes held at once ([`crate::admission`]).
    pub body_budget: usize,
}

impl ServerSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let port = match env.get("PORT") {
            None => 8080,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| err("PORT", format!("`{p}` is not a port number (0-65535)")))?,
        };
        let host = env.get("HOST").unwrap_or_else(|| "0.0.0.0".into());
        if host.parse::<std::net::IpAddr>().is_err() {
            return Err(err("HOST", format!("`{host}` is not an IP address")));
        }
        let body_budget = match env.get("MAX_BODY_BYTES_IN_FLIGHT") {
            None => admission::default_budget(
                admission::container_memory_limit().unwrap_or(admission::DEFAULT_MEMORY_BYTES),
            ),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 << 20 => n,
                _ => {
                    return Err(err(
                        "MAX_BODY_BYTES_IN_FLIGHT",
                        format!("`{v}` is not a number of bytes of at least 1048576"),
                    ));
                }
            },
        };
        Ok(Self {
            host,
            port,
            body_budget,
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The transcript rules that every handler and `replay inspect` apply: how DotCom is recognised
/// (`DOTCOM_URL`, `DOTCOM_INSTANCE_IDS`) and which keys are redacted (`REDACT_KEYS`, which only
/// adds to the transcript keys). One parser for the services and `replay`, so they cannot drift.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    pub dotcom: DotCom,
    pub redactor: Redactor,
}

impl Rules {
    /// The variables the rules are read from: what Terraform's `rules` output holds, and what
    /// `replay inspect --rules` takes.
    pub const VARIABLES: [&'static str; 3] = ["DOTCOM_URL", "DOTCOM_INSTANCE_IDS", "REDACT_KEYS"];

    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env
            .get("DOTCOM_URL")
            .unwrap_or_else(|| DEFAULT_DOTCOM_URL.into());
        let dotcom =
            DotCom::new(&url, env.list("DOTCOM_INSTANCE_IDS")).map_err(|p| err("DOTCOM_URL", p))?;
        let redactor = Redactor::from_list(&env.get("REDACT_KEYS").unwrap_or_default())
            .map_err(|p| err("REDACT_KEYS", p))?;
        Ok(Self { dotcom, redactor })
    }
}

/// Where a service writes, and how long one write may take (`SINK_TIMEOUT_SECONDS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub target: SinkTarget,
    /// Upper bound for one sink call, retries included.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    Gcs {
        bucket: String,
        prefix: String,
        /// `STORAGE_EMULATOR_HOST`, as an `http://host:port` endpoint.
        emulator: Option<String>,
    },
    BigQuery {
        table: TableRef,
        /// `BIGQUERY_EMULATOR_HOST`, as an `http://host:port` endpoint.
        emulator: Option<String>,
        /// `BIGQUERY_STORAGE_EMULATOR_HOST`: the emulator's Storage Write (gRPC) endpoint.
        storage_emulator: Option<String>,
        /// `BIGQUERY_BATCH_*`: how rows of concurrent pushes share one call.
        batch: BatchSettings,
        /// `BIGQUERY_WRITE_METHOD`: the Storage Write API or `insertAll`.
        method: WriteMethod,
        /// `BIGQUERY_INSERT_CLIENT`: which client sends `insertAll`.
        insert: InsertClient,
    },
}

impl SinkConfig {
    pub fn from_env(service: Service, env: &Env<'_>, project: &str) -> Result<Self, ConfigError> {
        let timeout = sink_timeout(env)?;
        let mut target = match service {
            Service::ToGcs => SinkTarget::gcs_from_env(env)?,
            Service::ToBq | Service::SubV2 => SinkTarget::bigquery_from_env(env, project)?,
        };
        if let SinkTarget::BigQuery { batch, .. } = &mut target {
            // A push waits for its row's verdict no longer than one write may take.
            batch.timeout = timeout;
        }
        Ok(Self { target, timeout })
    }
}

impl SinkTarget {
    fn gcs_from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let bucket = env.required(
            "TRANSCRIPT_BUCKET",
            "the Cloud Storage bucket for transcripts",
        )?;
        check_bucket(&bucket)?;
        let prefix = env
            .get("TRANSCRIPT_PREFIX")
            .unwrap_or_else(|| "transcripts".into())
            .trim_matches('/')
            .to_owned();
        Ok(SinkTarget::Gcs {
            bucket,
            prefix,
            emulator: emulator_endpoint(env, "STORAGE_EMULATOR_HOST")?,
        })
    }

    fn bigquery_from_env(env: &Env<'_>, project: &str) -> Result<Self, ConfigError> {
        let dataset = env.required(
            "BIGQUERY_DATASET",
            "the BigQuery dataset of event_telemetry",
        )?;
        check_id("BIGQUERY_DATASET", &dataset)?;
        let table = env
            .get("BIGQUERY_TABLE")
            .unwrap_or_else(|| "event_telemetry".into());
        check_id("BIGQUERY_TABLE", &table)?;
        let bq_project = env
            .get("BIGQUERY_PROJECT")
            .unwrap_or_else(|| project.to_owned());
        check_id("BIGQUERY_PROJECT", &bq_project)?;
        let emulator = emulator_endpoint(env, "BIGQUERY_EMULATOR_HOST")?;
        let method = write_method_from_env(env)?;
        let storage_emulator = emulator_endpoint(env, "BIGQUERY_STORAGE_EMULATOR_HOST")?;
        if emulator.is_some() != storage_emulator.is_some() && method == WriteMethod::StorageWrite {
            // Half an emulator would send rows to one and check the table on the other.
            return Err(err(
                "BIGQUERY_STORAGE_EMULATOR_HOST",
                "set it with BIGQUERY_EMULATOR_HOST (the emulator's gRPC and REST ports), or neither",
            ));
        }
        Ok(SinkTarget::BigQuery {
            table: TableRef {
                project: bq_project,
                dataset,
                table,
            },
            emulator,
            storage_emulator,
            batch: batch_from_env(env)?,
            method,
            insert: insert_client_from_env(env)?,
        })
    }
}

/// `BIGQUERY_WRITE_METHOD`: `storage_write` (default) or `insert_all`.
fn write_method_from_env(env: &Env<'_>) -> Result<WriteMethod, ConfigError> {
    let Some(v) = env.get("BIGQUERY_WRITE_METHOD") else {
        return Ok(WriteMethod::default());
    };
    WriteMethod::parse(&v).ok_or_else(|| {
        let names: Vec<&str> = WriteMethod::NAMES.iter().map(|(n, _)| *n).collect();
        err(
            "BIGQUERY_WRITE_METHOD",
            format!("`{v}` is not one of {}", names.join(", ")),
        )
    })
}

/// `BIGQUERY_INSERT_CLIENT`: `direct` (default) or `gcp-bigquery-client`.
fn insert_client_from_env(env: &Env<'_>) -> Result<InsertClient, ConfigError> {
    let Some(v) = env.get("BIGQUERY_INSERT_CLIENT") else {
        return Ok(InsertClient::default());
    };
    InsertClient::parse(&v).ok_or_else(|| {
        let names: Vec<&str> = InsertClient::NAMES.iter().map(|(n, _)| *n).collect();
        err(
            "BIGQUERY_INSERT_CLIENT",
            format!("`{v}` is not one of {}", names.join(", ")),
        )
    })
}

/// `BIGQUERY_BATCH_MAX_ROWS` (1–10000, default 500), `BIGQUERY_BATCH_MAX_BYTES` (1000–9000000,
/// default 5 MiB), `BIGQUERY_BATCH_LINGER_MS` (0–1000, default 25).
fn batch_from_env(env: &Env<'_>) -> Result<BatchSettings, ConfigError> {
    let defaults = BatchSettings::default();
    let number = |var: &'static str, range: std::ops::RangeInclusive<u64>, default: u64| {
        let Some(v) = env.get(var) else {
            return Ok(default);
        };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(err(
                var,
                format!(
                    "`{v}` is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    Ok(BatchSettings {
        max_rows: number(
            "BIGQUERY_BATCH_MAX_ROWS",
            1..=crate::limits::MAX_BATCH_ROWS as u64,
            defaults.max_rows as u64,
        )? as usize,
        max_bytes: number(
            "BIGQUERY_BATCH_MAX_BYTES",
            1_000..=crate::limits::MAX_BATCH_BYTES as u64,
            defaults.max_bytes as u64,
        )? as usize,
        linger: Duration::from_millis(number(
            "BIGQUERY_BATCH_LINGER_MS",
            0..=1_000,
            defaults.linger.as_millis() as u64,
        )?),
        ..defaults
    })
}

/// Where permanent failures are published (`DEAD_LETTER_TOPIC`), through which Pub/Sub
/// (`PUBSUB_EMULATOR_HOST`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadLetterSettings {
    /// `projects/{p}/topics/{t}`.
    pub topic: Option<String>,
    pub pubsub_emulator: Option<String>,
}

impl DeadLetterSettings {
    pub fn from_env(env: &Env<'_>, project: &str) -> Result<Self, ConfigError> {
        let topic = match env.get("DEAD_LETTER_TOPIC") {
            None => None,
            Some(t) => Some(topic_path("DEAD_LETTER_TOPIC", &t, project)?),
        };
        Ok(Self {
            topic,
            pubsub_emulator: pubsub_emulator(env)?,
        })
    }
}

/// `PUBSUB_EMULATOR_HOST` as an `http://host:port` endpoint: the services and `replay` alike.
pub fn pubsub_emulator(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    emulator_endpoint(env, "PUBSUB_EMULATOR_HOST")
}

impl AuthConfig {
    /// `PUSH_AUTH` (`on` by default), `PUSH_AUTH_AUDIENCE`, `PUSH_AUTH_SERVICE_ACCOUNTS`,
    /// `PUSH_AUTH_JWKS_URL`. `None` when switched off.
    pub fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        match env
            .get("PUSH_AUTH")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Some("off") => return Ok(None),
            None | Some("on") => {}
            Some(other) => {
                return Err(err(
                    "PUSH_AUTH",
                    format!("`{other}` is neither `on` nor `off`"),
                ));
            }
        }
        let audience = env.required(
            "PUSH_AUTH_AUDIENCE",
            "the audience of the subscription's OIDC token, usually the service URL; PUSH_AUTH=off disables push authentication",
        )?;
        env.required(
            "PUSH_AUTH_SERVICE_ACCOUNTS",
            "comma-separated emails of the push service accounts; PUSH_AUTH=off disables push authentication",
        )?;
        let service_accounts = env.list("PUSH_AUTH_SERVICE_ACCOUNTS");
        if let Some(bad) = service_accounts.iter().find(|s| !s.contains('@')) {
            return Err(err(
                "PUSH_AUTH_SERVICE_ACCOUNTS",
                format!("`{bad}` is not an email address"),
            ));
        }
        let jwks_url = env
            .get("PUSH_AUTH_JWKS_URL")
            .unwrap_or_else(|| GOOGLE_JWKS_URL.into());
        check_jwks_url(&jwks_url)?;
        Ok(Some(AuthConfig {
            audience,
            service_accounts,
            jwks_url,
        }))
    }
}

/// `SINK_TIMEOUT_SECONDS`: how long one write may take (1 to 540 s; 30 s when unset). `replay`
/// reads it too, to wait for a re-delivered push as long as the service may take.
pub fn sink_timeout(env: &Env<'_>) -> Result<Duration, ConfigError> {
    match env.get("SINK_TIMEOUT_SECONDS") {
        None => Ok(crate::limits::DEFAULT_SINK_TIMEOUT),
        Some(v) => match v.parse::<u64>() {
            Ok(s) if (1..=540).contains(&s) => Ok(Duration::from_secs(s)),
            _ => Err(err(
                "SINK_TIMEOUT_SECONDS",
                format!("`{v}` is not a whole number of seconds from 1 to 540"),
            )),
        },
    }
}

/// Whether a URL's host (as `Url::host_str` gives it) is this machine: `localhost`, or a
/// loopback address (127.0.0.0/8, `[::1]`).
pub fn is_loopback_host(host: &str) -> bool {
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The keys that decide who may push are fetched over HTTPS; plain HTTP only from this machine
/// (a test's key server), since anyone on the path could otherwise serve their own keys.
fn check_jwks_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| err("PUSH_AUTH_JWKS_URL", format!("`{url}` {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not an absolute URL"))?;
    let host = parsed.host_str().unwrap_or_default();
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(bad(
            "is plain HTTP off this machine: the push-signing keys must come over https://",
        )),
        _ => Err(bad("is not an https:// URL")),
    }
}

/// `host:port` or `http(s)://host:port` (the Google client libraries accept both) →
/// `http(s)://host:port`.
fn emulator_endpoint(env: &Env<'_>, var: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(v) = env.get(var) else {
        return Ok(None);
    };
    let v = v.trim_end_matches('/');
    let endpoint = if v.starts_with("http://") || v.starts_with("https://") {
        v.to_owned()
    } else {
        format!("http://{v}")
    };
    let authority = endpoint.split_once("://").map(|(_, a)| a).unwrap_or("");
    if authority.is_empty() || authority.contains('/') {
        return Err(err(var, format!("`{v}` is not host:port")));
    }
    Ok(Some(endpoint))
}

/// `projects/{p}/topics/{t}`, or a bare topic id in the service's own project.
fn topic_path(var: &'static str, v: &str, project: &str) -> Result<String, ConfigError> {
    let (p, t) = match v
        .strip_prefix("projects/")
        .and_then(|r| r.split_once("/topics/"))
    {
        Some((p, t)) => (p, t),
        None if !v.contains('/') => (project, v),
        None => {
            return Err(err(
                var,
                format!("`{v}` is neither projects/P/topics/T nor a topic id"),
            ));
        }
    };
    let topic_ok = (3..=255).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_alphabetic())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c));
    if !topic_ok {
        return Err(err(var, format!("`{t}` is not a valid topic id")));
    }
    check_id(var, p)?;
    Ok(format!("projects/{p}/topics/{t}"))
}

/// Project, dataset and table ids: letters, digits, `_`, `-`, `.`, `:` only.
fn check_id(var: &'static str, v: &str) -> Result<(), ConfigError> {
    if v.len() <= 1024
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        Ok(())
    } else {
        Err(err(var, format!("`{v}` is not a valid identifier")))
    }
}

fn check_bucket(v: &str) -> Result<(), ConfigError> {
    let ok = (3..=222).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(err(
            "TRANSCRIPT_BUCKET",
            format!("`{v}` is not a bucket name (3-222 of a-z 0-9 _ - .; no gs:// prefix)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_read_exactly_their_variables() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let env = Env::from_fn(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        });
        Rules::from_env(&env).expect("defaults");
        drop(env);
        let want: std::collections::BTreeSet<String> =
            Rules::VARIABLES.iter().map(|v| v.to_string()).collect();
        assert_eq!(asked.into_inner(), want);
    }
    use std::collections::HashMap;

    fn cfg(service: Service, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Most cases are not about authentication.
        map.entry("PUSH_AUTH".into())
            .or_insert_with(|| "off".into());
        Config::from_lookup(service, |k| map.get(k).cloned())
    }

    #[test]
    fn minimal_configs() {
        let c = cfg(
            Service::ToGcs,
            &[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("TRANSCRIPT_BUCKET", "b-1"),
                ("PUSH_AUTH", "off"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.auth, None);
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(
            c.sink.target,
            SinkTarget::Gcs {
                bucket: "b-1".into(),
                prefix: "transcripts".into(),
                emulator: None
            }
        );
        assert_eq!(c.rules.redactor, Redactor::default());
        let extra = cfg(
            Service::ToGcs,
            &[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("TRANSCRIPT_BUCKET", "b-1"),
                ("REDACT_KEYS", "diff, Prediction"),
            ],
        )
        .unwrap();
        assert_eq!(
            extra.rules.redactor.keys(),
            ["diff", "prediction", "prompttext", "responsetext"]
        );
        assert_eq!(c.dead_letters.topic, None);
        let c = cfg(
            Service::ToGcs,
            &[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("TRANSCRIPT_BUCKET", "b-1"),
                ("DEAD_LETTER_TOPIC", "dlq-1"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.dead_letters.topic.as_deref(),
            Some("projects/p/topics/dlq-1")
        );

        let c = cfg(
            Service::SubV2,
            &[
                ("GOOGLE_CLOUD_PROJECT", "p"),
                ("BIGQUERY_DATASET", "telemetry"),
                ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050"),
                ("BIGQUERY_STORAGE_EMULATOR_HOST", "127.0.0.1:9060"),
                ("PORT", "0"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 0);
        assert_eq!(
            c.sink.target,
            SinkTarget::BigQuery {
                table: TableRef {
                    project: "p".into(),
                    dataset: "telemetry".into(),
                    table: "event_telemetry".into()
                },
                emulator: Some("http://127.0.0.1:9050".into()),
                storage_emulator: Some("http://127.0.0.1:9060".into()),
                batch: BatchSettings::default(),
                method: WriteMethod::StorageWrite,
                insert: InsertClient::Direct,
            }
        );
    }

    #[test]
    fn a_push_waits_for_its_row_no_longer_than_the_sink_timeout() {
        let c = Config::from_lookup(Service::SubV2, |k| {
            match k {
                "GOOGLE_CLOUD_PROJECT" => Some("p"),
                "BIGQUERY_DATASET" => Some("d"),
                "PUSH_AUTH" => Some("off"),
                "SINK_TIMEOUT_SECONDS" => Some("7"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        assert_eq!(c.sink.timeout, Duration::from_secs(7));
        let SinkTarget::BigQuery { batch, .. } = c.sink.target else {
            panic!("a BigQuery sink")
        };
        assert_eq!(batch.timeout, Duration::from_secs(7));
    }

    #[test]
    fn push_auth_is_on_unless_switched_off() {
        let on = Config::from_lookup(Service::ToBq, |k| {
            match k {
                "GOOGLE_CLOUD_PROJECT" => Some("p"),
                "BIGQUERY_DATASET" => Some("d"),
                "PUSH_AUTH_AUDIENCE" => Some("https://to-bq-123.us-central1.run.app"),
                "PUSH_AUTH_SERVICE_ACCOUNTS" => {
                    Some("push@p.iam.gserviceaccount.com, other@p.iam.gserviceaccount.com")
                }
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        let auth = on.auth.unwrap();
        assert_eq!(auth.service_accounts.len(), 2);
        assert_eq!(auth.jwks_url, GOOGLE_JWKS_URL);
        let missing = Config::from_lookup(Service::ToBq, |k| {
            match k {
                "GOOGLE_CLOUD_PROJECT" => Some("p"),
                "BIGQUERY_DATASET" => Some("d"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap_err();
        assert_eq!(missing.var, "PUSH_AUTH_AUDIENCE");
    }

    #[test]
    fn push_signing_keys_come_over_https_or_from_this_machine() {
        for ok in [
            GOOGLE_JWKS_URL,
            "https://keys.example.com/certs",
            "http://127.0.0.1:8080/certs",
            "http://localhost:1/",
            "http://[::1]:9/k",
        ] {
            assert!(check_jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://www.googleapis.com/oauth2/v3/certs",
            "http://10.0.0.1/certs",
            "ftp://127.0.0.1/",
            "keys",
        ] {
            let e = check_jwks_url(bad).unwrap_err();
            assert_eq!(e.var, "PUSH_AUTH_JWKS_URL", "{bad}");
        }
    }

    #[test]
    fn every_error_names_its_variable() {
        const P: (&str, &str) = ("GOOGLE_CLOUD_PROJECT", "p");
        const B: (&str, &str) = ("TRANSCRIPT_BUCKET", "b-1");
        const D: (&str, &str) = ("BIGQUERY_DATASET", "d");
        type Case<'a> = (Service, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (Service::ToGcs, &[B], "GOOGLE_CLOUD_PROJECT"),
            (Service::ToGcs, &[P], "TRANSCRIPT_BUCKET"),
            (Service::ToBq, &[P], "BIGQUERY_DATASET"),
            (
                Service::ToGcs,
                &[P, ("TRANSCRIPT_BUCKET", "gs://b")],
                "TRANSCRIPT_BUCKET",
            ),
            (Service::ToGcs, &[P, B, ("PORT", "80x")], "PORT"),
            (Service::ToGcs, &[P, B, ("HOST", "localhost")], "HOST"),
            (
                Service::ToGcs,
                &[P, B, ("MAX_BODY_BYTES_IN_FLIGHT", "1000")],
                "MAX_BODY_BYTES_IN_FLIGHT",
            ),
            (
                Service::ToGcs,
                &[P, B, ("DOTCOM_URL", "sourcegraph.com")],
                "DOTCOM_URL",
            ),
            (
                Service::ToGcs,
                &[P, B, ("SINK_TIMEOUT_SECONDS", "0")],
                "SINK_TIMEOUT_SECONDS",
            ),
            (
                Service::ToGcs,
                &[P, B, ("STORAGE_EMULATOR_HOST", "http://h:1/x")],
                "STORAGE_EMULATOR_HOST",
            ),
            (
                Service::SubV2,
                &[P, ("BIGQUERY_DATASET", "a b")],
                "BIGQUERY_DATASET",
            ),
            (
                Service::SubV2,
                &[P, D, ("BIGQUERY_INSERT_CLIENT", "crate")],
                "BIGQUERY_INSERT_CLIENT",
            ),
            (
                Service::SubV2,
                &[P, D, ("BIGQUERY_WRITE_METHOD", "streaming")],
                "BIGQUERY_WRITE_METHOD",
            ),
            (
                Service::ToBq,
                &[P, D, ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")],
                "BIGQUERY_STORAGE_EMULATOR_HOST",
            ),
            (
                Service::ToBq,
                &[P, D, ("BIGQUERY_BATCH_MAX_BYTES", "10000000")],
                "BIGQUERY_BATCH_MAX_BYTES",
            ),
            (
                Service::ToBq,
                &[P, D, ("BIGQUERY_BATCH_MAX_ROWS", "0")],
                "BIGQUERY_BATCH_MAX_ROWS",
            ),
            (
                Service::ToBq,
                &[P, D, ("BIGQUERY_BATCH_LINGER_MS", "-1")],
                "BIGQUERY_BATCH_LINGER_MS",
            ),
        ];
        for (service, vars, var) in cases {
            let e = cfg(*service, vars).unwrap_err();
            assert_eq!(e.var, *var, "{e}");
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
