//! `cargo run -p e2e --bin contract [DIR]`: after the tests, what they sent to Google's APIs.
//!
//! Reads the recorders' entries (`target/contract/` by default), prints each call of
//! `pipeline::google::CALLS` with its count, and exits 1 when a request did not conform to
//! Google's discovery documents, a call was made that is not declared, or a declared call was
//! never made. `scripts/test.sh` runs it after `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::contract::{records_dir, report};
use pipeline::google::CALLS;

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(records_dir);
    let entries = match report::read(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("contract: {e:#}");
            return ExitCode::from(2);
        }
    };
    let r = report::judge(&entries, &CALLS);
    println!(
        "contract: {} requests recorded in {}",
        entries.len(),
        dir.display()
    );
    print!("{}", r.table());
    for p in &r.problems {
        println!("contract: NOT GOOGLE'S API: {p}");
    }
    for c in &r.undeclared {
        println!("contract: a call not in pipeline::google::CALLS was made: {c}");
    }
    for c in &r.unexercised {
        println!("contract: no test made the declared call {c}");
    }
    if r.ok() {
        println!("contract: every request conforms to Google's discovery documents");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
