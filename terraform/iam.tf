# Identities and every IAM grant of the module, in one place to audit. All grants are on single
# resources (topic, subscription, service, bucket, table, service account); no service account gets
# a project-level role.

data "google_project" "this" {
  project_id = var.project_id
}

# --- Service accounts ----------------------------------------------------------------------------

# One identity per service, so each can only touch its own sink and dead-letter topic.
resource "google_service_account" "service" {
  for_each = local.services

  project      = var.project_id
  account_id   = each.value.account_id
  display_name = "Telemetry ${each.key} service"
  description  = "Runs the ${each.key} Cloud Run service (Pub/Sub push from ${each.value.subscription_name})."
}

# The identity Pub/Sub signs push requests as (OIDC token); the only invoker of the services.
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "Telemetry push invoker"
  description  = "Identity of the Pub/Sub push subscriptions' OIDC tokens; may invoke the telemetry Cloud Run services and nothing else."
}

# --- Pub/Sub service agent ------------------------------------------------------------------------

# Pub/Sub mints the push OIDC tokens as the push service account: token creator on THAT account only.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead-lettering: the agent publishes to each dead-letter topic...
resource "google_pubsub_topic_iam_member" "dead_letter_pubsub_publisher" {
  for_each = local.services

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

# ...and acknowledges the forwarded message on the source subscription.
resource "google_pubsub_subscription_iam_member" "push_pubsub_subscriber" {
  for_each = local.services

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Services --------------------------------------------------------------------------------------

# Each service publishes permanently failing messages to its OWN dead-letter topic.
resource "google_pubsub_topic_iam_member" "dead_letter_service_publisher" {
  for_each = local.services

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.service[each.key].member
}

# Only the push service account may invoke the services (no allUsers: the services are private).
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.services

  project  = var.project_id
  location = google_cloud_run_v2_service.service[each.key].location
  name     = google_cloud_run_v2_service.service[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# to-gcs: create objects in the transcript bucket, nothing else (no read, no overwrite, no delete;
# writes use ifGenerationMatch=0, so a redelivery gets 412 "already stored").
resource "google_storage_bucket_iam_member" "to_gcs_object_creator" {
  bucket = google_storage_bucket.transcripts.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.service["to-gcs"].member
}

# to-bq and sub-v2: streaming inserts (tabledata.insertAll) into THE table only.
resource "google_bigquery_table_iam_member" "row_writer" {
  for_each = local.bigquery_services

  project    = google_bigquery_table.event_telemetry.project
  dataset_id = google_bigquery_table.event_telemetry.dataset_id
  table_id   = google_bigquery_table.event_telemetry.table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.service[each.key].member
}

# --- People ---------------------------------------------------------------------------------------

# The ML team reads the transcripts.
resource "google_storage_bucket_iam_member" "ml_readers" {
  count = var.ml_readers_group == null ? 0 : 1

  bucket = google_storage_bucket.transcripts.name
  role   = "roles/storage.objectViewer"
  member = "group:${var.ml_readers_group}"
}
