//! Terraform's settings the bill depends on: the `default` of each variable in
//! `terraform/variables.tf`, read as HCL (the crate the Terraform tests use), and Google's
//! quotas from `terraform/quotas.json`, the file Terraform's guard reads.

use std::collections::BTreeMap;

use hcl::{Expression, Value};

use crate::SERVICES;

/// How Cloud Run bills a service (`billing_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Billing {
    /// Billed while a request is in flight, plus a fee per request.
    Request,
    /// Billed for each instance's whole life at lower rates, no request fee.
    Instance,
}

impl Billing {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Billing::Request => "request",
            Billing::Instance => "instance",
        }
    }
}

/// Where the replay window's messages are kept (`replay_retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retention {
    /// Each push subscription keeps the messages it delivered, acked or not.
    Subscription,
    /// The topic keeps every message once.
    Topic,
}

impl Retention {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Retention::Subscription => "subscription",
            Retention::Topic => "topic",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
    pub(crate) concurrency: f64,
    pub(crate) vcpus: f64,
    pub(crate) memory_gib: f64,
    pub(crate) memory_text: String,
    /// How long the replay window keeps messages (`replay_window`), days.
    pub(crate) replay_days: f64,
    /// Where it keeps them (`replay_retention`).
    pub(crate) replay_retention: Retention,
    /// Lifecycle of the transcript objects (`transcript_retention_days`), days.
    pub(crate) retention_days: f64,
    /// Whether Cloud Run's request log of a successful push is kept out of Cloud Logging
    /// (`exclude_successful_request_logs`): then no push in the model pays for it.
    pub(crate) request_log_excluded: bool,
    /// The fraction of the success outcome lines kept in Cloud Logging
    /// (`success_log_sample_percent` ÷ 100); the rest are excluded from ingestion.
    pub(crate) success_log_kept: f64,
    /// Terraform's billing mode per service, in [`SERVICES`] order (`billing_mode`).
    pub(crate) billing: [Billing; 3],
    pub(crate) min_instances: f64,
    pub(crate) max_instances: f64,
    /// The BigQuery dataset's location (`dataset_location`).
    pub(crate) dataset_location: String,
    /// `storage_write_connection_quota`, when set (otherwise Google's default, from quotas.json).
    pub(crate) connection_quota: Option<f64>,
}

/// The defaults of the variables of a Terraform file.
fn defaults(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let body = hcl::parse(text).map_err(|e| format!("terraform/variables.tf: {e}"))?;
    let mut out = BTreeMap::new();
    for block in body.blocks().filter(|b| b.identifier() == "variable") {
        let Some(name) = block.labels().first().map(|l| l.as_str().to_string()) else {
            continue;
        };
        if let Some(a) = block.body().attributes().find(|a| a.key() == "default") {
            out.insert(name, Value::from(Expression::clone(a.expr())));
        }
    }
    Ok(out)
}

struct Defaults(BTreeMap<String, Value>);

impl Defaults {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.0
            .get(name)
            .ok_or_else(|| format!("terraform/variables.tf: `{name}` has no default"))
    }

    fn number(&self, name: &str) -> Result<f64, String> {
        match self.get(name)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("terraform/variables.tf: `{name}`'s default is not a number"))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            v => Err(format!(
                "terraform/variables.tf: `{name}`'s default is not a string: {v}"
            )),
        }
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name)? {
            Value::Bool(b) => Ok(*b),
            v => Err(format!(
                "terraform/variables.tf: `{name}`'s default is not a bool: {v}"
            )),
        }
    }
}

/// The settings the model reads, from the text of `terraform/variables.tf`.
pub(crate) fn run_config(text: &str) -> Result<RunConfig, String> {
    let d = Defaults(defaults(text)?);
    let memory_text = d.string("memory")?;
    let bad = || format!("terraform/variables.tf: memory `{memory_text}` is neither Mi nor Gi");
    let memory_gib = match (
        memory_text.strip_suffix("Mi"),
        memory_text.strip_suffix("Gi"),
    ) {
        (Some(mi), _) => mi.parse::<f64>().map_err(|_| bad())? / 1024.0,
        (_, Some(gi)) => gi.parse::<f64>().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let replay = d.string("replay_window")?;
    let replay_seconds: f64 = replay
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("terraform/variables.tf: replay_window `{replay}` is not seconds"))?;
    let replay_retention = match d.string("replay_retention")?.as_str() {
        "subscription" => Retention::Subscription,
        "topic" => Retention::Topic,
        other => {
            return Err(format!(
                "terraform/variables.tf: replay_retention `{other}`"
            ));
        }
    };
    let modes = match d.get("billing_mode")? {
        Value::Object(m) => m.clone(),
        v => {
            return Err(format!(
                "terraform/variables.tf: billing_mode is not a map: {v}"
            ));
        }
    };
    let mut billing = [Billing::Request; 3];
    for (i, service) in SERVICES.iter().enumerate() {
        billing[i] = match modes.get(*service).and_then(Value::as_str) {
            Some("request") => Billing::Request,
            Some("instance") => Billing::Instance,
            other => {
                return Err(format!(
                    "terraform/variables.tf: billing_mode of {service} is {other:?}"
                ));
            }
        };
    }
    let connection_quota = match d.get("storage_write_connection_quota")? {
        Value::Null => None,
        _ => Some(d.number("storage_write_connection_quota")?),
    };
    let percent = d.number("success_log_sample_percent")?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!(
            "terraform/variables.tf: success_log_sample_percent {percent} is not 0-100"
        ));
    }
    Ok(RunConfig {
        concurrency: d.number("concurrency")?,
        vcpus: d.number("cpu")?,
        memory_gib,
        memory_text,
        replay_days: replay_seconds / 86_400.0,
        replay_retention,
        retention_days: d.number("transcript_retention_days")?,
        request_log_excluded: d.bool("exclude_successful_request_logs")?,
        success_log_kept: percent / 100.0,
        billing,
        min_instances: d.number("min_instances")?,
        max_instances: d.number("max_instances")?,
        dataset_location: d.string("dataset_location")?,
        connection_quota,
    })
}
