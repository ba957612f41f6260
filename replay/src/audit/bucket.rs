//! The transcript bucket for the audit: list a window's objects (name and metadata, page by
//! page) and read one object back to classify it. Application Default Credentials, or none against
//! the emulator (`STORAGE_EMULATOR_HOST`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use serde_json::Value;

const STORAGE_API: &str = "https://storage.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// One object of the bucket: its name and its custom metadata (`event-id`, …).
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

impl Object {
    /// The event id the writer recorded (`event-id`), or the name's own.
    pub fn event_id(&self) -> String {
        if let Some(id) = self.metadata.get("event-id") {
            return id.clone();
        }
        let tail = self.name.rsplit('/').next().unwrap_or_default();
        let tail = tail.strip_suffix(".json").unwrap_or(tail);
        // `{id}.{16 hex digits}`; percent-encoded ids have no other dot of their own left.
        tail.rsplit_once('.').map_or(tail, |(id, _)| id).to_string()
    }
}

pub struct Bucket {
    http: reqwest::Client,
    /// `https://storage.googleapis.com` or the emulator's endpoint.
    api: String,
    bucket: String,
    credentials: Option<AccessTokenCredentials>,
}

impl Bucket {
    pub fn connect(bucket: &str, emulator: Option<&str>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let (api, credentials) = match emulator {
            Some(endpoint) => (endpoint.trim_end_matches('/').to_string(), None),
            None => {
                let creds = Builder::default()
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .context("Application Default Credentials for Cloud Storage")?;
                (STORAGE_API.to_string(), Some(creds))
            }
        };
        Ok(Self {
            http,
            api,
            bucket: bucket.to_string(),
            credentials,
        })
    }

    async fn get(&self, url: String, query: &[(&str, &str)]) -> Result<reqwest::Response> {
        let mut request = self.http.get(url).query(query);
        if let Some(creds) = &self.credentials {
            let token = creds
                .access_token()
                .await
                .context("access token for Cloud Storage")?;
            request = request.bearer_auth(token.token);
        }
        let response = request.send().await.context("Cloud Storage unreachable")?;
        if !response.status().is_success() {
            bail!(
                "Cloud Storage answered HTTP {} for gs://{}",
                response.status(),
                self.bucket
            );
        }
        Ok(response)
    }

    /// Every object whose name starts with `prefix`, page by page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        let url = format!("{}/storage/v1/b/{}/o", self.api, self.bucket);
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![
                ("prefix", prefix),
                ("maxResults", "1000"),
                ("fields", "items(name,metadata),nextPageToken"),
            ];
            if !token.is_empty() {
                query.push(("pageToken", token.as_str()));
            }
            let page: Value = self.get(url.clone(), &query).await?.json().await?;
            for item in page["items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let metadata = item["metadata"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Object {
                    name: item["name"].as_str().unwrap_or_default().to_string(),
                    metadata,
                });
            }
            match page["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(out),
            }
        }
    }

    /// An object's bytes (to classify it; never printed).
    pub async fn read(&self, name: &str) -> Result<Bytes> {
        let encoded: String =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let url = format!("{}/storage/v1/b/{}/o/{encoded}", self.api, self.bucket);
        Ok(self.get(url, &[("alt", "media")]).await?.bytes().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_comes_from_the_metadata_or_the_name() {
        let named = |name: &str| Object {
            name: name.into(),
            metadata: BTreeMap::new(),
        };
        assert_eq!(
            named("t/2026/11/27/10/e-1.0123456789abcdef.json").event_id(),
            "e-1"
        );
        assert_eq!(
            named("t/2026/11/27/10/a.b.0123456789abcdef.json").event_id(),
            "a.b"
        );
        let mut o = named("t/x.json");
        o.metadata.insert("event-id".into(), "real".into());
        assert_eq!(o.event_id(), "real");
    }
}
