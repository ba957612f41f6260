//! BigQuery `tabledata.insertAll`, `insertId` = event id, and the start-up check of the table.
//!
//! Rows are sent with `skipInvalidRows`, so every row of a call gets its own verdict: a row that
//! BigQuery calls `invalid` is a permanent failure of that message, any other per-row error is
//! transient, and a row is only reported written when the response names no error for it. The
//! `insertId` lets BigQuery drop a redelivered row on a best-effort basis (about a minute); the
//! event id column is the durable deduplication key for queries. (The BigQuery emulator does not
//! deduplicate on `insertId` at all.) Rows of concurrent pushes share calls through
//! [`super::batch::GroupCommit`].
//!
//! Two clients can send the call ([`InsertClient`], `BIGQUERY_INSERT_CLIENT`): the maintained
//! `gcp-bigquery-client` (which parses each row's JSON text into a tree and serialises it again),
//! or the JSON layer with the request written straight from the rows' text, encoded once when
//! each row was built ([`PreparedRow`]). Both go through [`crate::google`]: the same credentials,
//! error, classifier and retry rule. The default is the direct request: once rows were written in
//! one pass as JSON text (issue 17), the crate, which parses every row again, ran below the 85 % of
//! it that issue 16 set as the bar for `sub-v2` (`BENCHMARKS.md`, "BigQuery client A/B, again").
//! `tables.get` and `jobs.query` go through the crate either way.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{RowError, RowSink, SinkCheck};
use crate::error::CallError;
use crate::google::bigquery::{BigQuery, INSERT_SCOPE, InsertRow, READ_SCOPE, TableRef};
use crate::google::bigquery::{InsertError, insert_all_text};
use crate::google::{Api, BIGQUERY, Credentials};
use crate::row::PreparedRow;

/// Which client sends `insertAll`. The default is [`InsertClient::Direct`]: `gcp-bigquery-client`
/// measured below 85 % of it for `sub-v2` (median of seven runs, `BENCHMARKS.md`, issue 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertClient {
    /// `gcp-bigquery-client`.
    Crate,
    /// The JSON layer, the request written from the rows' JSON text.
    #[default]
    Direct,
}

impl InsertClient {
    /// The values of `BIGQUERY_INSERT_CLIENT`.
    pub const NAMES: [(&'static str, InsertClient); 2] = [
        ("gcp-bigquery-client", InsertClient::Crate),
        ("direct", InsertClient::Direct),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, c)| *c)
    }
}

pub struct BigQuerySink {
    client: BigQuery,
    /// For [`InsertClient::Direct`].
    json: Option<Api>,
    table: TableRef,
}

impl BigQuerySink {
    /// Connects to BigQuery, or to the emulator at `emulator` (`http://host:port`). `timeout`
    /// bounds one call, retries included.
    pub async fn connect(
        table: TableRef,
        emulator: Option<&str>,
        timeout: Duration,
        insert: InsertClient,
    ) -> Result<Self, String> {
        let credentials = Arc::new(Credentials::new(
            emulator.is_some(),
            &[INSERT_SCOPE, READ_SCOPE],
            BIGQUERY.name,
        )?);
        let client = BigQuery::with_credentials(emulator, credentials.clone(), timeout).await?;
        let json = match insert {
            InsertClient::Crate => None,
            InsertClient::Direct => Some(Api::with_credentials(
                &BIGQUERY,
                emulator,
                credentials,
                timeout,
            )?),
        };
        Ok(Self {
            client,
            json,
            table,
        })
    }

    /// Start-up check: the table exists, and has every column a row can carry (`tables.get`,
    /// which the writers' role grants: `bigquery.tables.get`). The error names the problem; `main`
    /// then exits and Cloud Run's deploy fails instead of pushes failing later.
    pub async fn check(&self) -> Result<(), SinkCheck> {
        check_table(&self.client, &self.table).await
    }
}

/// Start-up check of either write method: `table` exists and has every column a row can carry
/// (`tables.get`, which the writers' role grants: `bigquery.tables.get`).
pub async fn check_table(client: &BigQuery, table: &TableRef) -> Result<(), SinkCheck> {
    let columns = client
        .columns(table)
        .await
        .map_err(|e| SinkCheck::from_google(e, &format!("table {table}")))?;
    let problems = crate::schema::Schema::event_telemetry().missing_from(&columns);
    if problems.is_empty() {
        Ok(())
    } else {
        let problems = problems.join("; ");
        Err(SinkCheck::Wrong(format!(
            "table {table} does not match the row schema: {problems}"
        )))
    }
}

#[async_trait]
impl RowSink for BigQuerySink {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        // JSON rows (this sink's form, `row_form`) lend their text as it is.
        let texts: Vec<_> = rows.iter().map(PreparedRow::json).collect();
        let rows: Vec<InsertRow<'_>> = rows
            .iter()
            .zip(&texts)
            .map(|(row, json)| row.insert_row(json))
            .collect();
        let answer = match &self.json {
            Some(json) => insert_all_text(json, &self.table, &rows).await,
            None => self.client.insert_all(&self.table, &rows).await,
        };
        // A request-level answer: retried within the timeout if it could heal; what is left is a
        // nack, or (400 `invalid`) the rows' own fault.
        Ok(answer
            .map_err(CallError::from)?
            .into_iter()
            .map(verdict)
            .collect())
    }
}

/// A row is written when no error names it.
fn verdict(error: Option<InsertError>) -> Result<(), RowError> {
    error.map_or(Ok(()), |e| Err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_written_when_no_error_names_it() {
        assert_eq!(verdict(None), Ok(()));
        let refused = verdict(Some(InsertError {
            reason: "invalid".into(),
            location: "f".into(),
            message: "m".into(),
        }))
        .unwrap_err();
        assert!(refused.is_permanent());
        assert_eq!(refused.to_string(), "invalid at `f`: m");
    }

    #[test]
    fn the_insert_client_is_named_by_its_variable() {
        assert_eq!(
            InsertClient::parse("gcp-bigquery-client"),
            Some(InsertClient::Crate)
        );
        assert_eq!(InsertClient::parse("direct"), Some(InsertClient::Direct));
        assert_eq!(InsertClient::parse("crate"), None);
    }
}
