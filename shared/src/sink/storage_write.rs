//! BigQuery through the Storage Write API (`BIGQUERY_WRITE_METHOD=storage_write`, the default):
//! each group-commit batch is one `AppendRows` on the table's `_default` stream, its rows an Arrow
//! record batch ([`ArrowRows`]) filled from the rows' recorded values ([`RowForm::Tokens`]: the
//! same values `insertAll`'s JSON carries, without writing JSON and parsing it again).
//!
//! Verdicts, as `insertAll`'s: an append lands whole, so every row of it is written. When
//! BigQuery refuses rows (`row_errors`: nothing of the request was appended), each refused row is
//! a permanent failure with BigQuery's message (its push is dead-lettered with that reason), and
//! the others are sent again at once, by the pushes' own deadline (group commit's). A row the Arrow
//! schema cannot hold is refused the same way before anything is sent. A failure of the call
//! itself is the class the one classifier gives it ([`crate::google::classify`]), as for every
//! call: a permanent one lets group commit send the batch again in halves.
//!
//! Duplicates: the default stream has no `insertId`; a push redelivered after a lost ack writes a
//! second row. `event_telemetry_once` and `replay audit` count by event id (docs/runbook.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::bigquery::check_table;
use super::{RowSink, SinkCheck};
use crate::error::CallError;
use crate::google::bigquery::{BigQuery, INSERT_SCOPE, READ_SCOPE, TableRef};
use crate::google::storage_write::{APPEND_PERMISSION, Appended, StorageWrite};
use crate::google::{BIGQUERY, Class, Credentials, GoogleError};
use crate::row::arrow::{ArrowRows, Unfit};
use crate::row::{PreparedRow, RowForm};
use crate::sink::RowError;

pub struct StorageWriteSink {
    stream: StorageWrite,
    arrow: ArrowRows,
    /// For the start-up check's `tables.get`.
    client: BigQuery,
    table: TableRef,
    timeout: Duration,
}

impl StorageWriteSink {
    /// Connects to BigQuery, or to the emulator: `emulator` is its REST endpoint (`tables.get`),
    /// `grpc_emulator` its Storage Write endpoint. `timeout` bounds one call, retries included.
    pub async fn connect(
        table: TableRef,
        emulator: Option<&str>,
        grpc_emulator: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let credentials = Arc::new(Credentials::new(
            emulator.is_some(),
            &[INSERT_SCOPE, READ_SCOPE],
            BIGQUERY.name,
        )?);
        let client = BigQuery::with_credentials(emulator, credentials.clone(), timeout).await?;
        let arrow = ArrowRows::event_telemetry()?;
        let stream = StorageWrite::open(
            &table,
            arrow.serialized_schema(),
            grpc_emulator,
            credentials,
            timeout,
        )
        .await?;
        Ok(Self {
            stream,
            arrow,
            client,
            table,
            timeout,
        })
    }

    /// Start-up check: the table has every column a row can carry (`tables.get`), and this
    /// identity may append to its default stream (`GetWriteStream`).
    pub async fn check(&self) -> Result<(), SinkCheck> {
        check_table(&self.client, &self.table).await?;
        let table = &self.table;
        self.stream.check().await.map_err(|e| match (e.class(), e.status) {
            (Class::Misconfigured, Some(401 | 403)) => SinkCheck::Wrong(format!(
                "this service account may not append to table {table} through the Storage Write \
                 API: it needs {APPEND_PERMISSION} ({e})"
            )),
            _ => SinkCheck::from_google(e, &format!("the default stream of table {table}")),
        })
    }
}

/// A refused row's verdict: permanent, with BigQuery's code and message.
fn refused(code: &str, message: &str) -> RowError {
    RowError {
        reason: "invalid".into(),
        location: String::new(),
        message: format!("{code}: {message}"),
    }
}

#[async_trait]
impl RowSink for StorageWriteSink {
    /// Recorded values: the Arrow columns are filled from them, no JSON is written or parsed.
    fn row_form(&self) -> RowForm {
        RowForm::Tokens
    }

    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        self.insert_by(rows, Instant::now() + self.timeout).await
    }

    /// The rows BigQuery did not refuse are sent again until `deadline`, the pushes' own.
    async fn insert_by(
        &self,
        rows: Vec<PreparedRow>,
        deadline: Instant,
    ) -> Result<Vec<Result<(), RowError>>, CallError> {
        append_until_decided(
            &rows,
            |batch| self.arrow.encode(batch),
            |encoded| self.stream.append(encoded),
            deadline,
        )
        .await
    }
}

/// Appends `rows` (encoded by `encode`, sent by `append`) until each has its verdict: rows that
/// cannot be encoded and rows BigQuery refuses are permanent failures, and the others are sent
/// again at once without them, until they land or `deadline` passes.
async fn append_until_decided<E, A, F>(
    rows: &[PreparedRow],
    encode: E,
    append: A,
    deadline: Instant,
) -> Result<Vec<Result<(), RowError>>, CallError>
where
    E: Fn(&[PreparedRow]) -> Result<Bytes, Vec<Unfit>>,
    A: Fn(Bytes) -> F,
    F: Future<Output = Result<Appended, GoogleError>>,
{
    let mut verdicts: Vec<Option<Result<(), RowError>>> = vec![None; rows.len()];
    // The rows still to send, by their index in `rows`.
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    while !pending.is_empty() {
        let batch: Vec<PreparedRow> = pending.iter().map(|&i| rows[i].clone()).collect();
        let refusals: Vec<(usize, RowError)> = match encode(&batch) {
            Err(unfit) => unfit
                .into_iter()
                .map(|u| (u.index, refused("UnfitForSchema", &u.why)))
                .collect(),
            Ok(encoded) => match append(encoded).await {
                Ok(Appended::All) => {
                    for i in pending.drain(..) {
                        verdicts[i] = Some(Ok(()));
                    }
                    break;
                }
                Ok(Appended::Refused(list)) => list
                    .into_iter()
                    .map(|r| (r.index, refused(&r.code, &r.message)))
                    .collect(),
                // Nothing decided yet: the call's failure is every row's, as `insertAll`'s.
                Err(e) if pending.len() == rows.len() => return Err(e.into()),
                Err(e) => {
                    let e = RowError {
                        reason: "backendError".into(),
                        location: String::new(),
                        message: e.to_string(),
                    };
                    for i in pending.drain(..) {
                        verdicts[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            },
        };
        let before = pending.len();
        for (index, error) in refusals {
            if let Some(&i) = pending.get(index) {
                verdicts[i] = Some(Err(error));
            }
        }
        pending.retain(|&i| verdicts[i].is_none());
        if pending.len() == before || Instant::now() >= deadline {
            // A refusal that named no row of the batch, or no time left: the rest are tried
            // again by Pub/Sub's redelivery.
            let why = if pending.len() == before {
                "BigQuery refused the append without naming a row of it"
            } else {
                "no time left to send the rows BigQuery did not refuse (SINK_TIMEOUT_SECONDS)"
            };
            for i in pending.drain(..) {
                verdicts[i] = Some(Err(stopped(why)));
            }
        }
    }
    Ok(verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Err(stopped("no verdict"))))
        .collect())
}

/// A transient verdict: the row was not sent, or not appended.
fn stopped(why: &str) -> RowError {
    RowError {
        reason: "stopped".into(),
        location: String::new(),
        message: why.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::google::calls;
    use crate::google::storage_write::RefusedRow;

    fn rows(ids: &[&str]) -> Vec<PreparedRow> {
        ids.iter()
            .map(|id| PreparedRow::new(id.to_string(), &serde_json::json!({"id": id})).unwrap())
            .collect()
    }

    /// "Encodes" a batch as its ids, comma-separated; refuses ids starting with `unfit`.
    fn encode(batch: &[PreparedRow]) -> Result<Bytes, Vec<Unfit>> {
        let unfit: Vec<Unfit> = batch
            .iter()
            .enumerate()
            .filter(|(_, r)| r.insert_id.starts_with("unfit"))
            .map(|(index, _)| Unfit {
                index,
                why: "no such column".into(),
            })
            .collect();
        if !unfit.is_empty() {
            return Err(unfit);
        }
        let ids: Vec<&str> = batch.iter().map(|r| r.insert_id.as_str()).collect();
        Ok(Bytes::from(ids.join(",")))
    }

    /// An append that refuses the rows whose id starts with `bad` (all of the request is then
    /// not appended, as BigQuery's `row_errors`), and records each request.
    fn table(
        sent: &Mutex<Vec<String>>,
    ) -> impl Fn(Bytes) -> std::future::Ready<Result<Appended, GoogleError>> + '_ {
        move |batch| {
            let text = String::from_utf8(batch.to_vec()).unwrap();
            sent.lock().unwrap().push(text.clone());
            let refused: Vec<RefusedRow> = text
                .split(',')
                .enumerate()
                .filter(|(_, id)| id.starts_with("bad"))
                .map(|(index, _)| RefusedRow {
                    index,
                    code: "FieldsError".into(),
                    message: "Field event_id: value too long".into(),
                })
                .collect();
            std::future::ready(Ok(if refused.is_empty() {
                Appended::All
            } else {
                Appended::Refused(refused)
            }))
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn refused_rows_fail_alone_and_the_others_are_sent_again_at_once() {
        let sent = Mutex::new(Vec::new());
        let rows = rows(&["a", "bad-1", "b", "unfit-1", "bad-2", "c"]);
        let verdicts = append_until_decided(&rows, encode, table(&sent), later())
            .await
            .unwrap();
        let summary: Vec<Option<String>> = verdicts
            .iter()
            .map(|v| v.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert!(
            verdicts[0].is_ok() && verdicts[2].is_ok() && verdicts[5].is_ok(),
            "{summary:?}"
        );
        for i in [1, 3, 4] {
            let e = verdicts[i].as_ref().unwrap_err();
            assert!(e.is_permanent(), "{e}");
        }
        // BigQuery's own message is the reason the letter carries.
        assert!(
            summary[1]
                .as_deref()
                .unwrap()
                .contains("FieldsError: Field event_id")
        );
        assert!(summary[3].as_deref().unwrap().contains("UnfitForSchema"));
        // The unfit row never left; the refused ones went once; the rest went again at once.
        assert_eq!(*sent.lock().unwrap(), ["a,bad-1,b,bad-2,c", "a,b,c"]);
    }

    #[tokio::test]
    async fn a_failed_first_append_is_the_calls_failure() {
        let rows = rows(&["a", "b"]);
        let failed = append_until_decided(
            &rows,
            encode,
            |_| {
                std::future::ready(Err(GoogleError {
                    call: calls::STORAGE_WRITE_APPEND_ROWS,
                    status: Some(400),
                    reason: None,
                    detail: "bad request".into(),
                }))
            },
            later(),
        )
        .await;
        // Permanent: group commit sends the batch again in halves.
        assert!(matches!(failed, Err(CallError::Permanent(_))), "{failed:?}");
    }

    #[tokio::test]
    async fn with_no_time_left_the_rest_are_redelivered_not_dropped() {
        let sent = Mutex::new(Vec::new());
        let rows = rows(&["a", "bad-1"]);
        let verdicts = append_until_decided(&rows, encode, table(&sent), Instant::now())
            .await
            .unwrap();
        assert!(verdicts[1].as_ref().unwrap_err().is_permanent());
        let rest = verdicts[0].as_ref().unwrap_err();
        assert!(!rest.is_permanent(), "{rest}: a transient failure, nacked");
        assert_eq!(sent.lock().unwrap().len(), 1);
    }
}
