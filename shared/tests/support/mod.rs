//! Test helpers shared by the tests of this crate: the three handlers over in-memory sinks, a
//! service spawned in-process over given sinks, and the push envelope fixture. The sinks
//! themselves live in [`pipeline::sink::memory`] (also used by `replay inspect`).
//! (End-to-end claims go through the real emulators in `tests/`.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::config::{Config, Rules, Service};
use pipeline::dead_letter::DeadLetterSink;
use pipeline::decode::PushEnvelope;
use pipeline::handler::{Destination, Handler};
use pipeline::row::RowForm;
use pipeline::sink::memory::{MemoryRows, MemoryStore};
use pipeline::startup::{Application, RunningApp};

pub struct Handlers {
    pub to_gcs: Handler,
    pub to_bq: Handler,
    pub sub_v2: Handler,
    pub store: Arc<MemoryStore>,
    pub rows: Arc<MemoryRows>,
}

/// The three handlers over one in-memory bucket and one in-memory table.
pub fn handlers() -> Handlers {
    handlers_in_form(RowForm::Json)
}

/// [`handlers`] over a table that takes its rows in `form`.
pub fn handlers_in_form(form: RowForm) -> Handlers {
    let store = Arc::new(MemoryStore::default());
    let rows = Arc::new(MemoryRows::in_form(form));
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

/// A service on a random port, over the given sinks, configured from `vars` as the binary would be
/// from its environment (`HOST=127.0.0.1`, `PORT=0` and `GOOGLE_CLOUD_PROJECT` are preset, and
/// `PUSH_AUTH=off` unless `vars` says otherwise). Stops when dropped.
pub async fn spawn_local(
    service: Service,
    vars: &[(&str, &str)],
    destination: Destination,
    dead_letters: Option<Arc<dyn DeadLetterSink>>,
) -> RunningApp {
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
    let config = Config::from_lookup(service, |k| all.get(k).cloned()).unwrap();
    Application::build_with(&config, destination, dead_letters)
        .await
        .unwrap()
        .spawn()
}

/// A wrapped push of `data` with message id `id` (the fixture every test here starts from).
pub fn push(id: &str, data: &[u8]) -> PushEnvelope {
    PushEnvelope::new(id, data)
}
