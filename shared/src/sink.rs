//! Step 4, write: the two destinations, behind small traits so that handlers can be unit-tested
//! with in-process fakes and the real clients can be swapped without touching the handlers.
//!
//! - [`ObjectStore`]: create-once object writes (Cloud Storage, [`gcs`]). A second write of the same
//!   name is [`Stored::AlreadyExists`], which is a success: redelivery never overwrites.
//! - [`RowSink`]: rows with per-row results, through the Storage Write API's default stream
//!   ([`storage_write`], the default) or `insertAll` ([`bigquery`]), chosen by [`WriteMethod`]. It
//!   takes a batch and answers row by row, so that rows of concurrent pushes share one call
//!   through a batching `RowSink` in front of the real one ([`batch`]), with no change to the
//!   handlers.
//!
//! Every error says whether retrying can help ([`CallError::Transient`]: nack, Pub/Sub redelivers)
//! or not ([`CallError::Permanent`] and [`RowError::is_permanent`]: the message itself is bad).
//! Error details come from the services' status and error reasons; the handlers never put payload
//! text into them.

pub mod batch;
pub mod bigquery;
pub mod gcs;
pub mod memory;
pub mod storage_write;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::CallError;
use crate::google::bigquery::InsertError;
use crate::google::{Class, GoogleError, classify};
use crate::row::{PreparedRow, RowForm};

/// Why one row was not written: BigQuery's reason (from `insertAll`'s `insertErrors` or the
/// Storage Write API's `row_errors`), or the sink's own (`stopped`: not sent or not decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub reason: String,
    pub location: String,
    pub message: String,
}

impl RowError {
    /// `invalid` means the row itself is wrong; `stopped` (another row of the call failed),
    /// `backendError`, `timeout` and the rest can succeed on a retry (the one classifier decides,
    /// by the reason: a row's error has no status of its own).
    pub fn is_permanent(&self) -> bool {
        classify(None, Some(&self.reason)) == Class::Permanent
    }
}

impl From<InsertError> for RowError {
    fn from(e: InsertError) -> Self {
        Self {
            reason: e.reason,
            location: e.location,
            message: e.message,
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at `{}`: {}",
            self.reason, self.location, self.message
        )
    }
}

/// How rows reach BigQuery (`BIGQUERY_WRITE_METHOD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMethod {
    /// `AppendRows` on the table's default stream ([`storage_write`]): half `insertAll`'s price,
    /// the first 2 TiB a month free, no per-row minimum; no `insertId` deduplication.
    #[default]
    StorageWrite,
    /// `tabledata.insertAll` ([`bigquery`]): the legacy streaming API, 1 KB billed at least per
    /// row, best-effort `insertId` deduplication for about a minute.
    InsertAll,
}

impl WriteMethod {
    /// The values of `BIGQUERY_WRITE_METHOD`.
    pub const NAMES: [(&'static str, WriteMethod); 2] = [
        ("storage_write", WriteMethod::StorageWrite),
        ("insert_all", WriteMethod::InsertAll),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, m)| *m)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("storage_write", |(name, _)| name)
    }
}

/// An object to create in the bucket.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub name: String,
    pub data: Bytes,
    pub content_type: &'static str,
    /// Custom metadata (`x-goog-meta-*`): ids and names only, never payload text.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// An object of that name exists (precondition `ifGenerationMatch=0` failed): a redelivery.
    AlreadyExists,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates the object unless one of that name exists.
    async fn create_once(&self, object: NewObject) -> Result<Stored, CallError>;
}

/// Why a sink failed its start-up check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkCheck {
    /// The configuration or a grant is wrong: retrying will not help.
    #[error("{0}")]
    Wrong(String),
    /// The service could not be asked (unreachable, 5xx): worth asking again.
    #[error("{0}")]
    Unavailable(String),
}

impl SinkCheck {
    /// What a failed start-up call about `what` (`bucket gs://b`, `table p.d.t`) means: ask again
    /// when Google was unavailable, stop the service otherwise, saying why.
    pub fn from_google(e: GoogleError, what: &str) -> Self {
        match (e.class(), e.status) {
            (Class::Retry, _) => SinkCheck::Unavailable(e.to_string()),
            (_, Some(404)) => SinkCheck::Wrong(format!("{what} does not exist ({e})")),
            (_, Some(401 | 403)) => {
                SinkCheck::Wrong(format!("this service account may not use {what} ({e})"))
            }
            _ => SinkCheck::Wrong(format!("cannot check {what}: {e}")),
        }
    }
}

#[async_trait]
pub trait RowSink: Send + Sync {
    /// The form this sink wants its rows in: JSON text unless it says otherwise.
    fn row_form(&self) -> RowForm {
        RowForm::Json
    }

    /// Inserts the rows; the result has one entry per row, in order.
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError>;

    /// [`RowSink::insert`] by `deadline`, the pushes' (group commit holds it): a sink that sends
    /// again within one call (the Storage Write API, after refused rows) stops trying there. By
    /// default, `insert` under its own timeout.
    async fn insert_by(
        &self,
        rows: Vec<PreparedRow>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Result<(), RowError>>, CallError> {
        let _ = deadline;
        self.insert(rows).await
    }

    /// Inserts one push's row: its verdict, and how many rows the call (append or `insertAll`)
    /// that carried it held (group commit shares a call between pushes).
    async fn write_one(&self, row: PreparedRow) -> Result<OneRow, CallError> {
        let verdict = self.insert(vec![row]).await?.into_iter().next();
        Ok(OneRow {
            verdict,
            request_rows: 1,
        })
    }
}

/// What became of one push's row.
#[derive(Debug)]
pub struct OneRow {
    /// `None`: BigQuery answered no verdict for it.
    pub verdict: Option<Result<(), RowError>>,
    /// Rows in the call that carried it (the log line's `callRows`).
    pub request_rows: usize,
}
