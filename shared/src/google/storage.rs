//! One Cloud Storage bucket, as `to-gcs` and the audit use it: Google's `google-cloud-storage`
//! client for object writes ([`Bucket::client`]) and reads ([`Bucket::read`]), and the JSON layer
//! for what that client does not offer over JSON: `testIamPermissions`, `buckets.get` and object
//! listing (its listing is gRPC-only, which fake-gcs-server does not serve).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use google_cloud_storage::client::Storage;
use serde::{Deserialize, Serialize};

use super::{Api, Credentials, GoogleError, STORAGE, calls};

/// Read and write, for `to-gcs` (create objects, list names).
pub const READ_WRITE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// Read only, for the audit.
pub const READ_ONLY: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// One bucket.
pub struct Bucket {
    name: String,
    /// `projects/_/buckets/{name}`, as the client library names it.
    path: String,
    json: Api,
    client: Storage,
}

/// `objects.list`: one page of names (and custom metadata, when asked for).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Objects {
    #[serde(default)]
    pub items: Vec<ListedObject>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// An object as listed: its name and custom metadata (`x-goog-meta-*`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct ListedObject {
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `buckets.testIamPermissions`: the permissions the caller has, of those asked for.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct TestIamPermissionsResponse {
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `buckets.get`: only its existence is read.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct BucketResource {
    #[serde(default)]
    pub name: String,
}

impl Bucket {
    /// The bucket `name` at Google (ADC with `scope`), or at `emulator` (`http://host:port`).
    /// `timeout` bounds each call, retries included.
    pub async fn connect(
        name: &str,
        emulator: Option<&str>,
        scope: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Arc::new(Credentials::new(
            emulator.is_some(),
            &[scope],
            STORAGE.name,
        )?);
        let json = Api::with_credentials(&STORAGE, emulator, credentials.clone(), timeout)?;
        // A payload is at most 10 MB: every write is one multipart request.
        let builder = Storage::builder().with_resumable_upload_threshold(64 * 1024 * 1024_usize);
        let client = configure_google_client!(builder, credentials, timeout, emulator)
            .build()
            .await
            .map_err(|e| format!("cannot create the Cloud Storage client: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            path: format!("projects/_/buckets/{name}"),
            json,
            client,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `projects/_/buckets/{name}`, for the client library's calls.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Google's client, for writes.
    pub fn client(&self) -> &Storage {
        &self.client
    }

    /// Against an emulator (no IAM there).
    pub fn is_emulator(&self) -> bool {
        self.json.endpoint().emulator
    }

    /// Of `permissions`, those this caller has on the bucket (`testIamPermissions`).
    pub async fn granted(&self, permissions: &[&str]) -> Result<Vec<String>, GoogleError> {
        let query: Vec<(&str, &str)> = permissions.iter().map(|p| ("permissions", *p)).collect();
        let path = format!("b/{}/iam/testPermissions", self.name);
        let answer: TestIamPermissionsResponse = self
            .json
            .get(calls::BUCKETS_TEST_IAM_PERMISSIONS, &path, &query)
            .await?;
        Ok(answer.permissions)
    }

    /// Whether the bucket exists (`buckets.get`; needs `storage.buckets.get`, which the writer
    /// does not have: used against the emulator only).
    pub async fn exists(&self) -> Result<(), GoogleError> {
        let _: BucketResource = self
            .json
            .get(
                calls::BUCKETS_GET,
                &format!("b/{}", self.name),
                &[("fields", "name")],
            )
            .await?;
        Ok(())
    }

    /// One page of the objects whose names start with `prefix`; `fields` limits the answer.
    pub async fn list_page(
        &self,
        prefix: &str,
        page_token: Option<&str>,
        max_results: u32,
        fields: &str,
    ) -> Result<Objects, GoogleError> {
        let max = max_results.to_string();
        let mut query = vec![
            ("prefix", prefix),
            ("maxResults", max.as_str()),
            ("fields", fields),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        self.json
            .get(calls::OBJECTS_LIST, &format!("b/{}/o", self.name), &query)
            .await
    }

    /// Every object whose name starts with `prefix`, with its custom metadata, page by page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, GoogleError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_page(
                    prefix,
                    token.as_deref(),
                    1000,
                    "items(name,metadata),nextPageToken",
                )
                .await?;
            out.extend(page.items);
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// Whether an object of exactly this name exists (a listing: no right to read content needed).
    pub async fn has_object(&self, name: &str) -> Result<bool, GoogleError> {
        let page = self.list_page(name, None, 10, "items/name").await?;
        Ok(page.items.iter().any(|o| o.name == name))
    }

    /// An object's bytes (`objects.get` with `alt=media`, through Google's client).
    pub async fn read(&self, name: &str) -> Result<Bytes, GoogleError> {
        let e = |e: google_cloud_storage::Error| GoogleError::from_gax(calls::OBJECTS_GET, &e);
        let mut response = self
            .client
            .read_object(&self.path, name)
            .send()
            .await
            .map_err(e)?;
        let mut out = Vec::new();
        while let Some(chunk) = response.next().await.transpose().map_err(e)? {
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}
