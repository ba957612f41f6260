//! A fault-injection soak on the emulator stack that proves nothing is lost.
//!
//! The three real service binaries ([`services`]) behind a push [`bridge`] from pull
//! subscriptions (the Pub/Sub emulator's own push loses messages after failures), with a fault
//! [`proxy`] in front of the Cloud Storage and BigQuery emulators (and a [`grpc_proxy`] in front of
//! BigQuery's Storage Write API, the services' default way of writing rows), one service SIGKILLed and one
//! SIGTERMed mid-run and the Cloud Storage emulator stopped for longer than the sink timeout.
//! [`run::run`] publishes the events, injects the faults, waits, and [`check`]s what landed into
//! a [`report::Report`].

pub mod bridge;
pub mod check;
pub mod grpc_proxy;
pub mod proxy;
pub mod report;
pub mod run;
pub mod services;
