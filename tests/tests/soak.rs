//! A short fault-injection soak (about 2,000 events) on the emulator stack, with the real service
//! binaries: faults at the sinks (errors, timeouts, resets, per-row errors), one service
//! SIGKILLed, one SIGTERMed, the Cloud Storage emulator stopped past the sink timeout. Afterwards
//! every transcript is in the bucket once, byte for byte; every other event has a BigQuery row;
//! every permanent fault is dead-lettered with its reason; no transcript text anywhere.
//! The long run is `scripts/soak.sh` (`src/bin/soak.rs`).
//!
//! Needs the service binaries built (`cargo build -p to-gcs -p to-bq -p sub-v2`; `scripts/test.sh`
//! builds them before the tests).

use e2e::soak::run::{SoakOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_faulty_run_loses_nothing_and_leaks_nothing() {
    let events = std::env::var("SOAK_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let mut opts = SoakOptions::new(events);
    opts.verbose = true;
    let report = run(&opts).await.expect("the soak runs");
    println!("{}", report.table());
    for n in &report.notes {
        println!("note: {n}");
    }
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:#?}\n{}", report.table());
    assert!(report.permanent > 0, "no permanent fault was injected");
    assert!(report.nacks > 0, "no push failed: the faults did not bite");
}
