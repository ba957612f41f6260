#!/usr/bin/env bash
# The main job, locally: emulators + the three services + the subscriptions, the sample events
# published, and what landed in Cloud Storage and BigQuery printed. Everything on 127.0.0.1;
# everything stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/emulators/install.sh
# shellcheck source=/dev/null
source .emulators/env
echo "== building the services and the demo (the first build takes a few minutes)"
cargo build --quiet --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/debug/demo"
