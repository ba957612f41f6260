# Identities and the IAM grants of the services and of the people, in one place to audit (the
# replay job's are in replay.tf, the audit's in audit.tf). All grants are on single resources
# (topic, subscription, service, job, bucket, dataset, table, service account); the one
# project-level grant is the audit's BigQuery job user (query jobs are only granted per project).

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

# --- Custom roles: exactly what the services call ----------------------------------------------

# to-gcs creates objects (ifGenerationMatch=0: never overwrites) and, after a 403 on a create,
# lists the one name to see whether the object is already there. Listing shows names and
# metadata, never content; no read, no overwrite, no delete. (roles/storage.objectCreator lacks
# the listing.)
resource "google_project_iam_custom_role" "transcript_writer" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_transcript_writer"
  title       = "Telemetry transcript writer"
  description = "Create objects in the transcript bucket and list their names; no read, overwrite or delete."
  permissions = ["storage.objects.create", "storage.objects.list"]
}

# to-bq and sub-v2 append rows (the Storage Write API's AppendRows and GetWriteStream, or
# tabledata.insertAll: both need tables.updateData) and check the table at start-up (tables.get).
# roles/bigquery.dataEditor would also let them read, delete and export the table.
resource "google_project_iam_custom_role" "row_writer" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_row_writer"
  title       = "Telemetry row writer"
  description = "Stream rows into the event_telemetry table and read its schema; no reads of data, no deletes."
  permissions = ["bigquery.tables.get", "bigquery.tables.updateData"]
}

# Streaming also needs bigquery.datasets.get on the dataset (the insertAll reference): dataset
# metadata only, no table in it.
resource "google_project_iam_custom_role" "dataset_metadata_reader" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_dataset_metadata_reader"
  title       = "Telemetry dataset metadata reader"
  description = "Read the telemetry dataset's metadata (bigquery.datasets.get), which streaming inserts require."
  permissions = ["bigquery.datasets.get"]
}

# to-gcs: create objects in the transcript bucket, and list names (see transcript_writer).
resource "google_storage_bucket_iam_member" "to_gcs_object_creator" {
  bucket = google_storage_bucket.transcripts.name
  role   = google_project_iam_custom_role.transcript_writer.name
  member = google_service_account.service["to-gcs"].member
}

# to-bq and sub-v2: streaming inserts (tabledata.insertAll) into THE table only.
resource "google_bigquery_table_iam_member" "row_writer" {
  for_each = local.bigquery_services

  project    = google_bigquery_table.event_telemetry.project
  dataset_id = google_bigquery_table.event_telemetry.dataset_id
  table_id   = google_bigquery_table.event_telemetry.table_id
  role       = google_project_iam_custom_role.row_writer.name
  member     = google_service_account.service[each.key].member
}

resource "google_bigquery_dataset_iam_member" "row_writer_dataset_metadata" {
  for_each = local.bigquery_services

  project    = google_bigquery_dataset.telemetry.project
  dataset_id = google_bigquery_dataset.telemetry.dataset_id
  role       = google_project_iam_custom_role.dataset_metadata_reader.name
  member     = google_service_account.service[each.key].member
}

# --- People ---------------------------------------------------------------------------------------

# The on-call group, and only it, reads the dead letters, which hold raw transcripts: the same
# people as may read the bucket's restricted data. IAM is additive: anyone with a project-level
# Pub/Sub role (roles/pubsub.subscriber, editor, owner) can still pull them, so the runbook says
# to grant no such role in this project (docs/runbook.md, "Who can read dead letters").
resource "google_pubsub_subscription_iam_member" "oncall_dead_letters" {
  for_each = var.oncall_group == null ? {} : local.services

  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "group:${var.oncall_group}"
}

resource "google_pubsub_subscription_iam_member" "oncall_dead_letters_viewer" {
  for_each = var.oncall_group == null ? {} : local.services

  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter[each.key].name
  role         = "roles/pubsub.viewer"
  member       = "group:${var.oncall_group}"
}

# The ML team reads the transcripts.
resource "google_storage_bucket_iam_member" "ml_readers" {
  count = var.ml_readers_group == null ? 0 : 1

  bucket = google_storage_bucket.transcripts.name
  role   = "roles/storage.objectViewer"
  member = "group:${var.ml_readers_group}"
}
