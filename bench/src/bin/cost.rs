//! `cost MEASURED_JSON [PRICES_JSON] [--write FILE]`: the cost tables of `docs/cost.md`, computed
//! from what `scripts/bench-load.sh` measured (`target/bench-load/measured.json`), the list prices
//! and stated assumptions of `bench/cost/prices.json` (the default PRICES_JSON), the sample events
//! of `samples/` and the Cloud Run sizing of `terraform/variables.tf` (read at run time, relative to
//! the repository). Prints the Markdown; with `--write FILE`, replaces what lies between
//! `<!-- cost:begin -->` and `<!-- cost:end -->` in FILE instead.
//!
//! The model, in short (docs/cost.md, "The model", says it in prose):
//! - Pub/Sub bills every message once published and once per subscription on the topic, delivered
//!   or dropped by its filter; a push is one request and pays at least 1,000 B, a filtered message
//!   pays its size. Our push subscriptions also keep acked messages for the replay window.
//! - Cloud Run (request-based billing) bills the instance while a request is in flight. The
//!   instance-seconds of a push are the larger of its CPU time over the CPU the autoscaler lets it
//!   use (vCPUs × 60 %) and its time in flight over the pushes an instance holds (concurrency ×
//!   60 %); at low volume, the time an instance has any push in flight (each interval at least
//!   100 ms), which only the by-volume table includes.
//! - CPU per push is measured for sub-v2 writing the plain body and to-bq writing the transcript
//!   body; other sizes lie on the line through those two points (in push-body bytes). `to-gcs` is
//!   not measured: storing costs what writing a row of that size does, skipping what sub-v2's skip
//!   does, scaled the same way.
//! - Logging: the measured bytes of the services' one line per push, plus an estimate of what
//!   Cloud Logging adds to each entry and of Cloud Run's request log.
//! - BigQuery: the measured bytes per row of each method, moved by how much larger the sample's
//!   redacted event is than the measured one's.
//! - Free tiers are left out of the per-million tables and shown in the by-volume table only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipeline::classify::{Route, may_carry_transcript};
use pipeline::decode::PushEnvelope;
use serde_json::{Value, json};

const BEGIN: &str = "<!-- cost:begin -->";
const END: &str = "<!-- cost:end -->";
const GIB: f64 = 1_073_741_824.0;
const TIB: f64 = 1_099_511_627_776.0;
const MIB: f64 = 1_048_576.0;
const MILLION: f64 = 1e6;
/// Pub/Sub bills 20 bytes for each message's publish timestamp ("Pub/Sub pricing").
const TIMESTAMP_BYTES: f64 = 20.0;
/// The keys every row loses (`promptText`, `responseText`, any depth, any case).
const REDACTED_KEYS: [&str; 2] = ["prompttext", "responsetext"];
/// Keys a scenario of measured.json must have (a value may be null where it does not apply).
const SCENARIO_KEYS: [&str; 10] = [
    "scenario",
    "server",
    "method",
    "body",
    "body_bytes",
    "conns",
    "latency_ms",
    "cpu_seconds_per_push",
    "log_bytes_per_push",
    "wire_bytes_per_row",
];

// --- Prices and assumptions ----------------------------------------------------------------------

/// What is billed, each in one unit of quantity (bytes, requests, seconds, byte-months).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sku {
    PubsubThroughput,
    PubsubStorage,
    PubsubBigQuerySub,
    PubsubStorageSub,
    PubsubSmt,
    RunRequests,
    RunVcpuSeconds,
    RunGibSeconds,
    Logging,
    BigQueryStorageWrite,
    BigQueryInsertAll,
    GcsClassA,
    GcsStorage,
}

/// List prices, per unit of each [`Sku`]'s quantity, and the monthly free tiers in that unit.
#[derive(Debug, Clone)]
struct Prices {
    read: String,
    unit: BTreeMap<Sku, f64>,
    free: BTreeMap<Sku, f64>,
    /// Pub/Sub's minimum per request, bytes.
    pubsub_minimum: f64,
    /// insertAll's minimum per row, bytes.
    row_minimum: f64,
    /// Cloud Run's rounding of billable instance time, seconds.
    run_granularity: f64,
    dataflow_vcpu_hour: f64,
    dataflow_memory_gb_hour: f64,
    dataflow_disk_gb_hour: f64,
}

impl Prices {
    fn price(&self, sku: Sku) -> f64 {
        self.unit.get(&sku).copied().unwrap_or(0.0)
    }

    fn free(&self, sku: Sku) -> f64 {
        self.free.get(&sku).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
struct Worker {
    name: String,
    vcpus: f64,
    memory_gb: f64,
    disk_gb: f64,
    note: String,
}

/// The model's stated assumptions (`assumptions` of prices.json).
#[derive(Debug, Clone)]
struct Assumptions {
    hours_per_month: f64,
    volumes: Vec<f64>,
    message_id_bytes: f64,
    publish_messages_per_request: f64,
    cpu_utilisation: f64,
    concurrency_utilisation: f64,
    in_flight_seconds: f64,
    entry_metadata_bytes: f64,
    request_log_bytes: f64,
    gcs_months: f64,
    workers: Vec<Worker>,
}

impl Assumptions {
    fn seconds_per_month(&self) -> f64 {
        self.hours_per_month * 3600.0
    }
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("{what} must be a number, found {v}"))
}

/// `prices.<key>.value`, after checking that its unit is the one this code computes with.
fn list_price(doc: &Value, key: &str, unit: &str) -> Result<(f64, f64), String> {
    let entry = doc
        .get("prices")
        .and_then(|p| p.get(key))
        .ok_or_else(|| format!("prices.json: no price `{key}`"))?;
    let value = number(
        entry
            .get("value")
            .ok_or_else(|| format!("prices.json: `{key}` has no `value`"))?,
        &format!("prices.json: `{key}.value`"),
    )?;
    let found = entry.get("unit").and_then(Value::as_str).unwrap_or("");
    if found != unit {
        return Err(format!(
            "prices.json: `{key}` is in `{found}`; cost.rs computes with `{unit}`"
        ));
    }
    let free = match entry.get("free_tier") {
        None => 0.0,
        Some(f) => number(
            f.get("value")
                .ok_or_else(|| format!("prices.json: `{key}.free_tier` has no `value`"))?,
            &format!("prices.json: `{key}.free_tier.value`"),
        )?,
    };
    Ok((value, free))
}

fn assumption<'a>(doc: &'a Value, key: &str) -> Result<&'a Value, String> {
    doc.get("assumptions")
        .and_then(|a| a.get(key))
        .and_then(|a| a.get("value"))
        .ok_or_else(|| format!("prices.json: no `assumptions.{key}.value`"))
}

fn assumed(doc: &Value, key: &str) -> Result<f64, String> {
    number(
        assumption(doc, key)?,
        &format!("prices.json: `assumptions.{key}.value`"),
    )
}

fn load_prices(doc: &Value) -> Result<(Prices, Assumptions), String> {
    use Sku::*;
    let mut unit = BTreeMap::new();
    let mut free = BTreeMap::new();
    let mut put = |sku: Sku, (value, free_value): (f64, f64), per: f64, free_unit: f64| {
        unit.insert(sku, value / per);
        free.insert(sku, free_value * free_unit);
    };
    put(
        PubsubThroughput,
        list_price(doc, "pubsub_throughput", "USD per TiB")?,
        TIB,
        GIB,
    );
    put(
        PubsubStorage,
        list_price(doc, "pubsub_message_storage", "USD per GiB-month")?,
        GIB,
        GIB,
    );
    put(
        PubsubBigQuerySub,
        list_price(doc, "pubsub_bigquery_subscription", "USD per TiB")?,
        TIB,
        GIB,
    );
    put(
        PubsubStorageSub,
        list_price(doc, "pubsub_cloud_storage_subscription", "USD per TiB")?,
        TIB,
        GIB,
    );
    put(
        PubsubSmt,
        list_price(doc, "pubsub_smt_udf", "USD per TiB")?,
        TIB,
        GIB,
    );
    put(
        RunRequests,
        list_price(doc, "cloud_run_requests", "USD per million requests")?,
        MILLION,
        1.0,
    );
    put(
        RunVcpuSeconds,
        list_price(doc, "cloud_run_vcpu_second", "USD per vCPU-second")?,
        1.0,
        1.0,
    );
    put(
        RunGibSeconds,
        list_price(doc, "cloud_run_gib_second", "USD per GiB-second")?,
        1.0,
        1.0,
    );
    put(
        Logging,
        list_price(doc, "logging_ingestion", "USD per GiB")?,
        GIB,
        GIB,
    );
    put(
        BigQueryStorageWrite,
        list_price(doc, "bigquery_storage_write", "USD per GiB")?,
        GIB,
        GIB,
    );
    put(
        BigQueryInsertAll,
        list_price(doc, "bigquery_streaming_inserts", "USD per 200 MiB")?,
        200.0 * MIB,
        GIB,
    );
    put(
        GcsClassA,
        list_price(doc, "gcs_class_a", "USD per 1000 operations")?,
        1000.0,
        1.0,
    );
    put(
        GcsStorage,
        list_price(doc, "gcs_standard_storage", "USD per GiB-month")?,
        GIB,
        GIB,
    );
    let prices = Prices {
        read: doc
            .get("read")
            .and_then(Value::as_str)
            .ok_or("prices.json: no `read` (the date the prices were read)")?
            .to_string(),
        unit,
        free,
        pubsub_minimum: list_price(doc, "pubsub_request_minimum", "bytes per request")?.0,
        row_minimum: list_price(doc, "bigquery_streaming_row_minimum", "bytes per row")?.0,
        run_granularity: list_price(doc, "cloud_run_billing_granularity", "seconds")?.0,
        dataflow_vcpu_hour: list_price(doc, "dataflow_streaming_vcpu_hour", "USD per vCPU-hour")?.0,
        dataflow_memory_gb_hour: list_price(
            doc,
            "dataflow_streaming_memory_gb_hour",
            "USD per GB-hour",
        )?
        .0,
        dataflow_disk_gb_hour: list_price(doc, "dataflow_standard_pd_gb_hour", "USD per GB-hour")?
            .0,
    };
    let volumes = assumption(doc, "volumes_per_month")?
        .as_array()
        .ok_or("prices.json: `assumptions.volumes_per_month.value` must be an array")?
        .iter()
        .map(|v| number(v, "prices.json: a volume"))
        .collect::<Result<Vec<_>, _>>()?;
    let workers = assumption(doc, "dataflow_workers")?
        .as_array()
        .ok_or("prices.json: `assumptions.dataflow_workers.value` must be an array")?
        .iter()
        .map(|w| {
            let field = |k: &str| {
                number(
                    w.get(k).unwrap_or(&Value::Null),
                    &format!("prices.json: dataflow worker `{k}`"),
                )
            };
            Ok(Worker {
                name: w["name"].as_str().unwrap_or("worker").to_string(),
                vcpus: field("vcpus")?,
                memory_gb: field("memory_gb")?,
                disk_gb: field("disk_gb")?,
                note: w["note"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let assumptions = Assumptions {
        hours_per_month: assumed(doc, "hours_per_month")?,
        volumes,
        message_id_bytes: assumed(doc, "message_id_bytes")?,
        publish_messages_per_request: assumed(doc, "publish_messages_per_request")?.max(1.0),
        cpu_utilisation: assumed(doc, "cpu_target_utilisation")?,
        concurrency_utilisation: assumed(doc, "concurrency_target_utilisation")?,
        in_flight_seconds: assumed(doc, "push_in_flight_seconds")?,
        entry_metadata_bytes: assumed(doc, "log_entry_metadata_bytes")?,
        request_log_bytes: assumed(doc, "request_log_bytes")?,
        gcs_months: assumed(doc, "gcs_storage_months")?,
        workers,
    };
    Ok((prices, assumptions))
}

// --- Cloud Run sizing (terraform/variables.tf) ---------------------------------------------------

#[derive(Debug, Clone)]
struct RunConfig {
    concurrency: f64,
    vcpus: f64,
    memory_gib: f64,
    memory_text: String,
    /// How long the push subscriptions keep acked messages (`replay_window`), days.
    replay_days: f64,
    /// Lifecycle of the transcript objects (`transcript_retention_days`), days.
    retention_days: f64,
    /// Whether Cloud Run's request log of a successful push is kept out of Cloud Logging
    /// (`exclude_successful_request_logs`): then no push in the model pays for it.
    request_log_excluded: bool,
}

/// The `default` of `variable "NAME"` in a Terraform file, unquoted.
fn tf_default(text: &str, name: &str) -> Result<String, String> {
    let head = format!("variable \"{name}\" {{");
    let start = text
        .find(&head)
        .ok_or_else(|| format!("terraform/variables.tf: no variable `{name}`"))?;
    for line in text[start..].lines().skip(1) {
        let line = line.trim();
        if line.starts_with("variable ") {
            break;
        }
        if let Some(value) = line
            .strip_prefix("default")
            .and_then(|rest| rest.trim_start().strip_prefix('='))
        {
            return Ok(value.trim().trim_matches('"').to_string());
        }
    }
    Err(format!("terraform/variables.tf: `{name}` has no default"))
}

fn run_config(text: &str) -> Result<RunConfig, String> {
    let parse = |name: &str, v: &str| {
        v.parse::<f64>()
            .map_err(|_| format!("terraform/variables.tf: `{name}` default `{v}` is not a number"))
    };
    let memory_text = tf_default(text, "memory")?;
    let memory_gib = if let Some(mi) = memory_text.strip_suffix("Mi") {
        parse("memory", mi)? / 1024.0
    } else if let Some(gi) = memory_text.strip_suffix("Gi") {
        parse("memory", gi)?
    } else {
        return Err(format!(
            "terraform/variables.tf: memory `{memory_text}` is neither Mi nor Gi"
        ));
    };
    let replay = tf_default(text, "replay_window")?;
    Ok(RunConfig {
        concurrency: parse("concurrency", &tf_default(text, "concurrency")?)?,
        vcpus: parse("cpu", &tf_default(text, "cpu")?)?,
        memory_gib,
        memory_text,
        replay_days: parse("replay_window", replay.trim_end_matches('s'))? / 86_400.0,
        retention_days: parse(
            "transcript_retention_days",
            &tf_default(text, "transcript_retention_days")?,
        )?,
        request_log_excluded: tf_default(text, "exclude_successful_request_logs")? == "true",
    })
}

// --- Measured figures (target/bench-load/measured.json) -----------------------------------------

#[derive(Debug, Clone)]
struct Scenario {
    index: usize,
    label: String,
    server: String,
    method: String,
    body: String,
    /// `insert_client` (insertAll's client; empty when the file has none).
    client: String,
    numbers: BTreeMap<String, Option<f64>>,
}

impl Scenario {
    fn get(&self, key: &str) -> Option<f64> {
        self.numbers.get(key).copied().flatten()
    }

    /// A figure this model needs: an error naming the scenario and the key when it is null.
    fn need(&self, key: &str) -> Result<f64, String> {
        self.get(key).ok_or_else(|| {
            format!(
                "measured.json: scenarios[{}] ({}) has `{key}` null; the cost model needs a number",
                self.index, self.label
            )
        })
    }
}

#[derive(Debug, Clone)]
struct Measured {
    date: String,
    machine: String,
    load: String,
    example: bool,
    scenarios: Vec<Scenario>,
}

fn display(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn parse_measured(doc: &Value) -> Result<Measured, String> {
    let top = |key: &str| {
        doc.get(key)
            .ok_or_else(|| format!("measured.json: no top-level `{key}`"))
    };
    let scenarios = top("scenarios")?
        .as_array()
        .ok_or("measured.json: `scenarios` must be an array")?
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let obj = s
                .as_object()
                .ok_or_else(|| format!("measured.json: scenarios[{index}] is not an object"))?;
            for key in SCENARIO_KEYS {
                if !obj.contains_key(key) {
                    return Err(format!("measured.json: scenarios[{index}] has no `{key}`"));
                }
            }
            let text = |k: &str| display(&obj[k]);
            let mut numbers = BTreeMap::new();
            for (k, v) in obj {
                if v.is_null() {
                    numbers.insert(k.clone(), None);
                } else if let Some(n) = v.as_f64() {
                    numbers.insert(k.clone(), Some(n));
                }
            }
            for key in &SCENARIO_KEYS[4..] {
                if !obj[*key].is_null() && !obj[*key].is_number() {
                    return Err(format!(
                        "measured.json: scenarios[{index}] `{key}` must be a number or null, found {}",
                        obj[*key]
                    ));
                }
            }
            Ok(Scenario {
                index,
                label: text("scenario"),
                server: text("server"),
                method: text("method"),
                body: text("body"),
                client: obj.get("insert_client").map(display).unwrap_or_default(),
                numbers,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Measured {
        date: display(top("date")?),
        machine: display(top("machine")?),
        // bench-load.sh writes `load_average` (start and end); an older file, `load`.
        load: display(
            doc.get("load_average")
                .or_else(|| doc.get("load"))
                .ok_or("measured.json: no top-level `load_average`")?,
        ),
        example: doc.get("EXAMPLE").is_some(),
        scenarios,
    })
}

/// The scenario of this server, method and body whose connections are nearest Cloud Run's
/// concurrency (then the lower BigQuery latency, then the first).
fn pick<'a>(
    m: &'a Measured,
    server: &str,
    method: Option<&str>,
    body: &str,
    concurrency: f64,
) -> Result<&'a Scenario, String> {
    let key = |s: &Scenario| {
        let conns = s.get("conns").unwrap_or(f64::MAX);
        let latency = s.get("latency_ms").unwrap_or(f64::MAX);
        ((conns - concurrency).abs(), latency, s.index)
    };
    m.scenarios
        .iter()
        .filter(|s| s.server == server && s.body == body && method.is_none_or(|m| s.method == m))
        .min_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or_else(|| {
            format!(
                "measured.json has no scenario with server={server}, method={}, body={body}",
                method.unwrap_or("any")
            )
        })
}

/// The scenario [`pick`] finds, each figure the median over its rounds: the scenarios of the same
/// server, method, insertAll client, body, connections and latency. bench-load runs the
/// write-method A/B in `AB_ROUNDS` rounds, and one round swings by ±15 % on a shared machine.
fn pick_rounds(
    m: &Measured,
    server: &str,
    method: Option<&str>,
    body: &str,
    concurrency: f64,
) -> Result<Scenario, String> {
    let first = pick(m, server, method, body, concurrency)?;
    let rounds: Vec<&Scenario> = m
        .scenarios
        .iter()
        .filter(|s| {
            s.server == first.server
                && s.method == first.method
                && s.client == first.client
                && s.body == first.body
                && s.get("conns") == first.get("conns")
                && s.get("latency_ms") == first.get("latency_ms")
        })
        .collect();
    let mut merged = first.clone();
    if rounds.len() > 1 {
        merged.label = format!("{} (median of {} rounds)", first.label, rounds.len());
    }
    for (key, value) in &mut merged.numbers {
        let mut values: Vec<f64> = rounds.iter().filter_map(|s| s.get(key)).collect();
        *value = median(&mut values);
    }
    Ok(merged)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// CPU seconds per push against push-body bytes: the line through the two measured writes, and
/// the measured skip scaled along it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuLine {
    plain_body: f64,
    plain_cpu: f64,
    transcript_body: f64,
    transcript_cpu: f64,
    skip_body: f64,
    skip_cpu: f64,
}

impl CpuLine {
    fn slope(&self) -> f64 {
        let run = self.transcript_body - self.plain_body;
        if run.abs() < 1.0 {
            0.0
        } else {
            ((self.transcript_cpu - self.plain_cpu) / run).max(0.0)
        }
    }

    fn write(&self, body: f64) -> f64 {
        (self.plain_cpu + self.slope() * (body - self.plain_body)).max(0.0)
    }

    fn skip(&self, body: f64) -> f64 {
        let at = self.write(self.skip_body);
        if at > 0.0 {
            self.skip_cpu * self.write(body) / at
        } else {
            self.skip_cpu
        }
    }
}

/// Bytes per row of one method: measured for the plain and the transcript body; another event's
/// row differs from the measured one of its shape by what its redacted event does.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowModel {
    plain_wire: f64,
    plain_redacted: f64,
    transcript_wire: f64,
    transcript_redacted: f64,
}

impl RowModel {
    fn row(&self, redacted: f64, has_private_metadata: bool) -> f64 {
        let (wire, base) = if has_private_metadata {
            (self.transcript_wire, self.transcript_redacted)
        } else {
            (self.plain_wire, self.plain_redacted)
        };
        (wire + redacted - base).max(1.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct LogModel {
    sub_v2_write: f64,
    to_bq_write: f64,
    skip: f64,
}

/// Everything measured for one BigQuery method.
#[derive(Debug, Clone)]
struct Measures {
    method: &'static str,
    plain: Scenario,
    transcript: Scenario,
    skip: Scenario,
    cpu: CpuLine,
    rows: RowModel,
    log: LogModel,
}

fn measures(
    m: &Measured,
    method: &'static str,
    concurrency: f64,
    plain_redacted: f64,
    transcript_redacted: f64,
) -> Result<Measures, String> {
    let plain = pick_rounds(m, "sub-v2", Some(method), "plain", concurrency)?;
    let transcript = pick_rounds(m, "to-bq", Some(method), "transcript", concurrency)?;
    let skip = pick_rounds(m, "sub-v2", Some(method), "skip", concurrency)
        .or_else(|_| pick_rounds(m, "sub-v2", None, "skip", concurrency))?;
    Ok(Measures {
        method,
        cpu: CpuLine {
            plain_body: plain.need("body_bytes")?,
            plain_cpu: plain.need("cpu_seconds_per_push")?,
            transcript_body: transcript.need("body_bytes")?,
            transcript_cpu: transcript.need("cpu_seconds_per_push")?,
            skip_body: skip.need("body_bytes")?,
            skip_cpu: skip.need("cpu_seconds_per_push")?,
        },
        rows: RowModel {
            plain_wire: plain.need("wire_bytes_per_row")?,
            plain_redacted,
            transcript_wire: transcript.need("wire_bytes_per_row")?,
            transcript_redacted,
        },
        log: LogModel {
            sub_v2_write: plain.need("log_bytes_per_push")?,
            to_bq_write: transcript.need("log_bytes_per_push")?,
            skip: skip.need("log_bytes_per_push")?,
        },
        plain,
        transcript,
        skip,
    })
}

// --- Events --------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    file: String,
    attributes: BTreeMap<String, String>,
    data: Value,
    gcs: bool,
    bq_handler: String,
}

/// One event as the model sees it.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    name: String,
    data_bytes: f64,
    attribute_bytes: f64,
    /// What Pub/Sub bills: data, attributes, the timestamp and the message id.
    message_bytes: f64,
    /// The push body our services receive (CPU scales with it).
    body_bytes: f64,
    /// The event without the redacted keys (the row grows with it).
    redacted_bytes: f64,
    has_private_metadata: bool,
    /// to-bq's subscription takes it (else sub-v2's).
    to_bq: bool,
    /// to-gcs's subscription takes it.
    to_gcs: bool,
    /// to-gcs stores it (else skips it).
    gcs_object: bool,
}

/// Compact JSON as the gateway publishes it (Go's `encoding/json` escapes `<`, `>` and `&`).
fn go_json(v: &Value) -> Vec<u8> {
    serde_json::to_string(v)
        .expect("a JSON value serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .into_bytes()
}

fn strip_redacted(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !REDACTED_KEYS.contains(&k.to_ascii_lowercase().as_str()));
            map.values_mut().for_each(strip_redacted);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_redacted),
        _ => {}
    }
}

fn redacted(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(private) = data.pointer_mut("/event/parameters/privateMetadata") {
        strip_redacted(private);
    }
    data
}

fn event(
    name: &str,
    attributes: &BTreeMap<String, String>,
    data: &Value,
    gcs_object: bool,
    message_id_bytes: f64,
) -> Event {
    let bytes = go_json(data);
    let attribute_bytes = attributes
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as f64)
        .sum::<f64>();
    let body = PushEnvelope::new("1", &bytes)
        .attributes(attributes)
        .publish_time("2026-11-28T00:00:00Z")
        .subscription("projects/p/subscriptions/s")
        .to_bytes();
    Event {
        name: name.to_string(),
        data_bytes: bytes.len() as f64,
        attribute_bytes,
        message_bytes: bytes.len() as f64 + attribute_bytes + TIMESTAMP_BYTES + message_id_bytes,
        body_bytes: body.len() as f64,
        redacted_bytes: go_json(&redacted(data)).len() as f64,
        has_private_metadata: data
            .pointer("/event/parameters/privateMetadata")
            .is_some_and(|p| p.as_object().is_some_and(|o| !o.is_empty())),
        to_bq: Route::from_attributes(attributes) == Route::Transcript,
        to_gcs: may_carry_transcript(attributes),
        gcs_object,
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_samples(dir: &Path) -> Result<Vec<Sample>, String> {
    let mut files = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect::<Vec<_>>();
    files.sort();
    files
        .iter()
        .map(|path| {
            let v = read_json(path)?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let attributes = v["attributes"]
                .as_object()
                .ok_or_else(|| format!("{}: no attributes", path.display()))?
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| format!("{}: attribute {k} is not a string", path.display()))
                })
                .collect::<Result<_, _>>()?;
            Ok(Sample {
                file,
                attributes,
                data: v["data"].clone(),
                gcs: v["expect"]["gcs"]
                    .as_bool()
                    .ok_or_else(|| format!("{}: no expect.gcs", path.display()))?,
                bq_handler: v["expect"]["bq_handler"]
                    .as_str()
                    .ok_or_else(|| format!("{}: no expect.bq_handler", path.display()))?
                    .to_string(),
            })
        })
        .collect()
}

/// A sample's event, checked against its own `expect`: the subscription filters must send it to
/// the handler that writes its row, and to to-gcs when it is stored.
fn sample_event(s: &Sample, message_id_bytes: f64) -> Result<Event, String> {
    let e = event(&s.file, &s.attributes, &s.data, s.gcs, message_id_bytes);
    let routed = if e.to_bq { "to-bq" } else { "sub-v2" };
    if routed != s.bq_handler {
        return Err(format!(
            "samples/{}: the filters route it to {routed}, expect.bq_handler says {}",
            s.file, s.bq_handler
        ));
    }
    if e.gcs_object && !e.to_gcs {
        return Err(format!(
            "samples/{}: expect.gcs but to-gcs's filter drops it",
            s.file
        ));
    }
    Ok(e)
}

/// A transcript of about `bytes` bytes, padded like the criterion corpus
/// (`shared/benches/corpus.rs`): prompt and response text split the padding.
fn padded_transcript(data: &Value, bytes: usize) -> Value {
    let mut data = data.clone();
    let text = "Why does parseConfig return nil when the file is empty? ".repeat(bytes / 112 + 1);
    let private = &mut data["event"]["parameters"]["privateMetadata"];
    private["promptText"] = json!(text);
    private["responseText"] = json!(text);
    data
}

/// A column of the tables: one kind of event, or the mix (its events weighted equally).
#[derive(Debug, Clone)]
struct Kind {
    title: String,
    events: Vec<Event>,
}

fn kb(bytes: f64) -> String {
    let kb = bytes / 1000.0;
    if kb < 10.0 {
        format!("{kb:.1} KB")
    } else {
        format!("{kb:.0} KB")
    }
}

fn kinds(samples: &[Sample], message_id_bytes: f64) -> Result<Vec<Kind>, String> {
    let find = |name: &str| {
        samples
            .iter()
            .find(|s| s.file == name)
            .ok_or_else(|| format!("samples/{name} is missing"))
    };
    let plain = find("licensed-search-viewed.json")?;
    let transcript = find("dotcom-chat-prompt-transcript.json")?;
    let plain_event = sample_event(plain, message_id_bytes)?;
    let mut out = vec![Kind {
        title: format!("plain ({} B)", thousands(plain_event.data_bytes)),
        events: vec![plain_event],
    }];
    for (name, bytes) in [("transcript_4k", 4 * 1024), ("transcript_64k", 64 * 1024)] {
        let data = padded_transcript(&transcript.data, bytes);
        let e = event(
            &format!("`dotcom-chat-prompt-transcript.json`, padded (criterion's `{name}`)"),
            &transcript.attributes,
            &data,
            transcript.gcs,
            message_id_bytes,
        );
        out.push(Kind {
            title: format!("transcript ({})", kb(e.data_bytes)),
            events: vec![e],
        });
    }
    let mix = samples
        .iter()
        .map(|s| sample_event(s, message_id_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(Kind {
        title: format!("mix of samples/ ({})", mix.len()),
        events: mix,
    });
    Ok(out)
}

// --- The model -----------------------------------------------------------------------------------

/// Everything the model reads besides the events and the measurements.
struct Ctx {
    p: Prices,
    a: Assumptions,
    run: RunConfig,
}

impl Ctx {
    /// Instance-seconds a push holds a Cloud Run instance for at high volume: its CPU over the
    /// CPU the autoscaler lets it use, or its time in flight over the pushes an instance holds.
    fn instance_seconds(&self, cpu: f64) -> f64 {
        self.cpu_term(cpu).max(self.concurrency_term())
    }

    fn cpu_term(&self, cpu: f64) -> f64 {
        cpu / (self.run.vcpus * self.a.cpu_utilisation)
    }

    fn concurrency_term(&self) -> f64 {
        self.a.in_flight_seconds / (self.run.concurrency * self.a.concurrency_utilisation)
    }

    fn replay_months(&self) -> f64 {
        self.run.replay_days * 24.0 / self.a.hours_per_month
    }

    fn publish_bytes(&self, e: &Event) -> f64 {
        e.message_bytes
            .max(self.p.pubsub_minimum / self.a.publish_messages_per_request)
    }

    fn dataflow_monthly(&self, w: &Worker) -> f64 {
        self.a.hours_per_month
            * (w.vcpus * self.p.dataflow_vcpu_hour
                + w.memory_gb * self.p.dataflow_memory_gb_hour
                + w.disk_gb * self.p.dataflow_disk_gb_hour)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Line {
    label: String,
    basis: &'static str,
    sku: Sku,
    /// Per event, in the sku's unit.
    qty: f64,
}

fn line(label: impl Into<String>, basis: &'static str, sku: Sku, qty: f64) -> Line {
    Line {
        label: label.into(),
        basis,
        sku,
        qty,
    }
}

/// One service's pushes per event and the instance-seconds they hold at high volume.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Load {
    pushes: f64,
    instance_seconds: f64,
}

/// What one event (or the mean event of a mix) uses, line by line.
#[derive(Debug, Clone, PartialEq)]
struct Usage {
    lines: Vec<Line>,
    /// to-gcs, to-bq, sub-v2.
    services: [Load; 3],
}

const SERVICES: [&str; 3] = ["to-gcs", "to-bq", "sub-v2"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Write,
    Store,
    Skip,
}

/// The pushes an event causes: (service index, what it does).
fn pushes(e: &Event) -> Vec<(usize, Action)> {
    let mut out = Vec::new();
    if e.to_gcs {
        out.push((
            0,
            if e.gcs_object {
                Action::Store
            } else {
                Action::Skip
            },
        ));
    }
    out.push((if e.to_bq { 1 } else { 2 }, Action::Write));
    out
}

fn push_cpu(m: &Measures, action: Action, body: f64) -> f64 {
    match action {
        Action::Write | Action::Store => m.cpu.write(body),
        Action::Skip => m.cpu.skip(body),
    }
}

fn push_log(m: &Measures, service: usize, action: Action) -> f64 {
    match (service, action) {
        (_, Action::Skip) => m.log.skip,
        (2, _) => m.log.sub_v2_write,
        _ => m.log.to_bq_write,
    }
}

/// The same Cloud Storage path for (a) and (b): a Cloud Storage subscription with to-gcs's filter,
/// an SMT that drops what is not a transcript, one month of the stored bytes.
fn storage_subscription(e: &Event, c: &Ctx) -> Vec<Line> {
    vec![
        line(
            "Pub/Sub: Cloud Storage subscription (every message)",
            "list × size",
            Sku::PubsubStorageSub,
            e.message_bytes,
        ),
        line(
            "Pub/Sub: SMT on it (the transcript check)",
            "list × size",
            Sku::PubsubSmt,
            if e.to_gcs { e.message_bytes } else { 0.0 },
        ),
        gcs_storage(e, c),
    ]
}

fn gcs_storage(e: &Event, c: &Ctx) -> Line {
    line(
        if c.a.gcs_months == 1.0 {
            "Cloud Storage: storage, 1 month".to_string()
        } else {
            format!("Cloud Storage: storage, {} months", c.a.gcs_months)
        },
        "list × object bytes",
        Sku::GcsStorage,
        if e.gcs_object {
            e.data_bytes * c.a.gcs_months
        } else {
            0.0
        },
    )
}

/// Our pipeline, writing BigQuery with `m`'s method.
fn ours(e: &Event, m: &Measures, c: &Ctx) -> Usage {
    let msg = e.message_bytes;
    let delivered = |pushed: bool| {
        if pushed {
            msg.max(c.p.pubsub_minimum)
        } else {
            msg
        }
    };
    let subscribed = [e.to_gcs, e.to_bq, !e.to_bq];
    let mut services = [Load::default(); 3];
    let (mut requests, mut vcpu, mut gib, mut log) = (0.0, 0.0, 0.0, 0.0);
    for (service, action) in pushes(e) {
        let inst = c.instance_seconds(push_cpu(m, action, e.body_bytes));
        services[service].pushes += 1.0;
        services[service].instance_seconds += inst;
        requests += 1.0;
        vcpu += c.run.vcpus * inst;
        gib += c.run.memory_gib * inst;
        log += push_log(m, service, action);
    }
    let row = m.rows.row(e.redacted_bytes, e.has_private_metadata);
    let bigquery = if m.method == "insert_all" {
        line(
            "BigQuery: insertAll (1 KB minimum per row)",
            "list × measured row bytes",
            Sku::BigQueryInsertAll,
            row.max(c.p.row_minimum),
        )
    } else {
        line(
            "BigQuery: Storage Write API",
            "list × measured row bytes",
            Sku::BigQueryStorageWrite,
            row,
        )
    };
    let delivered_count = subscribed.iter().filter(|s| **s).count() as f64;
    let mut lines = vec![line(
        "Pub/Sub: publish",
        "list × size",
        Sku::PubsubThroughput,
        c.publish_bytes(e),
    )];
    for (i, name) in SERVICES.iter().enumerate() {
        lines.push(line(
            format!("Pub/Sub: {name} subscription"),
            "list × size (pushed: ≥ 1,000 B)",
            Sku::PubsubThroughput,
            delivered(subscribed[i]),
        ));
    }
    lines.extend([
        line(
            "Pub/Sub: acked messages kept for the replay window",
            "list × size × window",
            Sku::PubsubStorage,
            msg * delivered_count * c.replay_months(),
        ),
        line(
            "Cloud Run: requests",
            "list × pushes",
            Sku::RunRequests,
            requests,
        ),
        line(
            "Cloud Run: vCPU-seconds",
            "list × max(CPU term, in-flight term)",
            Sku::RunVcpuSeconds,
            vcpu,
        ),
        line(
            "Cloud Run: GiB-seconds",
            "list × max(CPU term, in-flight term)",
            Sku::RunGibSeconds,
            gib,
        ),
        line(
            "Cloud Logging: our line per push",
            "list × measured bytes",
            Sku::Logging,
            log,
        ),
        if c.run.request_log_excluded {
            line(
                "Cloud Logging: entry metadata (Cloud Run's request log of a 2xx push excluded)",
                "list × estimate",
                Sku::Logging,
                requests * c.a.entry_metadata_bytes,
            )
        } else {
            line(
                "Cloud Logging: entry metadata and Cloud Run's request log",
                "list × estimate",
                Sku::Logging,
                requests * (c.a.entry_metadata_bytes + c.a.request_log_bytes),
            )
        },
        bigquery,
        line(
            "Cloud Storage: Class A (one object per transcript)",
            "list × objects",
            Sku::GcsClassA,
            if e.gcs_object { 1.0 } else { 0.0 },
        ),
        gcs_storage(e, c),
    ]);
    Usage { lines, services }
}

/// (a): a BigQuery subscription with a JavaScript SMT (redaction) takes every message; the
/// Cloud Storage path of [`storage_subscription`].
fn option_a(e: &Event, c: &Ctx) -> Usage {
    let mut lines = vec![
        line(
            "Pub/Sub: publish",
            "list × size",
            Sku::PubsubThroughput,
            c.publish_bytes(e),
        ),
        line(
            "Pub/Sub: BigQuery subscription (every message)",
            "list × size",
            Sku::PubsubBigQuerySub,
            e.message_bytes,
        ),
        line(
            "Pub/Sub: SMT on it (redaction)",
            "list × size",
            Sku::PubsubSmt,
            e.message_bytes,
        ),
    ];
    lines.extend(storage_subscription(e, c));
    Usage {
        lines,
        services: [Load::default(); 3],
    }
}

/// (b), without its worker: the Dataflow template reads every message through a pull
/// subscription and writes rows with legacy streaming inserts (its default); the Cloud Storage
/// path of [`storage_subscription`].
fn option_b(e: &Event, insert_all: &Measures, c: &Ctx) -> Usage {
    let row = insert_all
        .rows
        .row(e.redacted_bytes, e.has_private_metadata);
    let mut lines = vec![
        line(
            "Pub/Sub: publish",
            "list × size",
            Sku::PubsubThroughput,
            c.publish_bytes(e),
        ),
        line(
            "Pub/Sub: Dataflow's pull subscription",
            "list × size",
            Sku::PubsubThroughput,
            e.message_bytes,
        ),
        line(
            "BigQuery: legacy streaming inserts (1 KB minimum per row)",
            "list × measured row bytes",
            Sku::BigQueryInsertAll,
            row.max(c.p.row_minimum),
        ),
    ];
    lines.extend(storage_subscription(e, c));
    Usage {
        lines,
        services: [Load::default(); 3],
    }
}

/// The mean usage of a kind's events (every event built the same lines).
fn mean(usages: &[Usage]) -> Usage {
    let n = usages.len().max(1) as f64;
    let mut out = usages[0].clone();
    for (i, l) in out.lines.iter_mut().enumerate() {
        l.qty = usages.iter().map(|u| u.lines[i].qty).sum::<f64>() / n;
    }
    for (s, load) in out.services.iter_mut().enumerate() {
        load.pushes = usages.iter().map(|u| u.services[s].pushes).sum::<f64>() / n;
        load.instance_seconds = usages
            .iter()
            .map(|u| u.services[s].instance_seconds)
            .sum::<f64>()
            / n;
    }
    out
}

fn kind_usage(k: &Kind, f: impl Fn(&Event) -> Usage) -> Usage {
    mean(&k.events.iter().map(f).collect::<Vec<_>>())
}

fn line_cost(l: &Line, c: &Ctx) -> f64 {
    l.qty * c.p.price(l.sku)
}

fn per_million(u: &Usage, c: &Ctx) -> f64 {
    u.lines.iter().map(|l| line_cost(l, c)).sum::<f64>() * MILLION
}

/// A month at `volume` events: the usage lines times the volume, except Cloud Run's compute, which
/// is the larger of the high-volume instance-seconds and the time an instance has any push in
/// flight (each busy interval billed at least the rounding); `free` takes off the free tiers.
fn monthly(u: &Usage, volume: f64, free: bool, fixed: f64, c: &Ctx) -> f64 {
    let mut qty: BTreeMap<Sku, f64> = BTreeMap::new();
    for l in &u.lines {
        if !matches!(l.sku, Sku::RunVcpuSeconds | Sku::RunGibSeconds) {
            *qty.entry(l.sku).or_default() += volume * l.qty;
        }
    }
    let month = c.a.seconds_per_month();
    let interval = c.a.in_flight_seconds.max(c.p.run_granularity);
    for load in &u.services {
        if load.pushes <= 0.0 {
            continue;
        }
        let rate = volume * load.pushes / month;
        let busy = month * (1.0 - (-rate * interval).exp());
        let instance = (volume * load.instance_seconds).max(busy);
        *qty.entry(Sku::RunVcpuSeconds).or_default() += c.run.vcpus * instance;
        *qty.entry(Sku::RunGibSeconds).or_default() += c.run.memory_gib * instance;
    }
    fixed
        + qty
            .iter()
            .map(|(sku, q)| {
                let billed = if free {
                    (q - c.p.free(*sku)).max(0.0)
                } else {
                    *q
                };
                billed * c.p.price(*sku)
            })
            .sum::<f64>()
}

// --- Markdown ------------------------------------------------------------------------------------

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn usd(v: f64) -> String {
    if v.abs() < 5e-7 {
        return "–".into();
    }
    if v >= 100.0 {
        return format!("${}", thousands(v));
    }
    let decimals = (2 - v.log10().floor() as i32).max(2) as usize;
    format!("${v:.decimals$}")
}

fn micros(s: f64) -> String {
    format!("{:.1} µs", s * 1e6)
}

/// Seconds as µs, or ms from a millisecond up.
fn duration(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        micros(s)
    }
}

/// A table row; a `|` inside a cell (a page title) is escaped.
fn row(cells: &[String]) -> String {
    let cells = cells
        .iter()
        .map(|c| c.replace('|', "\\|"))
        .collect::<Vec<_>>();
    format!("| {} |\n", cells.join(" | "))
}

fn header(cells: &[String]) -> String {
    let mut out = row(cells);
    out.push_str(&row(&vec!["---".to_string(); cells.len()]));
    out
}

/// A per-million table: one row per line, one column per kind, and the total.
fn cost_table(out: &mut String, title: &str, kinds: &[Kind], usages: &[Usage], c: &Ctx) {
    let heading = format!("**{title}**, USD per million events:");
    lines_table(out, &heading, kinds, usages, usages, c);
}

/// The lines of `lines` (one column per kind) under `heading`, and the totals of `totals`.
fn lines_table(
    out: &mut String,
    heading: &str,
    kinds: &[Kind],
    lines: &[Usage],
    totals: &[Usage],
    c: &Ctx,
) {
    let _ = writeln!(out, "{heading}\n");
    let mut head = vec!["item".to_string(), "from".to_string()];
    head.extend(kinds.iter().map(|k| k.title.clone()));
    out.push_str(&header(&head));
    for (i, l) in lines[0].lines.iter().enumerate() {
        let mut cells = vec![l.label.clone(), l.basis.to_string()];
        cells.extend(
            lines
                .iter()
                .map(|u| usd(line_cost(&u.lines[i], c) * MILLION)),
        );
        out.push_str(&row(&cells));
    }
    let mut total = vec!["**total**".to_string(), String::new()];
    total.extend(
        totals
            .iter()
            .map(|u| format!("**{}**", usd(per_million(u, c)))),
    );
    out.push_str(&row(&total));
    out.push('\n');
}

struct Report<'a> {
    measured: &'a Measured,
    /// The list prices as Markdown rows (from prices.json, with their pages and dates).
    price_list: String,
    measured_path: String,
    prices_path: String,
    kinds: Vec<Kind>,
    write: Measures,
    insert: Measures,
    ctx: Ctx,
}

fn pushed_to(e: &Event) -> String {
    pushes(e)
        .iter()
        .map(|(s, a)| {
            let name = SERVICES[*s];
            if *a == Action::Skip {
                format!("{name} (skips)")
            } else {
                name.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(r: &Report) -> String {
    let c = &r.ctx;
    let m = r.measured;
    let mut out = String::new();
    if m.example {
        out.push_str(
            "> **Example figures, not a measurement**: the measured input below is \
             `bench/cost/example-measured.json`. Re-run on `target/bench-load/measured.json` \
             (see \"Re-run\") to replace them.\n\n",
        );
    }
    let _ = writeln!(
        out,
        "_Generated by `bench/src/bin/cost.rs` from `{}` (bench-load run of {}, {}, load {}) and \
         `{}` (list prices read {}). Do not edit between the markers: re-run._\n",
        r.measured_path, m.date, m.machine, m.load, r.prices_path, c.p.read
    );

    // The events.
    out.push_str("### The events\n\n");
    out.push_str(&header(
        &[
            "event",
            "data",
            "attributes",
            "billed message",
            "push body",
            "pushed to",
            "object",
        ]
        .map(String::from),
    ));
    let mut seen = Vec::new();
    for k in &r.kinds {
        for e in &k.events {
            if seen.contains(&e.name) {
                continue;
            }
            seen.push(e.name.clone());
            let file = if e.name.ends_with(".json") {
                format!("`{}`", e.name)
            } else {
                e.name.clone()
            };
            let name = if k.events.len() == 1 {
                format!("{}: {file}", k.title)
            } else {
                format!("mix: {file}")
            };
            out.push_str(&row(&[
                name,
                format!("{} B", thousands(e.data_bytes)),
                format!("{} B", thousands(e.attribute_bytes)),
                format!("{} B", thousands(e.message_bytes)),
                format!("{} B", thousands(e.body_bytes)),
                pushed_to(e),
                if e.gcs_object { "yes" } else { "–" }.into(),
            ]));
        }
    }
    let _ = writeln!(
        out,
        "\nBilled message = data + attributes + {TIMESTAMP_BYTES} B timestamp + {} B message id \
         (estimate). The 5.5 and 67 KB transcripts are `dotcom-chat-prompt-transcript.json` with \
         `promptText` and `responseText` padded as in `shared/benches/corpus.rs`; the mix weighs \
         the files of `samples/` equally. Every event is published once and offered to all three \
         subscriptions; \"pushed to\" is where the filters let it through.\n",
        c.a.message_id_bytes
    );

    // Measured inputs.
    out.push_str("### Measured here (bench-load)\n\n");
    out.push_str(&header(
        &[
            "figure",
            "`storage_write`",
            "`insert_all`",
            "scenarios used",
        ]
        .map(String::from),
    ));
    let (w, i) = (&r.write, &r.insert);
    let used = |a: &Scenario, b: &Scenario| format!("\"{}\" / \"{}\"", a.label, b.label);
    let figure = |label: String, f: &dyn Fn(&Measures) -> String, a: &Scenario, b: &Scenario| {
        row(&[label, f(w), f(i), used(a, b)])
    };
    out.push_str(&figure(
        format!(
            "CPU per push, sub-v2 writing plain ({} B push)",
            thousands(w.cpu.plain_body)
        ),
        &|m| micros(m.cpu.plain_cpu),
        &w.plain,
        &i.plain,
    ));
    out.push_str(&figure(
        format!(
            "CPU per push, to-bq writing the transcript ({} B push)",
            thousands(w.cpu.transcript_body)
        ),
        &|m| micros(m.cpu.transcript_cpu),
        &w.transcript,
        &i.transcript,
    ));
    out.push_str(&figure(
        format!(
            "CPU per push, sub-v2 skipping the transcript ({} B push)",
            thousands(w.cpu.skip_body)
        ),
        &|m| micros(m.cpu.skip_cpu),
        &w.skip,
        &i.skip,
    ));
    for (label, f) in [
        (
            "log bytes per push, sub-v2 writing",
            (|m: &Measures| m.log.sub_v2_write) as fn(&Measures) -> f64,
        ),
        ("log bytes per push, to-bq writing", |m| m.log.to_bq_write),
        ("log bytes per push, skipping", |m| m.log.skip),
        ("bytes per row on the wire, plain", |m| m.rows.plain_wire),
        ("bytes per row on the wire, transcript", |m| {
            m.rows.transcript_wire
        }),
    ] {
        out.push_str(&row(&[
            label.to_string(),
            thousands(f(w)),
            thousands(f(i)),
            "same".into(),
        ]));
    }
    let optional =
        |s: &Scenario, key: &str| s.get(key).map_or("–".to_string(), |v| format!("{v:.1}"));
    out.push_str(&row(&[
        "rows per call / peak RSS MiB (sub-v2 plain)".into(),
        format!(
            "{} / {}",
            optional(&w.plain, "rows_per_call"),
            optional(&w.plain, "peak_rss_mib")
        ),
        format!(
            "{} / {}",
            optional(&i.plain, "rows_per_call"),
            optional(&i.plain, "peak_rss_mib")
        ),
        "same".into(),
    ]));
    let largest = w.cpu.plain_body.max(w.cpu.transcript_body);
    let _ = writeln!(
        out,
        "\nScenarios are chosen by server, method and body, nearest Cloud Run's concurrency ({}) \
         in connections; a figure is the median of the scenario's rounds (the A/B's `-rN`), one \
         round swinging by ±15 % on a shared machine. CPU per push at other sizes lies on the \
         line through the two writes, in push-body bytes ({} per KB with `storage_write`); the \
         67 KB transcript's push is {:.0}× the largest body measured, so its CPU is an \
         extrapolation. to-gcs is not in bench-load: storing is costed as writing a row of that \
         size, skipping as sub-v2's skip, scaled along the same line; its log lines as to-bq's \
         write and sub-v2's skip.\n",
        c.run.concurrency,
        micros(w.cpu.slope() * 1000.0),
        r.kinds
            .iter()
            .map(|k| k.events[0].body_bytes)
            .fold(0.0, f64::max)
            / largest,
    );

    // Cloud Run model.
    let cpu_terms = r
        .kinds
        .iter()
        .take(3)
        .map(|k| {
            format!(
                "{} {}",
                k.title,
                duration(c.cpu_term(w.cpu.write(k.events[0].body_bytes)))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let heaviest = r
        .kinds
        .iter()
        .flat_map(|k| k.events.iter().map(|e| w.cpu.write(e.body_bytes)))
        .fold(0.0, f64::max);
    let verdict = if c.concurrency_term() > c.cpu_term(heaviest) {
        "The concurrency term binds for every event here: the measured CPU is not what we pay for."
    } else {
        "The CPU term binds for the larger events."
    };
    let _ = writeln!(
        out,
        "Cloud Run, from `terraform/variables.tf`: {} vCPU, {} ({:.2} GiB), concurrency {}, \
         request-based billing. Instance-seconds per push = max(CPU ÷ ({} vCPU × {:.0} % target), \
         time in flight ÷ ({} × {:.0} % target)). CPU term (writing): {cpu_terms}; concurrency \
         term: {} s ÷ {:.0} = {} (time in flight is an estimate, not measured). {} The CPU \
         term takes over above {} of CPU per push.\n",
        c.run.vcpus,
        c.run.memory_text,
        c.run.memory_gib,
        c.run.concurrency,
        c.run.vcpus,
        c.a.cpu_utilisation * 100.0,
        c.run.concurrency,
        c.a.concurrency_utilisation * 100.0,
        c.a.in_flight_seconds,
        c.run.concurrency * c.a.concurrency_utilisation,
        duration(c.concurrency_term()),
        verdict,
        duration(c.concurrency_term() * c.run.vcpus * c.a.cpu_utilisation),
    );

    // Per-kind tables.
    let ours_w: Vec<Usage> = r
        .kinds
        .iter()
        .map(|k| kind_usage(k, |e| ours(e, w, c)))
        .collect();
    let ours_i: Vec<Usage> = r
        .kinds
        .iter()
        .map(|k| kind_usage(k, |e| ours(e, i, c)))
        .collect();
    let alt_a: Vec<Usage> = r
        .kinds
        .iter()
        .map(|k| kind_usage(k, |e| option_a(e, c)))
        .collect();
    let alt_b: Vec<Usage> = r
        .kinds
        .iter()
        .map(|k| kind_usage(k, |e| option_b(e, i, c)))
        .collect();
    out.push_str("### Per million events, at high volume (no free tiers)\n\n");
    cost_table(
        &mut out,
        "Ours, Storage Write API (the default)",
        &r.kinds,
        &ours_w,
        c,
    );
    // insertAll: only the lines that differ for some kind (the same lines in every column).
    let differs = |i: usize| {
        ours_i
            .iter()
            .zip(&ours_w)
            .any(|(u, base)| u.lines.get(i) != base.lines.get(i))
    };
    let kept: Vec<usize> = (0..ours_i.first().map_or(0, |u| u.lines.len()))
        .filter(|&i| differs(i))
        .collect();
    let mut differing = ours_i.clone();
    for u in &mut differing {
        u.lines = kept
            .iter()
            .filter_map(|&i| u.lines.get(i).cloned())
            .collect();
    }
    lines_table(
        &mut out,
        "**Ours with `BIGQUERY_WRITE_METHOD=insert_all`**: the lines that differ, and the total:",
        &r.kinds,
        &differing,
        &ours_i,
        c,
    );
    cost_table(
        &mut out,
        "(a) Pub/Sub BigQuery subscription + JavaScript SMT, Cloud Storage subscription + SMT",
        &r.kinds,
        &alt_a,
        c,
    );
    cost_table(
        &mut out,
        "(b) Dataflow \"Pub/Sub to BigQuery\" template with its UDF, without its worker (below); \
         Cloud Storage as in (a)",
        &r.kinds,
        &alt_b,
        c,
    );

    // Summary.
    out.push_str("**Totals**, USD per million events, at high volume:\n\n");
    let mut head = vec![String::new()];
    head.extend(r.kinds.iter().map(|k| k.title.clone()));
    out.push_str(&header(&head));
    for (label, usages) in [
        ("ours, Storage Write API", &ours_w),
        ("ours, insertAll", &ours_i),
        ("(a) subscriptions + SMTs", &alt_a),
        ("(b) Dataflow, without the worker", &alt_b),
    ] {
        let mut cells = vec![label.to_string()];
        cells.extend(usages.iter().map(|u| usd(per_million(u, c))));
        out.push_str(&row(&cells));
    }
    out.push('\n');

    // By volume.
    let workers =
        c.a.workers
            .iter()
            .map(|wk| (wk, c.dataflow_monthly(wk)))
            .collect::<Vec<_>>();
    let _ = writeln!(
        out,
        "### By monthly volume\n\n(b)'s one always-on worker, {} h a month:\n{}",
        c.a.hours_per_month,
        workers
            .iter()
            .map(|(wk, cost)| format!("- {}: {} a month. {}\n", wk.name, usd(*cost), wk.note))
            .collect::<String>(),
    );
    for (k, label) in [
        (r.kinds.len() - 1, "the mix"),
        (0, "every event plain (the bulk of real traffic)"),
    ] {
        let _ = writeln!(
            out,
            "USD per million events, {label}; in brackets with this bill's free tiers taken off \
             (nothing else in the billing account or project using them):\n"
        );
        let mut head = vec!["events a month".to_string()];
        head.extend(
            [
                "ours, Storage Write",
                "ours, insertAll",
                "(a) subscriptions + SMTs",
            ]
            .map(String::from),
        );
        head.extend(workers.iter().map(|(wk, _)| format!("(b) {}", wk.name)));
        out.push_str(&header(&head));
        for &v in &c.a.volumes {
            let millions = v / MILLION;
            let cell = |u: &Usage, fixed: f64| {
                format!(
                    "{} ({})",
                    usd(monthly(u, v, false, fixed, c) / millions),
                    usd(monthly(u, v, true, fixed, c) / millions)
                )
            };
            let mut cells = vec![format!("{} M", thousands(millions))];
            cells.push(cell(&ours_w[k], 0.0));
            cells.push(cell(&ours_i[k], 0.0));
            cells.push(cell(&alt_a[k], 0.0));
            cells.extend(workers.iter().map(|(_, f)| cell(&alt_b[k], *f)));
            out.push_str(&row(&cells));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "At a volume, ours adds the Cloud Run time an instance has any push in flight (each busy \
         interval at least {} s): that, not CPU, is most of ours at low volume.\n",
        c.p.run_granularity
    );

    // Free tiers and notes.
    let free = |sku: Sku| c.p.free(sku);
    let _ = writeln!(
        out,
        "**Free tiers** (monthly; only in brackets above): Pub/Sub {} GiB of throughput (not the \
         BigQuery or Cloud Storage subscriptions'); Cloud Run {} requests, {} vCPU-s, {} GiB-s; \
         Cloud Logging {} GiB per project; BigQuery Storage Write API {} TiB, insertAll none; \
         Cloud Storage {} Class A operations and {} GiB-months (regional US buckets only); \
         Dataflow none.\n",
        free(Sku::PubsubThroughput) / GIB,
        thousands(free(Sku::RunRequests)),
        thousands(free(Sku::RunVcpuSeconds)),
        thousands(free(Sku::RunGibSeconds)),
        free(Sku::Logging) / GIB,
        free(Sku::BigQueryStorageWrite) / TIB,
        thousands(free(Sku::GcsClassA)),
        free(Sku::GcsStorage) / GIB,
    );
    let cpu_only = r
        .kinds
        .iter()
        .map(|k| {
            let cost = k
                .events
                .iter()
                .map(|e| {
                    pushes(e)
                        .iter()
                        .map(|(_, a)| {
                            let cpu = push_cpu(w, *a, e.body_bytes);
                            cpu * c.p.price(Sku::RunVcpuSeconds)
                                + c.run.memory_gib * cpu / c.run.vcpus
                                    * c.p.price(Sku::RunGibSeconds)
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / k.events.len() as f64;
            format!("{} {}", k.title, usd(cost * MILLION))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "Cloud Run compute billed on the measured CPU alone (vCPU-s = CPU-s, GiB-s = memory × \
         CPU-s ÷ vCPUs: a floor no autoscaler reaches), per million: {cpu_only}. Cloud Storage \
         objects live {:.0} days (`transcript_retention_days`): their lifetime storage is {:.0}× \
         the line above. Pub/Sub keeps acked messages {:.0} days (`replay_window`) on each \
         subscription that delivered them.",
        c.run.retention_days,
        c.run.retention_days * 24.0 / c.a.hours_per_month,
        c.run.replay_days
    );
    let _ = writeln!(
        out,
        "\n### List prices used\n\nFrom `{}`; \"as stored; re-check\" marks a figure \
         taken from a third party's copy of Google's page.\n\n{}",
        r.prices_path, r.price_list
    );
    out
}

/// The `prices` of prices.json as a table: what, value and unit, page and date, how good.
fn price_list(doc: &Value) -> String {
    let mut out = header(&["price", "value", "page (read)", "source"].map(String::from));
    let empty = serde_json::Map::new();
    for (key, p) in doc["prices"].as_object().unwrap_or(&empty) {
        let text = |k: &str| p[k].as_str().unwrap_or("").to_string();
        let mut value = format!("{} {}", p["value"], text("unit"));
        if let Some(f) = p.get("free_tier") {
            let _ = write!(
                value,
                "; free: {} {}",
                f["value"],
                f["unit"].as_str().unwrap_or("")
            );
        }
        out.push_str(&row(&[
            format!("`{key}`"),
            value,
            format!("[{}]({}) ({})", text("page"), text("url"), text("read")),
            text("source"),
        ]));
    }
    out
}

/// `doc` with what lies between the markers replaced by `generated`.
fn rewrite(doc: &str, generated: &str) -> Result<String, String> {
    let begin = doc
        .find(BEGIN)
        .ok_or_else(|| format!("no `{BEGIN}` marker"))?
        + BEGIN.len();
    let end = begin
        + doc[begin..]
            .find(END)
            .ok_or_else(|| format!("no `{END}` marker after `{BEGIN}`"))?;
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..begin],
        generated.trim_end(),
        &doc[end..]
    ))
}

// --- Command line --------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `path` relative to the repository when it lies inside it (so the generated text is the same
/// wherever it is run from).
fn shown(path: &Path) -> String {
    match (path.canonicalize(), repo_root().canonicalize()) {
        (Ok(p), Ok(root)) => p
            .strip_prefix(&root)
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string()),
        _ => path.display().to_string(),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut positional = Vec::new();
    let mut write = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--write" => write = Some(it.next().ok_or("--write needs a file")?.clone()),
            "-h" | "--help" => return Err(String::new()),
            _ => positional.push(a.clone()),
        }
    }
    let (measured_path, prices_path) = match positional.as_slice() {
        [m] => (PathBuf::from(m), repo_root().join("bench/cost/prices.json")),
        [m, p] => (PathBuf::from(m), PathBuf::from(p)),
        _ => return Err(String::new()),
    };
    let root = repo_root();
    let prices_doc = read_json(&prices_path)?;
    let (prices, assumptions) = load_prices(&prices_doc)?;
    let tf = root.join("terraform/variables.tf");
    let run =
        run_config(&std::fs::read_to_string(&tf).map_err(|e| format!("{}: {e}", tf.display()))?)?;
    let measured = parse_measured(&read_json(&measured_path)?)?;
    let samples = load_samples(&root.join("samples"))?;
    let kinds = kinds(&samples, assumptions.message_id_bytes)?;
    let base = |name: &str| {
        samples
            .iter()
            .find(|s| s.file == name)
            .map(|s| go_json(&redacted(&s.data)).len() as f64)
            .ok_or_else(|| format!("samples/{name} is missing"))
    };
    let (plain_redacted, transcript_redacted) = (
        base("licensed-search-viewed.json")?,
        base("dotcom-chat-prompt-transcript.json")?,
    );
    let write_m = measures(
        &measured,
        "storage_write",
        run.concurrency,
        plain_redacted,
        transcript_redacted,
    )?;
    let insert_m = measures(
        &measured,
        "insert_all",
        run.concurrency,
        plain_redacted,
        transcript_redacted,
    )?;
    let report = Report {
        measured: &measured,
        price_list: price_list(&prices_doc),
        measured_path: shown(&measured_path),
        prices_path: shown(&prices_path),
        kinds,
        write: write_m,
        insert: insert_m,
        ctx: Ctx {
            p: prices,
            a: assumptions,
            run,
        },
    };
    let text = render(&report);
    match write {
        None => print!("{text}"),
        Some(file) => {
            let doc = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
            let new = rewrite(&doc, &text).map_err(|e| format!("{file}: {e}"))?;
            std::fs::write(&file, new).map_err(|e| format!("{file}: {e}"))?;
            eprintln!("cost: rewrote the tables in {file}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => {
            eprintln!(
                "usage: cost MEASURED_JSON [PRICES_JSON] [--write FILE]\n  \
                 MEASURED_JSON: target/bench-load/measured.json (scripts/bench-load.sh)\n  \
                 PRICES_JSON:   default bench/cost/prices.json\n  \
                 --write FILE:  replace the text between {BEGIN} and {END} in FILE"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("cost: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round prices: $1 per TiB of Pub/Sub, $1 per vCPU-second, and so on, so that each expected
    /// figure below can be worked out by hand.
    fn ctx() -> Ctx {
        use Sku::*;
        let unit = BTreeMap::from([
            (PubsubThroughput, 40.0 / TIB),
            (PubsubStorage, 0.0),
            (PubsubBigQuerySub, 50.0 / TIB),
            (PubsubStorageSub, 50.0 / TIB),
            (PubsubSmt, 40.0 / TIB),
            (RunRequests, 0.40 / MILLION),
            (RunVcpuSeconds, 0.000024),
            (RunGibSeconds, 0.0000025),
            (Logging, 0.50 / GIB),
            (BigQueryStorageWrite, 0.025 / GIB),
            (BigQueryInsertAll, 0.01 / (200.0 * MIB)),
            (GcsClassA, 0.005 / 1000.0),
            (GcsStorage, 0.02 / GIB),
        ]);
        let free = BTreeMap::from([
            (PubsubThroughput, 10.0 * GIB),
            (BigQueryStorageWrite, 2048.0 * GIB),
            (RunRequests, 2e6),
        ]);
        Ctx {
            p: Prices {
                read: "test".into(),
                unit,
                free,
                pubsub_minimum: 1000.0,
                row_minimum: 1024.0,
                run_granularity: 0.1,
                dataflow_vcpu_hour: 0.069,
                dataflow_memory_gb_hour: 0.003557,
                dataflow_disk_gb_hour: 0.000054,
            },
            a: Assumptions {
                hours_per_month: 730.0,
                volumes: vec![1e7],
                message_id_bytes: 16.0,
                publish_messages_per_request: 1.0,
                cpu_utilisation: 0.5,
                concurrency_utilisation: 0.5,
                in_flight_seconds: 0.05,
                entry_metadata_bytes: 0.0,
                request_log_bytes: 0.0,
                gcs_months: 1.0,
                workers: vec![],
            },
            run: RunConfig {
                concurrency: 10.0,
                vcpus: 1.0,
                memory_gib: 0.5,
                memory_text: "512Mi".into(),
                replay_days: 0.0,
                retention_days: 365.0,
                request_log_excluded: false,
            },
        }
    }

    fn measures_fixture(method: &'static str) -> Measures {
        let s = Scenario {
            index: 0,
            label: "x".into(),
            server: "sub-v2".into(),
            method: method.into(),
            body: "plain".into(),
            client: String::new(),
            numbers: BTreeMap::new(),
        };
        Measures {
            method,
            plain: s.clone(),
            transcript: s.clone(),
            skip: s,
            // 100 µs at 1,000 B, 200 µs at 11,000 B: 10 µs per 1,000 B.
            cpu: CpuLine {
                plain_body: 1000.0,
                plain_cpu: 100e-6,
                transcript_body: 11_000.0,
                transcript_cpu: 200e-6,
                skip_body: 11_000.0,
                skip_cpu: 50e-6,
            },
            rows: RowModel {
                plain_wire: 300.0,
                plain_redacted: 700.0,
                transcript_wire: 900.0,
                transcript_redacted: 1200.0,
            },
            log: LogModel {
                sub_v2_write: 500.0,
                to_bq_write: 600.0,
                skip: 400.0,
            },
        }
    }

    /// A 500 B message that only sub-v2's subscription lets through.
    fn small_plain() -> Event {
        Event {
            name: "plain".into(),
            data_bytes: 400.0,
            attribute_bytes: 64.0,
            message_bytes: 500.0,
            body_bytes: 1000.0,
            redacted_bytes: 700.0,
            has_private_metadata: false,
            to_bq: false,
            to_gcs: false,
            gcs_object: false,
        }
    }

    fn qty(u: &Usage, label: &str) -> f64 {
        u.lines
            .iter()
            .find(|l| l.label == label)
            .unwrap_or_else(|| panic!("no line {label}"))
            .qty
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{a} is not {b}");
    }

    #[test]
    fn pushed_messages_pay_the_1000_byte_minimum_filtered_ones_their_size() {
        let c = ctx();
        let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
        assert_eq!(qty(&u, "Pub/Sub: sub-v2 subscription"), 1000.0);
        assert_eq!(qty(&u, "Pub/Sub: to-bq subscription"), 500.0);
        assert_eq!(qty(&u, "Pub/Sub: to-gcs subscription"), 500.0);
        // One message per publish request: the minimum applies there too.
        assert_eq!(qty(&u, "Pub/Sub: publish"), 1000.0);
        // 3,000 B per event at $40 per TiB, per million events.
        close(
            u.lines[..4].iter().map(|l| line_cost(l, &c)).sum::<f64>() * MILLION,
            3000.0 * MILLION * 40.0 / TIB,
        );
        // Batched publishing (10 per request) leaves the message at its own size.
        let mut c = ctx();
        c.a.publish_messages_per_request = 10.0;
        let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
        assert_eq!(qty(&u, "Pub/Sub: publish"), 500.0);
    }

    #[test]
    fn insert_all_rows_pay_the_1_kb_minimum_storage_write_its_bytes_and_no_free_tier() {
        let c = ctx();
        let e = small_plain();
        let insert = ours(&e, &measures_fixture("insert_all"), &c);
        assert_eq!(
            qty(&insert, "BigQuery: insertAll (1 KB minimum per row)"),
            1024.0
        );
        let write = ours(&e, &measures_fixture("storage_write"), &c);
        assert_eq!(qty(&write, "BigQuery: Storage Write API"), 300.0);
        // Per million: 300 MB at $0.025 per GiB, although 2 TiB a month are free.
        let line = write
            .lines
            .iter()
            .find(|l| l.sku == Sku::BigQueryStorageWrite)
            .unwrap();
        close(line_cost(line, &c) * MILLION, 300.0 * MILLION / GIB * 0.025);
        // insertAll: 1,024 MB at $0.01 per 200 MiB.
        let line = insert
            .lines
            .iter()
            .find(|l| l.sku == Sku::BigQueryInsertAll)
            .unwrap();
        close(
            line_cost(line, &c) * MILLION,
            1024.0 * MILLION / (200.0 * MIB) * 0.01,
        );
    }

    #[test]
    fn free_tiers_only_in_the_monthly_figure_with_free() {
        let c = ctx();
        let u = Usage {
            lines: vec![line("w", "", Sku::BigQueryStorageWrite, 1000.0)],
            services: [Load::default(); 3],
        };
        // 1 M rows of 1,000 B: well inside the 2 TiB.
        close(monthly(&u, 1e6, false, 0.0, &c), 1e9 / GIB * 0.025);
        assert_eq!(monthly(&u, 1e6, true, 0.0, &c), 0.0);
        // 3 TiB a month: 1 TiB over.
        let v = 3.0 * TIB / 1000.0;
        close(monthly(&u, v, true, 0.0, &c), 1024.0 * 0.025);
    }

    #[test]
    fn a_fixed_cost_is_divided_by_the_volume() {
        let c = ctx();
        let worker = Worker {
            name: "w".into(),
            vcpus: 4.0,
            memory_gb: 15.0,
            disk_gb: 400.0,
            note: String::new(),
        };
        // 730 h × (4 × 0.069 + 15 × 0.003557 + 400 × 0.000054) = 256.2235.
        let fixed = c.dataflow_monthly(&worker);
        close(fixed, 730.0 * (0.276 + 0.053355 + 0.0216));
        let nothing = Usage {
            lines: vec![],
            services: [Load::default(); 3],
        };
        for volume in [1e7, 1e8, 1e9] {
            close(
                monthly(&nothing, volume, false, fixed, &c) / (volume / MILLION),
                fixed * MILLION / volume,
            );
        }
    }

    #[test]
    fn cpu_scales_linearly_in_body_bytes_and_the_skip_along_the_line() {
        let m = measures_fixture("storage_write");
        close(m.cpu.write(1000.0), 100e-6);
        close(m.cpu.write(6000.0), 150e-6);
        close(m.cpu.write(101_000.0), 1100e-6);
        // The skip is a quarter of the write at 11,000 B, so a quarter at any size.
        close(m.cpu.skip(11_000.0), 50e-6);
        close(m.cpu.skip(101_000.0), 275e-6);
        // A noisy measurement with the larger body cheaper does not make CPU fall with size.
        let flat = CpuLine {
            transcript_cpu: 90e-6,
            ..m.cpu
        };
        close(flat.write(101_000.0), 100e-6);
    }

    #[test]
    fn cloud_run_pays_the_larger_of_cpu_and_concurrency_and_idle_time_at_low_volume() {
        let c = ctx();
        // Concurrency term: 0.05 s ÷ (10 × 50 %) = 10 ms; CPU term: 100 µs ÷ 50 % = 200 µs.
        close(c.instance_seconds(100e-6), 0.01);
        close(c.instance_seconds(0.02), 0.04);
        let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
        close(qty(&u, "Cloud Run: vCPU-seconds"), 0.01);
        close(qty(&u, "Cloud Run: GiB-seconds"), 0.005);
        assert_eq!(u.services[2].pushes, 1.0);
        // One push a month: billed at least the 100 ms rounding, not the 10 ms steady figure.
        let compute = Usage {
            lines: vec![],
            ..u.clone()
        };
        let month = monthly(&compute, 1.0, false, 0.0, &c);
        let expected = 730.0 * 3600.0 * (1.0 - (-0.1 / (730.0 * 3600.0_f64)).exp());
        close(month, expected * (0.000024 + 0.5 * 0.0000025));
        assert!((expected - 0.1).abs() < 1e-6);
    }

    #[test]
    fn a_transcript_is_pushed_twice_and_stored_once() {
        let c = ctx();
        let e = Event {
            to_bq: true,
            to_gcs: true,
            gcs_object: true,
            data_bytes: 5000.0,
            message_bytes: 5200.0,
            body_bytes: 11_000.0,
            redacted_bytes: 1300.0,
            has_private_metadata: true,
            ..small_plain()
        };
        let u = ours(&e, &measures_fixture("storage_write"), &c);
        assert_eq!(qty(&u, "Cloud Run: requests"), 2.0);
        assert_eq!(qty(&u, "Cloud Logging: our line per push"), 1200.0);
        assert_eq!(
            qty(&u, "Cloud Storage: Class A (one object per transcript)"),
            1.0
        );
        assert_eq!(qty(&u, "Cloud Storage: storage, 1 month"), 5000.0);
        assert_eq!(qty(&u, "Pub/Sub: sub-v2 subscription"), 5200.0);
        // The row: the measured transcript row plus 100 B more redacted event.
        assert_eq!(qty(&u, "BigQuery: Storage Write API"), 1000.0);
        // (a) processes every byte twice with an SMT and bills both export subscriptions.
        let a = option_a(&e, &c);
        close(
            per_million(&a, &c),
            5200.0 * MILLION * (40.0 + 50.0 + 40.0 + 50.0 + 40.0) / TIB
                + 5000.0 * MILLION * 0.02 / GIB,
        );
    }

    #[test]
    fn a_figure_is_the_median_of_its_rounds_and_other_clients_or_loads_are_not_rounds() {
        let scenario = |label: &str, client: &str, conns: u32, cpu: f64| {
            json!({"scenario": label, "server": "sub-v2", "method": "insert_all", "body": "plain",
                   "insert_client": client, "body_bytes": 1, "conns": conns, "latency_ms": 0,
                   "cpu_seconds_per_push": cpu, "log_bytes_per_push": 1,
                   "wire_bytes_per_row": null})
        };
        let doc = json!({"date": "d", "machine": "m", "load": 1, "scenarios": [
            scenario("r1", "direct", 64, 9.0),
            scenario("gcp", "gcp-bigquery-client", 64, 100.0),
            scenario("r2", "direct", 64, 1.0),
            scenario("c512", "direct", 512, 100.0),
            scenario("r3", "direct", 64, 3.0),
        ]});
        let m = parse_measured(&doc).unwrap();
        let s = pick_rounds(&m, "sub-v2", Some("insert_all"), "plain", 80.0).unwrap();
        assert_eq!(s.label, "r1 (median of 3 rounds)");
        assert_eq!(s.get("cpu_seconds_per_push"), Some(3.0));
        assert_eq!(s.get("wire_bytes_per_row"), None);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn a_missing_key_is_named() {
        let doc = json!({"date": "d", "machine": "m", "load": 1, "scenarios": [
            {"scenario": "s", "server": "sub-v2", "method": "storage_write", "body": "plain",
             "body_bytes": 1, "conns": 64, "latency_ms": 0, "cpu_seconds_per_push": 1,
             "log_bytes_per_push": 1}
        ]});
        let e = parse_measured(&doc).unwrap_err();
        assert!(
            e.contains("scenarios[0]") && e.contains("`wire_bytes_per_row`"),
            "{e}"
        );
        let e = parse_measured(&json!({"date": "d", "scenarios": []})).unwrap_err();
        assert!(e.contains("`machine`"), "{e}");
        let mut doc = doc;
        doc["scenarios"][0]["wire_bytes_per_row"] = Value::Null;
        let m = parse_measured(&doc).unwrap();
        let e = measures(&m, "storage_write", 80.0, 0.0, 0.0).unwrap_err();
        assert!(e.contains("to-bq"), "{e}");
        let e = m.scenarios[0].need("wire_bytes_per_row").unwrap_err();
        assert!(e.contains("`wire_bytes_per_row` null"), "{e}");
    }

    #[test]
    fn a_unit_changed_in_prices_json_is_refused() {
        let doc = json!({"prices": {"pubsub_throughput": {"value": 40, "unit": "USD per TB"}}});
        let e = list_price(&doc, "pubsub_throughput", "USD per TiB").unwrap_err();
        assert!(e.contains("USD per TB"), "{e}");
    }

    #[test]
    fn the_markers_are_rewritten_in_place() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\nend\n");
        let new = rewrite(&doc, "new table\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew table\n{END}\nend\n"));
        assert_eq!(rewrite(&new, "new table").unwrap(), new);
        assert!(rewrite("no markers", "x").is_err());
    }

    #[test]
    fn the_repository_files_parse() {
        let root = repo_root();
        let (p, a) =
            load_prices(&read_json(&root.join("bench/cost/prices.json")).unwrap()).unwrap();
        assert_eq!(p.pubsub_minimum, 1000.0);
        assert_eq!(a.workers.len(), 2);
        let run =
            run_config(&std::fs::read_to_string(root.join("terraform/variables.tf")).unwrap())
                .unwrap();
        assert!(run.concurrency >= 1.0 && run.vcpus >= 1.0 && run.memory_gib > 0.0);
        let samples = load_samples(&root.join("samples")).unwrap();
        let kinds = kinds(&samples, 16.0).unwrap();
        assert_eq!(kinds.len(), 4);
        // The padded transcripts are the 5.5 and 67 KB of the criterion corpus.
        assert!((5000.0..6000.0).contains(&kinds[1].events[0].data_bytes));
        assert!((60_000.0..70_000.0).contains(&kinds[2].events[0].data_bytes));
        // Redaction leaves the same event whatever the padding.
        assert_eq!(
            kinds[1].events[0].redacted_bytes,
            kinds[2].events[0].redacted_bytes
        );
        let measured =
            parse_measured(&read_json(&root.join("bench/cost/example-measured.json")).unwrap())
                .unwrap();
        assert!(measured.example);
        measures(&measured, "storage_write", run.concurrency, 0.0, 0.0).unwrap();
        measures(&measured, "insert_all", run.concurrency, 0.0, 0.0).unwrap();
    }

    #[test]
    fn money_is_printed_to_three_figures() {
        assert_eq!(usd(0.0), "–");
        assert_eq!(usd(0.036_38), "$0.0364");
        assert_eq!(usd(0.5), "$0.500");
        assert_eq!(usd(2.934), "$2.93");
        assert_eq!(usd(25.61), "$25.61");
        assert_eq!(usd(256.22), "$256");
        assert_eq!(usd(12_345.0), "$12,345");
    }
}
