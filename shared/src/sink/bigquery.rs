//! BigQuery `tabledata.insertAll` over plain HTTPS, `insertId` = event id.
//!
//! Rows are sent with `skipInvalidRows`, so every row of a call gets its own verdict: a row that
//! BigQuery calls `invalid` is a permanent failure of that message, any other per-row error is
//! transient, and a row is only reported written when the response names no error for it. The
//! `insertId` lets BigQuery drop a redelivered row on a best-effort basis (about a minute); the
//! event id column is the durable deduplication key for queries. (The BigQuery emulator does not
//! deduplicate on `insertId` at all.)
//!
//! The request body is written directly from the rows' JSON text, encoded once when each row was
//! built ([`PreparedRow`]), and sent uncompressed: a client library would re-serialise the rows
//! and gzip every call, which cost more CPU than it saved on the wire (see `BENCHMARKS.md`). Rows
//! of concurrent pushes share calls through [`super::batch::GroupCommit`].
//!
//! Authentication: Application Default Credentials through `google-cloud-auth` (the same library
//! the Cloud Storage client uses; tokens are cached and refreshed), or none against the emulator
//! (`BIGQUERY_EMULATOR_HOST`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use google_cloud_auth::credentials::AccessTokenCredentials;
use serde::Deserialize;

use super::{PreparedRow, RowError, RowSink, SinkCheck, SinkError};

const BIGQUERY_API: &str = "https://bigquery.googleapis.com/bigquery/v2";
const INSERT_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.insertdata";
/// For the start-up check's `tables.get`.
const READ_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";

/// The table rows go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

pub struct BigQuerySink {
    http: reqwest::Client,
    /// `…/projects/P/datasets/D/tables/T/insertAll`.
    url: String,
    /// `None` against the emulator.
    credentials: Option<AccessTokenCredentials>,
    timeout: Duration,
    /// `project.dataset.table`, for messages.
    table_name: String,
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
        let (base, credentials) = match emulator {
            Some(endpoint) => (format!("{endpoint}/bigquery/v2"), None),
            None => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .with_scopes([INSERT_SCOPE, READ_SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| {
                        format!("cannot load Application Default Credentials for BigQuery: {e}")
                    })?;
                (BIGQUERY_API.to_string(), Some(creds))
            }
        };
        let url = format!(
            "{base}/projects/{}/datasets/{}/tables/{}/insertAll",
            table.project, table.dataset, table.table
        );
        Ok(Self {
            http,
            url,
            credentials,
            timeout,
            table_name: format!("{}.{}.{}", table.project, table.dataset, table.table),
        })
    }

    /// Start-up check: the table exists, and has every column a row can carry (`tables.get`,
    /// which the writers' role grants: `bigquery.tables.get`). The error names the problem; `main`
    /// then exits and Cloud Run's deploy fails instead of pushes failing later. The emulator
    /// answers `tables.get` too, so the check runs against it as well.
    pub async fn check(&self) -> Result<(), SinkCheck> {
        let url = self.url.trim_end_matches("/insertAll");
        let mut request = self.http.get(url);
        if let Some(creds) = &self.credentials {
            let token = creds
                .access_token()
                .await
                .map_err(|_| SinkCheck::Unavailable("no access token for BigQuery".into()))?;
            request = request.bearer_auth(token.token);
        }
        let response = request.send().await.map_err(|e| {
            SinkCheck::Unavailable(format!("BigQuery unreachable: {}", e.without_url()))
        })?;
        let status = response.status().as_u16();
        let table = &self.table_name;
        match status {
            200 => {}
            404 => return Err(SinkCheck::Wrong(format!("table {table} does not exist"))),
            403 => {
                return Err(SinkCheck::Wrong(format!(
                    "this service account may not read table {table}'s metadata (bigquery.tables.get)"
                )));
            }
            s if s == 429 || s >= 500 => {
                return Err(SinkCheck::Unavailable(format!(
                    "tables.get answered HTTP {s}"
                )));
            }
            _ => {
                return Err(SinkCheck::Wrong(format!(
                    "cannot check table {table}: tables.get answered HTTP {status}"
                )));
            }
        }
        #[derive(Deserialize)]
        struct Table {
            schema: TableSchema,
        }
        #[derive(Deserialize)]
        struct TableSchema {
            #[serde(default)]
            fields: Vec<crate::schema::Field>,
        }
        let found: Table = response.json().await.map_err(|_| {
            SinkCheck::Wrong(format!(
                "tables.get for {table} answered an unexpected body"
            ))
        })?;
        let problems = crate::schema::Schema::event_telemetry().missing_from(&found.schema.fields);
        if problems.is_empty() {
            Ok(())
        } else {
            let problems = problems.join("; ");
            Err(SinkCheck::Wrong(format!(
                "table {table} does not match the row schema: {problems}"
            )))
        }
    }

    /// One `insertAll` call. The error says whether the connection broke mid-request.
    async fn insert_once(
        &self,
        body: &bytes::Bytes,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<(), RowError>>, (SinkError, bool)> {
        let mut request = self
            .http
            .post(&self.url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(creds) = &self.credentials {
            let token = creds.access_token().await.map_err(|_| {
                let e = SinkError::Transient("no access token for BigQuery".into());
                (e, false)
            })?;
            request = request.bearer_auth(token.token);
        }
        let response = request.send().await.map_err(|e| {
            let broken = e.is_request() && !e.is_timeout();
            (request_error(&e, self.timeout), broken)
        })?;
        let status = response.status();
        let text = response.bytes().await.map_err(|e| {
            let broken = !e.is_timeout();
            (request_error(&e, self.timeout), broken)
        })?;
        if !status.is_success() {
            return Err((status_error(status.as_u16(), &text), false));
        }
        let parsed: InsertAllResponse = serde_json::from_slice(&text).map_err(|_| {
            let e = SinkError::Transient("BigQuery answered with an unexpected body".into());
            (e, false)
        })?;
        Ok(verdicts(parsed.insert_errors, n))
    }
}

/// The `insertAll` request for `rows`: each row's JSON text as it was encoded, not re-serialised.
pub fn request_body(rows: &[PreparedRow]) -> Vec<u8> {
    let capacity = 64 + rows.iter().map(PreparedRow::encoded_len).sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(br#"{"skipInvalidRows":true,"rows":["#);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"insertId":"#);
        // A string always serialises.
        let _ = serde_json::to_writer(&mut body, &row.insert_id);
        body.extend_from_slice(br#","json":"#);
        body.extend_from_slice(row.json.get().as_bytes());
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    body
}

#[derive(Deserialize)]
struct InsertAllResponse {
    #[serde(default, rename = "insertErrors")]
    insert_errors: Vec<InsertErrors>,
}

#[derive(Deserialize)]
struct InsertErrors {
    /// A number in BigQuery's answers; tolerate a string.
    #[serde(default)]
    index: Option<serde_json::Value>,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

#[derive(Deserialize, Default)]
struct ErrorProto {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorProto>,
    #[serde(default)]
    status: String,
}

/// One verdict per row from `insertErrors`: a row is written only when no error names it.
fn verdicts(errors: Vec<InsertErrors>, n: usize) -> Vec<Result<(), RowError>> {
    let mut results: Vec<Result<(), RowError>> = vec![Ok(()); n];
    for failed in errors {
        let index = failed
            .index
            .and_then(|i| i.as_u64().or_else(|| i.as_str()?.parse().ok()))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < n);
        let first = failed.errors.into_iter().next().unwrap_or_default();
        let error = RowError {
            reason: first.reason.unwrap_or_else(|| "unknown".into()),
            location: first.location.unwrap_or_default(),
            message: first
                .message
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

/// A non-2xx answer. A 400 `invalid` for a request of these rows is the rows' fault; 404 (no
/// table), 403 (no permission), 429 and 5xx are not, and may heal.
fn status_error(code: u16, body: &[u8]) -> SinkError {
    let (reason, status) = serde_json::from_slice::<ErrorResponse>(body)
        .map(|r| {
            let reason = r.error.errors.into_iter().next().and_then(|e| e.reason);
            (reason.unwrap_or_default(), r.error.status)
        })
        .unwrap_or_default();
    let detail = format!(
        "BigQuery answered HTTP {code} ({}{})",
        if reason.is_empty() {
            "no reason"
        } else {
            &reason
        },
        if status.is_empty() {
            String::new()
        } else {
            format!(", {status}")
        }
    );
    if code == 400 && reason == "invalid" {
        SinkError::Permanent(detail)
    } else {
        SinkError::Transient(detail)
    }
}

fn request_error(e: &reqwest::Error, timeout: Duration) -> SinkError {
    SinkError::Transient(if e.is_timeout() {
        format!("BigQuery insertAll timed out after {timeout:?}")
    } else if e.is_connect() {
        "BigQuery unreachable (connection failed)".into()
    } else {
        "BigQuery insertAll failed (connection broken)".into()
    })
}

#[async_trait]
impl RowSink for BigQuerySink {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        let started = Instant::now();
        let n = rows.len();
        let body = bytes::Bytes::from(request_body(&rows));
        drop(rows);
        match self.insert_once(&body, n, self.timeout).await {
            Ok(results) => Ok(results),
            // A pooled connection that the server had closed (the emulator does after a 500)
            // fails once with a reset; the insert is idempotent by insertId, so retry once, within
            // the same overall timeout.
            Err((e, true)) => match self.timeout.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => {
                    self.insert_once(&body, n, left).await.map_err(|(e, _)| e)
                }
                _ => Err(e),
            },
            Err((e, false)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, json: &str) -> PreparedRow {
        PreparedRow {
            insert_id: id.into(),
            json: serde_json::value::RawValue::from_string(json.into()).unwrap(),
        }
    }

    #[test]
    fn the_request_is_the_rows_json_text() {
        let body = request_body(&[row("a\"1", r#"{"x":1}"#), row("b", r#"{"y":"z"}"#)]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"skipInvalidRows": true, "rows": [
                {"insertId": "a\"1", "json": {"x": 1}}, {"insertId": "b", "json": {"y": "z"}}]})
        );
        assert!(
            body.len()
                <= 64
                    + [row("a\"1", r#"{"x":1}"#), row("b", r#"{"y":"z"}"#)]
                        .iter()
                        .map(PreparedRow::encoded_len)
                        .sum::<usize>()
        );
    }

    #[test]
    fn each_row_gets_its_own_verdict() {
        let parsed: InsertAllResponse = serde_json::from_str(
            r#"{"insertErrors":[{"index":1,"errors":[{"reason":"invalid","location":"f","message":"m"}]},
                {"index":"2","errors":[{"reason":"backendError"}]}]}"#,
        )
        .unwrap();
        let v = verdicts(parsed.insert_errors, 4);
        assert!(v[0].is_ok() && v[3].is_ok());
        assert!(v[1].as_ref().unwrap_err().is_permanent());
        assert_eq!(v[2].as_ref().unwrap_err().reason, "backendError");
        let unattributed: InsertAllResponse =
            serde_json::from_str(r#"{"insertErrors":[{"errors":[{"reason":"stopped"}]}]}"#)
                .unwrap();
        assert!(
            verdicts(unattributed.insert_errors, 2)
                .iter()
                .all(Result::is_err)
        );
    }

    #[test]
    fn only_an_invalid_request_is_permanent() {
        let invalid = br#"{"error":{"code":400,"errors":[{"reason":"invalid"}],"status":"INVALID_ARGUMENT"}}"#;
        assert!(matches!(
            status_error(400, invalid),
            SinkError::Permanent(_)
        ));
        let missing =
            br#"{"error":{"code":404,"errors":[{"reason":"notFound"}],"status":"NOT_FOUND"}}"#;
        assert!(matches!(
            status_error(404, missing),
            SinkError::Transient(_)
        ));
        assert!(matches!(
            status_error(503, b"<html>"),
            SinkError::Transient(_)
        ));
    }
}
