//! In-process fakes of the two sinks, for unit tests of the handlers and the HTTP contract.
//! (End-to-end claims go through the real emulators in `tests/`.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use pipeline::config::{Rules, Service};
use pipeline::handler::{Destination, Handler};
use pipeline::sink::{NewObject, ObjectStore, PreparedRow, RowError, RowSink, SinkError, Stored};

/// A bucket in memory, with create-once semantics.
#[derive(Default)]
pub struct MemoryStore {
    pub objects: Mutex<BTreeMap<String, Bytes>>,
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn create_once(&self, object: NewObject) -> Result<Stored, SinkError> {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(&object.name) {
            return Ok(Stored::AlreadyExists);
        }
        objects.insert(object.name, object.data);
        Ok(Stored::Created)
    }
}

/// A table in memory.
#[derive(Default)]
pub struct MemoryRows {
    pub rows: Mutex<Vec<PreparedRow>>,
}

#[async_trait]
impl RowSink for MemoryRows {
    async fn insert(&self, rows: Vec<PreparedRow>) -> Result<Vec<Result<(), RowError>>, SinkError> {
        let n = rows.len();
        self.rows.lock().unwrap().extend(rows);
        Ok(vec![Ok(()); n])
    }
}

/// A sink that is down.
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

pub struct Handlers {
    pub to_gcs: Handler,
    pub to_bq: Handler,
    pub sub_v2: Handler,
    pub store: Arc<MemoryStore>,
    pub rows: Arc<MemoryRows>,
}

/// The three handlers over one in-memory bucket and one in-memory table.
pub fn handlers() -> Handlers {
    let store = Arc::new(MemoryStore::default());
    let rows = Arc::new(MemoryRows::default());
    let objects = Destination::Objects {
        store: store.clone(),
        prefix: "transcripts".into(),
    };
    let table = Destination::Rows(rows.clone());
    let make = |s, d| Handler::new(s, Rules::default(), d).unwrap();
    Handlers {
        to_gcs: make(Service::ToGcs, objects),
        to_bq: make(Service::ToBq, table.clone()),
        sub_v2: make(Service::SubV2, table),
        store,
        rows,
    }
}

/// A dead-letter topic in memory; `fail` makes every publish fail.
#[derive(Default)]
pub struct MemoryDeadLetters {
    pub letters: Mutex<Vec<pipeline::dead_letter::DeadLetter>>,
    pub fail: bool,
}

#[async_trait]
impl pipeline::dead_letter::DeadLetterSink for MemoryDeadLetters {
    async fn publish(
        &self,
        letter: &pipeline::dead_letter::DeadLetter,
    ) -> Result<String, SinkError> {
        if self.fail {
            return Err(SinkError::Transient("Pub/Sub unreachable".into()));
        }
        let mut letters = self.letters.lock().unwrap();
        letters.push(letter.clone());
        Ok(format!("dl-{}", letters.len()))
    }
}

/// A service on a random port, over the given sinks, configured from `vars` as the binary would be
/// from its environment (`HOST=127.0.0.1`, `PORT=0` and `GOOGLE_CLOUD_PROJECT` are preset, and
/// `PUSH_AUTH=off` unless `vars` says otherwise). Stops when dropped.
pub struct LocalApp {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    _trigger: pipeline::shutdown::ShutdownTrigger,
}

pub async fn spawn_local(
    service: Service,
    vars: &[(&str, &str)],
    destination: Destination,
    dead_letters: Option<Arc<dyn pipeline::dead_letter::DeadLetterSink>>,
) -> LocalApp {
    let mut all: BTreeMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("GOOGLE_CLOUD_PROJECT", "p"),
        ("PUSH_AUTH", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = pipeline::Config::from_lookup(service, |k| all.get(k).cloned()).unwrap();
    let app = pipeline::startup::Application::build_with(&config, destination, dead_letters)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (trigger, shutdown) = pipeline::shutdown::ShutdownTrigger::new();
    tokio::spawn(app.run_until_stopped(shutdown));
    LocalApp {
        url,
        _trigger: trigger,
    }
}
