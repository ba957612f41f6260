//! BigQuery through `gcp-bigquery-client`: `tabledata.insertAll`, `insertId` = event id.
//!
//! Rows are sent with `skipInvalidRows`, so every row of a call gets its own verdict: a row that
//! BigQuery calls `invalid` is a permanent failure of that message, any other per-row error is
//! transient, and a row is only reported written when the response names no error for it. The
//! `insertId` lets BigQuery drop a redelivered row on a best-effort basis (about a minute); the
//! event id column is the durable deduplication key for queries. (The BigQuery emulator does not
//! deduplicate on `insertId` at all.)
//!
//! Authentication: Application Default Credentials through `google-cloud-auth` (the same library
//! the Cloud Storage client uses; tokens are cached and refreshed), or none against the emulator
//! (`BIGQUERY_EMULATOR_HOST`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gcp_bigquery_client::Client;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::table_data_insert_all_request::TableDataInsertAllRequest;
use gcp_bigquery_client::model::table_data_insert_all_request_rows::TableDataInsertAllRequestRows;
use gcp_bigquery_client::model::table_data_insert_all_response_insert_errors::TableDataInsertAllResponseInsertErrors as InsertErrors;

use super::{PreparedRow, RowError, RowSink, SinkError};

const BIGQUERY_API: &str = "https://bigquery.googleapis.com/bigquery/v2";
const INSERT_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.insertdata";

/// The table rows go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

pub struct BigQuerySink {
    client: Client,
    table: TableRef,
    timeout: Duration,
}

/// No credentials: the emulator accepts any request.
#[derive(Clone)]
struct NoAuth;

#[async_trait]
impl Authenticator for NoAuth {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok("emulator".into())
    }
}

/// Application Default Credentials via google-cloud-auth (cached, refreshed before expiry).
#[derive(Clone)]
struct Adc(google_cloud_auth::credentials::AccessTokenCredentials);

#[async_trait]
impl Authenticator for Adc {
    async fn access_token(&self) -> Result<String, BQError> {
        self.0
            .access_token()
            .await
            .map(|t| t.token)
            .map_err(|_| BQError::NoToken)
    }
}

impl BigQuerySink {
    /// Connects to BigQuery, or to the emulator at `emulator` (`http://host:port`).
    pub async fn connect(
        table: TableRef,
        emulator: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let (base, auth): (String, Arc<dyn Authenticator>) = match emulator {
            Some(endpoint) => (format!("{endpoint}/bigquery/v2"), Arc::new(NoAuth)),
            None => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .with_scopes([INSERT_SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        format!("cannot load Application Default Credentials for BigQuery: {e}")
                    })?;
                (BIGQUERY_API.to_string(), Arc::new(Adc(creds)))
            }
        };
        let client = ClientBuilder::new()
            .with_v2_base_url(base)
            .with_client(http)
            .build_from_authenticator(auth)
            .await
            .map_err(|e| format!("cannot create the BigQuery client: {e}"))?;
        Ok(Self {
            client,
            table,
            timeout,
        })
    }

    /// One `insertAll` call. The error says whether the connection broke mid-request.
    async fn insert_once(
        &self,
        rows: &[PreparedRow],
        timeout: Duration,
    ) -> Result<Vec<Result<(), RowError>>, (SinkError, bool)> {
        let mut request = TableDataInsertAllRequest::new();
        request.skip_invalid_rows();
        request
            .add_rows(
                rows.iter()
                    .map(|r| TableDataInsertAllRequestRows {
                        insert_id: Some(r.insert_id.clone()),
                        json: r.json.clone(),
                    })
                    .collect(),
            )
            .map_err(|e| {
                (
                    SinkError::Permanent(format!("cannot encode rows: {e}")),
                    false,
                )
            })?;
        let call = self.client.tabledata().insert_all(
            &self.table.project,
            &self.table.dataset,
            &self.table.table,
            request,
        );
        let response = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Err((
                    SinkError::Transient(format!(
                        "BigQuery insertAll timed out after {:?}",
                        self.timeout
                    )),
                    false,
                ));
            }
            Ok(Err(e)) => {
                let broken =
                    matches!(&e, BQError::RequestError(r) if r.is_request() && !r.is_timeout());
                return Err((classify_error(e), broken));
            }
            Ok(Ok(r)) => r,
        };
        Ok(verdicts(
            response.insert_errors.unwrap_or_default(),
            rows.len(),
        ))
    }
}

/// One verdict per row from `insertErrors`: a row is written only when no error names it.
fn verdicts(errors: Vec<InsertErrors>, n: usize) -> Vec<Result<(), RowError>> {
    let mut results: Vec<Result<(), RowError>> = vec![Ok(()); n];
    for failed in errors {
        let index = failed
            .index
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < n);
        let first = failed.errors.unwrap_or_default().into_iter().next();
        let error = RowError {
            reason: first
                .as_ref()
                .and_then(|e| e.reason.clone())
                .unwrap_or_else(|| "unknown".into()),
            location: first
                .as_ref()
                .and_then(|e| e.location.clone())
                .unwrap_or_default(),
            message: first
                .and_then(|e| e.message)
                .map(|m| m.chars().take(300).collect())
                .unwrap_or_default(),
        };
        match index {
            Some(i) => results[i] = Err(error),
            // An error we cannot attribute fails every row: never report an unknown row written.
            None => results.iter_mut().for_each(|r| *r = Err(error.clone())),
        }
    }
    results
}

fn classify_error(e: BQError) -> SinkError {
    match e {
        BQError::ResponseError { error } => {
            let reason = error
                .error
                .errors
                .first()
                .and_then(|m| m.get("reason").cloned())
                .unwrap_or_default();
            let detail = format!(
                "BigQuery answered HTTP {} ({}{})",
                error.error.code,
                if reason.is_empty() {
                    "no reason"
                } else {
                    &reason
                },
                if error.error.status.is_empty() {
                    String::new()
                } else {
                    format!(", {}", error.error.status)
                }
            );
            // A 400 `invalid` for a request of this message's rows is the rows' fault; 404 (no
            // table), 403 (no permission), 429 and 5xx are not, and may heal.
            if error.error.code == 400 && reason == "invalid" {
                SinkError::Permanent(detail)
            } else {
                SinkError::Transient(detail)
            }
        }
        BQError::RequestError(e) if e.is_timeout() => {
            SinkError::Transient("BigQuery request timed out".into())
        }
        BQError::RequestError(e) if e.is_connect() => {
            SinkError::Transient("BigQuery unreachable (connection failed)".into())
        }
        BQError::RequestError(e) if e.is_decode() => {
            SinkError::Transient("BigQuery answered with an unexpected body".into())
        }
        BQError::NoToken | BQError::AuthError(_) | BQError::YupAuthError(_) => {
            SinkError::Transient("no access token for BigQuery".into())
        }
        other => SinkError::Transient(format!("BigQuery insertAll failed: {other}")),
    }
}

#[async_trait]
impl RowSink for BigQuerySink {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        let started = std::time::Instant::now();
        match self.insert_once(&rows, self.timeout).await {
            Ok(results) => Ok(results),
            // A pooled connection that the server had closed (the emulator does after a 500)
            // fails once with a reset; the insert is idempotent by insertId, so retry once, within
            // the same overall timeout.
            Err((e, true)) => match self.timeout.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => {
                    self.insert_once(&rows, left).await.map_err(|(e, _)| e)
                }
                _ => Err(e),
            },
            Err((e, false)) => Err(e),
        }
    }
}
