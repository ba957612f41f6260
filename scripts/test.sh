#!/usr/bin/env bash
# Runs every test: Terraform's offline checks, formatting, lints, unit and property tests, and the
# end-to-end tests against real emulators (installed into .emulators/ on first use; each test
# starts and stops its own), then the contract report: every request the pipeline sent to an
# emulator, held to Google's discovery documents (tests/discovery/), call by call.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== emulators: install (idempotent)"
./scripts/emulators/install.sh
# shellcheck source=/dev/null
source .emulators/env

echo "== terraform: fmt, checkov, validate where a provider can be had"
./scripts/terraform-check.sh
echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== service binaries (the soak test runs them as child processes)"
cargo build -p to-gcs -p to-bq -p sub-v2
echo "== tests (unit, property, end-to-end on the emulators, every request held to Google's API descriptions)"
rm -rf target/contract
cargo test --workspace
echo "== contract: what the tests sent to Google's APIs, call by call"
cargo run --quiet -p e2e --bin contract
