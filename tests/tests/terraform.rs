//! `terraform/`, checked offline (no provider can be downloaded here, so `terraform validate`
//! cannot run; `scripts/terraform-check.sh` runs fmt and checkov).
//!
//! 1. The routing filters in `terraform/routing.json` (the one definition: Terraform deploys it,
//!    the end-to-end tests create the emulator's subscriptions from it) are evaluated over a table
//!    of attribute sets, missing attributes included, and must select exactly what each handler's
//!    own predicate selects. Changing a filter makes this fail.
//! 2. The wiring, from the parsed HCL: each subscription pushes to its own service with an OIDC
//!    token, has a dead-letter policy and never expires, and uses the routing file; no service
//!    account has a project-wide role; the bucket is not public; IAM is per resource; the table
//!    loads the schema file; the services' environments use only variables the code reads.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use e2e::emulators::repo_root;
use e2e::filter::{Filter, routing};
use e2e::samples::{generate, load_samples};
use e2e::terraform::{attr, block, fmt, functions, load_module, string_list};
use hcl::{Body, Expression};
use pipeline::classify::{Route, may_carry_transcript};

fn attribute_table() -> Vec<BTreeMap<String, String>> {
    let mut table = Vec::new();
    for flag in [None, Some("true"), Some("false"), Some("TRUE"), Some("")] {
        for has in [None, Some("true"), Some("false")] {
            for source in [None, Some("licensed_instance")] {
                let mut a = BTreeMap::new();
                if let Some(v) = flag {
                    a.insert(
                        "event.recordsPrivateMetadataTranscript".to_string(),
                        v.to_string(),
                    );
                }
                if let Some(v) = has {
                    a.insert("event.hasPrivateMetadata".to_string(), v.to_string());
                }
                if let Some(v) = source {
                    a.insert("publisher.source".to_string(), v.to_string());
                    a.insert(
                        "event.feature".to_string(),
                        "cody.chat-question".to_string(),
                    );
                }
                table.push(a);
            }
        }
    }
    table
}

#[test]
fn routing_filters_select_exactly_what_the_handlers_own() -> Result<()> {
    let filters = routing()?;
    ensure!(
        filters.keys().map(String::as_str).collect::<Vec<_>>() == ["sub-v2", "to-bq", "to-gcs"],
        "routing.json must define exactly the three subscriptions: {:?}",
        filters.keys()
    );
    let parsed: BTreeMap<&str, Filter> = filters
        .iter()
        .map(|(k, f)| {
            Ok((
                k.as_str(),
                Filter::parse(f).with_context(|| format!("{k}: {f}"))?,
            ))
        })
        .collect::<Result<_>>()?;

    for attrs in attribute_table() {
        let route = Route::from_attributes(&attrs);
        let cases = [
            ("to-bq", route == Route::Transcript),
            ("sub-v2", route == Route::NonTranscript),
            ("to-gcs", may_carry_transcript(&attrs)),
        ];
        for (service, owns) in cases {
            ensure!(
                parsed[service].matches(&attrs) == owns,
                "the {service} filter `{}` {} {attrs:?}, but the handler {} it",
                filters[service],
                if owns { "rejects" } else { "selects" },
                if owns { "owns" } else { "does not own" },
            );
        }
        ensure!(
            parsed["to-bq"].matches(&attrs) != parsed["sub-v2"].matches(&attrs),
            "exactly one BigQuery writer must receive {attrs:?}"
        );
    }

    // No transcript event is missed by to-gcs, whatever gateway version set the attributes, and
    // the filter still keeps most other events away.
    let mut messages = load_samples()?;
    messages.extend(generate(360, 1));
    let mut excluded = 0;
    for m in &messages {
        let selected = parsed["to-gcs"].matches(&m.attributes);
        ensure!(
            !m.to_gcs || selected,
            "to-gcs filter misses transcript {} ({:?})",
            m.name,
            m.attributes
        );
        excluded += usize::from(!selected);
    }
    // ...and it does keep events away (every one whose attributes say it has no private metadata).
    ensure!(excluded > 0, "the to-gcs filter selects every event");
    Ok(())
}

#[test]
fn push_subscriptions_are_wired_to_their_services() -> Result<()> {
    let m = load_module()?;
    let sub = m.resource("google_pubsub_subscription", "push")?;
    ensure!(
        attr(sub, "for_each")? == "local.services",
        "one subscription per service"
    );
    ensure!(
        attr(sub, "filter")? == "local.routing[each.key].filter",
        "the filter must come from routing.json: {}",
        attr(sub, "filter")?
    );
    ensure!(
        fmt(&m.locals["routing"]) == r#"jsondecode(file("${path.module}/routing.json"))"#,
        "{}",
        fmt(&m.locals["routing"])
    );

    let push = block(sub, "push_config")?;
    ensure!(
        attr(push, "push_endpoint")? == r#""${each.value.url}/""#,
        "push endpoint: {}",
        attr(push, "push_endpoint")?
    );
    ensure!(
        block(push, "no_wrapper").is_err(),
        "the services expect the wrapped envelope"
    );
    let oidc = block(push, "oidc_token")?;
    ensure!(attr(oidc, "service_account_email")? == "google_service_account.push.email");
    ensure!(attr(oidc, "audience")? == "each.value.url");
    let dlq = block(sub, "dead_letter_policy")?;
    ensure!(attr(dlq, "dead_letter_topic")? == "google_pubsub_topic.dead_letter[each.key].id");
    ensure!(
        attr(block(sub, "expiration_policy")?, "ttl")? == r#""""#,
        "push subscriptions must never expire"
    );
    ensure!(
        block(sub, "retry_policy").is_ok(),
        "retry policy with backoff"
    );

    // Each key's URL is that key's Cloud Run service: the service is named `run_name`, and the URL
    // is derived from the same key.
    let services = fmt(&m.locals["services"]);
    for needle in [
        r#""to-gcs" = {"#,
        r#""to-bq" = {"#,
        r#""sub-v2" = {"#,
        r#"run_name = "${var.name_prefix}-${name}""#,
        r#"url = "https://${var.name_prefix}-${name}-${data.google_project.this.number}.${var.region}.run.app""#,
    ] {
        ensure!(
            services.contains(needle),
            "local.services lacks {needle}:\n{services}"
        );
    }
    let run = m.resource("google_cloud_run_v2_service", "service")?;
    ensure!(attr(run, "for_each")? == "local.services");
    ensure!(attr(run, "name")? == "each.value.run_name");
    ensure!(attr(run, "ingress")? == r#""INGRESS_TRAFFIC_INTERNAL_ONLY""#);

    // Dead-letter pull subscriptions keep messages at least 7 days and never expire.
    let dl = m.resource("google_pubsub_subscription", "dead_letter")?;
    ensure!(attr(block(dl, "expiration_policy")?, "ttl")? == r#""""#);
    ensure!(attr(dl, "message_retention_duration")? == "var.dead_letter_retention");
    let default = attr(&m.variables["dead_letter_retention"], "default")?;
    let secs: u64 = default.trim_matches('"').trim_end_matches('s').parse()?;
    ensure!(
        secs >= 7 * 24 * 3600,
        "dead-letter retention default {default}"
    );
    Ok(())
}

#[test]
fn iam_is_least_privilege_and_nothing_is_public() -> Result<()> {
    let m = load_module()?;
    for (ty, name) in m.resources.keys() {
        // A custom role is a definition, not a grant; it is granted on single resources below.
        // BigQuery grants query jobs per project only: the audit's jobUser is the one exception.
        let project_grant_allowed = ty == "google_project_iam_custom_role"
            || (ty == "google_project_iam_member" && name == "audit_query_jobs");
        ensure!(
            (!ty.starts_with("google_project_iam") || project_grant_allowed)
                && !ty.starts_with("google_organization_iam")
                && !ty.starts_with("google_folder_iam"),
            "{ty}.{name}: no project-, folder- or organisation-wide roles"
        );
        ensure!(
            !ty.ends_with("_iam_binding") && !ty.ends_with("_iam_policy"),
            "{ty}.{name}: use additive *_iam_member grants"
        );
    }
    for public in ["allUsers", "allAuthenticatedUsers"] {
        ensure!(!m.text.contains(public), "{public} appears in terraform/");
    }
    let bucket = m.resource("google_storage_bucket", "transcripts")?;
    ensure!(attr(bucket, "public_access_prevention")? == r#""enforced""#);
    ensure!(attr(bucket, "uniform_bucket_level_access")? == "true");

    // Who may do what, resource by resource.
    let mut grants: BTreeSet<(String, String, String)> = BTreeSet::new();
    for ((ty, name), body) in &m.resources {
        if ty.ends_with("_iam_member") {
            grants.insert((ty.clone(), attr(body, "role")?, attr(body, "member")?));
            let _ = name;
        }
    }
    let to_gcs = r#"google_service_account.service["to-gcs"].member"#;
    let to_gcs_grants: Vec<_> = grants
        .iter()
        .filter(|(_, _, member)| member == to_gcs)
        .collect();
    ensure!(
        to_gcs_grants
            .iter()
            .map(|(t, r, _)| (t.as_str(), r.as_str()))
            .collect::<Vec<_>>()
            == [(
                "google_storage_bucket_iam_member",
                "google_project_iam_custom_role.transcript_writer.name"
            )],
        "to-gcs may create objects in the bucket and nothing else: {to_gcs_grants:?}"
    );
    // Each custom role holds exactly the permissions its service calls for.
    for (role, permissions) in [
        (
            "transcript_writer",
            vec!["storage.objects.create", "storage.objects.list"],
        ),
        (
            "row_writer",
            vec!["bigquery.tables.get", "bigquery.tables.updateData"],
        ),
        ("dataset_metadata_reader", vec!["bigquery.datasets.get"]),
    ] {
        let body = m.resource("google_project_iam_custom_role", role)?;
        let expr = body
            .attributes()
            .find(|a| a.key() == "permissions")
            .context("permissions")?;
        ensure!(
            string_list(expr.expr())? == permissions,
            "{role}: {}",
            fmt(expr.expr())
        );
    }
    // Dead letters hold raw transcripts: only the on-call group is granted them.
    for name in ["oncall_dead_letters", "oncall_dead_letters_viewer"] {
        let grant = m.resource("google_pubsub_subscription_iam_member", name)?;
        ensure!(
            attr(grant, "member")? == r#""group:${var.oncall_group}""#,
            "{name}"
        );
        ensure!(
            attr(grant, "subscription")?.starts_with("google_pubsub_subscription.dead_letter["),
            "{name}"
        );
    }
    for (ty, role, member) in &grants {
        match ty.as_str() {
            "google_cloud_run_v2_service_iam_member" => ensure!(
                role == r#""roles/run.invoker""#
                    && [
                        "google_service_account.push.member",
                        "google_service_account.replay.member"
                    ]
                    .contains(&member.as_str()),
                "only the push and replay accounts may invoke the services: {role} {member}"
            ),
            "google_bigquery_table_iam_member" => ensure!(
                (role == "google_project_iam_custom_role.row_writer.name"
                    && member == "google_service_account.service[each.key].member")
                    || (role == r#""roles/bigquery.dataViewer""#
                        && member == "google_service_account.audit.member"),
                "table grant {role} {member}"
            ),
            "google_project_iam_member" => ensure!(
                role == r#""roles/bigquery.jobUser""#
                    && member == "google_service_account.audit.member",
                "the only project grant is the audit's query jobs: {role} {member}"
            ),
            "google_bigquery_dataset_iam_member" => ensure!(
                role == "google_project_iam_custom_role.dataset_metadata_reader.name",
                "no dataset-wide grant but its metadata: {role} {member}"
            ),
            _ => {}
        }
    }
    let table_grant = m.resource("google_bigquery_table_iam_member", "row_writer")?;
    ensure!(attr(table_grant, "for_each")? == "local.bigquery_services");
    ensure!(fmt(&m.locals["bigquery_services"]).contains(r#"s.sink == "bigquery""#));
    Ok(())
}

/// The on-call path works after `terraform apply`: the replay job runs as an identity the
/// services accept (Cloud Run IAM and their own token check), from inside the VPC (their ingress is
/// internal), may pull the dead letters, and the alert gives the one command that starts it.
#[test]
fn the_replay_job_is_wired_to_reach_and_be_accepted_by_the_services() -> Result<()> {
    let m = load_module()?;
    let job = m.resource("google_cloud_run_v2_job", "replay")?;
    let task = block(block(job, "template")?, "template")?;
    ensure!(attr(task, "service_account")? == "google_service_account.replay.email");
    let vpc = block(task, "vpc_access")?;
    ensure!(
        attr(vpc, "egress")? == r#""ALL_TRAFFIC""#,
        "requests to internal services must go through the VPC"
    );
    ensure!(attr(block(vpc, "network_interfaces")?, "subnetwork")? == "var.replay_subnetwork");
    ensure!(attr(block(task, "containers")?, "image")? == r#"var.images["replay"]"#);

    let accepted = fmt(&m.locals["common_env"]);
    ensure!(
        accepted.contains("google_service_account.replay.email")
            && accepted.contains("PUSH_AUTH_SERVICE_ACCOUNTS"),
        "the services' token check must accept the replay account: {accepted}"
    );
    // The rules are the services' own, in the services, the audit, the replay job and the output
    // that `replay inspect --rules` takes: exactly the variables the code reads them from.
    let rules: BTreeSet<String> = match &m.locals["rules_env"] {
        Expression::Object(o) => o.keys().map(|k| k.to_string()).collect(),
        other => bail!("rules_env is not an object: {}", fmt(other)),
    };
    let want: BTreeSet<String> = pipeline::config::Rules::VARIABLES
        .iter()
        .map(|v| v.to_string())
        .collect();
    ensure!(
        rules == want,
        "rules_env holds {rules:?}, the rules read {want:?}"
    );
    ensure!(fmt(&m.locals["common_env"]).contains("local.rules_env"));
    let replay_env = fmt(&Expression::from(block(task, "containers")?.clone()));
    ensure!(
        replay_env.contains("local.rules_env"),
        "the replay job must judge letters by the services' rules: {replay_env}"
    );
    ensure!(
        m.text.contains("value = local.rules_env"),
        "no `rules` output"
    );
    let invoker = m.resource("google_cloud_run_v2_service_iam_member", "replay_invoker")?;
    ensure!(attr(invoker, "for_each")? == "local.services");
    ensure!(attr(invoker, "member")? == "google_service_account.replay.member");
    let letters = m.resource(
        "google_pubsub_subscription_iam_member",
        "replay_dead_letters",
    )?;
    ensure!(attr(letters, "role")? == r#""roles/pubsub.subscriber""#);
    ensure!(attr(letters, "subscription")?.starts_with("google_pubsub_subscription.dead_letter["));
    let oncall = m.resource("google_cloud_run_v2_job_iam_member", "oncall_replay")?;
    ensure!(attr(oncall, "role")? == r#""roles/run.jobsExecutorWithOverrides""#);

    let alert = m.resource("google_monitoring_alert_policy", "dead_letter_not_empty")?;
    let docs = attr(block(alert, "documentation")?, "content")?;
    ensure!(
        docs.contains("gcloud run jobs execute ${google_cloud_run_v2_job.replay.name}")
            && docs.contains("--args=push,--subscription,"),
        "the alert must give the command: {docs}"
    );
    Ok(())
}

/// The daily audit runs `replay audit --yesterday` on a schedule, as an identity that can only
/// read, and an alert fires when a run fails or finds anything; analysts get a one-row-per-event
/// view.
#[test]
fn the_daily_audit_is_scheduled_read_only_and_alerts() -> Result<()> {
    let m = load_module()?;
    let job = m.resource("google_cloud_run_v2_job", "audit")?;
    let task = block(block(job, "template")?, "template")?;
    ensure!(attr(task, "service_account")? == "google_service_account.audit.email");
    let container = block(task, "containers")?;
    ensure!(attr(container, "image")? == r#"var.images["replay"]"#);
    let args: String = attr(container, "args")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    ensure!(args == r#"["audit","--yesterday"]"#, "{args}");
    let env = fmt(&m.locals["audit_env"]);
    for var in ["local.gcs_env", "local.bigquery_env", "local.rules_env"] {
        ensure!(
            env.contains(var),
            "the audit reads {var} like the services: {env}"
        );
    }

    // Read-only grants, each on one resource (the project grant is checked in the IAM test).
    let bucket = m.resource("google_storage_bucket_iam_member", "audit_reader")?;
    ensure!(attr(bucket, "role")? == r#""roles/storage.objectViewer""#);
    let table = m.resource("google_bigquery_table_iam_member", "audit_reader")?;
    ensure!(attr(table, "role")? == r#""roles/bigquery.dataViewer""#);

    let schedule = m.resource("google_cloud_scheduler_job", "audit")?;
    let target = block(schedule, "http_target")?;
    ensure!(attr(target, "uri")?.contains("/jobs/${google_cloud_run_v2_job.audit.name}:run"));
    ensure!(
        attr(block(target, "oauth_token")?, "service_account_email")?
            == "google_service_account.audit_scheduler.email"
    );
    let runs = m.resource("google_cloud_run_v2_job_iam_member", "audit_scheduler_runs")?;
    ensure!(attr(runs, "role")? == r#""roles/run.invoker""#);

    let alert = m.resource("google_monitoring_alert_policy", "audit_failed")?;
    let condition = block(block(alert, "conditions")?, "condition_threshold")?;
    let filter = attr(condition, "filter")?;
    for part in [
        "run.googleapis.com/job/completed_execution_count",
        r#"metric.labels.result = \"failed\""#,
        "google_cloud_run_v2_job.audit.name",
    ] {
        ensure!(filter.contains(part), "alert filter lacks {part}: {filter}");
    }
    let docs = attr(block(alert, "documentation")?, "content")?;
    ensure!(
        docs.contains("rows_with_unredacted_keys") && docs.contains("gcloud run jobs execute"),
        "{docs}"
    );

    let view = m.resource("google_bigquery_table", "event_telemetry_once")?;
    let query = attr(block(view, "view")?, "query")?;
    ensure!(
        query.contains(
            "ROW_NUMBER() OVER (PARTITION BY event_id, event_timestamp ORDER BY ingested_at)"
        ) && query.contains("WHERE row_in_event = 1"),
        "one row per event: {query}"
    );
    Ok(())
}

/// Service account ids are at most 30 characters: every one this module makes is the name
/// prefix (at most 23, variables.tf) and a suffix, so the suffixes must stay within 7.
#[test]
fn service_account_ids_fit_with_the_longest_prefix() -> Result<()> {
    let m = load_module()?;
    let mut n = 0;
    for ((ty, name), body) in &m.resources {
        if ty != "google_service_account" {
            continue;
        }
        let id = attr(body, "account_id")?;
        let id = if id == "each.value.account_id" {
            // "${var.name_prefix}-${name}" for each service: the longest service name counts.
            let services = fmt(&m.locals["services"]).replace(char::is_whitespace, "");
            ensure!(
                services.contains(r#"account_id="${var.name_prefix}-${name}""#),
                "{services}"
            );
            "\"${var.name_prefix}-sub-v2\"".to_string()
        } else {
            id
        };
        let suffix = id
            .trim_matches('"')
            .strip_prefix("${var.name_prefix}")
            .with_context(|| format!("{name}: {id}"))?;
        ensure!(
            23 + suffix.len() <= 30,
            "{name}: {id} can be {} characters",
            23 + suffix.len()
        );
        n += 1;
    }
    ensure!(n >= 5, "{n} service accounts");
    Ok(())
}

/// Dead letters outlive a holiday weekend, and the push subscriptions can be rewound after a
/// bad deploy (docs/runbook.md).
#[test]
fn dead_letters_are_kept_and_subscriptions_can_be_rewound() -> Result<()> {
    let m = load_module()?;
    let push = m.resource("google_pubsub_subscription", "push")?;
    // Whether the push subscription or the topic keeps the window: terraform_bill.rs.
    ensure!(attr(push, "retain_acked_messages")? == r#"var.replay_retention == "subscription""#);
    ensure!(attr(push, "message_retention_duration")? == "var.replay_window");
    let topic = m.resource("google_pubsub_topic", "dead_letter")?;
    ensure!(attr(topic, "message_retention_duration")? == "var.dead_letter_retention");
    let letters = m.resource("google_pubsub_subscription", "dead_letter")?;
    ensure!(attr(letters, "message_retention_duration")? == "var.dead_letter_retention");
    ensure!(attr(letters, "retain_acked_messages")? == "true");
    let retention = m
        .variables
        .get("dead_letter_retention")
        .context("variable")?;
    ensure!(
        attr(retention, "default")? == r#""2678400s""#,
        "31 days by default"
    );
    Ok(())
}

#[test]
fn the_table_is_the_schema_file_and_the_environments_are_the_documented_variables() -> Result<()> {
    let m = load_module()?;
    let table = m.resource("google_bigquery_table", "event_telemetry")?;
    ensure!(attr(table, "schema")? == "file(local.schema_path)");
    ensure!(
        fmt(&m.locals["schema_path"])
            == r#""${path.module}/../shared/schema/event_telemetry.json""#
    );
    ensure!(
        repo_root()
            .join("shared/schema/event_telemetry.json")
            .exists()
    );
    let tp = block(table, "time_partitioning")?;
    ensure!(attr(tp, "field")? == r#""event_timestamp""#);

    // Every variable Terraform sets is one the services read; every one of those is documented.
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let mut set = BTreeSet::new();
    for local in [
        "rules_env",
        "common_env",
        "gcs_env",
        "bigquery_env",
        "service_env",
    ] {
        // Object keys in UPPER_CASE followed by `=`.
        let text = fmt(&m.locals[local]);
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_ascii_uppercase() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_uppercase()
                        || chars[i] == '_'
                        || chars[i].is_ascii_digit())
                {
                    i += 1;
                }
                let rest: String = chars[i..].iter().collect();
                if rest.trim_start().starts_with('=') && !rest.trim_start().starts_with("==") {
                    set.insert(chars[start..i].iter().collect::<String>());
                }
            } else {
                i += 1;
            }
        }
    }
    ensure!(set.len() >= 10, "found only {set:?}");
    for var in &set {
        ensure!(
            pipeline::config::VARIABLES.contains(&var.as_str()),
            "Terraform sets {var}, which no service reads"
        );
    }
    for var in pipeline::config::VARIABLES {
        ensure!(
            readme.contains(&format!("`{var}`")),
            "README does not document {var}"
        );
    }
    Ok(())
}

#[test]
fn every_outcome_the_services_log_is_counted_and_documented() -> Result<()> {
    use pipeline::outcome::Label;
    let labels: Vec<String> = Label::ALL.iter().map(|l| l.as_str().to_owned()).collect();
    let m = load_module()?;
    let listed = string_list(&m.locals["outcomes"])?;
    ensure!(
        listed == labels,
        "terraform/monitoring.tf counts outcomes {listed:?}, the services log {labels:?}"
    );
    let filter = fmt(&m.locals["outcome_log_filter"]);
    ensure!(
        filter.contains("local.outcomes"),
        "the outcome log filter must select the outcomes from local.outcomes: {filter}"
    );

    let metric = m.resource("google_logging_metric", "push_outcomes")?;
    ensure!(attr(metric, "filter")? == "local.outcome_log_filter");
    let descriptor = block(metric, "metric_descriptor")?;
    let label_blocks: BTreeMap<String, &Body> = descriptor
        .blocks()
        .filter(|b| b.identifier() == "labels")
        .filter_map(|b| Some((attr(b.body(), "key").ok()?, b.body())))
        .collect();
    let outcome_label = label_blocks
        .get(r#""outcome""#)
        .context("push_outcomes has no outcome label")?;
    let description = attr(outcome_label, "description")?;
    for l in &labels {
        ensure!(
            description.contains(l.as_str()),
            "the outcome label's description omits {l}: {description}"
        );
    }
    ensure!(
        label_blocks.contains_key(r#""reason""#),
        "push_outcomes must carry the skip reason / failure code as a label"
    );
    let extractors = attr(metric, "label_extractors")?;
    for field in ["service", "outcome", "reason"] {
        ensure!(
            extractors.contains(&format!("EXTRACT(jsonPayload.{field})")),
            "push_outcomes does not extract {field}: {extractors}"
        );
    }

    // The docs' list of outcomes (the Logs section) names each one.
    let design = std::fs::read_to_string(repo_root().join("docs/design.md"))?;
    for l in &labels {
        ensure!(
            design.contains(&format!("`{l}`")),
            "docs/design.md does not document the outcome `{l}`"
        );
    }
    Ok(())
}

/// The dashboard: one chart per outcome label the code logs (the outcome charts, evaluated here
/// for `Label::ALL`, must select each label once and nothing else), one per measured log field,
/// all of them on the dashboard; the runbook names every other chart.
#[test]
fn the_dashboard_charts_every_outcome_and_measured_field() -> Result<()> {
    use hcl::eval::{Context, Evaluate};
    use pipeline::outcome::{Label, MEASURED_FIELDS};
    let m = load_module()?;

    let labels: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
    let mut ctx = Context::new();
    ctx.declare_var("local", hcl::value!({ outcomes = (labels.clone()) }));
    ctx.declare_var(
        "google_logging_metric",
        hcl::value!({ push_outcomes = { name = "p-push-outcomes" } }),
    );
    let charts = m.locals["outcome_charts"]
        .evaluate(&ctx)
        .map_err(|e| anyhow::anyhow!("evaluating local.outcome_charts: {e}"))?;
    let filters: Vec<String> = charts
        .as_array()
        .context("outcome_charts is not a list")?
        .iter()
        .map(|c| {
            let filter = c.as_object()?.get("filter")?;
            filter.as_str().map(str::to_owned)
        })
        .collect::<Option<_>>()
        .context("an outcome chart without a filter")?;
    for l in &labels {
        let selecting = filters
            .iter()
            .filter(|f| f.contains(&format!("metric.label.outcome=\"{l}\"")))
            .count();
        ensure!(
            selecting == 1,
            "{selecting} dashboard charts for the outcome `{l}` (want 1): {filters:?}"
        );
    }
    ensure!(
        filters.len() == labels.len() && filters.iter().all(|f| f.contains("p-push-outcomes")),
        "the outcome charts must be one per label, of the push-outcomes metric: {filters:?}"
    );

    let measured: BTreeSet<String> = match &m.locals["measured_fields"] {
        Expression::Object(o) => o.keys().map(|k| k.to_string()).collect(),
        other => bail!("measured_fields is not an object: {}", fmt(other)),
    };
    let want: BTreeSet<String> = MEASURED_FIELDS.iter().map(|f| f.to_string()).collect();
    ensure!(
        measured == want,
        "terraform/dashboard.tf measures {measured:?}, the log line carries {want:?}"
    );
    let metric = m.resource("google_logging_metric", "measured")?;
    ensure!(attr(metric, "for_each")? == "local.measured_fields");
    ensure!(attr(metric, "value_extractor")?.contains("jsonPayload.${each.key}"));

    // Every list of charts is on the dashboard.
    let all = fmt(&m.locals["charts"]);
    for list in ["outcome_charts", "measured_charts", "fixed_charts"] {
        ensure!(
            all.contains(&format!("local.{list}")),
            "local.charts leaves out local.{list}: {all}"
        );
    }
    ensure!(fmt(&m.locals["dashboard_widgets"]).contains("local.charts"));
    let dashboard = m.resource("google_monitoring_dashboard", "pipeline")?;
    ensure!(attr(dashboard, "dashboard_json")?.contains("local.dashboard_widgets"));

    // The runbook says which chart answers which alert: it names every fixed chart.
    let runbook = std::fs::read_to_string(repo_root().join("docs/runbook.md"))?;
    let Expression::Array(fixed) = &m.locals["fixed_charts"] else {
        bail!("fixed_charts is not a list");
    };
    for chart in fixed {
        let Expression::Object(o) = chart else {
            bail!("a fixed chart is not an object: {}", fmt(chart));
        };
        let title = o
            .iter()
            .find(|(k, _)| k.to_string() == "title")
            .map(|(_, v)| v)
            .context("a fixed chart has no title")?;
        let Expression::String(title) = title else {
            bail!(
                "a fixed chart's title is not a plain string: {}",
                fmt(title)
            );
        };
        ensure!(
            runbook.contains(title.as_str()),
            "docs/runbook.md does not name the dashboard chart \"{title}\""
        );
    }
    Ok(())
}

/// The dashboard as Terraform would send it, evaluated from the HCL (the module's own locals,
/// stand-ins for what only exists once applied: names and the project number), held to the
/// `Dashboard` schema of Monitoring's discovery document: every field name, type and enum value
/// (aligners, reducers, plot types). Misspell `perSeriesAligner` or `ALIGN_RATE` and this fails.
#[test]
fn the_dashboard_is_what_the_monitoring_api_accepts() -> Result<()> {
    use hcl::eval::{Context, Evaluate};
    let m = load_module()?;
    let mut ctx = Context::new();
    functions::declare(&mut ctx);
    ctx.declare_var(
        "var",
        hcl::value!({ name_prefix = "event-telemetry", region = "us-central1", project_id = "p" }),
    );
    ctx.declare_var(
        "data",
        hcl::value!({ google_project = { this = { number = "123456789" } } }),
    );
    let measured: hcl::Map<String, hcl::Value> = pipeline::outcome::MEASURED_FIELDS
        .iter()
        .map(|f| (f.to_string(), hcl::value!({ name = (format!("p-{f}")) })))
        .collect();
    ctx.declare_var(
        "google_logging_metric",
        hcl::value!({ push_outcomes = { name = "p-push-outcomes" }, measured = (measured) }),
    );
    ctx.declare_var(
        "google_cloud_run_v2_job",
        hcl::value!({ audit = { name = "event-telemetry-audit" } }),
    );
    // The locals the dashboard reads, each evaluated with those before it.
    let mut locals = hcl::Map::new();
    for name in [
        "services",
        "outcomes",
        "measured_fields",
        "run_services",
        "push_subscription",
        "dead_letter_subs",
        "outcome_charts",
        "measured_charts",
        "fixed_charts",
        "charts",
        "dashboard_widgets",
    ] {
        ctx.declare_var("local", hcl::Value::Object(locals.clone()));
        let expr = m
            .locals
            .get(name)
            .with_context(|| format!("no local.{name}"))?;
        let value = expr
            .evaluate(&ctx)
            .map_err(|e| anyhow::anyhow!("evaluating local.{name}: {e}"))?;
        locals.insert(name.to_owned(), value);
    }
    let widgets = locals
        .get("dashboard_widgets")
        .and_then(hcl::Value::as_array)
        .map_or(0, Vec::len);
    ctx.declare_var("local", hcl::Value::Object(locals));
    let dashboard = m.resource("google_monitoring_dashboard", "pipeline")?;
    let expr = dashboard
        .attributes()
        .find(|a| a.key() == "dashboard_json")
        .context("no dashboard_json")?
        .expr();
    let value = expr
        .evaluate(&ctx)
        .map_err(|e| anyhow::anyhow!("evaluating dashboard_json: {e}"))?;
    let json: serde_json::Value = serde_json::to_value(&value)?;

    let discovery = e2e::contract::discovery::Discovery::of_repo()?;
    let schema = serde_json::json!({ "$ref": "Dashboard" });
    let problems = discovery.conform("monitoring", &schema, &json, "dashboard");
    ensure!(
        problems.is_empty(),
        "the dashboard departs from the Monitoring API: {problems:#?}"
    );

    // What the schema cannot say: a 48-column mosaic, each tile inside it, one per chart.
    let tiles = json["mosaicLayout"]["tiles"]
        .as_array()
        .context("no tiles")?;
    ensure!(
        tiles.len() == widgets && widgets > pipeline::outcome::Label::ALL.len(),
        "{} tiles for {widgets} charts",
        tiles.len()
    );
    for t in tiles {
        let right = t["xPos"].as_i64().unwrap_or(-1) + t["width"].as_i64().unwrap_or(99);
        ensure!(right <= 48, "a tile past the 48 columns: {t}");
        ensure!(
            t["widget"]["xyChart"]["dataSets"]
                .as_array()
                .is_some_and(|d| !d.is_empty()),
            "a tile without data: {t}"
        );
    }
    Ok(())
}

#[test]
fn the_body_budget_follows_the_memory_limit() -> Result<()> {
    let m = load_module()?;
    let env = fmt(&m.locals["common_env"]);
    ensure!(
        env.contains("MAX_BODY_BYTES_IN_FLIGHT") && env.contains("floor(local.memory_bytes / 8)"),
        "the services' byte budget must be an eighth of the container's memory: {env}"
    );
    let memory = fmt(&m.locals["memory_bytes"]);
    ensure!(
        memory.contains("var.memory"),
        "memory_bytes must come from var.memory: {memory}"
    );
    // The same rule as the code's default, for the same memory.
    ensure!(
        pipeline::admission::default_budget(pipeline::admission::DEFAULT_MEMORY_BYTES)
            == 512 * 1024 * 1024 / 8
    );
    Ok(())
}

/// One push's worst case is a formula in code (`limits::push_worst_case`); Terraform's guard on
/// the ack deadline is that formula, the Cloud Run request timeout is the ack deadline, and the
/// defaults pass it. A push that outlives the deadline is cut off by Cloud Run and delivered again
/// (counted toward the dead-letter policy) while it may still write.
#[test]
fn the_ack_deadline_covers_a_push_worst_case_by_the_codes_formula() -> Result<()> {
    use pipeline::limits::push_worst_case;
    use std::time::Duration;
    let m = load_module()?;
    // The formula is affine in the sink timeout: a * sink + b.
    let b = push_worst_case(Duration::ZERO).as_secs();
    let a = push_worst_case(Duration::from_secs(1)).as_secs() - b;
    let sub = m.resource("google_pubsub_subscription", "push")?;
    let expected = format!("var.ack_deadline_seconds >= {a} * var.sink_timeout_seconds + {b}");
    let lifecycle = block(sub, "lifecycle")?;
    let guards: Vec<String> = lifecycle
        .blocks()
        .filter(|p| p.identifier() == "precondition")
        .filter_map(|p| attr(p.body(), "condition").ok())
        .collect();
    ensure!(
        guards.contains(&expected),
        "the push subscription must require `{expected}`; it has {guards:?}"
    );
    let run = m.resource("google_cloud_run_v2_service", "service")?;
    let template = block(run, "template")?;
    ensure!(
        attr(template, "timeout")? == r#""${var.ack_deadline_seconds}s""#,
        "Cloud Run's request timeout must be the ack deadline"
    );
    let default = |v: &str| -> Result<u64> { Ok(attr(&m.variables[v], "default")?.parse()?) };
    let (ack, sink) = (
        default("ack_deadline_seconds")?,
        default("sink_timeout_seconds")?,
    );
    ensure!(
        Duration::from_secs(ack) >= push_worst_case(Duration::from_secs(sink)),
        "the default ack deadline {ack} s is below a push's worst case with a {sink} s sink timeout"
    );
    Ok(())
}

/// `bigquery_write_method` offers exactly the services' `BIGQUERY_WRITE_METHOD` values, defaults
/// to theirs, and reaches the BigQuery services' environment.
#[test]
fn the_write_method_variable_is_the_services_choice() -> Result<()> {
    let m = load_module()?;
    let variable = &m.variables["bigquery_write_method"];
    let names: Vec<&str> = pipeline::sink::WriteMethod::NAMES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let condition = attr(block(variable, "validation")?, "condition")?;
    let listed: Vec<String> = condition
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    ensure!(
        listed == names,
        "the validation offers {listed:?}, the services take {names:?}"
    );
    let default = attr(variable, "default")?;
    ensure!(
        default.trim_matches('"') == pipeline::sink::WriteMethod::default().name(),
        "default {default}"
    );
    let env = fmt(&m.locals["bigquery_env"]).replace(char::is_whitespace, "");
    ensure!(
        env.contains("BIGQUERY_WRITE_METHOD=var.bigquery_write_method"),
        "{env}"
    );
    Ok(())
}

/// The request-log exclusion drops only the services' successful pushes: a failure (the 401/403
/// the runbook reads when Cloud Run's IAM check refuses a push) is still ingested.
#[test]
fn only_successful_push_request_logs_are_excluded() -> Result<()> {
    let m = load_module()?;
    let exclusion = m.resource(
        "google_logging_project_exclusion",
        "successful_push_requests",
    )?;
    let filter = fmt(exclusion
        .attributes()
        .find(|a| a.key() == "filter")
        .map(|a| a.expr())
        .context("filter")?);
    for part in [
        r#"log_id(\"run.googleapis.com/requests\")"#,
        "httpRequest.status < 400",
        "google_cloud_run_v2_service.service",
        r#"resource.type = \"cloud_run_revision\""#,
    ] {
        ensure!(filter.contains(part), "the filter lacks {part}: {filter}");
    }
    let count = attr(exclusion, "count")?;
    ensure!(
        count.contains("var.exclude_successful_request_logs"),
        "{count}"
    );
    ensure!(
        read_runbook()?.contains("401/403 in the services' request logs"),
        "the runbook still reads the failures"
    );
    Ok(())
}

fn read_runbook() -> Result<String> {
    Ok(std::fs::read_to_string(
        e2e::emulators::repo_root().join("docs/runbook.md"),
    )?)
}
