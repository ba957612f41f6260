//! The shared crate of the telemetry transcript pipeline.
//!
//! Three Pub/Sub push services (`functions/to-gcs`, `functions/to-bq`, `functions/sub-v2`) are
//! this crate plus a three-line `main`. Each push goes through the same steps, which
//! [`routes`]'s `push` and [`handler::Handler::handle`] call in this order:
//!
//! 1. **decode** ([`decode`]): the push request (wrapped envelope or unwrapped body + headers) →
//!    [`PushMessage`]; then [`event`]: `message.data` → the typed telemetry v2
//!    [`TelemetryPayload`], keeping the original bytes.
//! 2. **classify** ([`classify`]): is it a transcript event (payload: flag, DotCom, private text),
//!    and which BigQuery handler owns it (attribute, like the subscription filters)?
//! 3. **redact** ([`redact`]): remove the transcript keys (and `REDACT_KEYS`) from
//!    `privateMetadata`, at any depth; [`row`] builds the `event_telemetry` row ([`schema`]) from
//!    the redacted result only.
//! 4. **write** ([`sink`]): create-once objects in Cloud Storage (named by [`object_name`]),
//!    rows appended to BigQuery through the Storage Write API (or `insertAll`, the fallback).
//!
//! Topic → file:
//! - the ack: [`failure`] (each failure knows its HTTP status) and [`outcome`] (the one list of
//!   outcome labels, the verdict of a push, its log line); [`error`] (whether a failed call is
//!   worth retrying, for every caller);
//! - bounds: [`limits`] (every limit of the real services, and the pipeline's own);
//! - HTTP: [`routes`] (router; header limit, [`push_auth`] and [`admission`] (bytes in flight) as
//!   layers; the push endpoint) served by [`listener`] (accept, serve each connection, drain);
//! - permanent failures: [`dead_letter`] (published before the ack);
//! - Google's APIs: [`google`] (the maintained clients, the one JSON layer for the rest, one
//!   error and one classifier for all of them, and the list of every call made);
//! - plumbing: [`config`] (typed settings, each part parsing itself, shared with `replay`),
//!   [`startup`] (build, serve, spawn in tests), [`shutdown`], [`logging`] (JSON logs);
//! - test and tool support: [`sink::memory`] (a bucket and a table in memory, for `replay inspect`
//!   and the tests); `testing` (failing sinks, a dead-letter topic in memory; feature
//!   `test-support`, never in a service's build).
//!
//! No two modules import each other, even through others (`shared/tests/imports.rs`).

pub mod admission;
pub mod classify;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod error;
pub mod event;
pub mod failure;
pub mod google;
pub mod handler;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod object_name;
pub mod outcome;
pub mod push_auth;
pub mod redact;
pub mod routes;
pub mod row;
pub mod schema;
pub mod shutdown;
pub mod sink;
pub mod startup;
#[cfg(feature = "test-support")]
pub mod testing;

pub use config::{Config, Service};
pub use decode::PushMessage;
pub use event::TelemetryPayload;

/// Makes mimalloc the global allocator of the binary that invokes it: the three services, the
/// benchmark fixtures and benchmarks (allocation was a fifth of a push's CPU under glibc's malloc,
/// BENCHMARKS.md). Each binary chooses; the library does not, so that a program linking it (the
/// tests, `replay`) keeps its own allocator.
#[macro_export]
macro_rules! use_mimalloc {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::mimalloc::MiMalloc = $crate::mimalloc::MiMalloc;
    };
}

#[doc(hidden)]
pub use mimalloc;
