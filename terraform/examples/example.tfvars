# Example inputs for the telemetry pipeline root module. Copy to terraform/terraform.tfvars (or pass
# with -var-file) and replace the placeholders; see docs/deploy.md.

project_id  = "acme-telemetry-prod"
region      = "us-central1"
name_prefix = "event-telemetry"

labels = {
  team        = "data-platform"
  environment = "prod"
}

# Built and pushed as described in docs/deploy.md (tags or, better, digests).
images = {
  "to-gcs" = "us-central1-docker.pkg.dev/acme-telemetry-prod/telemetry/to-gcs:2026-11-27-f21f9d5"
  "to-bq"  = "us-central1-docker.pkg.dev/acme-telemetry-prod/telemetry/to-bq:2026-11-27-f21f9d5"
  "sub-v2" = "us-central1-docker.pkg.dev/acme-telemetry-prod/telemetry/sub-v2:2026-11-27-f21f9d5"
  "replay" = "us-central1-docker.pkg.dev/acme-telemetry-prod/telemetry/replay:2026-11-27-f21f9d5"
}

# The gateway already publishes here: look it up, do not create it.
create_topic = false
topic_name   = "telemetry-v2-events"

# Pub/Sub delivery.
ack_deadline_seconds  = 120
max_delivery_attempts = 10
retry_minimum_backoff = "10s"
retry_maximum_backoff = "600s"
dead_letter_retention = "2678400s"
replay_window         = "604800s"

# On-call: the only readers of dead letters, and the replay job's network (Private Google Access on).
oncall_group      = "telemetry-oncall@acme.example"
replay_subnetwork = "projects/acme-telemetry-prod/regions/us-central1/subnetworks/run-egress"

# Cloud Run sizing.
concurrency         = 80
cpu                 = "1"
memory              = "512Mi"
min_instances       = 0
max_instances       = 10
deletion_protection = true

# Service configuration.
dotcom_url           = "https://sourcegraph.com"
dotcom_instance_ids  = []
redact_keys          = ["inlineCompletionItemContext", "prediction", "codeToRewrite", "diff", "editContext", "smartApplyContext"]
sink_timeout_seconds = 30
rust_log             = "info"

# Transcript bucket.
bucket_name                       = "acme-telemetry-prod-transcripts"
bucket_location                   = "US"
transcript_prefix                 = "transcripts"
transcript_retention_days         = 365
noncurrent_version_retention_days = 30
bucket_access_log_bucket          = "acme-telemetry-prod-access-logs"
ml_readers_group                  = "ml-transcripts-readers@acme.example"

# BigQuery.
dataset_id       = "telemetry"
table_id         = "event_telemetry"
dataset_location = "US"

# Optional CMEK (the service agents need roles/cloudkms.cryptoKeyEncrypterDecrypter on each key).
# pubsub_kms_key_name   = "projects/acme-kms/locations/us/keyRings/telemetry/cryptoKeys/pubsub"
# bucket_kms_key_name   = "projects/acme-kms/locations/us/keyRings/telemetry/cryptoKeys/gcs"
# bigquery_kms_key_name = "projects/acme-kms/locations/us/keyRings/telemetry/cryptoKeys/bigquery"

# Monitoring.
notification_channels = [
  "projects/acme-telemetry-prod/notificationChannels/1234567890123456789",
]
oldest_unacked_message_age_threshold_seconds = 900
alert_duration_seconds                       = 300
