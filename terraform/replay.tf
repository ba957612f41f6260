# The on-call path for dead letters: a Cloud Run job that runs `replay` (the workspace's on-call
# tool, same repository, `--build-arg BIN=replay`) as an identity the services accept. One command,
# given in the dead-letter alert's documentation, re-delivers a service's dead letters to it:
#
#   gcloud run jobs execute PREFIX-replay --region REGION --wait \
#     --args=push,--subscription,DEAD_LETTER_SUBSCRIPTION,--to,SERVICE_URL
#
# Why a job: the services admit internal traffic only and verify the push's OIDC token, so an
# engineer's laptop cannot reach them. The job's requests leave through the VPC (Direct VPC egress,
# all traffic), which is what makes them internal to Cloud Run; its service account may invoke the
# services (iam.tf) and is listed in PUSH_AUTH_SERVICE_ACCOUNTS (run.tf), and it may pull and ack
# the dead-letter subscriptions. `replay` acks a letter only after the service took it.

resource "google_service_account" "replay" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-replay"
  display_name = "Telemetry dead-letter replay"
  description  = "Runs the replay job: pulls dead letters and pushes them back to the service that failed them."
}

resource "google_cloud_run_v2_job" "replay" {
  project             = var.project_id
  name                = "${var.name_prefix}-replay"
  location            = var.region
  labels              = var.labels
  deletion_protection = var.deletion_protection

  template {
    task_count = 1

    template {
      service_account = google_service_account.replay.email
      max_retries     = 0
      timeout         = "3600s"

      containers {
        image = var.images["replay"]
        # Overridden on each execution (--args); alone it prints the commands.
        args = ["--help"]
        # `replay inspect` judges letters and redacts the rows it prints as the services do;
        # `replay push` waits for a push as long as a service may take (SINK_TIMEOUT_SECONDS).
        dynamic "env" {
          for_each = merge(local.rules_env, { SINK_TIMEOUT_SECONDS = tostring(var.sink_timeout_seconds) })
          content {
            name  = env.key
            value = env.value
          }
        }
      }

      vpc_access {
        egress = "ALL_TRAFFIC"
        network_interfaces {
          subnetwork = var.replay_subnetwork
        }
      }
    }
  }
}

# The replay identity may invoke the services, like the push account...
resource "google_cloud_run_v2_service_iam_member" "replay_invoker" {
  for_each = local.services

  project  = var.project_id
  location = google_cloud_run_v2_service.service[each.key].location
  name     = google_cloud_run_v2_service.service[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.replay.member
}

# ...and pull and ack the dead letters (which hold raw transcripts: as restricted as the bucket).
resource "google_pubsub_subscription_iam_member" "replay_dead_letters" {
  for_each = local.services

  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.replay.member
}

# The on-call group starts the job with its own arguments (run.jobs.runWithOverrides).
resource "google_cloud_run_v2_job_iam_member" "oncall_replay" {
  count = var.oncall_group == null ? 0 : 1

  project  = var.project_id
  location = google_cloud_run_v2_job.replay.location
  name     = google_cloud_run_v2_job.replay.name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "group:${var.oncall_group}"
}
