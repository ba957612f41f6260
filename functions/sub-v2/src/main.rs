//! `sub-v2`: the Pub/Sub push service for every other telemetry v2 message, redacted, to BigQuery.
//! Everything else lives in the shared crate (`shared/`); see its `startup::main`.

pipeline::use_mimalloc!();

fn main() -> std::process::ExitCode {
    pipeline::startup::main(pipeline::Service::SubV2)
}
