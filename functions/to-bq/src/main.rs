//! `to-bq`: the Pub/Sub push service for messages flagged as transcripts by their attributes, redacted, to BigQuery.
//! Everything else lives in the shared crate (`shared/`); see its `startup::main`.

pipeline::use_mimalloc!();

fn main() -> std::process::ExitCode {
    pipeline::startup::main(pipeline::Service::ToBq)
}
