//! Step 4, write: the two destinations, behind small traits so that handlers can be unit-tested
//! with in-process fakes and the real clients can be swapped without touching the handlers.
//!
//! - [`ObjectStore`]: create-once object writes (Cloud Storage, [`gcs`]). A second write of the same
//!   name is [`Stored::AlreadyExists`], which is a success: redelivery never overwrites.
//! - [`RowSink`]: streaming inserts with per-row results (BigQuery `insertAll`, [`bigquery`]). It
//!   takes a batch and answers row by row, so rows of several concurrent requests can later be
//!   grouped into one call by a batching `RowSink` in front of the real one, with no change to
//!   the handlers.
//!
//! Every error says whether retrying can help ([`CallError::Transient`]: nack, Pub/Sub redelivers)
//! or not ([`CallError::Permanent`] and [`RowError::is_permanent`]: the message itself is bad).
//! Error details come from the services' status and error reasons; the handlers never put payload
//! text into them.

pub mod batch;
pub mod bigquery;
pub mod gcs;
pub mod memory;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::CallError;
use crate::google::bigquery::RowError;
use crate::google::{Class, GoogleError};
use crate::row::PreparedRow;

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
    /// Inserts the rows; the result has one entry per row, in order.
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError>;

    /// Inserts one push's row: its verdict, and how many rows the `insertAll` that carried it
    /// held (group commit shares a call between pushes).
    async fn insert_one(&self, row: PreparedRow) -> Result<OneRow, CallError> {
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
    /// Rows in the `insertAll` that carried it (the log line's `insertAllRows`).
    pub request_rows: usize,
}
