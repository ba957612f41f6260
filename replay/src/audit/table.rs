//! BigQuery `jobs.query` for the audit: a query in, rows of strings out, page by page. Application
//! Default Credentials, or none against the emulator (`BIGQUERY_EMULATOR_HOST`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use serde_json::{Value, json};

const BIGQUERY_API: &str = "https://bigquery.googleapis.com/bigquery/v2";
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

pub struct BigQuery {
    http: reqwest::Client,
    /// `…/bigquery/v2/projects/P`: where the query jobs run (and are billed).
    base: String,
    credentials: Option<AccessTokenCredentials>,
}

impl BigQuery {
    pub fn connect(project: &str, emulator: Option<&str>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let (api, credentials) = match emulator {
            Some(endpoint) => (
                format!("{}/bigquery/v2", endpoint.trim_end_matches('/')),
                None,
            ),
            None => {
                let creds = Builder::default()
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .context("Application Default Credentials for BigQuery")?;
                (BIGQUERY_API.to_string(), Some(creds))
            }
        };
        Ok(Self {
            http,
            base: format!("{api}/projects/{project}"),
            credentials,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let request = match &self.credentials {
            Some(creds) => {
                let token = creds
                    .access_token()
                    .await
                    .context("access token for BigQuery")?;
                request.bearer_auth(token.token)
            }
            None => request,
        };
        let response = request.send().await.context("BigQuery unreachable")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // BigQuery's error message names the query's problem, never row content.
            bail!(
                "BigQuery answered HTTP {status}: {}",
                body["error"]["message"].as_str().unwrap_or("")
            );
        }
        Ok(body)
    }

    /// Runs `sql` and returns every row as its column values (strings; NULL as empty).
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let query =
            json!({"query": sql, "useLegacySql": false, "timeoutMs": 60_000, "maxResults": 10_000});
        let mut page = self
            .send(
                self.http
                    .post(format!("{}/queries", self.base))
                    .json(&query),
            )
            .await?;
        let mut out = Vec::new();
        loop {
            let job = page["jobReference"]["jobId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let location = page["jobReference"]["location"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if page["jobComplete"] == false {
                page = self.results(&job, &location, None).await?;
                continue;
            }
            out.extend(cells(&page));
            match page["pageToken"].as_str() {
                Some(token) if !token.is_empty() => {
                    page = self.results(&job, &location, Some(token)).await?;
                }
                _ => return Ok(out),
            }
        }
    }

    async fn results(&self, job: &str, location: &str, token: Option<&str>) -> Result<Value> {
        let mut query = vec![
            ("timeoutMs", "60000".to_string()),
            ("maxResults", "10000".to_string()),
        ];
        if !location.is_empty() {
            query.push(("location", location.to_string()));
        }
        if let Some(token) = token {
            query.push(("pageToken", token.to_string()));
        }
        let url = format!("{}/queries/{job}", self.base);
        self.send(self.http.get(url).query(&query)).await
    }
}

/// `rows[].f[].v` as strings.
fn cells(page: &Value) -> Vec<Vec<String>> {
    let rows = page["rows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    rows.iter()
        .map(|row| {
            let fields = row["f"].as_array().map(Vec::as_slice).unwrap_or_default();
            fields
                .iter()
                .map(|f| match &f["v"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}
