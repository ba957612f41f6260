//! A bucket and a table in memory: what `replay inspect` runs the real handlers against (it writes
//! nothing), and the unit and fuzz tests' sinks. The failing doubles are in
//! `crate::testing` (feature `test-support`, never in a service's build). End-to-end claims go
//! through the real emulators in `tests/`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::CallError;
use crate::row::{PreparedRow, RowForm};
use crate::sink::RowError;
use crate::sink::{NewObject, ObjectStore, RowSink, Stored};

/// A poisoned lock only means another thread panicked; the data is still what it was.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    async fn create_once(&self, object: NewObject) -> Result<Stored, CallError> {
        let mut objects = lock(&self.objects);
        if objects.contains_key(&object.name) {
            return Ok(Stored::AlreadyExists);
        }
        objects.insert(object.name, object.data);
        Ok(Stored::Created)
    }
}

/// A table in memory that accepts every row, in the form it is made with (JSON by default).
#[derive(Default)]
pub struct MemoryRows {
    rows: Mutex<Vec<PreparedRow>>,
    form: RowForm,
}

impl MemoryRows {
    /// A table that takes its rows as `form` (the tests hold the two forms to the same values).
    pub fn in_form(form: RowForm) -> Self {
        Self {
            rows: Mutex::default(),
            form,
        }
    }

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
    fn row_form(&self) -> RowForm {
        self.form
    }

    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, CallError> {
        let n = rows.len();
        lock(&self.rows).extend(rows);
        Ok(vec![Ok(()); n])
    }
}
