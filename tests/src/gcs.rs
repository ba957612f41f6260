//! A small JSON-API client for the Cloud Storage emulator: create a bucket, list and read objects.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Gcs {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub metadata: Value,
}

fn enc(s: &str) -> String {
    percent_encode(s)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Gcs {
    pub fn new(emulator_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emulator_url.to_owned(),
        }
    }

    pub async fn create_bucket(&self, project: &str, bucket: &str) -> Result<()> {
        let r = self
            .http
            .post(format!("{}/storage/v1/b?project={project}", self.base))
            .json(&json!({"name": bucket}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "create bucket {bucket}: HTTP {}: {}",
                r.status(),
                r.text().await?
            );
        }
        Ok(())
    }

    /// Every object under `prefix`, following pagination.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{bucket}/o?prefix={}&maxResults=1000",
                self.base,
                enc(prefix)
            );
            if let Some(t) = &token {
                url.push_str(&format!("&pageToken={}", enc(t)));
            }
            let v: Value = self
                .http
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for item in v["items"].as_array().cloned().unwrap_or_default() {
                out.push(ObjectInfo {
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    size: item["size"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .or_else(|| item["size"].as_u64())
                        .unwrap_or(0),
                    content_type: item["contentType"].as_str().map(str::to_owned),
                    metadata: item["metadata"].clone(),
                });
            }
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Uploads `data` as `name` (no custom metadata): how tests plant objects.
    pub async fn upload(&self, bucket: &str, name: &str, data: &[u8]) -> Result<()> {
        let url = format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            self.base,
            enc(name)
        );
        let r = self
            .http
            .post(&url)
            .body(data.to_vec())
            .send()
            .await
            .context("upload")?;
        if !r.status().is_success() {
            bail!("upload {name}: HTTP {}", r.status());
        }
        Ok(())
    }

    /// Deletes an object: how tests make one go missing.
    pub async fn delete(&self, bucket: &str, name: &str) -> Result<()> {
        let url = format!("{}/storage/v1/b/{bucket}/o/{}", self.base, enc(name));
        let r = self.http.delete(&url).send().await.context("delete")?;
        if !r.status().is_success() {
            bail!("delete {name}: HTTP {}", r.status());
        }
        Ok(())
    }

    pub async fn download(&self, bucket: &str, name: &str) -> Result<Vec<u8>> {
        let url = format!(
            "{}/storage/v1/b/{bucket}/o/{}?alt=media",
            self.base,
            enc(name)
        );
        let r = self.http.get(&url).send().await.context("download")?;
        if !r.status().is_success() {
            bail!("download {name}: HTTP {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }
}
