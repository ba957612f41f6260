#!/usr/bin/env bash
# Every benchmark, in one run (not part of ./scripts/test.sh; nothing here asserts, it measures):
#   1. criterion: decode → classify → redact → row through the real handler, per message kind,
#      next to serde_json parsing the same push alone (the in-process floor);
#   2. the redaction path against the seed's JavaScript UDF in Node, whole process against whole
#      process, on the same corpus;
#   3. scripts/bench-load.sh: the services under HTTP load against a bare axum server (the floor),
#      with an instant and a 50 ms insertAll endpoint.
# Installs what it needs (wrk from Debian's packages; Node.js is on the machine image).
# Figures and their meaning are recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

machine() {
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -h | awk '/Mem:/{print $2}') RAM, $(date -u +%FT%TZ)"
}

criterion_benches() {
  echo "== 1. criterion: the handler per message kind, and serde_json alone"
  cargo bench -p transcript-pipeline --bench pipeline -- --noplot 2>&1 |
    grep -E '^(plain|transcript)|time:|thrpt:'
}

udf_baseline() {
  echo "== 2. redaction path vs the seed's JavaScript UDF (whole process each, same corpus)"
  command -v node >/dev/null || { echo "node not found: apt-get install -y nodejs" >&2; exit 1; }
  cargo build --release -q -p transcript-pipeline --example redact_corpus
  local corpus
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' RETURN
  target/release/examples/redact_corpus --write "$corpus"
  local t0 t1 t2
  t0=$(date +%s%N)
  target/release/examples/redact_corpus "$corpus" | sed 's/^/rust /'
  t1=$(date +%s%N)
  node shared/benches/udf.js "$corpus" | sed 's/^/node /'
  t2=$(date +%s%N)
  echo "whole process: rust $(( (t1 - t0) / 1000000 )) ms, node $(( (t2 - t1) / 1000000 )) ms (node/rust = $(awk "BEGIN{printf \"%.1f\", ($t2-$t1)/($t1-$t0)}"))"
}

machine
criterion_benches
udf_baseline
echo "== 3. load"
./scripts/bench-load.sh
