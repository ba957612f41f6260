# Outputs: what was created, for the post-deploy checks in docs/deploy.md and for other modules.

output "events_topic" {
  description = "Full name of the events topic the subscriptions read from."
  value       = local.events_topic_id
}

output "service_urls" {
  description = "Push endpoint base URL (the deterministic run.app URL, also the OIDC audience) of each service."
  value       = { for name, s in local.services : name => s.url }
}

output "service_uris" {
  description = "The URI Cloud Run reports for each service (either of its run.app URLs)."
  value       = { for name, svc in google_cloud_run_v2_service.service : name => svc.uri }
}

output "service_accounts" {
  description = "Service account email of each service."
  value       = { for name, sa in google_service_account.service : name => sa.email }
}

output "push_service_account" {
  description = "Service account the push subscriptions sign their OIDC tokens as (PUSH_AUTH_SERVICE_ACCOUNTS)."
  value       = google_service_account.push.email
}

output "push_subscriptions" {
  description = "Push subscription of each service: name and filter (from routing.json)."
  value = {
    for name, sub in google_pubsub_subscription.push : name => {
      name   = sub.name
      filter = sub.filter
    }
  }
}

output "dead_letter_topics" {
  description = "Dead-letter topic of each service (DEAD_LETTER_TOPIC)."
  value       = { for name, t in google_pubsub_topic.dead_letter : name => t.id }
}

output "event_view" {
  description = "The view with one row per event (PROJECT.DATASET.VIEW): what analysts query."
  value       = "${google_bigquery_table.event_telemetry_once.project}.${google_bigquery_table.event_telemetry_once.dataset_id}.${google_bigquery_table.event_telemetry_once.table_id}"
}

output "audit_job" {
  description = "Cloud Run job of the daily audit: gcloud run jobs execute NAME --args=audit,--from,DAY,--to,DAY."
  value       = google_cloud_run_v2_job.audit.name
}

output "replay_job" {
  description = "Cloud Run job that re-delivers dead letters: gcloud run jobs execute NAME --args=push,--subscription,SUB,--to,URL."
  value       = google_cloud_run_v2_job.replay.name
}

output "dead_letter_subscriptions" {
  description = "Pull subscription on each dead-letter topic: where dead letters wait for a person."
  value       = { for name, s in google_pubsub_subscription.dead_letter : name => s.name }
}

output "transcript_bucket" {
  description = "Name of the restricted transcript bucket."
  value       = google_storage_bucket.transcripts.name
}

output "event_table" {
  description = "The event table, as PROJECT.DATASET.TABLE."
  value       = "${google_bigquery_table.event_telemetry.project}.${google_bigquery_table.event_telemetry.dataset_id}.${google_bigquery_table.event_telemetry.table_id}"
}

output "log_metrics" {
  description = "Log-based metric names (metric type logging.googleapis.com/user/NAME)."
  value = concat([
    google_logging_metric.push_outcomes.name,
    google_logging_metric.routing_mismatches.name,
    google_logging_metric.rejected_messages.name,
  ], [for m in google_logging_metric.measured : m.name])
}

output "dashboard" {
  description = "The on-call dashboard (projects/P/dashboards/ID): Cloud Monitoring, Dashboards, \"Telemetry pipeline (PREFIX)\"."
  value       = google_monitoring_dashboard.pipeline.id
}

output "alert_policies" {
  description = "Alert policy names (projects/P/alertPolicies/ID), per service."
  value = {
    for name in keys(local.services) : name => {
      dead_letter_not_empty      = google_monitoring_alert_policy.dead_letter_not_empty[name].name
      oldest_unacked_message_age = google_monitoring_alert_policy.oldest_unacked_message_age[name].name
    }
  }
}

output "rules" {
  description = "DOTCOM_URL, DOTCOM_INSTANCE_IDS and REDACT_KEYS as the services read them: replay inspect --rules \"$(terraform output -json rules)\"."
  value       = local.rules_env
}
