//! Cloud Storage through Google's official `google-cloud-storage` crate.
//!
//! Objects are written with `ifGenerationMatch=0` (create only) in one buffered multipart upload:
//! a payload is at most 10 MB, under the resumable threshold set here, so a write is a single
//! request. (This is also the only upload path on which fake-gcs-server honours the precondition;
//! real Cloud Storage honours it on every path.) HTTP 412 means the object exists: a redelivery.
//!
//! The client's retry loop is driven by the pipeline's one classifier
//! ([`crate::google::classify`]): a [`Class::Retry`] answer (no answer, 408, 429, 5xx) is tried
//! again within the sink timeout; what is left after that is a transient error, so the push is
//! nacked and Pub/Sub redelivers later. The bucket itself (client, listing, IAM check) is
//! [`crate::google::storage::Bucket`].
//!
//! An object's name carries a hash of its content ([`crate::object_name`]), so an object
//! that already exists under that name holds these very bytes. Google documents 412 for a failed
//! precondition, and that overwriting needs `storage.objects.delete`, which the writer does not
//! have; it does not say which of the two a create-only write by `objectCreator` gets when the
//! object exists. So a 403 is looked into: the object is listed by its exact name (metadata only,
//! `storage.objects.list`; the writer can never read content) and taken as stored only if it is
//! there; otherwise the 403 is a missing grant and the push is nacked.
//!
//! [`GcsStore::check`] runs at start-up: the service refuses to start without the right to create
//! and list objects in the bucket (`testIamPermissions`), or, against the emulator, which has no
//! IAM, without the bucket.

use std::time::Duration;

use async_trait::async_trait;

use super::{NewObject, ObjectStore, SinkCheck, Stored};
use crate::error::CallError;
use crate::google::storage::{Bucket, READ_WRITE};
use crate::google::{Class, GoogleError, calls};

pub struct GcsStore {
    bucket: Bucket,
    timeout: Duration,
}

/// The permission `to-gcs` writes with.
pub const CREATE_PERMISSION: &str = "storage.objects.create";
/// What `to-gcs` needs: create, and list (to look into a 403).
pub const NEEDED: [&str; 2] = [CREATE_PERMISSION, "storage.objects.list"];

impl GcsStore {
    /// The sink for `bucket`, connected with [`READ_WRITE`] (see [`GcsStore::connect`]); writes
    /// are bounded by `timeout`, retries included.
    pub fn new(bucket: Bucket, timeout: Duration) -> Self {
        Self { bucket, timeout }
    }

    /// The bucket `name` with Application Default Credentials, or, with `emulator` set (from
    /// `STORAGE_EMULATOR_HOST`), at that endpoint with anonymous credentials.
    pub async fn connect(
        name: &str,
        emulator: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let bucket = Bucket::connect(name, emulator, READ_WRITE, timeout).await?;
        Ok(Self::new(bucket, timeout))
    }

    /// Start-up check: may this service create and list objects in the bucket
    /// (`testIamPermissions`)? The error names the problem; `main` then exits and Cloud Run's
    /// deploy fails instead of pushes failing later. The emulator has no IAM and answers 404 to
    /// `testIamPermissions`: there the check asks whether the bucket exists instead.
    pub async fn check(&self) -> Result<(), SinkCheck> {
        let name = self.bucket.name();
        let granted = match self.bucket.granted(&NEEDED).await {
            Ok(granted) => granted,
            Err(e) if self.bucket.is_emulator() && e.status == Some(404) => {
                return self.bucket.exists().await.map_err(|e| match e.class() {
                    Class::Retry => SinkCheck::Unavailable(e.to_string()),
                    _ => SinkCheck::Wrong(format!(
                        "bucket gs://{name} not found on the Cloud Storage emulator ({e})"
                    )),
                });
            }
            Err(e) => return Err(SinkCheck::from_google(e, &format!("bucket gs://{name}"))),
        };
        let missing: Vec<&str> = NEEDED
            .iter()
            .copied()
            .filter(|p| !granted.iter().any(|g| g == p))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SinkCheck::Wrong(format!(
                "this service account lacks {} on gs://{name}",
                missing.join(" and ")
            )))
        }
    }

    /// Whether an object of exactly this name exists (listing needs no right to read content).
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        self.bucket
            .has_object(name)
            .await
            .map_err(|e| e.to_string())
    }

    /// What a 403 on a create-only write means: the object is there (Cloud Storage refused to
    /// overwrite it), or this service may not write.
    async fn after_forbidden(&self, name: &str) -> Result<Stored, CallError> {
        match self.exists(name).await {
            Ok(true) => Ok(Stored::AlreadyExists),
            Ok(false) => Err(CallError::Transient(
                "Cloud Storage answered HTTP 403 and the object is not there: a missing grant"
                    .into(),
            )),
            Err(e) => Err(CallError::Transient(format!(
                "Cloud Storage answered HTTP 403, and whether the object exists is unknown: {e}"
            ))),
        }
    }
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn create_once(&self, object: NewObject) -> Result<Stored, CallError> {
        let name = object.name.clone();
        let write = self
            .bucket
            .client()
            .write_object(self.bucket.path(), &object.name, object.data)
            .set_if_generation_match(0)
            .set_content_type(object.content_type)
            .set_metadata(object.metadata)
            .send_buffered();
        // The retry policy is bounded by the same time; this also bounds a hung connection.
        let error = match tokio::time::timeout(self.timeout + Duration::from_secs(1), write).await {
            Err(_) => {
                return Err(CallError::Transient(format!(
                    "Cloud Storage write timed out after {:?}",
                    self.timeout
                )));
            }
            Ok(Ok(_)) => return Ok(Stored::Created),
            Ok(Err(e)) => GoogleError::from_gax(calls::OBJECTS_INSERT, &e),
        };
        match (error.class(), error.status) {
            // The name carries the content's hash: what is there holds these bytes.
            (Class::Conflict, _) => Ok(Stored::AlreadyExists),
            (_, Some(403)) => self.after_forbidden(&name).await,
            // Anything else is the service's or the deployment's (nack: Pub/Sub redelivers once
            // it is fixed), unless Google refused the request itself.
            _ => Err(error.into()),
        }
    }
}
