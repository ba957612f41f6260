//! The shared crate of the telemetry transcript pipeline.
//!
//! Three Pub/Sub push services (`functions/to-gcs`, `functions/to-bq`, `functions/sub-v2`) are
//! this crate plus a three-line `main`. Each push goes through the same steps:
//!
//! 1. [`decode`]: the push request (wrapped envelope or unwrapped body + headers) → [`PushMessage`];
//!    then [`event`]: `message.data` → the typed telemetry v2 [`TelemetryPayload`], keeping the
//!    original bytes.
//! 2. [`classify`]: is it a transcript event (payload: flag, DotCom, private text), and which
//!    BigQuery handler owns it (attribute, like the subscription filters)?
//! 3. [`redact`]: remove the transcript keys from `privateMetadata`, at any depth, for every row;
//!    [`row`] maps the event to the `event_telemetry` [`schema`].
//! 4. [`sink`]: write: create-once objects in Cloud Storage, `insertAll` rows in BigQuery.
//!
//! [`handler`] composes the steps per service; [`server`] turns the result into the ack (HTTP
//! status) and one outcome log line, publishing permanent failures to the [`dead_letter`] topic
//! first ([`pubsub`] is the small client for that); [`startup`], [`config`], [`shutdown`] and [`telemetry`] are
//! the plumbing around it, and [`auth`] verifies who is pushing before any of it runs.

pub mod auth;
pub mod classify;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod event;
pub mod failure;
pub mod handler;
pub mod outcome;
pub mod pubsub;
pub mod redact;
pub mod row;
pub mod schema;
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod startup;
pub mod telemetry;

pub use config::{Config, Service};
pub use decode::PushMessage;
pub use event::TelemetryPayload;
