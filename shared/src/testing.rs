//! Test doubles, behind the `test-support` feature (the tests and benchmarks turn it on; a
//! service's build never has it): sinks that are down, refuse every row or keep nothing, and a
//! dead-letter topic in memory. The in-memory bucket and table stay in [`crate::sink::memory`],
//! since `replay inspect` runs on them.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::error::CallError;
use crate::row::{PreparedRow, RowForm};
use crate::sink::RowError;
use crate::sink::memory::lock;
use crate::sink::{NewObject, ObjectStore, RowSink, Stored};

/// A sink that is down: every call fails as transient.
pub struct Down;

#[async_trait]
impl ObjectStore for Down {
    async fn create_once(&self, _: NewObject) -> Result<Stored, CallError> {
        Err(CallError::Transient(
            "Cloud Storage unreachable (connection failed)".into(),
        ))
    }
}

#[async_trait]
impl RowSink for Down {
    async fn insert(&self, _: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        Err(CallError::Transient("BigQuery answered HTTP 503".into()))
    }
}

/// A table that refuses every row as invalid (per-row `insertErrors`).
pub struct Rejecting;

#[async_trait]
impl RowSink for Rejecting {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
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
    async fn publish(&self, letter: &DeadLetter) -> Result<String, CallError> {
        if self.fail {
            return Err(CallError::Transient("Pub/Sub unreachable".into()));
        }
        let mut letters = lock(&self.letters);
        letters.push(letter.clone());
        Ok(format!("dl-{}", letters.len()))
    }
}

/// A table that accepts every row and keeps nothing (benchmarks), taking its rows in the form it
/// is made with (JSON by default, as `insertAll`; [`RowForm::Tokens`] as the Storage Write API).
#[derive(Default)]
pub struct Discard {
    pub form: RowForm,
}

#[async_trait]
impl RowSink for Discard {
    fn row_form(&self) -> RowForm {
        self.form
    }

    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        Ok(vec![Ok(()); rows.len()])
    }
}
