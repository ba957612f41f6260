//! In-process sinks: a bucket and a table in memory, a sink that is down, a table that refuses
//! every row, and a dead-letter topic in memory. For unit tests of the handlers and the HTTP
//! contract, the fuzz tests, and `replay inspect` (which runs the real handlers without writing
//! anything). End-to-end claims go through the real emulators in `tests/`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::sink::{NewObject, ObjectStore, PreparedRow, RowError, RowSink, SinkError, Stored};

/// A poisoned lock only means another test thread panicked; the data is still what it was.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bucket in memory, with create-once semantics.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    pub fn objects(&self) -> BTreeMap<String, Bytes> {
        lock(&self.objects).clone()
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn create_once(&self, object: NewObject) -> Result<Stored, SinkError> {
        let mut objects = lock(&self.objects);
        if objects.contains_key(&object.name) {
            return Ok(Stored::AlreadyExists);
        }
        objects.insert(object.name, object.data);
        Ok(Stored::Created)
    }
}

/// A table in memory that accepts every row.
#[derive(Default)]
pub struct MemoryRows {
    rows: Mutex<Vec<PreparedRow>>,
}

impl MemoryRows {
    pub fn rows(&self) -> Vec<PreparedRow> {
        lock(&self.rows).clone()
    }

    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last(&self) -> Option<PreparedRow> {
        lock(&self.rows).last().cloned()
    }
}

#[async_trait]
impl RowSink for MemoryRows {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        let n = rows.len();
        lock(&self.rows).extend(rows);
        Ok(vec![Ok(()); n])
    }
}

/// A sink that is down: every call fails as transient.
pub struct Down;

#[async_trait]
impl ObjectStore for Down {
    async fn create_once(&self, _: NewObject) -> Result<Stored, SinkError> {
        Err(SinkError::Transient(
            "Cloud Storage unreachable (connection failed)".into(),
        ))
    }
}

#[async_trait]
impl RowSink for Down {
    async fn insert(&self, _: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        Err(SinkError::Transient("BigQuery answered HTTP 503".into()))
    }
}

/// A table that refuses every row as invalid (per-row `insertErrors`).
pub struct Rejecting;

#[async_trait]
impl RowSink for Rejecting {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        Ok(rows
            .iter()
            .map(|_| {
                Err(RowError {
                    reason: "invalid".into(),
                    location: "feature".into(),
                    message: "no such field".into(),
                })
            })
            .collect())
    }
}

/// A dead-letter topic in memory; `fail` makes every publish fail.
#[derive(Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
    pub fail: bool,
}

impl MemoryDeadLetters {
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    pub fn letters(&self) -> Vec<DeadLetter> {
        lock(&self.letters).clone()
    }
}

#[async_trait]
impl DeadLetterSink for MemoryDeadLetters {
    async fn publish(&self, letter: &DeadLetter) -> Result<String, SinkError> {
        if self.fail {
            return Err(SinkError::Transient("Pub/Sub unreachable".into()));
        }
        let mut letters = lock(&self.letters);
        letters.push(letter.clone());
        Ok(format!("dl-{}", letters.len()))
    }
}

/// A table that accepts every row and keeps nothing (benchmarks).
pub struct Discard;

#[async_trait]
impl RowSink for Discard {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        Ok(vec![Ok(()); rows.len()])
    }
}
