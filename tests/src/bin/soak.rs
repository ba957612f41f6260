//! The long fault-injection soak: `scripts/soak.sh [EVENTS]` (default 20,000) runs this.
//!
//! Publishes the events through the emulator stack with faults injected (see `e2e::soak`),
//! prints the table of figures and the rate, and exits 1 when anything was lost, duplicated in
//! the bucket, or leaked. `SOAK_CONCURRENCY` sets the pushes in flight per subscription (128).

use std::process::ExitCode;

use e2e::soak::run::{SoakOptions, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let events = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 20_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: soak [EVENTS]   (a positive number; default 20000)");
            return ExitCode::from(2);
        }
    };
    let mut opts = SoakOptions::new(events);
    opts.verbose = true;
    // The BigQuery emulator's cost is per insertAll call and grows with every call, so the long
    // run keeps more pushes in flight (bigger group-commit batches, fewer calls).
    opts.concurrency = std::env::var("SOAK_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c > 0)
        .unwrap_or(128);
    let report = match run(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak failed to run: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.table());
    for n in &report.notes {
        println!("note: {n}");
    }
    let failures = report.failures();
    if failures.is_empty() {
        println!("OK: nothing lost, nothing leaked");
        ExitCode::SUCCESS
    } else {
        for f in failures {
            println!("FAIL: {f}");
        }
        ExitCode::FAILURE
    }
}
