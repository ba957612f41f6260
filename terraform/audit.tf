# The daily audit (`replay audit --yesterday`, docs/runbook.md "Audit"): the bucket and the table
# held to each other for the previous UTC day. A Cloud Run job started by Cloud Scheduler, with
# read-only grants, and an alert when a run fails or finds anything (exit code 1 or 2 both fail the
# execution). Also the view analysts query: one row per event.

# --- Exactly-once reads --------------------------------------------------------------------------

# One row per event: insertId deduplication is best effort, so a redelivery can add a row. The
# window is partitioned by event_timestamp too (rows of one event share it), so a filter on
# event_timestamp still prunes the table's partitions through the view.
resource "google_bigquery_table" "event_telemetry_once" {
  #checkov:skip=CKV_GCP_80: a view stores no data; the table it reads is encrypted as configured (bigquery_kms_key_name)
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.telemetry.dataset_id
  table_id    = "${var.table_id}_once"
  description = "event_telemetry with one row per event_id (the first ingested). Query this for counts; the table itself for debugging ingestion."
  labels      = var.labels

  deletion_protection = var.deletion_protection

  view {
    use_legacy_sql = false
    query          = <<-SQL
      SELECT * EXCEPT (row_in_event)
      FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id, event_timestamp ORDER BY ingested_at) AS row_in_event
        FROM `${google_bigquery_table.event_telemetry.project}.${google_bigquery_table.event_telemetry.dataset_id}.${google_bigquery_table.event_telemetry.table_id}`
      )
      WHERE row_in_event = 1
    SQL
  }
}

# --- The job and its identity --------------------------------------------------------------------

resource "google_service_account" "audit" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-audit"
  display_name = "Telemetry daily audit"
  description  = "Runs the daily audit: lists and reads the transcript bucket, queries the event table. Read-only."
}

resource "google_cloud_run_v2_job" "audit" {
  project             = var.project_id
  name                = "${var.name_prefix}-audit"
  location            = var.region
  labels              = var.labels
  deletion_protection = var.deletion_protection

  template {
    task_count = 1

    template {
      service_account = google_service_account.audit.email
      max_retries     = 0
      timeout         = "3600s"

      containers {
        image = var.images["replay"]
        args  = ["audit", "--yesterday"]

        dynamic "env" {
          for_each = local.audit_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }
}

locals {
  # The services' own variables for where data lands and how it is classified and redacted.
  audit_env = merge(local.gcs_env, local.bigquery_env, local.rules_env, {
    GOOGLE_CLOUD_PROJECT = var.project_id
  })
}

# Read-only: list and read the transcripts (each is classified again; nothing is printed)...
resource "google_storage_bucket_iam_member" "audit_reader" {
  bucket = google_storage_bucket.transcripts.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.audit.member
}

# ...read the table...
resource "google_bigquery_table_iam_member" "audit_reader" {
  project    = google_bigquery_table.event_telemetry.project
  dataset_id = google_bigquery_table.event_telemetry.dataset_id
  table_id   = google_bigquery_table.event_telemetry.table_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.audit.member
}

# ...and run query jobs, which BigQuery only grants per project (bigquery.jobs.create).
resource "google_project_iam_member" "audit_query_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.audit.member
}

# --- The schedule --------------------------------------------------------------------------------

resource "google_service_account" "audit_scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-cron"
  display_name = "Telemetry audit scheduler"
  description  = "Starts the daily audit job from Cloud Scheduler; may do nothing else."
}

resource "google_cloud_run_v2_job_iam_member" "audit_scheduler_runs" {
  project  = var.project_id
  location = google_cloud_run_v2_job.audit.location
  name     = google_cloud_run_v2_job.audit.name
  role     = "roles/run.invoker"
  member   = google_service_account.audit_scheduler.member
}

resource "google_cloud_scheduler_job" "audit" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-audit"
  description = "Runs the telemetry audit for the previous UTC day."
  schedule    = var.audit_schedule
  time_zone   = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.audit.name}:run"

    oauth_token {
      service_account_email = google_service_account.audit_scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.audit_scheduler_runs]
}

# --- The alert -----------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "audit_failed" {
  project               = var.project_id
  display_name          = "Telemetry audit: a run failed or found something"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "${google_cloud_run_v2_job.audit.name} failed executions"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"cloud_run_job\"",
        "resource.labels.job_name = \"${google_cloud_run_v2_job.audit.name}\"",
        "metric.type = \"run.googleapis.com/job/completed_execution_count\"",
        "metric.labels.result = \"failed\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The daily audit of the telemetry pipeline failed (exit 2: it could not run) or found a
      discrepancy (exit 1). Its JSON summary is the last line of the execution's log: Cloud Run,
      job `${google_cloud_run_v2_job.audit.name}`, the failed execution. It lists counts and the
      first event ids of each finding, never text:

      - `rows_with_unredacted_keys`: **privacy incident**: BigQuery holds transcript text. Tell the
        privacy owner now; delete the rows (`DELETE FROM ... WHERE event_id IN (...)`) once they agree.
      - `objects_not_transcripts`: a customer's private text reached the bucket; same people.
      - `transcripts_without_object`, `objects_without_row`: look for dead letters
        (`replay pull`) and replay them; the push backlog alerts say whether a service fell behind.
      - `events_with_several_rows`, `events_with_several_objects`: redeliveries that BigQuery's
        best-effort deduplication let through, or two messages with one event id; query the
        `${google_bigquery_table.event_telemetry_once.table_id}` view for counts.

      Run it again by hand for any window: `gcloud run jobs execute ${google_cloud_run_v2_job.audit.name} --project ${var.project_id} --region ${var.region} --wait --args=audit,--from,2026-11-27,--to,2026-11-28`.
      Runbook: docs/runbook.md, "Audit", in the pipeline repository.
    EOT
  }
}
