# Cloud Run: the three services, one per binary of the same repository, each with its own service
# account and configuration. Only the push service account may invoke them (iam.tf).

locals {
  # AppendRows connections each BigQuery service instance opens (shared/src/google/storage_write.rs,
  # CONNECTIONS; tests/tests/terraform.rs holds the two together).
  storage_write_connections_per_instance = 2

  # Google's quotas and limits, each with its page (quotas.json; the cost tool reads it too).
  quotas = jsondecode(file("${path.module}/quotas.json")).quotas

  # The project's Storage Write connection quota where the table is: the variable, or Google's
  # default for a multi-region or a region.
  storage_write_connection_quota = var.storage_write_connection_quota != null ? var.storage_write_connection_quota : (
    contains(local.quotas.storage_write_concurrent_connections.multi_regions, upper(var.dataset_location))
    ? local.quotas.storage_write_concurrent_connections.multi_region
    : local.quotas.storage_write_concurrent_connections.region
  )

  # The container's memory in bytes ("512Mi" -> 536870912).
  memory_bytes = tonumber(regex("^[0-9]+", var.memory)) * (endswith(var.memory, "Gi") ? 1073741824 : 1048576)

  # How events are classified and redacted: the services, the audit and the replay job read
  # these same values, and `terraform output -json rules` gives them to `replay inspect`.
  rules_env = {
    DOTCOM_URL          = var.dotcom_url
    DOTCOM_INSTANCE_IDS = join(",", var.dotcom_instance_ids)
    REDACT_KEYS         = join(",", var.redact_keys)
  }

  # Every service: see the README's Configuration table. PORT is set by Cloud Run.
  common_env = merge(local.rules_env, {
    # Push-body bytes held at once (shared/src/admission.rs): an eighth of memory, because a push
    # is held in about four forms at its peak (BENCHMARKS.md), which leaves half the memory for the
    # runtime and the small pushes. At 512Mi that is 64 MiB: about four maximum-size pushes (13.4 MB
    # wrapped) at once, while `concurrency` small pushes (a few KB each) never come near it. More
    # large pushes than fit wait up to 2 s, then get 429 and are redelivered; raise `memory` to
    # admit more at once.
    MAX_BODY_BYTES_IN_FLIGHT = tostring(floor(local.memory_bytes / 8))
    GOOGLE_CLOUD_PROJECT     = var.project_id
    SINK_TIMEOUT_SECONDS     = tostring(var.sink_timeout_seconds)
    RUST_LOG                 = var.rust_log
    # The service verifies the push's OIDC token itself too (defence in depth behind Cloud Run's
    # IAM check): audience and signer must be the ones the subscription uses.
    # The push account, and the replay job's (replay.tf), which re-delivers dead letters.
    PUSH_AUTH                  = "on"
    PUSH_AUTH_SERVICE_ACCOUNTS = join(",", [google_service_account.push.email, google_service_account.replay.email])
  })

  gcs_env = tomap({
    TRANSCRIPT_BUCKET = google_storage_bucket.transcripts.name
    TRANSCRIPT_PREFIX = var.transcript_prefix
  })

  bigquery_env = tomap({
    BIGQUERY_PROJECT      = google_bigquery_table.event_telemetry.project
    BIGQUERY_DATASET      = google_bigquery_table.event_telemetry.dataset_id
    BIGQUERY_TABLE        = google_bigquery_table.event_telemetry.table_id
    BIGQUERY_WRITE_METHOD = var.bigquery_write_method
  })

  service_env = {
    for name, s in local.services : name => tomap(merge(
      local.common_env,
      s.sink == "gcs" ? local.gcs_env : local.bigquery_env,
      {
        # Its own dead-letter topic, the one its subscription dead-letters to.
        DEAD_LETTER_TOPIC  = google_pubsub_topic.dead_letter[name].id
        PUSH_AUTH_AUDIENCE = s.url
      },
    ))
  }
}

resource "google_cloud_run_v2_service" "service" {
  for_each = local.services

  project     = var.project_id
  name        = each.value.run_name
  location    = var.region
  description = "Telemetry v2 events: ${each.key} (Pub/Sub push from ${each.value.subscription_name})."
  labels      = merge(var.labels, { service = each.key })

  # Internal only: Pub/Sub push from a subscription in the same project (or VPC Service Controls
  # perimeter) to the default run.app URL counts as internal traffic, per
  # https://cloud.google.com/run/docs/securing/ingress ("Internal" lists Pub/Sub among the Google
  # Cloud products allowed when in the same project or perimeter and using the run.app URL, not a
  # custom domain). The internet cannot reach the services at all; IAM (run.invoker for the push
  # service account only) still applies on top.
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.service[each.key].email

    # Pub/Sub gives up on a push after the ack deadline; the service may take as long.
    timeout                          = "${var.ack_deadline_seconds}s"
    max_instance_request_concurrency = var.concurrency

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.images[each.key]

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # Request-based billing throttles the CPU outside requests; instance-based keeps it
        # (billing_mode, docs/deploy.md).
        cpu_idle          = var.billing_mode[each.key] == "request"
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.service_env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      # The service listens only after its clients are built and its sink checked (the bucket or
      # table exists and it may write); a failed check exits, and this probe fails the deploy.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 30

        http_get {
          path = "/healthz"
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      # Cloud Run refuses instance-based billing below 1 vCPU (the cpu variable allows none) and
      # below 512 MiB of memory.
      condition     = var.billing_mode[each.key] == "request" || local.memory_bytes >= 536870912
      error_message = "billing_mode \"instance\" needs memory of at least 512Mi: Cloud Run refuses less with instance-based billing."
    }
    precondition {
      # Both BigQuery services open storage_write_connections_per_instance AppendRows connections
      # per instance against one project quota per location (docs/deploy.md, "Quotas").
      condition     = var.bigquery_write_method != "storage_write" || length(local.bigquery_services) * var.max_instances * local.storage_write_connections_per_instance <= local.storage_write_connection_quota
      error_message = "max_instances x ${local.storage_write_connections_per_instance} Storage Write connections x ${length(local.bigquery_services)} BigQuery services exceeds storage_write_connection_quota (${local.storage_write_connection_quota} in ${var.dataset_location}): lower max_instances, or raise the quota with Google and set storage_write_connection_quota."
    }
    precondition {
      # The deterministic URL (main.tf) exists only while SERVICE-PROJECT_NUMBER fits one DNS label.
      condition     = length("${each.value.run_name}-${data.google_project.this.number}") <= 63
      error_message = "The service name plus the project number exceed 63 characters: Cloud Run gives no deterministic URL. Shorten name_prefix."
    }
  }
}
