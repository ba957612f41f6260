#!/usr/bin/env bash
# The long fault-injection soak on the emulator stack: ./scripts/soak.sh [EVENTS] (default 20000).
# Builds the three service binaries and the soak runner, then runs it; prints a table of the
# figures and the rate, and exits non-zero when anything was lost or leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-20000}"
[ -f .emulators/env ] || ./scripts/emulators/install.sh
# shellcheck disable=SC1091
source .emulators/env
cargo build -p to-gcs -p to-bq -p sub-v2 -p e2e --bin soak
exec target/debug/soak "$EVENTS"
