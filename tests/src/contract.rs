//! Contract tests: every request the services, `replay` and the audit send to Google's APIs during
//! the end-to-end tests, held to Google's own discovery documents.
//!
//! - [`discovery`]: the documents (`tests/discovery/`, vendored) and the checks of one request;
//! - [`grpc`]: the same for the gRPC APIs that have no discovery document (BigQuery Storage Write),
//!   held to Google's protos (`tests/protos/`, vendored);
//! - [`recorder`]: the proxy in front of each emulator that checks, forwards and records;
//! - [`Ledger`]: what was recorded, one JSON line per request in `target/contract/` (per test
//!   process), read afterwards by `cargo run -p e2e --bin contract` ([`report`]), which
//!   `scripts/test.sh` runs after the tests: it fails on any nonconforming request, on a request
//!   kind that is not in `pipeline::google::CALLS`, and on a kind in it that no test sent.
//!
//! The response side is checked from the code's own types: every field of a response type that
//! the pipeline deserialises must be declared in the method's response schema ([`responses`]).

pub mod discovery;
pub mod grpc;
pub mod recorder;
pub mod report;
pub mod responses;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::emulators::repo_root;
pub use discovery::Discovery;
pub use recorder::Recorder;

/// One recorded request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// `storage`, `bigquery` or `pubsub`.
    pub api: String,
    /// The discovery method id it calls, when one matched.
    pub call: Option<String>,
    /// `http` or `grpc`.
    pub transport: String,
    /// `METHOD /path` (no query, no body).
    pub request: String,
    /// Every way it departs from the method's declaration.
    pub problems: Vec<String>,
}

impl Entry {
    /// Why Google would refuse this request, if it would.
    pub fn refusal(&self) -> Option<String> {
        if self.call.is_none() || !self.problems.is_empty() {
            Some(format!("contract: {}", self.problems.join("; ")))
        } else {
            None
        }
    }
}

/// The requests recorded in this process, kept in memory and appended to its file.
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
    file: Mutex<Option<std::fs::File>>,
}

/// Where the recorders of every test process write: `$PIPELINE_CONTRACT_DIR`, or
/// `target/contract/`.
pub fn records_dir() -> PathBuf {
    std::env::var_os("PIPELINE_CONTRACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/contract"))
}

/// This process's ledger.
pub fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let dir = records_dir();
        let file = std::fs::create_dir_all(&dir).ok().and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.jsonl", std::process::id())))
                .ok()
        });
        Ledger {
            entries: Mutex::new(Vec::new()),
            file: Mutex::new(file),
        }
    })
}

impl Ledger {
    fn record(&self, entry: Entry, persist: bool) {
        if persist
            && let Ok(line) = serde_json::to_string(&entry)
            && let Some(f) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
        {
            let _ = writeln!(f, "{line}");
        }
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }

    /// Everything recorded in this process so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The vendored protos, compiled once per process.
pub fn protos() -> Result<Arc<grpc::Protos>> {
    static PROTOS: OnceLock<Arc<grpc::Protos>> = OnceLock::new();
    if let Some(p) = PROTOS.get() {
        return Ok(p.clone());
    }
    let p = Arc::new(grpc::Protos::of_repo()?);
    Ok(PROTOS.get_or_init(|| p).clone())
}

/// The discovery documents, read once per process.
pub fn discovery() -> Result<Arc<Discovery>> {
    static DOCS: OnceLock<Arc<Discovery>> = OnceLock::new();
    if let Some(d) = DOCS.get() {
        return Ok(d.clone());
    }
    let d = Arc::new(Discovery::of_repo()?);
    Ok(DOCS.get_or_init(|| d).clone())
}
