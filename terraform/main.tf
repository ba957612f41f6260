# Shared locals: the three services and everything named after them, the routing filters (defined
# once, in routing.json) and the BigQuery schema file (defined once, in shared/schema/).

locals {
  # One entry per service binary (the keys are the Cargo package names and the values of the
  # services' `service` log field). `subscription` is the part of the subscription name after the
  # prefix; `sink` says which storage the service writes to.
  services = {
    for name, s in {
      "to-gcs" = { subscription = "transcript-to-gcs", sink = "gcs" }
      "to-bq"  = { subscription = "transcript-to-bq", sink = "bigquery" }
      "sub-v2" = { subscription = "sub-v2", sink = "bigquery" }
      } : name => merge(s, {
        run_name          = "${var.name_prefix}-${name}"
        account_id        = "${var.name_prefix}-${name}"
        subscription_name = "${var.name_prefix}-${s.subscription}"
        dead_letter_name  = "${var.name_prefix}-${s.subscription}-dead-letter"
        # The deterministic run.app URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app), known before
        # the service exists, so the service can be told its own push audience (PUSH_AUTH_AUDIENCE)
        # and the subscription can use the very same string as endpoint and OIDC audience. A
        # service's default run.app URLs are always accepted audiences for Cloud Run's IAM check.
        url = "https://${var.name_prefix}-${name}-${data.google_project.this.number}.${var.region}.run.app"
    })
  }

  # The services that insert rows into BigQuery (the row_writer custom role on the table, iam.tf).
  bigquery_services = { for name, s in local.services : name => s if s.sink == "bigquery" }

  # The subscription filters: the ONE definition, shared with the Rust tests.
  routing = jsondecode(file("${path.module}/routing.json"))

  # The event_telemetry schema: the ONE definition, shared with the Rust code and tests.
  schema_path = "${path.module}/../shared/schema/event_telemetry.json"

  # Google-managed identity that delivers pushes, forwards dead letters and mints the OIDC tokens.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # The events topic, created here or looked up by name.
  events_topic_id = var.create_topic ? google_pubsub_topic.events[0].id : data.google_pubsub_topic.events[0].id
}
