# The dashboard on-call opens first: what the services did with each push (one chart per outcome,
# generated from local.outcomes, so a new outcome gets its chart), how long pushes take, group
# commit and the body budget at work, the backlogs, the instances, and the last audit.
# docs/runbook.md ("The dashboard") says which chart answers which alert; tests/tests/terraform.rs
# holds the outcome charts to the code's labels and the runbook to the fixed charts' titles.

locals {
  # Numeric fields of the outcome log line counted as distributions (the code's
  # outcome::MEASURED_FIELDS; a test holds the keys to it). Exponential buckets, growth 2.
  measured_fields = {
    callRows = {
      metric      = "call-rows"
      title       = "Rows per BigQuery call, p50 and p95 (group commit)"
      description = "Rows in the BigQuery call (a Storage Write append, or an insertAll) that carried each BigQuery push (group commit at work), by service."
      unit        = "1"
      scale       = 1
      buckets     = 15 # up to 32768 rows (BIGQUERY_BATCH_MAX_ROWS is at most 10000)
    }
    bytesInFlight = {
      metric      = "bytes-in-flight"
      title       = "Push bytes in flight per instance, p50 and p95 (body budget)"
      description = "Push-body bytes an instance held in flight when each push was admitted or refused (MAX_BODY_BYTES_IN_FLIGHT), by service."
      unit        = "By"
      scale       = 1024
      buckets     = 21 # 1 KiB to 2 GiB
    }
  }

  run_services      = "resource.type=\"cloud_run_revision\" resource.label.service_name=one_of(${join(",", [for s in local.services : "\"${s.run_name}\""])})"
  push_subscription = "resource.type=\"pubsub_subscription\" resource.label.subscription_id=one_of(${join(",", [for s in local.services : "\"${s.subscription_name}\""])})"
  dead_letter_subs  = "resource.type=\"pubsub_subscription\" resource.label.subscription_id=one_of(${join(",", [for s in local.services : "\"${s.dead_letter_name}\""])})"

  # One chart per outcome the services log.
  outcome_charts = [for o in local.outcomes : {
    title    = "Pushes ${o} per second, by service and reason"
    filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.push_outcomes.name}\" resource.type=\"cloud_run_revision\" metric.label.outcome=\"${o}\""
    aligner  = "ALIGN_RATE"
    reducers = ["REDUCE_SUM"]
    group_by = ["metric.label.service", "metric.label.reason"]
    period   = "60s"
  }]

  measured_charts = [for field, m in local.measured_fields : {
    title    = m.title
    filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.measured[field].name}\" resource.type=\"cloud_run_revision\""
    aligner  = "ALIGN_DELTA"
    reducers = ["REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_95"]
    group_by = ["metric.label.service"]
    period   = "60s"
  }]

  # The charts that do not come from a list above; each title is named in docs/runbook.md.
  fixed_charts = [
    {
      title    = "Push latency, p50, p95 and p99 (ms)"
      filter   = "metric.type=\"run.googleapis.com/request_latencies\" ${local.run_services}"
      aligner  = "ALIGN_DELTA"
      reducers = ["REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_99"]
      group_by = ["resource.label.service_name"]
      period   = "60s"
    },
    {
      title    = "Pushes refused 429 per second (body budget full)"
      filter   = "metric.type=\"run.googleapis.com/request_count\" ${local.run_services} metric.label.response_code=\"429\""
      aligner  = "ALIGN_RATE"
      reducers = ["REDUCE_SUM"]
      group_by = ["resource.label.service_name"]
      period   = "60s"
    },
    {
      title    = "Push subscription backlog (messages)"
      filter   = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" ${local.push_subscription}"
      aligner  = "ALIGN_MAX"
      reducers = ["REDUCE_SUM"]
      group_by = ["resource.label.subscription_id"]
      period   = "60s"
    },
    {
      title    = "Push subscription oldest unacked message (s)"
      filter   = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" ${local.push_subscription}"
      aligner  = "ALIGN_MAX"
      reducers = ["REDUCE_MAX"]
      group_by = ["resource.label.subscription_id"]
      period   = "60s"
    },
    {
      title    = "Dead letters waiting (messages)"
      filter   = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" ${local.dead_letter_subs}"
      aligner  = "ALIGN_MAX"
      reducers = ["REDUCE_SUM"]
      group_by = ["resource.label.subscription_id"]
      period   = "300s"
    },
    {
      title    = "Oldest dead letter (s)"
      filter   = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" ${local.dead_letter_subs}"
      aligner  = "ALIGN_MAX"
      reducers = ["REDUCE_MAX"]
      group_by = ["resource.label.subscription_id"]
      period   = "300s"
    },
    {
      title    = "Instances, by service and state"
      filter   = "metric.type=\"run.googleapis.com/container/instance_count\" ${local.run_services}"
      aligner  = "ALIGN_MAX"
      reducers = ["REDUCE_SUM"]
      group_by = ["resource.label.service_name", "metric.label.state"]
      period   = "60s"
    },
    {
      title    = "Instance memory utilisation, p50 and p99"
      filter   = "metric.type=\"run.googleapis.com/container/memory/utilizations\" ${local.run_services}"
      aligner  = "ALIGN_DELTA"
      reducers = ["REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_99"]
      group_by = ["resource.label.service_name"]
      period   = "60s"
    },
    {
      title    = "Audit runs by result (a failed run is the audit alert)"
      filter   = "metric.type=\"run.googleapis.com/job/completed_execution_count\" resource.type=\"cloud_run_job\" resource.label.job_name=\"${google_cloud_run_v2_job.audit.name}\""
      aligner  = "ALIGN_SUM"
      reducers = ["REDUCE_SUM"]
      group_by = ["metric.label.result"]
      period   = "3600s"
      plot     = "STACKED_BAR"
    },
  ]

  # Outcomes first (what happened), then how it went, then the backlogs, instances and audit.
  charts = concat(local.outcome_charts, [local.fixed_charts[0], local.fixed_charts[1]], local.measured_charts, slice(local.fixed_charts, 2, length(local.fixed_charts)))

  dashboard_widgets = [for c in local.charts : {
    title = c.title
    xyChart = {
      dataSets = [for r in c.reducers : {
        plotType = lookup(c, "plot", "LINE")
        timeSeriesQuery = {
          timeSeriesFilter = {
            filter = c.filter
            aggregation = {
              alignmentPeriod    = c.period
              perSeriesAligner   = c.aligner
              crossSeriesReducer = r
              groupByFields      = c.group_by
            }
          }
        }
      }]
    }
  }]
}

resource "google_logging_metric" "measured" {
  for_each = local.measured_fields

  project     = var.project_id
  name        = "${var.name_prefix}-${each.value.metric}"
  description = each.value.description
  filter      = "${local.outcome_log_filter}\njsonPayload.${each.key}:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "Telemetry ${each.key}"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "to-gcs, to-bq or sub-v2"
    }
  }

  value_extractor  = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = { "service" = "EXTRACT(jsonPayload.service)" }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = each.value.buckets
      growth_factor      = 2
      scale              = each.value.scale
    }
  }
}

resource "google_monitoring_dashboard" "pipeline" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "Telemetry pipeline (${var.name_prefix})"
    mosaicLayout = {
      columns = 48
      tiles = [for i, w in local.dashboard_widgets : {
        xPos   = (i % 2) * 24
        yPos   = floor(i / 2) * 16
        width  = 24
        height = 16
        widget = w
      }]
    }
  })
}
