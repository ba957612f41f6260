//! Cloud Storage through Google's official `google-cloud-storage` crate.
//!
//! Objects are written with `ifGenerationMatch=0` (create only) in one buffered multipart upload:
//! a payload is at most 10 MB, under the resumable threshold set here, so a write is a single
//! request. (This is also the only upload path on which fake-gcs-server honours the precondition;
//! real Cloud Storage honours it on every path.) HTTP 412 means the object exists: a redelivery.
//!
//! The client retries retryable errors (408, 429, 5xx, I/O) within the sink timeout; what is left
//! after that is a transient error, so the push is nacked and Pub/Sub redelivers later.

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;

use super::{NewObject, ObjectStore, SinkError, Stored};

pub struct GcsStore {
    client: Storage,
    /// `projects/_/buckets/{bucket}`
    bucket_path: String,
    timeout: Duration,
}

impl GcsStore {
    /// Connects to Cloud Storage: Application Default Credentials, or, with `emulator` set (from
    /// `STORAGE_EMULATOR_HOST`), that endpoint with anonymous credentials.
    pub async fn connect(
        bucket: &str,
        emulator: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut builder = Storage::builder()
            .with_retry_policy(
                RetryableErrors
                    .with_time_limit(timeout)
                    .with_attempt_limit(5),
            )
            .with_resumable_upload_threshold(64 * 1024 * 1024_usize);
        if let Some(endpoint) = emulator {
            builder = builder.with_endpoint(endpoint).with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        let client = builder
            .build()
            .await
            .map_err(|e| format!("cannot create the Cloud Storage client: {e}"))?;
        Ok(Self {
            client,
            bucket_path: format!("projects/_/buckets/{bucket}"),
            timeout,
        })
    }
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn create_once(&self, object: NewObject) -> Result<Stored, SinkError> {
        let write = self
            .client
            .write_object(&self.bucket_path, &object.name, object.data)
            .set_if_generation_match(0)
            .set_content_type(object.content_type)
            .set_metadata(object.metadata)
            .send_buffered();
        // The retry policy is bounded by the same time; this also bounds a hung connection.
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), write).await {
            Err(_) => Err(SinkError::Transient(format!(
                "Cloud Storage write timed out after {:?}",
                self.timeout
            ))),
            Ok(Ok(_)) => Ok(Stored::Created),
            Ok(Err(e)) if e.http_status_code() == Some(412) => Ok(Stored::AlreadyExists),
            // Every other failure is the service's or the configuration's (403, 404 bucket), not
            // the message's: nack and let Pub/Sub redeliver once it is fixed.
            Ok(Err(e)) => Err(SinkError::Transient(match e.http_status_code() {
                Some(code) => format!("Cloud Storage answered HTTP {code}"),
                None if e.is_timeout() => "Cloud Storage timed out".to_string(),
                None if e.is_connect() || e.is_io() => {
                    "Cloud Storage unreachable (connection failed)".to_string()
                }
                None => format!("Cloud Storage write failed: {e}"),
            })),
        }
    }
}
