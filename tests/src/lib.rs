//! The end-to-end harness: real emulators on loopback, the real services, and clients to look at
//! what landed. Used by the tests in `tests/tests/` and by the local demo (`src/bin/demo.rs`).

pub mod bigquery;
pub mod contract;
pub mod emulators;
pub mod filter;
pub mod gcs;
pub mod pubsub;
pub mod samples;
pub mod soak;
pub mod stack;
pub mod terraform;
