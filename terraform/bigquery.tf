# BigQuery: the dataset and the event_telemetry table, whose schema is the repository's one schema
# file (shared/schema/event_telemetry.json, which the Rust tests check every row against). Who may
# write is in iam.tf.

resource "google_bigquery_dataset" "telemetry" {
  project     = var.project_id
  dataset_id  = var.dataset_id
  location    = var.dataset_location
  description = "Telemetry v2 events, one redacted row per event (written by the to-bq and sub-v2 services)."
  labels      = var.labels

  delete_contents_on_destroy = false

  dynamic "default_encryption_configuration" {
    for_each = var.bigquery_kms_key_name == null ? [] : [var.bigquery_kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "event_telemetry" {
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.telemetry.dataset_id
  table_id    = var.table_id
  description = "One row per telemetry v2 event, privateMetadata redacted (REDACT_KEYS). Deduplicate on event_id."
  labels      = var.labels

  schema = file(local.schema_path)

  time_partitioning {
    type  = "DAY"
    field = "event_timestamp"
  }

  clustering = ["feature", "action", "publisher_source"]

  # Also guards against a schema change that BigQuery cannot apply in place (Terraform would
  # replace the table): add columns as NULLABLE in the schema file instead.
  deletion_protection = var.deletion_protection

  dynamic "encryption_configuration" {
    for_each = var.bigquery_kms_key_name == null ? [] : [var.bigquery_kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}
