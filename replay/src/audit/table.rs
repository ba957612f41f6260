//! BigQuery `jobs.query` for the audit, through the shared crate's BigQuery client
//! ([`pipeline::google::bigquery::BigQuery`]): a query in, rows of strings out, page by page.

use std::time::Duration;

use anyhow::{Result, anyhow};
use pipeline::google::bigquery::{self, QUERY_SCOPE};

/// Rows a page: the audit's queries return ids only.
const PAGE_ROWS: u32 = 10_000;

pub struct AuditTable {
    client: bigquery::BigQuery,
    /// Where the query jobs run (and are billed).
    project: String,
}

impl AuditTable {
    pub async fn connect(project: &str, emulator: Option<&str>) -> Result<Self> {
        let client =
            bigquery::BigQuery::connect(emulator, &[QUERY_SCOPE], Duration::from_secs(300))
                .await
                .map_err(anyhow::Error::msg)?;
        Ok(Self {
            client,
            project: project.to_string(),
        })
    }

    /// Runs `sql` and returns every row as its column values (strings; NULL as empty).
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        // BigQuery's error message names the query's problem, never row content.
        self.client
            .query(&self.project, sql, PAGE_ROWS)
            .await
            .map_err(|e| anyhow!("{e}"))
    }
}
