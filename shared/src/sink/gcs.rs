//! Cloud Storage through Google's official `google-cloud-storage` crate.
//!
//! Objects are written with `ifGenerationMatch=0` (create only) in one buffered multipart upload:
//! a payload is at most 10 MB, under the resumable threshold set here, so a write is a single
//! request. (This is also the only upload path on which fake-gcs-server honours the precondition;
//! real Cloud Storage honours it on every path.) HTTP 412 means the object exists: a redelivery.
//!
//! The client retries retryable errors (408, 429, 5xx, I/O) within the sink timeout; what is left
//! after that is a transient error, so the push is nacked and Pub/Sub redelivers later.
//!
//! An object's name carries a hash of its content ([`crate::handler::object_name`]), so an object
//! that already exists under that name holds these very bytes. Google documents 412 for a failed
//! precondition, and that overwriting needs `storage.objects.delete`, which the writer does not
//! have; it does not say which of the two a create-only write by `objectCreator` gets when the
//! object exists. So a 403 is looked into: the object is listed by its exact name (metadata only,
//! `storage.objects.list`; the writer can never read content) and taken as stored only if it is
//! there; otherwise the 403 is a missing grant and the push is nacked.
//!
//! [`GcsStore::check`] runs at start-up: the service refuses to start without the right to create
//! and list objects in the bucket (`testIamPermissions`), or, against the emulator, which has no IAM, without
//! the bucket.

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::AccessTokenCredentials;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;

use serde_json::Value;

use super::{NewObject, ObjectStore, SinkCheck, SinkError, Stored};

pub struct GcsStore {
    client: Storage,
    /// `projects/_/buckets/{bucket}`
    bucket_path: String,
    bucket: String,
    timeout: Duration,
    /// The JSON API, for what the client library does not offer (listing one name, IAM checks).
    json_api: JsonApi,
}

/// Cloud Storage's JSON API over plain HTTPS: `https://storage.googleapis.com/storage/v1`, or the
/// emulator's, without credentials.
struct JsonApi {
    http: reqwest::Client,
    base: String,
    credentials: Option<AccessTokenCredentials>,
}

const STORAGE_API: &str = "https://storage.googleapis.com/storage/v1";
const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The permission `to-gcs` writes with.
pub const CREATE_PERMISSION: &str = "storage.objects.create";
/// What `to-gcs` needs: create, and list (to look into a 403).
pub const NEEDED: [&str; 2] = [CREATE_PERMISSION, "storage.objects.list"];

impl JsonApi {
    fn new(emulator: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let (base, credentials) = match emulator {
            Some(endpoint) => (
                format!("{}/storage/v1", endpoint.trim_end_matches('/')),
                None,
            ),
            None => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .with_scopes([STORAGE_SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        format!(
                            "cannot load Application Default Credentials for Cloud Storage: {e}"
                        )
                    })?;
                (STORAGE_API.to_string(), Some(creds))
            }
        };
        Ok(Self {
            http,
            base,
            credentials,
        })
    }

    /// GET `{base}/{path}` with `query`: the status and the JSON body (`Null` if none).
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let mut request = self.http.get(format!("{}/{path}", self.base)).query(query);
        if let Some(creds) = &self.credentials {
            let token = creds
                .access_token()
                .await
                .map_err(|_| "no access token for Cloud Storage".to_string())?;
            request = request.bearer_auth(token.token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("Cloud Storage unreachable: {}", e.without_url()))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
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
            bucket: bucket.to_string(),
            timeout,
            json_api: JsonApi::new(emulator, timeout)?,
        })
    }

    /// Start-up check: may this service create objects in the bucket? The error names the
    /// problem; `main` then exits and Cloud Run's deploy fails instead of pushes failing later.
    pub async fn check(&self) -> Result<(), SinkCheck> {
        let bucket = &self.bucket;
        if self.json_api.credentials.is_none() {
            // The emulator has no IAM (no testIamPermissions): check that the bucket exists.
            let (status, _) = self
                .json_api
                .get(&format!("b/{bucket}"), &[])
                .await
                .map_err(SinkCheck::Unavailable)?;
            return match status {
                200 => Ok(()),
                s if s >= 500 => Err(SinkCheck::Unavailable(format!(
                    "the Cloud Storage emulator answered HTTP {s}"
                ))),
                _ => Err(SinkCheck::Wrong(format!(
                    "bucket gs://{bucket} not found on the Cloud Storage emulator (HTTP {status})"
                ))),
            };
        }
        let path = format!("b/{bucket}/iam/testPermissions");
        let query: Vec<(&str, &str)> = NEEDED.iter().map(|p| ("permissions", *p)).collect();
        let (status, body) = self
            .json_api
            .get(&path, &query)
            .await
            .map_err(SinkCheck::Unavailable)?;
        let missing: Vec<&str> = NEEDED
            .iter()
            .copied()
            .filter(|p| !granted(&body, p))
            .collect();
        match status {
            200 if missing.is_empty() => Ok(()),
            200 => Err(SinkCheck::Wrong(format!(
                "this service account lacks {} on gs://{bucket}",
                missing.join(" and ")
            ))),
            404 => Err(SinkCheck::Wrong(format!(
                "bucket gs://{bucket} does not exist"
            ))),
            s if s == 429 || s >= 500 => Err(SinkCheck::Unavailable(format!(
                "testIamPermissions answered HTTP {s}"
            ))),
            _ => Err(SinkCheck::Wrong(format!(
                "cannot check gs://{bucket}: testIamPermissions answered HTTP {status}"
            ))),
        }
    }

    /// Whether an object of exactly this name exists (listing needs no right to read content).
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        let path = format!("b/{}/o", self.bucket);
        let query = [
            ("prefix", name),
            ("fields", "items/name"),
            ("maxResults", "10"),
        ];
        let (status, body) = self.json_api.get(&path, &query).await?;
        if status != 200 {
            return Err(format!("Cloud Storage answered HTTP {status} to a listing"));
        }
        let items = body["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(items.iter().any(|item| item["name"] == name))
    }

    /// What a 403 on a create-only write means: the object is there (Cloud Storage refused to
    /// overwrite it), or this service may not write.
    async fn after_forbidden(&self, name: &str) -> Result<Stored, SinkError> {
        match self.exists(name).await {
            Ok(true) => Ok(Stored::AlreadyExists),
            Ok(false) => Err(SinkError::Transient(
                "Cloud Storage answered HTTP 403 and the object is not there: a missing grant"
                    .into(),
            )),
            Err(e) => Err(SinkError::Transient(format!(
                "Cloud Storage answered HTTP 403, and whether the object exists is unknown: {e}"
            ))),
        }
    }
}

/// Whether a `testIamPermissions` answer grants `permission`.
fn granted(body: &Value, permission: &str) -> bool {
    body["permissions"]
        .as_array()
        .is_some_and(|granted| granted.iter().any(|p| p == permission))
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn create_once(&self, object: NewObject) -> Result<Stored, SinkError> {
        let name = object.name.clone();
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
            // The name carries the content's hash: what is there holds these bytes.
            Ok(Err(e)) if e.http_status_code() == Some(412) => Ok(Stored::AlreadyExists),
            Ok(Err(e)) if e.http_status_code() == Some(403) => self.after_forbidden(&name).await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_permission_counts_only_when_testiampermissions_returns_it() {
        let answer = json!({"kind": "storage#testIamPermissionsResponse", "permissions": [CREATE_PERMISSION]});
        assert!(granted(&answer, CREATE_PERMISSION));
        assert!(!granted(
            &json!({"kind": "storage#testIamPermissionsResponse"}),
            CREATE_PERMISSION
        ));
        assert!(!granted(
            &json!({"permissions": ["storage.objects.list"]}),
            CREATE_PERMISSION
        ));
    }
}
