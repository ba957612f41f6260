# Cloud Storage: the restricted transcript bucket. Private by construction (uniform bucket-level
# access, public access prevention enforced); who may do what is in iam.tf.

resource "google_storage_bucket" "transcripts" {
  project  = var.project_id
  name     = var.bucket_name
  location = var.bucket_location
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Objects are written once (ifGenerationMatch=0); versions keep anything deleted or replaced by
  # hand for noncurrent_version_retention_days.
  versioning {
    enabled = true
  }

  dynamic "lifecycle_rule" {
    for_each = var.transcript_retention_days > 0 ? [var.transcript_retention_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.bucket_kms_key_name == null ? [] : [var.bucket_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.bucket_access_log_bucket == null ? [] : [var.bucket_access_log_bucket]
    content {
      log_bucket        = logging.value
      log_object_prefix = var.bucket_name
    }
  }
}
