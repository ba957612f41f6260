#!/usr/bin/env bash
# Load benchmark of the BigQuery push services (sub-v2, to-bq) against a bare axum server, the
# "floor" (bench/src/bin/floor.rs: read the body, parse it as JSON, answer 200), in one run on one
# machine. NOT a test: it is not part of scripts/test.sh and asserts nothing; it prints figures.
#
# It measures, with wrk (POST of a fixed Pub/Sub push body, bench/wrk/push.lua):
#   - req/s, p50/p99 latency, non-2xx answers and socket errors of each scenario, and req/s as a
#     percentage of the floor's with the same body at the same concurrency;
#   - the A/B of the write method (BIGQUERY_WRITE_METHOD): the Storage Write API (AppendRows over
#     gRPC, the default) against insertAll, for sub-v2 (plain body) and to-bq (transcript body), at
#     64 connections in AB_ROUNDS alternating rounds with the median of the per-round ratios,
#     against a BigQuery stand-in (bench/src/bin/bigquery-standin.rs: insertAll on REST, AppendRows on
#     gRPC) first instant, then 50 ms slow at 512 connections;
#   - rows per call (per append or per insertAll): how well group commit batches the rows of
#     concurrent pushes, and wire bytes per row (request bytes / rows), both counted by the stand-in;
#   - CPU seconds per push (the server's utime+stime from /proc/PID/stat over the run / requests
#     wrk completed; the stand-in's too) and log bytes per push (growth of the server's log file);
#   - peak RSS (VmHWM) of the server, which is restarted for each scenario;
#   - cold start of sub-v2 (exec to the first 200 on /healthz, median of 5) and its idle RSS;
#   - the A/B of the insertAll client (BIGQUERY_INSERT_CLIENT, with insert_all): the request
#     written from the rows' text ("direct", the default) against gcp-bigquery-client.
# The figures also go to target/bench-load/measured.json (one object per scenario).
#
# Everything listens on 127.0.0.1 (free ports) and is stopped on exit. Installs wrk from Debian's
# packages if missing (needs root), builds the release binaries. Takes about 5.5 min plus the
# build. Logs, bodies and wrk output: target/bench-load/.
#
# The services log as in production (RUST_LOG=info, JSON lines: one per push) into their log file;
# LOG_LEVEL=warn runs them without the per-push line, to see what it costs.
#
# Usage: ./scripts/bench-load.sh
#        AB_ROUNDS=5 ./scripts/bench-load.sh   # more rounds of the write-method A/B (default 3)
#        BEFORE=/path/to/target/release ./scripts/bench-load.sh   # also the same scenarios with
#                                        the sub-v2 and to-bq binaries there (before/after, one run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The image's allocator setting (Dockerfile, ENV MIMALLOC_PURGE_DELAY), unless set here.
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-$(sed -n 's/^ENV MIMALLOC_PURGE_DELAY=//p' Dockerfile)}"
ROOT=$PWD
RELEASE=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/bench-load

THREADS=2                        # wrk threads
CONNS=64 DURATION=10s            # the ordinary runs
HIGH_CONNS=512 HIGH_DURATION=15s # the runs against a slow BigQuery
SLOW_LATENCY_MS=50               # insertAll / AppendRows latency of the slow runs
COLDSTART_RUNS=5
# Group commit of the services (README.md, BIGQUERY_BATCH_*): their defaults unless set by the caller.
LINGER_MS=${BIGQUERY_BATCH_LINGER_MS:-25} MAX_ROWS=${BIGQUERY_BATCH_MAX_ROWS:-500}

declare -A PID=() PORT=() LOG=()
declare -a ROWS=()   # Markdown table rows
declare -a COST_ROWS=() # Markdown rows of the cost table
declare -a JSON=()   # measured.json: one object per scenario
declare -A FLOOR_RPS=() # "body/connections" -> the floor's req/s
declare -A AB_RPS=()    # "server/method" -> the req/s of each A/B round, space-separated
LAST_RPS=0              # the req/s of the last scenario
AB_ROUNDS=${AB_ROUNDS:-3} # rounds of the write-method A/B at 64 connections
NOTES=""

log() { printf '== %s\n' "$*" >&2; }

# --- processes -------------------------------------------------------------------------------

# Stops every process this script started (by pid).
cleanup() {
  local name
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null || true
  done
  for name in "${!PID[@]}"; do
    wait "${PID[$name]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$RELEASE/freeport"; }

# wait_healthy NAME: polls GET /healthz until 200 (at most 15 s).
wait_healthy() {
  local name=$1 i
  for ((i = 0; i < 1500; i++)); do
    if curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$name]}/healthz" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      log "$name exited at start-up; last lines of ${LOG[$name]}:"
      tail -n 20 "${LOG[$name]}" >&2
      exit 1
    fi
    sleep 0.01
  done
  log "$name not healthy after 15 s; see ${LOG[$name]}"
  exit 1
}

# start NAME BINARY [VAR=VALUE...]: starts BINARY on a free port, output to its log, and waits
# until it is healthy.
start() {
  local name=$1 binary=$2
  shift 2
  PORT[$name]=$(free_port)
  LOG[$name]=$OUT/$name.log
  env "$@" HOST=127.0.0.1 PORT="${PORT[$name]}" "$binary" >>"${LOG[$name]}" 2>&1 &
  PID[$name]=$!
  wait_healthy "$name"
}

# stop NAME
stop() {
  local name=$1
  [[ -n ${PID[$name]:-} ]] || return 0
  kill "${PID[$name]}" 2>/dev/null || true
  wait "${PID[$name]}" 2>/dev/null || true
  unset "PID[$name]"
}

# The write method and insertAll client of the services started next (BIGQUERY_WRITE_METHOD,
# BIGQUERY_INSERT_CLIENT; the client matters with insert_all only).
WRITE_METHOD=storage_write
INSERT_CLIENT=direct

# The environment of the services (README.md, Configuration), against the BigQuery stand-in: its
# REST port (tables.get, insertAll) and its gRPC port (GetWriteStream, AppendRows).
service_env() {
  printf '%s\n' GOOGLE_CLOUD_PROJECT=bench BIGQUERY_DATASET=d \
    "BIGQUERY_EMULATOR_HOST=127.0.0.1:${PORT[standin]}" \
    "BIGQUERY_STORAGE_EMULATOR_HOST=127.0.0.1:${PORT[grpc]}" \
    PUSH_AUTH=off "RUST_LOG=${LOG_LEVEL:-info}" LOG_FORMAT=json \
    "BIGQUERY_BATCH_LINGER_MS=$LINGER_MS" "BIGQUERY_BATCH_MAX_ROWS=$MAX_ROWS" \
    "BIGQUERY_WRITE_METHOD=$WRITE_METHOD" "BIGQUERY_INSERT_CLIENT=$INSERT_CLIENT"
}

# The method as the tables name it: storage_write, insert_all/direct, insert_all/gcp-bigquery-client.
method_label() {
  if [[ $WRITE_METHOD == insert_all ]]; then echo "insert_all/$INSERT_CLIENT"; else echo "$WRITE_METHOD"; fi
}

# start_target NAME: (re)starts the floor or a service, so its peak RSS is this scenario's.
start_target() {
  local name=$1 env=()
  stop "$name"
  case $name in
    floor) start floor "$RELEASE/floor" ;;
    *@before)
      mapfile -t env < <(service_env)
      start "$name" "$BEFORE/${name%@before}" "${env[@]}"
      ;;
    *)
      mapfile -t env < <(service_env)
      start "$name" "$RELEASE/$name" "${env[@]}"
      ;;
  esac
}

# start_standin LATENCY_MS: the BigQuery stand-in, REST on PORT[standin], gRPC on PORT[grpc].
start_standin() {
  stop standin
  PORT[grpc]=$(free_port)
  start standin "$RELEASE/bigquery-standin" LATENCY_MS="$1" GRPC_PORT="${PORT[grpc]}"
}

# The stand-in's counters: "calls rows bytes appends append_rows append_bytes".
standin_stats() {
  local json
  json=$(curl -fsS "http://127.0.0.1:${PORT[standin]}/stats")
  local f out=()
  for f in calls rows bytes appends append_rows append_bytes; do
    out+=("$(sed -E "s/.*\"$f\":([0-9]+).*/\1/" <<<"$json")")
  done
  echo "${out[*]}"
}

# cpu_ticks PID: utime+stime of a process in clock ticks (/proc/PID/stat fields 14 and 15, read
# after the command name, which may hold spaces).
cpu_ticks() {
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
CLK_TCK=$(getconf CLK_TCK)

# per NUMERATOR DENOMINATOR [FORMAT]: the quotient, or null when the denominator is 0.
per() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.6g}" 'BEGIN {if (b > 0) printf f, a / b; else printf "null"}'
}

# json_string TEXT
json_string() { printf '"%s"' "$(sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' <<<"$1")"; }

# --- measuring -------------------------------------------------------------------------------

# field NAME LINE: the value of NAME=… in a BENCH line.
field() { sed -E "s/.*[[:space:]]$1=([^[:space:]]+).*/\1/" <<<"$2"; }

# scenario LABEL TARGET BODY CONNS DURATION: one wrk run against TARGET (floor, sub-v2, to-bq)
# with BODY (plain, transcript, skip); appends a row to the table.
scenario() {
  local label=$1 target=$2 body=$3 conns=$4 duration=$5
  log "$label: $target, body $body, -c$conns -d$duration"
  start_target "$target"
  local -a s0 s1
  read -ra s0 <<<"$(standin_stats)"
  local cpu0 fake_cpu0 log0
  cpu0=$(cpu_ticks "${PID[$target]}")
  fake_cpu0=$(cpu_ticks "${PID[standin]}")
  log0=$(stat -c %s "${LOG[$target]}")

  local wrk_out=$OUT/wrk-$label.txt
  BODY_FILE=$OUT/corpus/$body.json wrk -t"$THREADS" -c"$conns" -d"$duration" --latency \
    -s "$ROOT/bench/wrk/push.lua" "http://127.0.0.1:${PORT[$target]}/" >"$wrk_out" 2>&1
  sleep 0.3 # let the last batch reach the stand-in
  local line
  line=$(grep '^BENCH ' "$wrk_out") || {
    log "wrk printed no summary; see $wrk_out"
    exit 1
  }

  local cpu fake_cpu log_bytes peak_kib
  cpu=$(($(cpu_ticks "${PID[$target]}") - cpu0))
  fake_cpu=$(($(cpu_ticks "${PID[standin]}") - fake_cpu0))
  log_bytes=$(($(stat -c %s "${LOG[$target]}") - log0))
  read -ra s1 <<<"$(standin_stats)"
  peak_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$target]}/status")
  stop "$target"

  # The calls of whichever method wrote (the other one's counters stand still).
  local calls rows bytes
  if [[ $target != floor && $WRITE_METHOD == storage_write ]]; then
    calls=$((s1[3] - s0[3])) rows=$((s1[4] - s0[4])) bytes=$((s1[5] - s0[5]))
  else
    calls=$((s1[0] - s0[0])) rows=$((s1[1] - s0[1])) bytes=$((s1[2] - s0[2]))
  fi
  local requests
  requests=$(field requests "$line")

  local rps p50 p99 non2xx socket_errors
  rps=$(field rps "$line")
  p50=$(awk -v us="$(field p50_us "$line")" 'BEGIN {printf "%.2f", us / 1000}')
  p99=$(awk -v us="$(field p99_us "$line")" 'BEGIN {printf "%.2f", us / 1000}')
  non2xx=$(field non2xx "$line")
  socket_errors=$(($(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))

  # The floor run with the same bytes at the same concurrency (skip.json is the transcript's body).
  local floor_key=${body/#skip/transcript}/$conns
  local ratio per_call
  if [[ $target == floor ]]; then
    FLOOR_RPS[$floor_key]=$rps
    ratio="100 %"
    per_call="–"
  else
    if [[ -n ${FLOOR_RPS[$floor_key]:-} ]]; then
      ratio=$(awk -v a="$rps" -v b="${FLOOR_RPS[$floor_key]}" 'BEGIN {printf "%.0f %%", 100 * a / b}')
    else
      ratio="–"
    fi
    if ((calls > 0)); then
      per_call=$(awk -v r="$rows" -v c="$calls" 'BEGIN {printf "%.1f", r / c}')
      per_call="$per_call ($rows rows / $calls calls)"
    else
      per_call="– (no call)"
    fi
  fi
  # Per push (a request wrk completed) and per row.
  local cpu_per_push fake_cpu_per_push log_per_push wire_per_row rows_per_call peak_mib
  cpu_per_push=$(per "$cpu" "$((requests * CLK_TCK))")
  fake_cpu_per_push=$(per "$fake_cpu" "$((requests * CLK_TCK))")
  log_per_push=$(per "$log_bytes" "$requests" %.1f)
  wire_per_row=$(per "$bytes" "$rows" %.1f)
  rows_per_call=$(per "$rows" "$calls" %.2f)
  peak_mib=$(awk -v k="$peak_kib" 'BEGIN {printf "%.1f", k / 1024}')
  if ((non2xx > 0)); then
    NOTES+="- $label: $non2xx non-2xx answers; last lines of ${LOG[$target]}:"$'\n'
    NOTES+=$(tail -n 3 "${LOG[$target]}" | sed 's/^/    /')$'\n'
  fi

  local method="–" method_json=null
  if [[ $target != floor ]]; then
    method=$(method_label)
    method_json=$(json_string "$WRITE_METHOD")
  fi
  local latency_json=null
  [[ $target == floor ]] || latency_json=$INSERTALL_LATENCY
  ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |' \
    "$label" "$target" "$method" "$body" "$conns" "$(insertall_latency "$target")" "$rps" "$ratio" "$p50" "$p99" \
    "$non2xx" "$socket_errors" "$per_call" "$peak_mib")")
  # The cost table: CPU in µs per push; "–" where there is nothing to divide.
  local -a cost=("$(per "$((cpu * 1000000))" "$((requests * CLK_TCK))" %.1f)" "$log_per_push" "$wire_per_row" \
    "$rows_per_call" "$(per "$((fake_cpu * 1000000))" "$((requests * CLK_TCK))" %.1f)")
  cost=("${cost[@]/#null/–}")
  COST_ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' "$label" "$requests" "${cost[@]}")")
  JSON+=("$(printf '{"scenario":%s,"server":%s,"method":%s,"insert_client":%s,"body":%s,"body_bytes":%s,"conns":%s,"latency_ms":%s,"requests":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"non2xx":%s,"socket_errors":%s,"calls":%s,"rows":%s,"request_bytes":%s,"cpu_seconds_per_push":%s,"fake_cpu_seconds_per_push":%s,"log_bytes_per_push":%s,"wire_bytes_per_row":%s,"rows_per_call":%s,"peak_rss_mib":%s}' \
    "$(json_string "$label")" "$(json_string "$target")" "$method_json" \
    "$(if [[ $target != floor && $WRITE_METHOD == insert_all ]]; then json_string "$INSERT_CLIENT"; else echo null; fi)" \
    "$(json_string "$body")" "$(wc -c <"$OUT/corpus/$body.json")" "$conns" "$latency_json" "$requests" "$rps" \
    "$p50" "$p99" "$non2xx" "$socket_errors" "$calls" "$rows" "$bytes" "$cpu_per_push" "$fake_cpu_per_push" \
    "$log_per_push" "$wire_per_row" "$rows_per_call" "$peak_mib")")
  LAST_RPS=$rps
  log "$label: $(printf '%.0f' "$rps") req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $non2xx, rows/call $per_call, CPU $cpu_per_push s/push, log $log_per_push B/push, wire $wire_per_row B/row"
}

INSERTALL_LATENCY=0
insertall_latency() { if [[ $1 == floor ]]; then echo "–"; else echo "${INSERTALL_LATENCY} ms"; fi; }

# coldstart: sub-v2 from exec to the first 200 on /healthz, and its RSS right then.
coldstart() {
  log "cold start of sub-v2 (median of $COLDSTART_RUNS)"
  local env result
  WRITE_METHOD=storage_write INSERT_CLIENT=direct # the defaults
  mapfile -t env < <(service_env)
  result=$(env "${env[@]}" HOST=127.0.0.1 \
    "$RELEASE/coldstart" "$RELEASE/sub-v2" "$OUT/coldstart-sub-v2.log" "$COLDSTART_RUNS" \
    2>>"$OUT/coldstart.log")
  COLD_MS=$(sed -E 's/.*cold_start_ms=([^ ]+).*/\1/' <<<"$result")
  IDLE_MIB=$(awk -v k="$(sed -E 's/.*idle_rss_kib=([0-9]+).*/\1/' <<<"$result")" 'BEGIN {printf "%.1f", k / 1024}')
}

# --- setup -----------------------------------------------------------------------------------

install_wrk() {
  command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
  command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)
}

build() {
  log "cargo build --release -p bench -p to-bq -p sub-v2"
  cargo build --release --quiet -p bench -p to-bq -p sub-v2
}

raise_file_limit() {
  local want=65536 hard
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < want)); then want=$hard; fi
  ulimit -n "$want"
  ((want >= 2 * HIGH_CONNS + 64)) || log "warning: only $want file descriptors for $HIGH_CONNS connections"
}

make_corpus() {
  "$RELEASE/corpus" "$ROOT/samples" "$OUT/corpus" | while read -r kind bytes _; do
    log "body $kind: $bytes bytes"
  done
}

machine() {
  echo "- cores (nproc): $(nproc)"
  echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
  echo "- memory (free -h):"
  free -h | sed 's/^/      /'
  echo "- load average (1, 5, 15 min) at start: $LOAD_AT_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- wrk $THREADS threads on the same machine as the server; $(wrk -v 2>&1 | head -n 1)"
}

# --- main ------------------------------------------------------------------------------------

main() {
  local started=$SECONDS
  LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews every figure
  install_wrk
  build
  rm -rf "$OUT"
  mkdir -p "$OUT"
  raise_file_limit
  make_corpus

  INSERTALL_LATENCY=0
  start_standin "$INSERTALL_LATENCY"
  scenario floor-plain floor plain "$CONNS" "$DURATION"
  scenario floor-transcript floor transcript "$CONNS" "$DURATION"
  # The headline A/B: the write method, in AB_ROUNDS rounds (the machine's noise is larger than
  # the difference), each round's order the other way round. Then the insertAll client's.
  local round
  for ((round = 1; round <= AB_ROUNDS; round++)); do
    local -a order=(storage_write insert_all)
    ((round % 2)) || order=(insert_all storage_write)
    for WRITE_METHOD in "${order[@]}"; do
      scenario "subv2-plain-$WRITE_METHOD-r$round" sub-v2 plain "$CONNS" "$DURATION"
      AB_RPS[sub-v2/$WRITE_METHOD]+=" $LAST_RPS"
      scenario "tobq-transcript-$WRITE_METHOD-r$round" to-bq transcript "$CONNS" "$DURATION"
      AB_RPS[to-bq/$WRITE_METHOD]+=" $LAST_RPS"
    done
  done
  WRITE_METHOD=insert_all INSERT_CLIENT=gcp-bigquery-client
  scenario subv2-plain-insert_all-gcp sub-v2 plain "$CONNS" "$DURATION"
  scenario tobq-transcript-insert_all-gcp to-bq transcript "$CONNS" "$DURATION"
  WRITE_METHOD=storage_write INSERT_CLIENT=direct
  scenario subv2-skip sub-v2 skip "$CONNS" "$DURATION"
  if [[ -n ${BEFORE:-} ]]; then
    # Every earlier build has insertAll with gcp-bigquery-client (the default up to issue 17);
    # builds that know BIGQUERY_WRITE_METHOD are held to insert_all to compare like with like.
    WRITE_METHOD=insert_all INSERT_CLIENT=gcp-bigquery-client
    scenario subv2-plain-before sub-v2@before plain "$CONNS" "$DURATION"
    scenario tobq-transcript-before to-bq@before transcript "$CONNS" "$DURATION"
    scenario subv2-skip-before sub-v2@before skip "$CONNS" "$DURATION"
    WRITE_METHOD=storage_write INSERT_CLIENT=direct
  fi

  INSERTALL_LATENCY=$SLOW_LATENCY_MS
  start_standin "$INSERTALL_LATENCY"
  scenario floor-plain-c$HIGH_CONNS floor plain "$HIGH_CONNS" "$HIGH_DURATION"
  scenario floor-transcript-c$HIGH_CONNS floor transcript "$HIGH_CONNS" "$HIGH_DURATION"
  for WRITE_METHOD in storage_write insert_all; do
    scenario "subv2-plain-c$HIGH_CONNS-$WRITE_METHOD" sub-v2 plain "$HIGH_CONNS" "$HIGH_DURATION"
    scenario "tobq-transcript-c$HIGH_CONNS-$WRITE_METHOD" to-bq transcript "$HIGH_CONNS" "$HIGH_DURATION"
  done
  WRITE_METHOD=insert_all INSERT_CLIENT=gcp-bigquery-client
  scenario "subv2-plain-c$HIGH_CONNS-insert_all-gcp" sub-v2 plain "$HIGH_CONNS" "$HIGH_DURATION"
  WRITE_METHOD=storage_write INSERT_CLIENT=direct

  coldstart
  stop standin

  echo
  echo "## Load benchmark ($(date -u +%Y-%m-%d), ./scripts/bench-load.sh)"
  echo
  echo "wrk -t$THREADS, ${DURATION} at $CONNS connections, ${HIGH_DURATION} at $HIGH_CONNS; the server restarted per scenario."
  echo "% of floor: of the floor's req/s with the same body bytes at the same concurrency."
  echo "method: BIGQUERY_WRITE_METHOD (storage_write: AppendRows over gRPC; insert_all/CLIENT: insertAll with BIGQUERY_INSERT_CLIENT)."
  echo "BigQuery latency: of the stand-in (bench/src/bin/bigquery-standin.rs) per insertAll or per append (appends pipelined)."
  echo "wrk is closed-loop: a push that writes waits for its batch's call. A batch goes at once when no call is under way,"
  echo "else when $MAX_ROWS rows or the linger (${LINGER_MS} ms) come first; so req/s cannot exceed connections / BigQuery latency"
  echo "($HIGH_CONNS / $SLOW_LATENCY_MS ms = $((HIGH_CONNS * 1000 / SLOW_LATENCY_MS)) req/s in the slow runs)."
  echo
  echo "| scenario | server | method | body | conns | BigQuery latency | req/s | % of floor | p50 ms | p99 ms | non-2xx | socket errors | rows per call | peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "The write-method A/B at $CONNS connections against the instant stand-in, $AB_ROUNDS rounds (each round's order"
  echo "the other way round): storage_write's req/s over insert_all's in the same round, and the median of those ratios."
  echo
  echo "| server | body | storage_write req/s | insert_all req/s | storage_write ÷ insert_all per round | median |"
  echo "|---|---|---|---|---|---|"
  ab_row sub-v2 plain
  ab_row to-bq transcript
  echo
  echo "Cost per push: CPU (utime+stime of the server over the run, /proc/PID/stat) and growth of its log file, per request wrk completed;"
  echo "wire bytes per row: request bytes the stand-in received (insertAll bodies, or AppendRows messages with their 5-byte gRPC prefix) / rows."
  echo
  echo "| scenario | requests | CPU µs per push | log bytes per push | wire bytes per row | rows per call | stand-in CPU µs per push |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${COST_ROWS[@]}"
  echo
  echo "| sub-v2 cold start (exec to first 200 on /healthz, median of $COLDSTART_RUNS) | idle RSS |"
  echo "|---|---|"
  echo "| $COLD_MS ms | $IDLE_MIB MiB |"
  echo
  echo "Bodies (bench/src/bin/corpus.rs): plain $(wc -c <"$OUT/corpus/plain.json") B," \
    "transcript and skip $(wc -c <"$OUT/corpus/transcript.json") B."
  echo
  echo "Machine:"
  machine
  if [[ -n $NOTES ]]; then
    echo
    echo "Notes:"
    printf '%s' "$NOTES"
  fi
  write_json
  echo
  echo "(took $((SECONDS - started)) s; logs, wrk output and measured.json in $OUT)"
}

# ab_row SERVER BODY: the A/B table's row: each round's req/s per method, their ratios, the median.
ab_row() {
  local server=$1 body=$2
  local -a sw ia
  read -ra sw <<<"${AB_RPS[$server/storage_write]:-}"
  read -ra ia <<<"${AB_RPS[$server/insert_all]:-}"
  local i ratios=""
  for i in "${!sw[@]}"; do
    ratios+=" $(awk -v a="${sw[$i]}" -v b="${ia[$i]:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "–"}')"
  done
  local median
  median=$(tr ' ' '\n' <<<"$ratios" | grep -v '^$' | sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "–"}')
  printf '| %s | %s | %s | %s | %s | **%s** |\n' "$server" "$body" \
    "$(printf '%.0f ' "${sw[@]}")" "$(printf '%.0f ' "${ia[@]}")" "${ratios# }" "$median"
}

# $OUT/measured.json: the run's figures, machine-readable.
write_json() {
  local cpu scenarios
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
  scenarios=$(printf '    %s,\n' "${JSON[@]}")
  {
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"machine\": {\"cpu\": $(json_string "$cpu"), \"nproc\": $(nproc)},"
    echo "  \"load_average\": {\"start\": [${LOAD_AT_START// /, }], \"end\": [$(cut -d' ' -f1-3 /proc/loadavg | sed 's/ /, /g')]},"
    echo "  \"wrk_threads\": $THREADS, \"linger_ms\": $LINGER_MS, \"max_rows\": $MAX_ROWS, \"clk_tck\": $CLK_TCK,"
    echo "  \"coldstart\": {\"server\": \"sub-v2\", \"method\": \"storage_write\", \"cold_start_ms\": $COLD_MS, \"idle_rss_mib\": $IDLE_MIB},"
    echo "  \"scenarios\": ["
    printf '%s\n' "${scenarios%,}"
    echo "  ]"
    echo "}"
  } >"$OUT/measured.json"
}

main "$@"
