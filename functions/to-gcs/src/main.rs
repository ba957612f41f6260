//! `to-gcs`: the Pub/Sub push service for transcript events, unredacted, to the restricted Cloud Storage bucket.
//! Everything else lives in the shared crate (`shared/`); see its `startup::main`.

pipeline::use_mimalloc!();

fn main() -> std::process::ExitCode {
    pipeline::startup::main(pipeline::Service::ToGcs)
}
