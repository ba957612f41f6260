//! `terraform/`'s settings that move the bill (docs/cost.md), checked offline by evaluating the
//! module's own expressions with chosen variables, each check also run on a planted break:
//!
//! 1. The success lines' exclusion: the services' real outcome lines, one per label, with and
//!    without a routing mismatch, go through the exclusion's evaluated filter; only a success
//!    without a mismatch is sampled out, everything else is kept. The log-based metrics stay
//!    project-level (a bucket-scoped metric would count only what is stored).
//! 2. The billing mode: Cloud Run's CPU throttling follows `billing_mode`, and what Cloud Run
//!    refuses with instance-based billing Terraform refuses first.
//! 3. The replay window kept on the subscriptions or on the topic: exactly one of them keeps the
//!    messages, for `replay_window`, and an existing topic must already keep them that long.
//! 4. The Storage Write connection quota: `max_instances` is refused once the BigQuery services'
//!    connections (`CONNECTIONS` per instance, from the code) exceed it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use e2e::emulators::repo_root;
use e2e::terraform::{Module, attr, block, conditions, expr, holds, load_module, string_list};
use hcl::Value;
use hcl::eval::Evaluate;
use pipeline::outcome::{Label, Outcome, Report, Summary, TraceFields};

// --- 1. Success lines ----------------------------------------------------------------------------

/// One log entry as Cloud Logging stores it, with what the exclusion filter reads.
#[derive(Debug, Clone)]
struct Entry {
    resource_type: String,
    log_id: String,
    service_name: String,
    /// The JSON line as the service wrote it (`jsonPayload`, with `severity` lifted out of it).
    line: serde_json::Value,
}

impl Entry {
    fn field(&self, path: &str) -> Option<String> {
        let value = match path {
            "resource.type" => return Some(self.resource_type.clone()),
            "resource.labels.service_name" => return Some(self.service_name.clone()),
            "severity" => self.line.get("severity"),
            _ => {
                let key = path.strip_prefix("jsonPayload.")?;
                self.line.get(key)
            }
        }?;
        Some(
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
        )
    }
}

/// The fraction of entries like `e` that `filter` matches: 0 or 1, or the fraction of a
/// `sample(insertId, F)` clause. Only the clause forms the module uses are understood (`FIELD =
/// VALUE`, `FIELD = (V OR V …)`, `log_id("…")`, `sample(insertId, F)`, joined by AND); any other
/// is an error, so a filter this cannot read fails the test instead of passing it.
fn matched(filter: &str, e: &Entry) -> Result<f64> {
    let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
    let mut fraction = 1.0;
    for clause in filter.split(" AND ") {
        let clause = clause.trim();
        if let Some(id) = clause
            .strip_prefix("log_id(")
            .and_then(|r| r.strip_suffix(')'))
        {
            fraction *= f64::from(u8::from(unquote(id) == e.log_id));
        } else if let Some(f) = clause
            .strip_prefix("sample(insertId, ")
            .and_then(|r| r.strip_suffix(')'))
        {
            let f: f64 = f.trim().parse().with_context(|| clause.to_string())?;
            ensure!((0.0..=1.0).contains(&f), "{clause}: not a fraction");
            fraction *= f;
        } else if let Some((field, value)) = clause.split_once(" = ") {
            let value = value.trim();
            let wanted: Vec<String> = match value.strip_prefix('(') {
                Some(list) => list
                    .strip_suffix(')')
                    .with_context(|| format!("unclosed list in {clause}"))?
                    .split(" OR ")
                    .map(unquote)
                    .collect(),
                None => vec![unquote(value)],
            };
            // A missing field matches nothing (Cloud Logging's comparison of an absent field).
            let found = e.field(field.trim());
            fraction *= f64::from(u8::from(found.is_some_and(|f| wanted.contains(&f))));
        } else {
            bail!("a clause this check cannot read: {clause}");
        }
    }
    Ok(fraction)
}

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A report whose verdict is `label`. The match names every label: a new one needs a case here.
fn report_of(label: Label, mismatch: bool) -> Report {
    use pipeline::failure::{Failure, FailureKind};
    let (result, dead_letter) = match label {
        Label::Written => (Ok(Outcome::Written { target: "t".into() }), None),
        Label::AlreadyStored => (Ok(Outcome::AlreadyStored { target: "t".into() }), None),
        Label::Skipped => (
            Ok(Outcome::Skipped {
                reason: "no_flag".into(),
            }),
            None,
        ),
        Label::DeadLettered => (
            Err(Failure::malformed("invalid_json", "x")),
            Some(Ok("7".into())),
        ),
        Label::Rejected => (Err(Failure::malformed("invalid_json", "x")), None),
        Label::Retry => (
            Err(Failure::new(
                FailureKind::Transient,
                "sink_unavailable",
                "x",
            )),
            None,
        ),
        Label::Unauthorized => (
            Err(Failure::new(FailureKind::Unauthorized, "no_token", "x")),
            None,
        ),
    };
    Report {
        result,
        summary: Summary {
            message_id: Some("1".into()),
            mismatches: if mismatch {
                vec!["event.recordsPrivateMetadataTranscript"]
            } else {
                vec![]
            },
            ..Summary::default()
        },
        dead_letter,
    }
}

/// The service's own outcome line for `label`, as tracing-stackdriver writes it in production.
fn outcome_line(service: &str, label: Label, mismatch: bool) -> Result<serde_json::Value> {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_stackdriver::layer()
            .with_writer(pipeline::logging::CloudLogging(move || writer.clone())),
    );
    let report = report_of(label, mismatch);
    ensure!(
        report.verdict().label == label,
        "{label}: built the wrong report"
    );
    tracing::subscriber::with_default(subscriber, || {
        pipeline::outcome::log(
            service,
            &report,
            &TraceFields::default(),
            Duration::from_millis(3),
        )
    });
    let text = lines.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(serde_json::from_slice(&text)?)
}

/// The services' Cloud Run names with the default prefix, as the filter's stand-in for
/// `google_cloud_run_v2_service.service`.
fn run_services() -> Value {
    let mut services = hcl::Map::new();
    for s in ["to-gcs", "to-bq", "sub-v2"] {
        services.insert(
            s.to_owned(),
            hcl::value!({ name = (format!("event-telemetry-{s}")) }),
        );
    }
    Value::Object(services)
}

/// The exclusion of `m` with `success_log_sample_percent = percent`: its evaluated filter, or
/// `None` when its count is 0.
fn success_exclusion(m: &Module, percent: f64) -> Result<Option<String>> {
    let resource = m.resource(
        "google_logging_project_exclusion",
        "successful_outcome_lines",
    )?;
    let mut ctx = m.context(
        &[("success_log_sample_percent", Value::from(percent))],
        &["success_outcomes"],
        None,
    )?;
    ctx.declare_var(
        "google_cloud_run_v2_service",
        hcl::value!({ service = (run_services()) }),
    );
    let count = expr(resource, "count")?
        .evaluate(&ctx)
        .map_err(|e| anyhow::anyhow!("evaluating count: {e}"))?;
    if count.as_u64() == Some(0) {
        return Ok(None);
    }
    ensure!(count.as_u64() == Some(1), "count = {count}");
    let filter = expr(resource, "filter")?
        .evaluate(&ctx)
        .map_err(|e| anyhow::anyhow!("evaluating the filter: {e}"))?;
    filter
        .as_str()
        .map(|f| Some(f.to_owned()))
        .context("the filter is not a string")
}

/// What the issue asks of the exclusion, on module `m`: the success outcomes are the code's,
/// and the filter takes out `1 - percent` of exactly the success lines without a mismatch and
/// nothing else (another log, another service, a failure, a mismatch), for 1 %, 0 % and 100 %.
fn check_success_exclusion(m: &Module) -> Result<()> {
    let successes: Vec<String> = Label::ALL
        .into_iter()
        .filter(|l| l.is_success())
        .map(|l| l.as_str().to_owned())
        .collect();
    let listed = string_list(&m.locals["success_outcomes"])?;
    ensure!(
        listed == successes,
        "terraform/monitoring.tf samples the lines of {listed:?}; the code's successes are \
         {successes:?} (Label::is_success)"
    );
    ensure!(
        success_exclusion(m, 100.0)?.is_none(),
        "keeping 100 % must create no exclusion"
    );
    for (percent, excluded) in [(1.0, 0.99), (0.0, 1.0), (50.0, 0.5)] {
        let filter = success_exclusion(m, percent)?.context("no exclusion")?;
        for service in ["to-gcs", "to-bq", "sub-v2"] {
            for label in Label::ALL {
                for mismatch in [false, true] {
                    let entry = Entry {
                        resource_type: "cloud_run_revision".into(),
                        log_id: "run.googleapis.com/stdout".into(),
                        service_name: format!("event-telemetry-{service}"),
                        line: outcome_line(service, label, mismatch)?,
                    };
                    let want = if label.is_success() && !mismatch {
                        excluded
                    } else {
                        0.0
                    };
                    let got = matched(&filter, &entry)?;
                    ensure!(
                        (got - want).abs() < 1e-9,
                        "{percent} % kept: a {service} `{label}` line (mismatch: {mismatch}) is \
                         excluded at {got}, want {want}; filter: {filter}"
                    );
                    // The same line from another service or in another log is never touched.
                    for other in [
                        Entry {
                            service_name: "someone-else".into(),
                            ..entry.clone()
                        },
                        Entry {
                            log_id: "run.googleapis.com/requests".into(),
                            ..entry.clone()
                        },
                    ] {
                        ensure!(matched(&filter, &other)? == 0.0, "{other:?} is excluded");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every log-based metric is project-level, so it counts the excluded lines too.
fn check_metrics_are_project_level(m: &Module) -> Result<()> {
    let metrics: Vec<_> = m
        .resources
        .iter()
        .filter(|((ty, _), _)| ty == "google_logging_metric")
        .collect();
    ensure!(metrics.len() >= 4, "{} log-based metrics", metrics.len());
    for ((_, name), body) in metrics {
        ensure!(
            attr(body, "bucket_name").is_err(),
            "google_logging_metric.{name} is bucket-scoped: it would count only the stored \
             lines, not the success lines the exclusion keeps out"
        );
    }
    Ok(())
}

/// `terraform/` with `file`'s text changed by `edit` (which must change it).
/// A planted break in `file` (`what` it breaks) that `check` must catch.
fn caught(
    check: fn(&Module) -> Result<()>,
    file: &str,
    what: &str,
    edit: impl Fn(&str) -> String,
) -> Result<()> {
    let broken = planted(file, edit)?;
    ensure!(
        check(&broken).is_err(),
        "a planted break in {file} passed: {what}"
    );
    Ok(())
}

fn planted(file: &str, edit: impl Fn(&str) -> String) -> Result<Module> {
    let dir = repo_root().join("terraform");
    let mut sources = Vec::new();
    let mut changed = false;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "tf") {
            continue;
        }
        let mut src = std::fs::read_to_string(&path)?;
        if path.file_name().is_some_and(|n| n == file) {
            let new = edit(&src);
            changed = new != src;
            src = new;
        }
        sources.push((path.display().to_string(), src));
    }
    ensure!(changed, "the planted edit of {file} changed nothing");
    Module::parse(&sources)
}

#[test]
fn only_a_sample_of_the_success_lines_is_excluded_and_every_metric_counts_them_all() -> Result<()> {
    let m = load_module()?;
    check_success_exclusion(&m)?;
    check_metrics_are_project_level(&m)?;
    let default = attr(m.variable("success_log_sample_percent")?, "default")?;
    ensure!(
        default == "1",
        "1 % of the success lines kept by default, not {default}"
    );

    // Planted: a failure outcome counted as a success, the mismatch clause dropped, a metric
    // scoped to a bucket.
    for (what, edit) in [
        (
            "retry sampled",
            (|s: &str| {
                s.replace(
                    r#""already_stored", "skipped"]"#,
                    r#""already_stored", "skipped", "retry"]"#,
                )
            }) as fn(&str) -> String,
        ),
        ("the mismatch clause dropped", |s: &str| {
            s.replace(r#"    "jsonPayload.routingMismatch = \"\"","#, "")
        }),
    ] {
        caught(check_success_exclusion, "monitoring.tf", what, edit)?;
    }
    caught(
        check_metrics_are_project_level,
        "monitoring.tf",
        "a metric scoped to a bucket",
        |s| {
            s.replacen(
                "  filter      = local.outcome_log_filter\n",
                "  filter      = local.outcome_log_filter\n  bucket_name = \"projects/p/locations/global/buckets/b\"\n",
                1,
            )
        },
    )?;
    Ok(())
}

// --- 2. Billing mode -----------------------------------------------------------------------------

/// The locals the Cloud Run service's preconditions read.
const RUN_LOCALS: [&str; 6] = [
    "services",
    "bigquery_services",
    "storage_write_connections_per_instance",
    "quotas",
    "storage_write_connection_quota",
    "memory_bytes",
];

fn billing(mode: &str) -> Value {
    hcl::value!({ "to-gcs" = (mode), "to-bq" = "request", "sub-v2" = (mode) })
}

/// `cpu_idle` follows the billing mode, the variable offers Cloud Run's two, and instance-based
/// billing below 512 MiB is refused.
fn check_billing_mode(m: &Module) -> Result<()> {
    let run = m.resource("google_cloud_run_v2_service", "service")?;
    let resources = block(block(block(run, "template")?, "containers")?, "resources")?;
    let cpu_idle = expr(resources, "cpu_idle")?;
    let guards = conditions(run, "precondition");
    let locals = RUN_LOCALS;
    for (mode, memory, accepted) in [
        ("request", "512Mi", true),
        ("instance", "512Mi", true),
        ("instance", "1Gi", true),
        ("request", "256Mi", true),
        ("instance", "256Mi", false),
    ] {
        for service in ["to-gcs", "sub-v2"] {
            let ctx = m.context(
                &[
                    ("billing_mode", billing(mode)),
                    ("memory", Value::from(memory)),
                ],
                &locals,
                Some(service),
            )?;
            let idle = holds(cpu_idle, &ctx)?;
            ensure!(
                idle == (mode == "request"),
                "{service} in {mode} billing has cpu_idle = {idle}"
            );
            let mut ok = true;
            for g in &guards {
                ok &= holds(g, &ctx)?;
            }
            ensure!(
                ok == accepted,
                "{mode} billing with {memory}: accepted {ok}, Cloud Run accepts {accepted}"
            );
        }
    }
    // The variable offers Cloud Run's two modes, for exactly the three services.
    let mode = |to_gcs: &str| billing(to_gcs);
    let mut extra = billing("request");
    if let Value::Object(map) = &mut extra {
        map.insert("audit".into(), Value::from("request"));
    }
    let mut missing = billing("request");
    if let Value::Object(map) = &mut missing {
        map.shift_remove("to-bq");
    }
    for (value, accepted) in [
        (mode("request"), true),
        (mode("instance"), true),
        (mode("always"), false),
        (extra, false),
        (missing, false),
    ] {
        let ok = validations_accept(m, "billing_mode", value.clone())?;
        ensure!(ok == accepted, "billing_mode {value}: accepted {ok}");
    }
    Ok(())
}

/// Whether every `validation` of variable `name` accepts `value`.
fn validations_accept(m: &Module, name: &str, value: Value) -> Result<bool> {
    let ctx = m.context(&[(name, value)], &[], None)?;
    let mut ok = true;
    for v in m
        .variable(name)?
        .blocks()
        .filter(|b| b.identifier() == "validation")
    {
        let condition = v
            .body()
            .attributes()
            .find(|a| a.key() == "condition")
            .context("a validation without a condition")?;
        ok &= holds(condition.expr(), &ctx)?;
    }
    Ok(ok)
}

/// The validations of the bill's other variables, on good and bad values.
fn check_variables(m: &Module) -> Result<()> {
    for (name, value, accepted) in [
        ("success_log_sample_percent", Value::from(0), true),
        ("success_log_sample_percent", Value::from(1), true),
        ("success_log_sample_percent", Value::from(100), true),
        ("success_log_sample_percent", Value::from(-1), false),
        ("success_log_sample_percent", Value::from(101), false),
        ("replay_retention", Value::from("subscription"), true),
        ("replay_retention", Value::from("topic"), true),
        ("replay_retention", Value::from("both"), false),
        ("storage_write_connection_quota", Value::from(4000), true),
        ("storage_write_connection_quota", Value::from(0), false),
        ("storage_write_connection_quota", Value::from(2.5), false),
    ] {
        let ok = validations_accept(m, name, value.clone())?;
        ensure!(
            ok == accepted,
            "{name} = {value}: accepted {ok}, want {accepted}"
        );
    }
    Ok(())
}

#[test]
fn the_new_variables_refuse_what_terraform_and_google_would() -> Result<()> {
    check_variables(&load_module()?)?;
    caught(
        check_variables,
        "variables.tf",
        "no upper bound on the sample",
        |s| {
            s.replace(
                "var.success_log_sample_percent >= 0 && var.success_log_sample_percent <= 100",
                "var.success_log_sample_percent >= 0",
            )
        },
    )?;
    caught(
        check_billing_mode,
        "variables.tf",
        "any billing mode",
        |s| s.replace(r#"contains(["request", "instance"], m)"#, "true"),
    )
}

#[test]
fn the_billing_mode_sets_cpu_throttling_and_refuses_what_cloud_run_refuses() -> Result<()> {
    check_billing_mode(&load_module()?)?;
    caught(check_billing_mode, "run.tf", "no memory guard", |s| {
        s.replace(
            r#"var.billing_mode[each.key] == "request" || local.memory_bytes >= 536870912"#,
            "true",
        )
    })?;
    caught(check_billing_mode, "run.tf", "cpu_idle fixed", |s| {
        s.replace(
            r#"cpu_idle          = var.billing_mode[each.key] == "request""#,
            "cpu_idle          = true",
        )
    })?;
    Ok(())
}

// --- 3. Replay retention -------------------------------------------------------------------------

/// Exactly one place keeps the replay window's messages, for `replay_window`; an existing topic
/// must already keep them as long.
fn check_replay_retention(m: &Module) -> Result<()> {
    let sub = m.resource("google_pubsub_subscription", "push")?;
    let topic = m.resource("google_pubsub_topic", "events")?;
    let existing = m.data_source("google_pubsub_topic", "events")?;
    ensure!(attr(sub, "message_retention_duration")? == "var.replay_window");
    let window = "604800s";
    for mode in ["subscription", "topic"] {
        let mut ctx = m.context(
            &[
                ("replay_retention", Value::from(mode)),
                ("replay_window", Value::from(window)),
            ],
            &[],
            None,
        )?;
        let acked = holds(expr(sub, "retain_acked_messages")?, &ctx)?;
        let topic_keeps = expr(topic, "message_retention_duration")?
            .evaluate(&ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match mode {
            "subscription" => ensure!(
                acked && topic_keeps.is_null(),
                "subscription retention: retain_acked_messages {acked}, topic {topic_keeps}"
            ),
            _ => ensure!(
                !acked && topic_keeps.as_str() == Some(window),
                "topic retention: retain_acked_messages {acked}, topic {topic_keeps}"
            ),
        }
        // An existing topic: its own retention must cover the window in topic mode.
        for (has, enough) in [
            ("", false),
            ("86400s", false),
            (window, true),
            ("2678400s", true),
        ] {
            ctx.declare_var("self", hcl::value!({ message_retention_duration = (has) }));
            let mut ok = true;
            for c in conditions(existing, "postcondition") {
                ok &= holds(c, &ctx)?;
            }
            let want = mode == "subscription" || enough;
            ensure!(
                ok == want,
                "{mode} retention on an existing topic keeping {has:?}: accepted {ok}, want {want}"
            );
        }
    }
    let variable = attr(m.variable("replay_retention")?, "default")?;
    ensure!(variable == r#""subscription""#, "default {variable}");
    Ok(())
}

#[test]
fn the_replay_window_is_kept_once_on_the_subscriptions_or_the_topic_and_a_seek_reads_it()
-> Result<()> {
    check_replay_retention(&load_module()?)?;
    caught(
        check_replay_retention,
        "pubsub.tf",
        "both keep the window",
        |s| {
            s.replace(
                r#"retain_acked_messages      = var.replay_retention == "subscription""#,
                "retain_acked_messages      = true",
            )
        },
    )?;
    caught(
        check_replay_retention,
        "pubsub.tf",
        "no guard on an existing topic",
        |s| s.replace("postcondition", "precondition"),
    )?;
    // The runbook's seek covers both: it names the setting.
    let runbook = std::fs::read_to_string(repo_root().join("docs/runbook.md"))?;
    ensure!(
        runbook.contains("replay_retention"),
        "docs/runbook.md's seek does not say where replay_retention keeps the messages"
    );
    Ok(())
}

// --- 4. The Storage Write connection quota --------------------------------------------------------

/// Terraform's connections per instance are the code's, and `max_instances` is refused exactly
/// when the BigQuery services' connections exceed the quota.
fn check_connection_quota(m: &Module) -> Result<()> {
    use pipeline::google::storage_write::CONNECTIONS;
    let run = m.resource("google_cloud_run_v2_service", "service")?;
    let guards = conditions(run, "precondition");
    let locals = RUN_LOCALS;
    let ctx = m.context(&[], &locals, None)?;
    let per_instance =
        hcl::eval::Evaluate::evaluate(&m.locals["storage_write_connections_per_instance"], &ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        per_instance.as_u64() == Some(CONNECTIONS as u64),
        "Terraform counts {per_instance} connections per instance, the code opens {CONNECTIONS}"
    );
    let quotas: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("terraform/quotas.json"),
    )?)?;
    let q = &quotas["quotas"]["storage_write_concurrent_connections"];
    let (multi, region) = (
        q["multi_region"].as_u64().context("multi_region")?,
        q["region"].as_u64().context("region")?,
    );
    let services = 2; // to-bq and sub-v2
    let per_service = CONNECTIONS as u64 * services;
    for (location, quota, set) in [
        ("US", multi, Value::Null),
        ("eu", multi, Value::Null),
        ("us-central1", region, Value::Null),
        ("us-central1", 4000, Value::from(4000)),
    ] {
        let most = quota / per_service;
        for (max, method, accepted) in [
            (most, "storage_write", true),
            (most + 1, "storage_write", false),
            (most + 1, "insert_all", true),
        ] {
            let ctx = m.context(
                &[
                    ("dataset_location", Value::from(location)),
                    ("storage_write_connection_quota", set.clone()),
                    ("max_instances", Value::from(max)),
                    ("min_instances", Value::from(0)),
                    ("bigquery_write_method", Value::from(method)),
                ],
                &locals,
                Some("sub-v2"),
            )?;
            let mut ok = true;
            for g in &guards {
                ok &= holds(g, &ctx)?;
            }
            ensure!(
                ok == accepted,
                "{location}, quota {quota}, {method}, max_instances {max}: accepted {ok}, want \
                 {accepted}"
            );
        }
    }
    Ok(())
}

#[test]
fn max_instances_is_refused_beyond_the_storage_write_connection_quota() -> Result<()> {
    check_connection_quota(&load_module()?)?;
    caught(
        check_connection_quota,
        "run.tf",
        "one connection per instance",
        |s| {
            s.replace(
                "storage_write_connections_per_instance = 2",
                "storage_write_connections_per_instance = 1",
            )
        },
    )?;
    caught(
        check_connection_quota,
        "run.tf",
        "one service counted",
        |s| {
            s.replace(
                "length(local.bigquery_services) * var.max_instances",
                "var.max_instances",
            )
        },
    )?;
    Ok(())
}
