#!/usr/bin/env bash
# Runs every test: Terraform's offline checks, formatting, lints, unit and property tests, and the
# end-to-end tests against real emulators (installed into .emulators/ on first use; each test
# starts and stops its own).
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
echo "== tests (unit, property, end-to-end on the emulators)"
cargo test --workspace
