#!/usr/bin/env bash
# Memory under large pushes (not a test; it measures): 32 concurrent pushes of about 9.5 MB each
# (about 7 MB of data) to sub-v2 (a plain event whose large privateMetadata key is kept in the row)
# and to to-bq (a transcript whose large responseText is redacted), each service in its own
# process at the budget of body bytes in flight that Terraform sets for 512Mi (and, to separate the
# two effects, with the budget out of the way), against the instant BigQuery fixture
# (bench/src/bin/bigquery-standin.rs: insertAll, and the Storage Write API on its gRPC port), with each
# write method (BIGQUERY_WRITE_METHOD: storage_write, the default, and insert_all).
# Pushes answered 429/503 are sent again, as Pub/Sub would, until every one is written.
# Prints, per service and method: peak RSS (VmHWM), the answers, rounds, and rows that reached the
# fixture.
# Target (issue): peak RSS <= 384 MiB, every answer 2xx, 429 or 503, the process survives.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The image's allocator setting (Dockerfile, ENV MIMALLOC_PURGE_DELAY), unless set here.
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-$(sed -n 's/^ENV MIMALLOC_PURGE_DELAY=//p' Dockerfile)}"
RELEASE=target/release
PUSHES=${PUSHES:-32}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -q -p bench -p to-bq -p sub-v2

wait_healthy() { # URL
  for _ in $(seq 1 200); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "not healthy: $1" >&2; return 1
}

# Two push bodies of about 9.5 MB: 7 MB of text in a kept key (sub-v2) and in responseText (to-bq).
python3 - "$work" <<'PY'
import base64, json, sys
out = sys.argv[1]
text = "x" * (7 * 1000 * 1000)
def push(data, attributes):
    return json.dumps({"message": {"data": base64.b64encode(json.dumps(data).encode()).decode(),
        "attributes": attributes, "messageId": "1", "publishTime": "2026-11-28T00:00:00Z"},
        "subscription": "projects/p/subscriptions/s"})
event = lambda private: {"event": {"id": "big", "timestamp": "2026-11-28T00:00:00Z",
    "feature": "cody.chat-question", "action": "submitted",
    "parameters": {"metadata": {"recordsPrivateMetadataTranscript": 1}, "privateMetadata": private}},
    "metadata": {"identifier": {"licensedInstance": {"externalUrl": "https://sourcegraph.com"}}}}
open(f"{out}/sub-v2.json", "w").write(push(event({"query": text}), {}))
open(f"{out}/to-bq.json", "w").write(push(event({"responseText": text}),
    {"event.recordsPrivateMetadataTranscript": "true"}))
PY

bq_port=$("$RELEASE/freeport")
grpc_port=$("$RELEASE/freeport")
PORT=$bq_port GRPC_PORT=$grpc_port "$RELEASE/bigquery-standin" >"$work/bigquery-standin.log" 2>&1 &
pids+=($!)
wait_healthy "http://127.0.0.1:$bq_port" || true

# Rows that reached the fixture by either method.
rows_written() {
  curl -s "http://127.0.0.1:$bq_port/stats" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["rows"] + s.get("append_rows", 0))'
}

METHOD=storage_write

measure() { # SERVICE BUDGET-BYTES [BINARY-DIR LABEL]
  local service=$1 budget=$2 bindir=${3:-$RELEASE} label=${4:-} port pid body="$work/$1.json"
  port=$("$RELEASE/freeport")
  HOST=127.0.0.1 PORT=$port GOOGLE_CLOUD_PROJECT=bench BIGQUERY_DATASET=d \
    BIGQUERY_EMULATOR_HOST=127.0.0.1:$bq_port BIGQUERY_STORAGE_EMULATOR_HOST=127.0.0.1:$grpc_port \
    BIGQUERY_WRITE_METHOD=$METHOD PUSH_AUTH=off RUST_LOG=warn \
    MAX_BODY_BYTES_IN_FLIGHT=$budget \
    "$bindir/$service" >"$work/$service.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_healthy "http://127.0.0.1:$port"
  local rows_before
  rows_before=$(rows_written)
  local pending=$PUSHES round=0 answers=""
  while (( pending > 0 && round < 30 )); do
    round=$((round + 1))
    local clients=()
    for i in $(seq 1 "$pending"); do
      curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' \
        --data-binary @"$body" "http://127.0.0.1:$port/" >"$work/answer.$i" &
      clients+=($!)
    done
    wait "${clients[@]}" || true
    local ok=0
    for i in $(seq 1 "$pending"); do
      code=$(cat "$work/answer.$i" 2>/dev/null || echo 000)
      answers+="$code "
      [[ $code == 200 ]] && ok=$((ok + 1))
    done
    pending=$((pending - ok))
  done
  local alive=yes
  kill -0 "$pid" 2>/dev/null || alive=no
  local hwm rows
  hwm=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo "?")
  rows=$(rows_written)
  local counts
  counts=$(tr ' ' '\n' <<<"$answers" | grep -v '^$' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  printf '| %s | %s | %s MiB | %s MiB | %s | %s | %s | %s |\n' "$service$label" "$METHOD" "$((budget >> 20))" "$hwm" "$counts" "$round" \
    "$((rows - rows_before))/$PUSHES" "$alive"
  kill "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $PUSHES concurrent pushes of $(stat -c %s "$work/sub-v2.json") bytes"
echo "| service | write method | MAX_BODY_BYTES_IN_FLIGHT | peak RSS | answers (count×status) | rounds | rows written | survived |"
echo "|---|---|---|---|---|---|---|---|"
# 64 MiB: what Terraform sets at its default 512Mi (an eighth); 4 GiB: admission out of the way,
# so the row shows what the fewer copies alone do.
# BEFORE=DIR adds a row for the binaries in DIR (e.g. a release build of an older commit).
for service in sub-v2 to-bq; do
  if [[ -n ${BEFORE:-} ]]; then
    for METHOD in storage_write insert_all; do measure "$service" $((64 << 20)) "$BEFORE" " (before)"; done
  fi
  for METHOD in storage_write insert_all; do
    measure "$service" $((64 << 20))
    measure "$service" $((4096 << 20))
  done
done
