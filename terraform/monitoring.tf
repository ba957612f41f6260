# Monitoring: log-based metrics from the services' outcome log lines, and alert policies on the
# dead-letter subscriptions (anything there needs a person) and on the age of the oldest
# unacknowledged message of each push subscription (a service failing or falling behind); what is
# kept out of Cloud Logging's ingestion (successful pushes' request logs and a sample of their
# outcome lines).
#
# The metrics are project-level (no bucket_name): those are calculated from every entry the
# Logging API receives, exclusions or not, so they count every push while only a sample of the
# success lines is stored. A bucket-scoped metric would count only what is stored: the tests refuse
# one.

locals {
  # Every outcome the services log (shared/src/outcome.rs, Label::ALL; tests/tests/terraform.rs
  # holds this list, the metric's label description and docs/design.md to it).
  outcomes = ["written", "already_stored", "skipped", "dead_lettered", "rejected", "retry", "unauthorized"]

  # The outcomes that are a success (Label::is_success; tests/tests/terraform_bill.rs holds this
  # list to it): their
  # lines are sampled out of ingestion below, every other outcome's line is stored.
  success_outcomes = ["written", "already_stored", "skipped"]

  # Outcome log lines (one per push): JSON on stdout, read by Cloud Logging as jsonPayload.
  outcome_log_filter = join("\n", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for s in local.services : "\"${s.run_name}\""])})",
    "jsonPayload.outcome=(${join(" OR ", [for o in local.outcomes : "\"${o}\""])})",
  ])

  alert_documentation_footer = "Outcome log lines: Logs Explorer, `${replace(local.outcome_log_filter, "\n", " ")}`. Runbook: docs/runbook.md in the pipeline repository."
}

# --- Log-based metrics ---------------------------------------------------------------------------

resource "google_logging_metric" "push_outcomes" {
  project     = var.project_id
  name        = "${var.name_prefix}-push-outcomes"
  description = "Pushes handled by the telemetry services, by service, outcome and reason (the skip reason or failure code)."
  filter      = local.outcome_log_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Telemetry pushes by outcome"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "to-gcs, to-bq or sub-v2"
    }
    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "written, already_stored, skipped, dead_lettered, rejected, retry or unauthorized"
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why: the skip reason (not_for_this_subscription, no_flag, not_dotcom, no_private_text, joined by +) or the failure code; empty for writes. A fixed set, never payload text."
    }
  }

  label_extractors = {
    "service" = "EXTRACT(jsonPayload.service)"
    "outcome" = "EXTRACT(jsonPayload.outcome)"
    "reason"  = "EXTRACT(jsonPayload.reason)"
  }
}

resource "google_logging_metric" "routing_mismatches" {
  project     = var.project_id
  name        = "${var.name_prefix}-routing-mismatches"
  description = "Pushes whose routing attributes disagreed with the payload (the payload won), by service and attribute names."
  filter      = "${local.outcome_log_filter}\njsonPayload.routingMismatch!=\"\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Telemetry routing mismatches"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "to-gcs, to-bq or sub-v2"
    }
    labels {
      key         = "attributes"
      value_type  = "STRING"
      description = "Comma-separated names of the attributes that disagreed with the payload"
    }
  }

  label_extractors = {
    "service"    = "EXTRACT(jsonPayload.service)"
    "attributes" = "EXTRACT(jsonPayload.routingMismatch)"
  }
}

resource "google_logging_metric" "rejected_messages" {
  project     = var.project_id
  name        = "${var.name_prefix}-rejected-messages"
  description = "Messages a telemetry service refused as permanently bad (dead-lettered, or answered 4xx), by service, reason code and status."
  filter      = "${local.outcome_log_filter}\njsonPayload.outcome=(\"dead_lettered\" OR \"rejected\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Telemetry rejected messages"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "to-gcs, to-bq or sub-v2"
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The service's error code (a fixed set, never payload text)"
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status answered to Pub/Sub (200 once dead-lettered; 400, 413, 422 otherwise)"
    }
  }

  label_extractors = {
    "service" = "EXTRACT(jsonPayload.service)"
    "reason"  = "EXTRACT(jsonPayload.reason)"
    "status"  = "EXTRACT(jsonPayload.status)"
  }
}

# --- Alert policies ------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letter_not_empty" {
  for_each = local.services

  project               = var.project_id
  display_name          = "Telemetry ${each.key}: dead-letter subscription not empty"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = merge(var.labels, { service = each.key })

  conditions {
    display_name = "${each.value.dead_letter_name} holds undelivered messages"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"pubsub_subscription\"",
        "resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter[each.key].name}\"",
        "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Messages reached the dead-letter topic of **${each.key}** (subscription
      `${google_pubsub_subscription.push[each.key].name}`): either the service refused them as
      permanently bad and published them there itself (`outcome="dead_lettered"` in its log lines;
      attributes `dead_letter.reason` and `dead_letter.detail` say why) or they failed
      ${var.max_delivery_attempts} deliveries (503s: sink outage, or pushes slower than the ack
      deadline; attributes `CloudPubSubDeadLetterSource*`).

      Save and explain them without acknowledging: `replay pull --subscription ${google_pubsub_subscription.dead_letter[each.key].id} --out dlq.json`
      then `replay inspect --file dlq.json`.
      ${each.key == "to-gcs" ? "These messages can hold transcript text: do not copy them anywhere else." : "Rows are redacted by the service, but the raw messages are not: handle them like the bucket's data."}
      Once the cause is fixed, re-deliver them to this service only, with the replay job (it runs
      as an identity the service accepts, from inside the VPC; acks a letter only once the service
      took it; `--dry-run` first to see what it would do):
      `gcloud run jobs execute ${google_cloud_run_v2_job.replay.name} --project ${var.project_id} --region ${var.region} --wait --args=push,--subscription,${google_pubsub_subscription.dead_letter[each.key].id},--to,${each.value.url}`
      (never republish to the events topic: all three subscriptions would get them again).
      Messages older than ${var.dead_letter_retention} are dropped.

      ${local.alert_documentation_footer}
    EOT
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked_message_age" {
  for_each = local.services

  project               = var.project_id
  display_name          = "Telemetry ${each.key}: push backlog older than ${var.oldest_unacked_message_age_threshold_seconds}s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = merge(var.labels, { service = each.key })

  conditions {
    display_name = "${each.value.subscription_name} oldest unacked message age"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"pubsub_subscription\"",
        "resource.labels.subscription_id = \"${google_pubsub_subscription.push[each.key].name}\"",
        "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_message_age_threshold_seconds
      duration        = "${var.alert_duration_seconds}s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The oldest message waiting on `${google_pubsub_subscription.push[each.key].name}` is older
      than ${var.oldest_unacked_message_age_threshold_seconds} s: **${each.key}** is nacking (503:
      Cloud Storage or BigQuery failing or slow, `outcome="retry"`), is not reachable (401/403 from
      Cloud Run: OIDC audience or run.invoker), or cannot keep up (max instances). Messages that keep
      failing go to the dead-letter topic after ${var.max_delivery_attempts} deliveries.

      ${local.alert_documentation_footer}
    EOT
  }
}

# --- Request logs ----------------------------------------------------------------------------------

# Cloud Run writes a request log entry for every push. For a successful one nothing reads it: push
# latency and 429s come from Cloud Run's metrics, outcomes from the services' own lines (the
# log-based metrics above). It is the largest Logging line of a push (docs/cost.md), so it is kept
# out of ingestion; a failure (status 400 and up, among them the 401/403 of a push Cloud Run's IAM
# check refused, which the runbook reads) is kept.
resource "google_logging_project_exclusion" "successful_push_requests" {
  count       = var.exclude_successful_request_logs ? 1 : 0
  project     = var.project_id
  name        = "${var.name_prefix}-ok-push-requests"
  description = "Cloud Run request logs of the telemetry services' successful pushes (status < 400): read by nothing, kept out of ingestion (docs/cost.md)."
  filter = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "log_id(\"run.googleapis.com/requests\")",
    "resource.labels.service_name = (${join(" OR ", [for s in google_cloud_run_v2_service.service : "\"${s.name}\""])})",
    "httpRequest.status < 400",
  ])
}

# --- Outcome lines ---------------------------------------------------------------------------------

# The services' own line per push: for a success (written, already_stored, skipped, with no
# routing mismatch) only success_log_sample_percent of them are stored, the rest are excluded from
# ingestion, and billed by nothing; the project-level metrics above still count every one. A
# failure, a refusal or a routing mismatch is always stored. How to see a success line anyway:
# docs/runbook.md, "Seeing a success line". sample(insertId, F) matches a fraction F of the entries
# (by a hash of insertId): those are excluded, the rest stored.
resource "google_logging_project_exclusion" "successful_outcome_lines" {
  count       = var.success_log_sample_percent < 100 ? 1 : 0
  project     = var.project_id
  name        = "${var.name_prefix}-ok-outcome-lines"
  description = "The telemetry services' success lines (outcomes ${join(", ", local.success_outcomes)}) but a ${var.success_log_sample_percent}% sample: counted in full by the project-level log-based metrics, kept out of ingestion (docs/cost.md)."
  filter = join(" AND ", concat([
    "resource.type = \"cloud_run_revision\"",
    "log_id(\"run.googleapis.com/stdout\")",
    "resource.labels.service_name = (${join(" OR ", [for s in google_cloud_run_v2_service.service : "\"${s.name}\""])})",
    "jsonPayload.outcome = (${join(" OR ", [for o in local.success_outcomes : "\"${o}\""])})",
    "jsonPayload.routingMismatch = \"\"",
  ], var.success_log_sample_percent > 0 ? ["sample(insertId, ${(100 - var.success_log_sample_percent) / 100})"] : []))
}
