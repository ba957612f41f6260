//! BigQuery through `gcp-bigquery-client` (built without its default `gzip` feature): the
//! start-up check's `tables.get`, the audit's `jobs.query` and `jobs.getQueryResults`, and
//! `tabledata.insertAll` for the sinks, by the crate or through the JSON layer with the request
//! written from the rows' text ([`insert_all_text`]). Rows are only insert ids and JSON text here
//! ([`InsertRow`]), and the answer is Google's per-row verdict ([`InsertError`]): what a row is,
//! and what a verdict means for a push, is the sink's business (`crate::sink::bigquery`).
//!
//! The crate is given the [`Credentials`] every other client uses ([`BigQueryToken`]) and, for
//! the emulator, the emulator's base URL. Each call is bounded by the timeout given here, and its
//! failure becomes a [`GoogleError`] judged by the one classifier.
//!
//! `insertAll` through the crate takes each row as a `serde_json::Value`, so a row encoded once
//! as JSON text is parsed again and serialised again by the crate; `BENCHMARKS.md` ("BigQuery
//! client A/B") measures what that costs against writing the request from the rows' text.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::query_response::QueryResponse;
use gcp_bigquery_client::model::table_data_insert_all_request::TableDataInsertAllRequest;
use gcp_bigquery_client::model::table_data_insert_all_request_rows::TableDataInsertAllRequestRows;
use gcp_bigquery_client::model::table_data_insert_all_response::TableDataInsertAllResponse;
use serde_json::Value;

use super::api::with_retries;
use super::credentials::BigQueryToken;
use super::{Api, BIGQUERY, Call, Credentials, Endpoint, GoogleError, calls};
use crate::limits::{MAX_GOOGLE_MESSAGE_CHARS, clip_chars};
use crate::schema::Field;

/// Streaming inserts.
pub const INSERT_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.insertdata";
/// `tables.get`.
pub const READ_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";
/// Query jobs (the audit).
pub const QUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// A table's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableRef {
    /// The table's resource name, as the Storage Write API takes it.
    pub fn resource(&self) -> String {
        format!(
            "projects/{}/datasets/{}/tables/{}",
            self.project, self.dataset, self.table
        )
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

/// A BigQuery client.
#[derive(Clone)]
pub struct BigQuery {
    client: gcp_bigquery_client::Client,
    timeout: Duration,
}

impl BigQuery {
    /// BigQuery with ADC and `scopes`, or the emulator at `emulator` (`http://host:port`).
    /// `timeout` bounds each call, retries included.
    pub async fn connect(
        emulator: Option<&str>,
        scopes: &[&str],
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Credentials::new(emulator.is_some(), scopes, BIGQUERY.name)?;
        Self::with_credentials(emulator, Arc::new(credentials), timeout).await
    }

    /// As [`BigQuery::connect`], with credentials shared with another client.
    pub async fn with_credentials(
        emulator: Option<&str>,
        credentials: Arc<Credentials>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let token = Arc::new(BigQueryToken(credentials));
        let base = Endpoint::new(&BIGQUERY, emulator).base;
        let client = gcp_bigquery_client::client_builder::ClientBuilder::new()
            .with_v2_base_url(base.trim_end_matches('/').to_string())
            .build_from_authenticator(token)
            .await
            .map_err(|e| format!("cannot create the BigQuery client: {e}"))?;
        Ok(Self { client, timeout })
    }

    /// Runs one call of the crate, retrying [`super::Class::Retry`] failures, within the timeout.
    async fn bounded<T, F, Fut>(&self, call: Call, f: F) -> Result<T, GoogleError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, BQError>>,
    {
        with_retries(self.timeout, |left| {
            let attempt = f();
            async move {
                match tokio::time::timeout(left, attempt).await {
                    Err(_) => Err(GoogleError::transport(
                        call,
                        format!("BigQuery did not answer within {left:?}"),
                    )),
                    Ok(result) => result.map_err(|e| error(call, e)),
                }
            }
        })
        .await
    }

    /// The table's columns (`tables.get`).
    pub async fn columns(&self, table: &TableRef) -> Result<Vec<Field>, GoogleError> {
        let call = calls::TABLES_GET;
        let found = self
            .bounded(call, || {
                self.client
                    .table()
                    .get(&table.project, &table.dataset, &table.table, None)
            })
            .await?;
        let fields = serde_json::to_value(found.schema.fields.unwrap_or_default())
            .and_then(serde_json::from_value)
            .map_err(|_| GoogleError::transport(call, "tables.get answered unreadable columns"))?;
        Ok(fields)
    }

    /// Streams `rows` into `table` (`insertAll` with `skipInvalidRows`, `insertId` per row): one
    /// verdict per row, in order, `None` when no error names the row.
    pub async fn insert_all(
        &self,
        table: &TableRef,
        rows: &[InsertRow<'_>],
    ) -> Result<Vec<Option<InsertError>>, GoogleError> {
        let call = calls::TABLEDATA_INSERT_ALL;
        let first = insert_request(rows).map_err(|e| error(call, e))?;
        // A retry builds its request again rather than every call keeping a copy.
        let first = std::sync::Mutex::new(Some(first));
        let answer = self
            .bounded(call, || {
                let request = first
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .map_or_else(|| insert_request(rows), Ok);
                async move {
                    self.client
                        .tabledata()
                        .insert_all(&table.project, &table.dataset, &table.table, request?)
                        .await
                }
            })
            .await?;
        Ok(verdicts(answer, rows.len()))
    }

    /// Runs `sql` (standard SQL) in `project` and returns every row as its column values
    /// (strings; NULL as empty), `page_rows` rows a page.
    pub async fn query(
        &self,
        project: &str,
        sql: &str,
        page_rows: u32,
    ) -> Result<Vec<Vec<String>>, GoogleError> {
        let page_rows = i32::try_from(page_rows).unwrap_or(i32::MAX);
        let mut request = QueryRequest::new(sql);
        request.use_legacy_sql = false;
        request.timeout_ms = Some(60_000);
        request.max_results = Some(page_rows);
        let mut page: QueryResponse = self
            .bounded(calls::JOBS_QUERY, || {
                self.client.job().query(project, request.clone())
            })
            .await?;
        let mut out = Vec::new();
        loop {
            refuse_errors(&page)?;
            let job = page.job_reference.clone().unwrap_or_default();
            let complete = page.job_complete.unwrap_or(true);
            if complete {
                out.extend(cells(&page));
            }
            let token = page.page_token.clone().filter(|t| !t.is_empty());
            if complete && token.is_none() {
                return Ok(out);
            }
            let Some(job_id) = job.job_id else {
                return Err(GoogleError::transport(
                    calls::JOBS_QUERY,
                    "a query answered more to come but no job id",
                ));
            };
            let parameters = GetQueryResultsParameters {
                location: job.location,
                max_results: Some(page_rows),
                page_token: token,
                timeout_ms: Some(60_000),
                ..Default::default()
            };
            let next = self
                .bounded(calls::JOBS_GET_QUERY_RESULTS, || {
                    self.client
                        .job()
                        .get_query_results(project, &job_id, parameters.clone())
                })
                .await?;
            page = next.into();
        }
    }
}

/// One row of an `insertAll`: its `insertId` and its JSON object as text.
#[derive(Debug, Clone, Copy)]
pub struct InsertRow<'a> {
    pub insert_id: &'a str,
    pub json: &'a str,
}

impl InsertRow<'_> {
    /// The bytes this row adds to an `insertAll` request ([`insert_all_body`]): its JSON, its
    /// quoted and escaped insert id, and `{"insertId":…,"json":…},`.
    pub fn encoded_len(&self) -> usize {
        Self::encoded_len_of(self.insert_id, self.json.len())
    }

    /// [`InsertRow::encoded_len`] of a row with this insert id and this much JSON.
    pub fn encoded_len_of(insert_id: &str, json_len: usize) -> usize {
        json_len + json_string_len(insert_id) + 22
    }
}

/// A string's length as serde_json writes it: quoted, `"` and `\` escaped with a backslash, the
/// control characters as `\b \f \n \r \t` or `\u00XX`.
pub fn json_string_len(s: &str) -> usize {
    2 + s.len() + json_escape_extra(s.as_bytes())
}

/// The bytes serde_json's escapes add to `bytes` written in a string (of one string, or of many
/// one after another: the sum of theirs).
pub fn json_escape_extra(bytes: &[u8]) -> usize {
    if !needs_escape(bytes) {
        return 0;
    }
    // Summed 32 bytes at a time in 8-bit lanes (at most 5 × 32 < 256), which the compiler
    // vectorises: a JSON column's text always has quotes, and widening each byte's count to 64
    // bits was 0.5 µs of a 4 KB transcript push; this is 6-7× faster (BENCHMARKS.md, "Arrow batches").
    let mut chunks = bytes.chunks_exact(32);
    let mut extra = 0;
    for chunk in &mut chunks {
        extra += usize::from(chunk.iter().fold(0u8, |sum, &b| sum + escape_extra(b)));
    }
    extra
        + chunks
            .remainder()
            .iter()
            .map(|&b| usize::from(escape_extra(b)))
            .sum::<usize>()
}

/// What serde_json's escape of one byte adds to it: 1 for a two-byte escape (`\"`, `\n`, ...),
/// 5 for the other control characters (`\u001f`), 0 for the rest. Branch-free, to vectorise.
#[inline(always)]
fn escape_extra(b: u8) -> u8 {
    let short = (b == b'"')
        | (b == b'\\')
        | (b == 0x08)
        | (b == 0x0c)
        | (b == b'\n')
        | (b == b'\r')
        | (b == b'\t');
    let long = (b < 0x20) & !short;
    u8::from(short) | (u8::from(long) * 5)
}

/// Whether serde_json escapes any of `bytes` in a string: most strings need no escape, found
/// 32 bytes at a time with a fold the compiler vectorises (a per-byte count widened every byte to
/// 64 bits: 1.6 % of to-bq's CPU, BENCHMARKS.md).
fn needs_escape(bytes: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &b| any | special(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| special(b))
}

/// What the request adds to its rows' [`InsertRow::encoded_len`], at most.
pub const INSERT_ALL_ENVELOPE_BYTES: usize = 64;

/// Streams `rows` into `table` through the JSON layer, the request written from the rows' text
/// ([`insert_all_body`]): the same call and verdicts as [`BigQuery::insert_all`], without the
/// crate parsing every row into a tree and serialising it again.
pub async fn insert_all_text(
    api: &Api,
    table: &TableRef,
    rows: &[InsertRow<'_>],
) -> Result<Vec<Option<InsertError>>, GoogleError> {
    let path = format!(
        "projects/{}/datasets/{}/tables/{}/insertAll",
        table.project, table.dataset, table.table
    );
    let body = bytes::Bytes::from(insert_all_body(rows));
    let answer: TableDataInsertAllResponse = api
        .post_json_text(calls::TABLEDATA_INSERT_ALL, &path, body)
        .await?;
    Ok(verdicts(answer, rows.len()))
}

/// The `insertAll` request for `rows`, with `skipInvalidRows` and each row's `insertId`: each
/// row's JSON text as it was encoded, not re-serialised.
pub fn insert_all_body(rows: &[InsertRow<'_>]) -> Vec<u8> {
    let capacity =
        INSERT_ALL_ENVELOPE_BYTES + rows.iter().map(InsertRow::encoded_len).sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(br#"{"skipInvalidRows":true,"rows":["#);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"insertId":"#);
        // A string always serialises.
        let _ = serde_json::to_writer(&mut body, row.insert_id);
        body.extend_from_slice(br#","json":"#);
        body.extend_from_slice(row.json.as_bytes());
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    body
}

/// The same request as the crate takes it: each row as a tree, the row's JSON text parsed here
/// and serialised again by the crate.
fn insert_request(rows: &[InsertRow<'_>]) -> Result<TableDataInsertAllRequest, BQError> {
    let mut request = TableDataInsertAllRequest::new();
    request.skip_invalid_rows();
    let rows = rows
        .iter()
        .map(|r| {
            Ok(TableDataInsertAllRequestRows {
                insert_id: Some(r.insert_id.to_owned()),
                json: serde_json::from_str::<Value>(r.json)?,
            })
        })
        .collect::<Result<Vec<_>, BQError>>()?;
    request.add_rows(rows)?;
    Ok(request)
}

/// One verdict per row from `insertErrors`: `None` when no error names the row; an error naming
/// no row is every row's.
fn verdicts(answer: TableDataInsertAllResponse, n: usize) -> Vec<Option<InsertError>> {
    let mut results: Vec<Option<InsertError>> = vec![None; n];
    for failed in answer.insert_errors.unwrap_or_default() {
        let index = failed
            .index
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < n);
        let first = failed
            .errors
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_default();
        let error = InsertError {
            reason: first.reason.unwrap_or_else(|| "unknown".into()),
            location: first.location.unwrap_or_default(),
            message: first
                .message
                .map(|m| clip_chars(&m, MAX_GOOGLE_MESSAGE_CHARS))
                .unwrap_or_default(),
        };
        match index {
            Some(i) => results[i] = Some(error),
            None => results.iter_mut().for_each(|r| *r = Some(error.clone())),
        }
    }
    results
}

/// A page that carries `errors` is a failed query, whatever its status: the emulator answers a
/// query it cannot run with 200 and `errors`, and BigQuery documents `errors` as the errors
/// encountered during the running of the job". An audit must not read a failed query as "no
/// findings".
fn refuse_errors(page: &QueryResponse) -> Result<(), GoogleError> {
    match page.errors.as_deref().and_then(|e| e.first()) {
        None => Ok(()),
        Some(first) => Err(GoogleError {
            call: calls::JOBS_QUERY,
            status: None,
            reason: first.reason.clone().or_else(|| Some("invalidQuery".into())),
            detail: first
                .message
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        }),
    }
}

/// `rows[].f[].v` as strings.
fn cells(page: &QueryResponse) -> Vec<Vec<String>> {
    page.rows
        .iter()
        .flatten()
        .map(|row| {
            row.columns
                .iter()
                .flatten()
                .map(|cell| match &cell.value {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The crate's error as a [`GoogleError`]: an answer keeps its status and reason; a failure
/// on the way (connection, body) has none.
fn error(call: Call, e: BQError) -> GoogleError {
    match e {
        BQError::ResponseError { error } => GoogleError {
            call,
            status: u16::try_from(error.error.code).ok(),
            reason: error
                .error
                .errors
                .iter()
                .find_map(|m| m.get("reason").cloned()),
            detail: clip_chars(&error.error.message, MAX_GOOGLE_MESSAGE_CHARS),
        },
        BQError::RequestError(e) => GoogleError {
            call,
            status: e.status().map(|s| s.as_u16()),
            reason: None,
            detail: if e.is_timeout() {
                "BigQuery timed out".into()
            } else if e.is_connect() {
                "BigQuery unreachable (connection failed)".into()
            } else if e.is_decode() {
                "BigQuery answered an unexpected body".into()
            } else {
                "BigQuery: connection broken".into()
            },
        },
        BQError::NoToken | BQError::AuthError(_) | BQError::YupAuthError(_) => {
            GoogleError::transport(call, "no access token")
        }
        other => GoogleError::transport(call, format!("BigQuery client: {other}")),
    }
}

/// BigQuery's error for one row of an `insertAll` (the first of `insertErrors[].errors` naming
/// it): its reason, where in the row, and its message (cut to 300 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertError {
    pub reason: String,
    pub location: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strings_json_length_is_serde_jsons_wherever_the_escape_is() {
        for len in 0..100 {
            let plain = "a".repeat(len);
            assert_eq!(json_string_len(&plain), len + 2);
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', 'é'] {
                    let mut s: Vec<char> = plain.chars().collect();
                    s[at] = special;
                    let s: String = s.into_iter().collect();
                    let theirs = serde_json::to_string(&s).unwrap().len();
                    assert_eq!(json_string_len(&s), theirs, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn every_ascii_byte_and_chunks_of_the_worst_case_count_as_serde_json_writes_them() {
        for b in 0u8..0x80 {
            let s = char::from(b).to_string().repeat(3);
            let theirs = serde_json::to_string(&s).unwrap().len();
            assert_eq!(json_string_len(&s), theirs, "byte {b:#04x}");
        }
        // Every byte a 6-byte escape, across the 32-byte chunks the count is summed in.
        for len in [31, 32, 33, 64, 4097] {
            let s = "\u{1}".repeat(len);
            assert_eq!(json_string_len(&s), 2 + 6 * len);
            assert_eq!(
                json_string_len(&s),
                serde_json::to_string(&s).unwrap().len()
            );
        }
    }

    #[test]
    fn each_row_gets_its_own_verdict() {
        let answer: TableDataInsertAllResponse = serde_json::from_str(
            r#"{"insertErrors":[{"index":1,"errors":[{"reason":"invalid","location":"f","message":"m"}]},
                {"index":2,"errors":[{"reason":"backendError"}]}]}"#,
        )
        .unwrap();
        let v = verdicts(answer, 4);
        assert!(v[0].is_none() && v[3].is_none());
        assert_eq!(v[1].as_ref().unwrap().reason, "invalid");
        assert_eq!(v[1].as_ref().unwrap().location, "f");
        assert_eq!(v[2].as_ref().unwrap().reason, "backendError");
        let unattributed: TableDataInsertAllResponse =
            serde_json::from_str(r#"{"insertErrors":[{"errors":[{"reason":"stopped"}]}]}"#)
                .unwrap();
        assert!(verdicts(unattributed, 2).iter().all(Option::is_some));
    }

    #[test]
    fn the_request_is_the_rows_json_text() {
        let rows = [
            InsertRow {
                insert_id: "a\"1",
                json: r#"{"x":1}"#,
            },
            InsertRow {
                insert_id: "b",
                json: r#"{"y":"z"}"#,
            },
        ];
        let body = insert_all_body(&rows);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"skipInvalidRows": true, "rows": [
                {"insertId": "a\"1", "json": {"x": 1}}, {"insertId": "b", "json": {"y": "z"}}]})
        );
        let rows_bytes: usize = rows.iter().map(InsertRow::encoded_len).sum();
        assert!(body.len() <= INSERT_ALL_ENVELOPE_BYTES + rows_bytes);
        let crate_request = serde_json::to_value(insert_request(&rows).unwrap()).unwrap();
        assert_eq!(
            crate_request["rows"], v["rows"],
            "both clients send the same rows"
        );
    }

    #[test]
    fn an_answer_keeps_its_status_and_reason() {
        let body: gcp_bigquery_client::error::ResponseError = serde_json::from_str(
            r#"{"error":{"code":400,"message":"bad","errors":[{"reason":"invalid","message":"x"}],"status":"INVALID_ARGUMENT"}}"#,
        )
        .unwrap();
        let e = error(
            calls::TABLEDATA_INSERT_ALL,
            BQError::ResponseError { error: body },
        );
        assert_eq!(
            (e.status, e.reason.as_deref()),
            (Some(400), Some("invalid"))
        );
        assert_eq!(e.class(), super::super::Class::Permanent);
    }
}
