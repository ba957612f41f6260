# Inputs of the root module. Every variable is described and validated here; checks that relate two
# variables are preconditions on the resource that uses them (Terraform >= 1.5 has no cross-variable
# validation).

# --- Project and naming ------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project id that holds everything: topic, subscriptions, Cloud Run services, bucket, dataset. Pub/Sub push counts as internal traffic for Cloud Run only from the same project (or VPC Service Controls perimeter)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id (6-30 characters: lower-case letters, digits and hyphens, starting with a letter)."
  }
}

variable "region" {
  description = "Region of the three Cloud Run services, e.g. us-central1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region name such as us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix of every name this module creates: Cloud Run services and their service accounts (PREFIX-to-gcs, PREFIX-to-bq, PREFIX-sub-v2), the push service account (PREFIX-push), subscriptions (PREFIX-transcript-to-gcs, PREFIX-transcript-to-bq, PREFIX-sub-v2), dead-letter topics and subscriptions (SUBSCRIPTION-dead-letter), log-based metrics."
  type        = string
  default     = "event-telemetry"

  validation {
    # PREFIX-sub-v2 must fit a service account id (30 characters).
    condition     = can(regex("^[a-z][a-z0-9-]{2,21}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-23 characters: lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels (topics, subscriptions, services, bucket, dataset, table)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels :
      can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$."
  }
}

# --- Container images --------------------------------------------------------------------------

variable "images" {
  description = "Container image of each service and of the replay job, built from the repository's Dockerfile with --build-arg BIN=<key>. Keys: to-gcs, to-bq, sub-v2, replay. A digest (REPO/IMAGE@sha256:...) pins the exact build."
  type        = map(string)

  validation {
    condition     = length(setsubtract(toset(["to-gcs", "to-bq", "sub-v2", "replay"]), keys(var.images))) == 0 && length(var.images) == 4
    error_message = "images must have exactly the keys to-gcs, to-bq, sub-v2 and replay."
  }

  validation {
    condition     = alltrue([for v in values(var.images) : can(regex("^[a-z0-9.-]+(:[0-9]+)?/[^\\s:@]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$", v))])
    error_message = "Each image must be REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:DIGEST."
  }
}

# --- Pub/Sub -----------------------------------------------------------------------------------

variable "create_topic" {
  description = "true: create the events topic named topic_name. false: use the existing topic of that name in project_id (the usual case: the telemetry gateway publishes to it)."
  type        = bool
  default     = false
}

variable "topic_name" {
  description = "Name (not the full path) of the Pub/Sub topic the telemetry v2 events are published to."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.topic_name)) && !startswith(var.topic_name, "goog")
    error_message = "topic_name must be a topic id: 3-255 characters, starting with a letter, not with goog."
  }
}

variable "pubsub_kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the topics this module creates (events topic when create_topic, and the dead-letter topics). The Pub/Sub service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it. null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.pubsub_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.pubsub_kms_key_name))
    error_message = "pubsub_kms_key_name must be null or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the push subscriptions, also Pub/Sub's timeout for each push and the Cloud Run request timeout; at least a push's worst case, 2 * sink_timeout_seconds + 52 (112 s with the defaults)."
  type        = number
  default     = 120

  validation {
    condition     = var.ack_deadline_seconds > 60 && var.ack_deadline_seconds <= 600 && floor(var.ack_deadline_seconds) == var.ack_deadline_seconds
    error_message = "ack_deadline_seconds must be a whole number above 60 (a push's worst case) and at most 600 (Pub/Sub's maximum)."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a message to a push subscription before Pub/Sub moves it to that subscription's dead-letter topic (counts nacks and ack-deadline expiries). The services dead-letter permanently bad messages themselves; this bounds transient failures (503)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number from 5 to 100 (Pub/Sub's limits)."
  }
}

variable "retry_minimum_backoff" {
  description = "Minimum delay before Pub/Sub redelivers a nacked message (exponential backoff), as a duration in seconds such as \"10s\"."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_minimum_backoff)) && try(tonumber(trimsuffix(var.retry_minimum_backoff, "s")) <= 600, false)
    error_message = "retry_minimum_backoff must be whole seconds from \"0s\" to \"600s\"."
  }
}

variable "retry_maximum_backoff" {
  description = "Maximum delay before Pub/Sub redelivers a nacked message, as a duration in seconds such as \"600s\"."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_maximum_backoff)) && try(tonumber(trimsuffix(var.retry_maximum_backoff, "s")) <= 600, false)
    error_message = "retry_maximum_backoff must be whole seconds from \"0s\" to \"600s\"."
  }
}

variable "dead_letter_retention" {
  description = "How long dead letters are kept (topic and subscription, acked or not), as seconds from \"604800s\" (7 days) to \"2678400s\" (31 days, Pub/Sub's maximum): a holiday weekend plus a fix."
  type        = string
  default     = "2678400s"

  validation {
    condition = (
      can(regex("^[0-9]+s$", var.dead_letter_retention)) &&
      try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 604800, false) &&
      try(tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 2678400, false)
    )
    error_message = "dead_letter_retention must be whole seconds from \"604800s\" (7 days) to \"2678400s\" (31 days)."
  }
}

variable "replay_window" {
  description = "How long messages are kept for a seek after a bad deploy (by the push subscriptions or the topic: replay_retention), as seconds from \"600s\" to \"604800s\" (7 days)."
  type        = string
  default     = "604800s"

  validation {
    condition = (
      can(regex("^[0-9]+s$", var.replay_window)) &&
      try(tonumber(trimsuffix(var.replay_window, "s")) >= 600, false) &&
      try(tonumber(trimsuffix(var.replay_window, "s")) <= 604800, false)
    )
    error_message = "replay_window must be whole seconds from \"600s\" to \"604800s\" (7 days)."
  }
}

variable "replay_retention" {
  description = "Where the replay window's messages are kept for a seek: subscription (each push subscription keeps its acked messages: whatever two subscriptions deliver, twice) or topic (the events topic keeps every message once; needs create_topic, or an existing topic whose own retention covers replay_window)."
  type        = string
  default     = "subscription"

  validation {
    condition     = contains(["subscription", "topic"], var.replay_retention)
    error_message = "replay_retention must be subscription or topic."
  }
}

variable "replay_subnetwork" {
  description = "Subnetwork (projects/P/regions/R/subnetworks/S, Private Google Access on) the replay job's requests leave through, which makes them internal to the services' ingress."
  type        = string
}

variable "audit_schedule" {
  description = "When the daily audit runs (cron, UTC): it audits the previous UTC day, so leave the day's late deliveries a few hours."
  type        = string
  default     = "0 6 * * *"
}

variable "oncall_group" {
  description = "Google group of the on-call engineers: the only readers of the dead-letter subscriptions (which hold raw transcripts). null: no grant here."
  type        = string
  default     = null
}

# --- Cloud Run ---------------------------------------------------------------------------------

# Sizing from BENCHMARKS.md (2-core machine, release build): one instance answers thousands of
# small pushes a second and stays under 40 MiB at 512 concurrent pushes with 50 ms insertAll
# latency; idle RSS ~8 MiB, cold start ~6-14 ms. Pushes mostly wait (on the linger and on
# BigQuery), and the more wait together the more rows share an insertAll, so concurrency is set
# at Cloud Run's default of 80 rather than lower; large pushes are bounded by bytes, not by
# count (MAX_BODY_BYTES_IN_FLIGHT, run.tf), so 512Mi stays safe at any concurrency.
variable "concurrency" {
  description = "Maximum concurrent requests per Cloud Run instance (max_instance_request_concurrency). Pushes mostly wait, and concurrent rows share insertAll calls; memory is bounded by MAX_BODY_BYTES_IN_FLIGHT, not by this."
  type        = number
  default     = 80

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number from 1 to 1000."
  }
}

variable "cpu" {
  description = "CPU limit of each Cloud Run instance, in whole vCPUs (concurrency above 1 needs at least 1)."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.cpu)
    error_message = "cpu must be one of \"1\", \"2\", \"4\", \"6\", \"8\"."
  }
}

variable "memory" {
  description = "Memory limit of each Cloud Run instance, e.g. \"512Mi\" or \"1Gi\"."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[1-9][0-9]*(Mi|Gi)$", var.memory))
    error_message = "memory must be a whole number of Mi or Gi, e.g. \"512Mi\"."
  }
}

variable "billing_mode" {
  description = "Cloud Run billing of each service (keys to-gcs, to-bq, sub-v2): request (billed while pushes are in flight, plus a fee per request; scales to zero) or instance (billed for each instance's whole life at lower rates, no request fee). docs/deploy.md says which to set at what volume."
  type        = map(string)
  default = {
    "to-gcs" = "request"
    "to-bq"  = "request"
    "sub-v2" = "request"
  }

  validation {
    condition     = length(setsubtract(toset(["to-gcs", "to-bq", "sub-v2"]), keys(var.billing_mode))) == 0 && length(var.billing_mode) == 3
    error_message = "billing_mode must have exactly the keys to-gcs, to-bq and sub-v2."
  }

  validation {
    condition     = alltrue([for m in values(var.billing_mode) : contains(["request", "instance"], m)])
    error_message = "Each billing_mode must be request or instance."
  }
}

variable "min_instances" {
  description = "Minimum Cloud Run instances per service (0 scales to zero between pushes)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number from 0 to 100."
  }
}

variable "max_instances" {
  description = "Maximum Cloud Run instances per service. Together with concurrency this bounds the write rate each service can put on Cloud Storage or BigQuery; Pub/Sub's push flow control adapts to it."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 1000."
  }
}

variable "deletion_protection" {
  description = "Protects the Cloud Run services and the BigQuery table from terraform destroy (and from replacement). Set false only to tear down a test deployment."
  type        = bool
  default     = true
}

# --- Service configuration (environment variables of the services) ------------------------------

variable "dotcom_url" {
  description = "DOTCOM_URL: the DotCom external URL; only events from it can be transcript events."
  type        = string
  default     = "https://sourcegraph.com"

  validation {
    condition     = can(regex("^https?://[^/\\s]+/?$", var.dotcom_url))
    error_message = "dotcom_url must be an http(s) URL without a path, e.g. https://sourcegraph.com."
  }
}

variable "dotcom_instance_ids" {
  description = "DOTCOM_INSTANCE_IDS: DotCom instance ids; when non-empty an event must come from one of them as well as from dotcom_url (pinning only narrows). Empty: the URL alone decides."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.dotcom_instance_ids : length(trimspace(id)) > 0 && !strcontains(id, ",")])
    error_message = "dotcom_instance_ids must not contain empty ids or ids with commas."
  }
}

variable "redact_keys" {
  description = "REDACT_KEYS: privateMetadata keys removed (case-insensitively, at any depth) from every BigQuery row in addition to promptText and responseText, which the services always remove. See docs/design.md (Redaction) for Cody keys worth adding."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.redact_keys : length(trimspace(k)) > 0 && !strcontains(k, ",")])
    error_message = "redact_keys must not contain empty keys or keys with commas."
  }
}

variable "sink_timeout_seconds" {
  description = "SINK_TIMEOUT_SECONDS: upper bound of one Cloud Storage or BigQuery call, retries included."
  type        = number
  default     = 30

  validation {
    condition     = var.sink_timeout_seconds >= 1 && var.sink_timeout_seconds <= 540 && floor(var.sink_timeout_seconds) == var.sink_timeout_seconds
    error_message = "sink_timeout_seconds must be a whole number from 1 to 540."
  }
}

variable "bigquery_write_method" {
  description = "BIGQUERY_WRITE_METHOD: storage_write (AppendRows on the default stream; half insertAll's price, 2 TiB a month free) or insert_all (legacy tabledata.insertAll)."
  type        = string
  default     = "storage_write"

  validation {
    condition     = contains(["storage_write", "insert_all"], var.bigquery_write_method)
    error_message = "bigquery_write_method must be storage_write or insert_all."
  }
}

variable "success_log_sample_percent" {
  description = "Percent of the services' success lines (outcome written, already_stored or skipped, no routing mismatch) kept in Cloud Logging, 0-100; the rest are excluded from ingestion. Failures are always kept, and the log-based metrics count every line either way (docs/runbook.md, \"Seeing a success line\")."
  type        = number
  default     = 1

  validation {
    condition     = var.success_log_sample_percent >= 0 && var.success_log_sample_percent <= 100
    error_message = "success_log_sample_percent must be from 0 to 100."
  }
}

variable "exclude_successful_request_logs" {
  description = "Keep Cloud Run's request log of the services' successful pushes (status below 400) out of Cloud Logging: the largest Logging line of a push, read by nothing (docs/cost.md); failures stay."
  type        = bool
  default     = true
}

variable "rust_log" {
  description = "RUST_LOG: log filter of the services, e.g. \"info\" or \"info,pipeline=debug\"."
  type        = string
  default     = "info"

  validation {
    condition     = length(trimspace(var.rust_log)) > 0
    error_message = "rust_log must not be empty."
  }
}

# --- Cloud Storage -----------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the restricted transcript bucket (created here). Only the to-gcs service can create objects in it; only ml_readers_group can read them."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "goog")
    error_message = "bucket_name must be 3-63 characters of lower-case letters, digits, hyphens and underscores (no dots), not starting with goog."
  }
}

variable "bucket_location" {
  description = "Location of the transcript bucket: a multi-region (US, EU), dual-region or region."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.bucket_location))
    error_message = "bucket_location must be a Cloud Storage location such as US, EU or us-central1."
  }
}

variable "transcript_prefix" {
  description = "TRANSCRIPT_PREFIX: object name prefix in the bucket (objects are PREFIX/YYYY/MM/DD/HH/EVENT_ID.json)."
  type        = string
  default     = "transcripts"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.transcript_prefix))
    error_message = "transcript_prefix must be one or more path segments of letters, digits, '.', '_' or '-', without leading or trailing '/'."
  }
}

variable "transcript_retention_days" {
  description = "Transcript objects are deleted this many days after creation (lifecycle rule). 0 keeps them forever."
  type        = number
  default     = 365

  validation {
    condition     = var.transcript_retention_days >= 0 && floor(var.transcript_retention_days) == var.transcript_retention_days
    error_message = "transcript_retention_days must be a whole number, 0 or more."
  }
}

variable "noncurrent_version_retention_days" {
  description = "The bucket is versioned; a deleted or replaced object's old version is kept this many days, then deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days must be a whole number, 1 or more."
  }
}

variable "bucket_kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K, in the bucket's location) used as the bucket's default encryption key (CMEK). The project's Cloud Storage service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it. null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.bucket_kms_key_name))
    error_message = "bucket_kms_key_name must be null or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "bucket_access_log_bucket" {
  description = "Optional existing bucket that receives the transcript bucket's usage (access) logs. null: no usage logs; use Cloud Audit Logs (Data Access for Cloud Storage) to record who read transcripts."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_access_log_bucket == null || can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", var.bucket_access_log_bucket))
    error_message = "bucket_access_log_bucket must be null or a bucket name."
  }
}

variable "ml_readers_group" {
  description = "Google group email of the ML team, granted roles/storage.objectViewer on the transcript bucket (read only). null: nobody is granted read access by this module."
  type        = string
  default     = null

  validation {
    condition     = var.ml_readers_group == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.ml_readers_group))
    error_message = "ml_readers_group must be null or a group email address."
  }
}

# --- BigQuery ----------------------------------------------------------------------------------

variable "dataset_id" {
  description = "BigQuery dataset (created here) that holds the event table. BIGQUERY_DATASET of to-bq and sub-v2."
  type        = string
  default     = "telemetry"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.dataset_id)) && length(var.dataset_id) <= 1024
    error_message = "dataset_id must be 1-1024 letters, digits and underscores."
  }
}

variable "table_id" {
  description = "BigQuery table (created here from shared/schema/event_telemetry.json). BIGQUERY_TABLE of to-bq and sub-v2."
  type        = string
  default     = "event_telemetry"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.table_id)) && length(var.table_id) <= 1024
    error_message = "table_id must be 1-1024 letters, digits and underscores."
  }
}

variable "dataset_location" {
  description = "Location of the BigQuery dataset, e.g. US, EU or us-central1."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.dataset_location))
    error_message = "dataset_location must be a BigQuery location such as US, EU or us-central1."
  }
}

variable "storage_write_connection_quota" {
  description = "The project's Storage Write API quota of concurrent connections in dataset_location. null: Google's default for that location (terraform/quotas.json). Terraform refuses a max_instances whose connections (max_instances x connections per instance x the two BigQuery services) exceed it."
  type        = number
  default     = null

  validation {
    condition     = var.storage_write_connection_quota == null || try(var.storage_write_connection_quota >= 1 && floor(var.storage_write_connection_quota) == var.storage_write_connection_quota, false)
    error_message = "storage_write_connection_quota must be null or a whole number, 1 or more."
  }
}

variable "bigquery_kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K, in the dataset's location) for the dataset's default encryption and the table. The BigQuery service account of the project needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it. null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.bigquery_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.bigquery_kms_key_name))
    error_message = "bigquery_kms_key_name must be null or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

# --- Monitoring --------------------------------------------------------------------------------

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/N) that every alert policy notifies. Empty: the policies still open incidents in the console."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each notification channel must be projects/P/notificationChannels/N."
  }
}

variable "oldest_unacked_message_age_threshold_seconds" {
  description = "Alert when the oldest unacknowledged message of a push subscription is older than this: the service is failing (nacks) or too slow, and messages are on their way to the dead-letter topic."
  type        = number
  default     = 900

  validation {
    condition     = var.oldest_unacked_message_age_threshold_seconds >= 60
    error_message = "oldest_unacked_message_age_threshold_seconds must be at least 60."
  }
}

variable "alert_duration_seconds" {
  description = "How long the oldest-unacked-age condition must hold before its alert opens."
  type        = number
  default     = 300

  validation {
    condition     = var.alert_duration_seconds >= 0 && var.alert_duration_seconds <= 86400 && floor(var.alert_duration_seconds) == var.alert_duration_seconds
    error_message = "alert_duration_seconds must be a whole number from 0 to 86400."
  }
}
