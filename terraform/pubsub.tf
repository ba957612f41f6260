# Pub/Sub: the events topic, one filtered push subscription per service, and per subscription a
# dead-letter topic with a pull subscription that keeps what lands there until someone looks.
#
# Routing filters come from routing.json, the one definition (the Rust tests read the same file):
#   - to-gcs: `attributes."event.hasPrivateMetadata" = "true" OR NOT attributes:"event.hasPrivateMetadata"`.
#     A transcript event needs non-empty privateMetadata, and every gateway version sets
#     event.hasPrivateMetadata. Older gateways do not set the transcript-flag attribute, so filtering
#     to-gcs on the flag would miss their transcripts; filtering on hasPrivateMetadata (or its
#     absence) misses none while excluding the bulk of events. to-gcs then decides by payload.
#   - to-bq: the transcript flag attribute is "true"; sub-v2: everything else (NOT the same
#     predicate), so every message reaches exactly one BigQuery writer. Both redact every row.
# Filters select on attributes only, must stay <= 256 bytes, and CANNOT be changed after creation:
# a changed filter makes Terraform replace the subscription, which drops its backlog. To change one,
# create a new subscription beside the old one, let the old one drain, then remove it.

resource "google_pubsub_topic" "events" {
  count = var.create_topic ? 1 : 0

  project      = var.project_id
  name         = var.topic_name
  kms_key_name = var.pubsub_kms_key_name
  labels       = var.labels

  # replay_retention = "topic": the topic keeps every message once for replay_window, acked or
  # not, and each push subscription can seek within it (a transcript is kept once, not once per
  # subscription that delivered it).
  message_retention_duration = var.replay_retention == "topic" ? var.replay_window : null
}

data "google_pubsub_topic" "events" {
  count = var.create_topic ? 0 : 1

  project = var.project_id
  name    = var.topic_name

  lifecycle {
    postcondition {
      # The gateway's topic is not ours to change: with replay_retention = "topic" its own
      # retention must already cover the replay window, or a seek would find nothing.
      # An unset retention reads "" (coalesce makes it 0).
      condition     = var.replay_retention != "topic" || tonumber(coalesce(trimsuffix(self.message_retention_duration, "s"), "0")) >= tonumber(trimsuffix(var.replay_window, "s"))
      error_message = "replay_retention is \"topic\" but the existing topic ${var.topic_name} keeps messages for less than replay_window (${var.replay_window}): ask its owners to set its message retention, or use replay_retention = \"subscription\"."
    }
  }
}

resource "google_pubsub_subscription" "push" {
  for_each = local.services

  project = var.project_id
  name    = each.value.subscription_name
  topic   = local.events_topic_id
  labels  = merge(var.labels, { service = each.key })

  filter = local.routing[each.key].filter

  # Also Pub/Sub's timeout for each push request.
  ack_deadline_seconds = var.ack_deadline_seconds

  # Acked messages are kept for replay_window, so a bad deploy can be reprocessed:
  # `gcloud pubsub subscriptions seek SUBSCRIPTION --time=...` (docs/runbook.md). With
  # replay_retention = "topic" the topic keeps them instead, and the same seek reads them there.
  retain_acked_messages      = var.replay_retention == "subscription"
  message_retention_duration = var.replay_window

  push_config {
    # Wrapped envelope (no no_wrapper block): the services read attributes and deliveryAttempt
    # from it.
    push_endpoint = "${each.value.url}/"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = each.value.url
    }
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # Never expire (the default deletes a subscription after 31 days without pushes).
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = length(local.routing[each.key].filter) <= 256
      error_message = "The ${each.key} filter in routing.json is longer than Pub/Sub's 256-byte limit."
    }
    precondition {
      # A push's worst case, shared/src/limits.rs push_worst_case (a test holds this to it).
      condition     = var.ack_deadline_seconds >= 2 * var.sink_timeout_seconds + 52
      error_message = "ack_deadline_seconds must be at least 2 * sink_timeout_seconds + 52 (a push's worst case: admission wait 2 s, JWKS fetch 10 s, body read 30 s, the write and a 403's listing, a dead-letter publish 10 s): a push that outlives the deadline is cut off and delivered again while it may still write."
    }
    precondition {
      condition     = tonumber(trimsuffix(var.retry_minimum_backoff, "s")) <= tonumber(trimsuffix(var.retry_maximum_backoff, "s"))
      error_message = "retry_minimum_backoff must not exceed retry_maximum_backoff."
    }
  }

  # Pushes only succeed once the push service account may invoke the service and Pub/Sub may mint
  # its tokens and dead-letter its messages.
  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.push_token_creator,
    google_pubsub_topic_iam_member.dead_letter_pubsub_publisher,
  ]
}

# --- Dead letters --------------------------------------------------------------------------------
# Each push subscription has its own dead-letter topic. Pub/Sub forwards messages there after
# max_delivery_attempts, and the service itself publishes permanently failing messages there
# (DEAD_LETTER_TOPIC). A topic without subscriptions drops what is published to it, hence the pull
# subscription, which nothing consumes: the alert in monitoring.tf fires when it is not empty.

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.services

  project      = var.project_id
  name         = each.value.dead_letter_name
  kms_key_name = var.pubsub_kms_key_name
  labels       = merge(var.labels, { service = each.key })

  # The topic keeps every dead letter for dead_letter_retention too, acked or not: a letter acked
  # by mistake (or replayed into a still-broken service) can be had again with a seek of the
  # dead-letter subscription to a time.
  message_retention_duration = var.dead_letter_retention
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.services

  project = var.project_id
  name    = each.value.dead_letter_name
  topic   = google_pubsub_topic.dead_letter[each.key].id
  labels  = merge(var.labels, { service = each.key })

  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}
