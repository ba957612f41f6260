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
//! Every error says whether retrying can help ([`SinkError::Transient`]: nack, Pub/Sub redelivers)
//! or not ([`SinkError::Permanent`] and [`RowError::is_permanent`]: the message itself is bad).
//! Error details come from the services' status and error reasons; the handlers never put payload
//! text into them.

pub mod batch;
pub mod bigquery;
pub mod gcs;
pub mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::google::{Class, GoogleError, classify};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: the service was unreachable, slow, overloaded, or misconfigured.
    #[error("{0}")]
    Transient(String),
    /// Retrying the same message cannot succeed.
    #[error("{0}")]
    Permanent(String),
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
    async fn create_once(&self, object: NewObject) -> Result<Stored, SinkError>;
}

/// One row for a streaming insert, encoded once: the request is written from this text.
#[derive(Debug, Clone)]
pub struct PreparedRow {
    /// BigQuery's best-effort deduplication key: the event id.
    pub insert_id: String,
    /// The row object as JSON text; shared, so that a batch BigQuery refuses as a whole can be
    /// sent again in halves without copying its rows ([`batch`]).
    pub json: Arc<RawValue>,
}

impl PreparedRow {
    pub fn new(insert_id: String, row: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self {
            insert_id,
            json: Arc::from(serde_json::value::to_raw_value(row)?),
        })
    }

    /// The bytes this row adds to an `insertAll` request: its JSON, its quoted and escaped insert
    /// id, and `{"insertId":…,"json":…},`.
    pub fn encoded_len(&self) -> usize {
        let id: usize = self
            .insert_id
            .chars()
            .map(|c| match c {
                '"' | '\\' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum();
        self.json.get().len() + id + 2 + 22
    }

    /// The row as a JSON tree (tests and `replay inspect` look at it).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.json.get()).unwrap_or(Value::Null)
    }
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

/// Why BigQuery refused one row.
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

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at `{}`: {}",
            self.reason, self.location, self.message
        )
    }
}

#[async_trait]
pub trait RowSink: Send + Sync {
    /// Inserts the rows; the result has one entry per row, in order.
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError>;

    /// Inserts one push's row: its verdict, and how many rows the `insertAll` that carried it
    /// held (group commit shares a call between pushes).
    async fn insert_one(&self, row: PreparedRow) -> Result<OneRow, SinkError> {
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
