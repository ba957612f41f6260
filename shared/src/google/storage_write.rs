//! BigQuery's Storage Write API through Google's `google-cloud-bigquery` (`client::Write`): Arrow
//! record batches appended to a table's `_default` stream over gRPC (`AppendRows`).
//!
//! The default stream commits each append at once and has no offsets: at-least-once, as
//! `insertAll` without its best-effort `insertId` deduplication. A few long-lived connections
//! ([`CONNECTIONS`]) carry every append of the instance, pipelined, each opened when first used
//! and opened again by the client after a failure. An append either lands whole or not at all:
//! when BigQuery refuses some of its rows it answers `row_errors` and appends none ([`Appended`]).
//! Failures of the call itself are classified like every other Google call ([`GoogleError`],
//! the gRPC code mapped to its HTTP status), and the client's retries are driven by the same
//! classifier within the caller's timeout.
//!
//! This layer knows nothing of rows or events: it takes the Arrow schema and batches as bytes
//! and answers Google's verdicts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use google_cloud_bigquery::client::Write;
use google_cloud_bigquery::error::AppendError;
use google_cloud_bigquery::model::{ArrowRecordBatch, ArrowSchema};
use google_cloud_bigquery::write::DefaultWriter;
use google_cloud_bigquery::write::format::Arrow;

use super::bigquery::TableRef;
use super::error::ClassifiedRetries;
use super::{Credentials, GoogleError, calls};

/// Connections (each one gRPC `AppendRows` stream) per instance. Appends are pipelined on each;
/// two let one carry on while the other is reopened, and stay far inside the default stream's
/// quota of concurrent connections (docs/design.md, "Google's APIs").
pub const CONNECTIONS: usize = 2;

/// The IAM permission that appends rows to a table (the writers' custom role grants it).
pub const APPEND_PERMISSION: &str = "bigquery.tables.updateData";

/// A table's default stream, open for appends.
pub struct StorageWrite {
    client: Write,
    table: TableRef,
    writers: Vec<DefaultWriter<Arrow>>,
    next: AtomicUsize,
    timeout: Duration,
}

/// One row BigQuery refused: its index in the batch, its `RowError` code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// What became of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Every row was appended.
    All,
    /// BigQuery refused these rows and appended none of the batch.
    Refused(Vec<RefusedRow>),
}

impl StorageWrite {
    /// Opens `table`'s default stream for batches of `arrow_schema` (an IPC stream holding the
    /// schema alone), on BigQuery or on the emulator's gRPC endpoint (`http://host:port`).
    /// `timeout` bounds one append, retries included.
    pub async fn open(
        table: &TableRef,
        arrow_schema: Bytes,
        emulator: Option<&str>,
        credentials: Arc<Credentials>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut builder = Write::builder().with_credentials(credentials.for_google_client());
        if let Some(endpoint) = emulator {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder
            .build()
            .await
            .map_err(|e| format!("cannot create the BigQuery Storage Write client: {e}"))?;
        let schema = ArrowSchema::new().set_serialized_schema(arrow_schema);
        let mut writers = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            // Not multiplexed: each writer has a connection of its own, opened on first use.
            let writer = client
                .open_default_stream(table.resource())
                .with_retry_policy(ClassifiedRetries::within(timeout))
                .with_attempt_timeout(timeout)
                .build_arrow(schema.clone())
                .await
                .map_err(|e| format!("cannot open the default stream of {table}: {e}"))?;
            writers.push(writer);
        }
        Ok(Self {
            client,
            table: table.clone(),
            writers,
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    /// Appends one record batch (an IPC message without its schema).
    pub async fn append(&self, batch: Bytes) -> Result<Appended, GoogleError> {
        let call = calls::STORAGE_WRITE_APPEND_ROWS;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.writers.len();
        // (`row_count` is deprecated: BigQuery reads it from the batch.)
        let rows = ArrowRecordBatch::new().set_serialized_record_batch(batch);
        let sent = tokio::time::timeout(self.timeout, self.writers[i].append(rows).send()).await;
        match sent {
            Err(_) => Err(GoogleError::transport(
                call,
                format!("BigQuery did not answer within {:?}", self.timeout),
            )),
            Ok(Ok(_)) => Ok(Appended::All),
            Ok(Err(AppendError::RowErrors { row_errors, .. })) => Ok(Appended::Refused(
                row_errors
                    .into_iter()
                    .map(|e| RefusedRow {
                        index: usize::try_from(e.index).unwrap_or(usize::MAX),
                        code: format!("{:?}", e.code),
                        message: crate::limits::clip_chars(
                            &e.message,
                            crate::limits::MAX_GOOGLE_MESSAGE_CHARS,
                        ),
                    })
                    .collect(),
            )),
            Ok(Err(AppendError::Rpc { source, .. })) => Err(GoogleError::from_gax(call, &source)),
            Ok(Err(other)) => Err(GoogleError::transport(call, other.to_string())),
        }
    }

    /// The start-up check of the default stream (`GetWriteStream` on `_default`): the table is
    /// there and this identity may write to it through the Storage Write API.
    pub async fn check(&self) -> Result<(), GoogleError> {
        let call = calls::STORAGE_WRITE_GET_WRITE_STREAM;
        // A multiplexed writer asks for the stream (its location) when it is built.
        let opened = self
            .client
            .open_default_stream(self.table.resource())
            .with_multiplexing(true)
            .with_retry_policy(ClassifiedRetries::within(self.timeout))
            .build_arrow(ArrowSchema::new())
            .await;
        match opened {
            Ok(_) => Ok(()),
            Err(google_cloud_bigquery::error::WriterBuilderError::Rpc { source, .. }) => {
                Err(GoogleError::from_gax(call, &source))
            }
            Err(other) => Err(GoogleError::transport(call, other.to_string())),
        }
    }
}
