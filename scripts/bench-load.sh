#!/usr/bin/env bash
# Load benchmark of the BigQuery push services (sub-v2, to-bq) against a bare axum server, the
# "floor" (bench/src/bin/floor.rs: read the body, parse it as JSON, answer 200), in one run on one
# machine. NOT a test: it is not part of scripts/test.sh and asserts nothing; it prints figures.
#
# It measures, with wrk (POST of a fixed Pub/Sub push body, bench/wrk/push.lua):
#   - req/s, p50/p99 latency, non-2xx answers and socket errors of each scenario, and req/s as a
#     percentage of the floor's at the same concurrency;
#   - rows per insertAll: how well group commit batches the rows of concurrent pushes, counted by
#     an insertAll stand-in (bench/src/bin/insertall.rs), first instant, then 50 ms slow;
#   - peak RSS (VmHWM) of the server, which is restarted for each scenario;
#   - cold start of sub-v2 (exec to the first 200 on /healthz, median of 5) and its idle RSS;
#   - the A/B of the insertAll client (BIGQUERY_INSERT_CLIENT): the request written from the rows'
#     text ("direct", the default) against gcp-bigquery-client, same scenarios, same run.
#
# Everything listens on 127.0.0.1 (free ports) and is stopped on exit. Installs wrk from Debian's
# packages if missing (needs root), builds the release binaries. Takes about 90 s plus the
# build. Logs, bodies and wrk output: target/bench-load/.
#
# The services log as in production (RUST_LOG=info, JSON lines: one per push) into their log file;
# LOG_LEVEL=warn runs them without the per-push line, to see what it costs.
#
# Usage: ./scripts/bench-load.sh
#        BEFORE=/path/to/target/release ./scripts/bench-load.sh   # also the same scenarios with
#                                        the sub-v2 and to-bq binaries there (before/after, one run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RELEASE=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/bench-load

THREADS=2                        # wrk threads
CONNS=64 DURATION=10s            # the ordinary runs
HIGH_CONNS=512 HIGH_DURATION=15s # the runs against a slow BigQuery
SLOW_LATENCY_MS=50               # insertAll latency of the slow runs
COLDSTART_RUNS=5
# Group commit of the services (README.md, BIGQUERY_BATCH_*): their defaults unless set by the caller.
LINGER_MS=${BIGQUERY_BATCH_LINGER_MS:-25} MAX_ROWS=${BIGQUERY_BATCH_MAX_ROWS:-500}

declare -A PID=() PORT=() LOG=()
declare -a ROWS=()   # Markdown table rows
declare -A FLOOR_RPS=() # "body/connections" -> the floor's req/s
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

# The insertAll client of the services started next (BIGQUERY_INSERT_CLIENT).
INSERT_CLIENT=direct

# The environment of the services (README.md, Configuration), against the insertAll stand-in.
service_env() {
  printf '%s\n' GOOGLE_CLOUD_PROJECT=bench BIGQUERY_DATASET=d \
    "BIGQUERY_EMULATOR_HOST=127.0.0.1:${PORT[insertall]}" PUSH_AUTH=off "RUST_LOG=${LOG_LEVEL:-info}" LOG_FORMAT=json \
    "BIGQUERY_BATCH_LINGER_MS=$LINGER_MS" "BIGQUERY_BATCH_MAX_ROWS=$MAX_ROWS" \
    "BIGQUERY_INSERT_CLIENT=$INSERT_CLIENT"
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

# start_insertall LATENCY_MS
start_insertall() {
  stop insertall
  start insertall "$RELEASE/insertall" LATENCY_MS="$1"
}

insertall_stat() { # FIELD: calls or rows
  curl -fsS "http://127.0.0.1:${PORT[insertall]}/stats" | sed -E "s/.*\"$1\":([0-9]+).*/\1/"
}

# --- measuring -------------------------------------------------------------------------------

# field NAME LINE: the value of NAME=… in a BENCH line.
field() { sed -E "s/.*[[:space:]]$1=([^[:space:]]+).*/\1/" <<<"$2"; }

# scenario LABEL TARGET BODY CONNS DURATION: one wrk run against TARGET (floor, sub-v2, to-bq)
# with BODY (plain, transcript, skip); appends a row to the table.
scenario() {
  local label=$1 target=$2 body=$3 conns=$4 duration=$5
  log "$label: $target, body $body, -c$conns -d$duration"
  start_target "$target"
  local calls0 rows0
  calls0=$(insertall_stat calls)
  rows0=$(insertall_stat rows)

  local wrk_out=$OUT/wrk-$label.txt
  BODY_FILE=$OUT/corpus/$body.json wrk -t"$THREADS" -c"$conns" -d"$duration" --latency \
    -s "$ROOT/bench/wrk/push.lua" "http://127.0.0.1:${PORT[$target]}/" >"$wrk_out" 2>&1
  sleep 0.3 # let the last batch reach insertall
  local line
  line=$(grep '^BENCH ' "$wrk_out") || {
    log "wrk printed no summary; see $wrk_out"
    exit 1
  }

  local calls rows peak_kib
  calls=$(($(insertall_stat calls) - calls0))
  rows=$(($(insertall_stat rows) - rows0))
  peak_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$target]}/status")
  stop "$target"

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
    ratio=$(awk -v a="$rps" -v b="${FLOOR_RPS[$floor_key]}" 'BEGIN {printf "%.0f %%", 100 * a / b}')
    if ((calls > 0)); then
      per_call=$(awk -v r="$rows" -v c="$calls" 'BEGIN {printf "%.1f", r / c}')
      per_call="$per_call ($rows rows / $calls calls)"
    else
      per_call="– (no insertAll)"
    fi
  fi
  if ((non2xx > 0)); then
    NOTES+="- $label: $non2xx non-2xx answers; last lines of ${LOG[$target]}:"$'\n'
    NOTES+=$(tail -n 3 "${LOG[$target]}" | sed 's/^/    /')$'\n'
  fi

  local client="–"
  [[ $target == floor || $body == skip ]] || client=$INSERT_CLIENT
  ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %.1f |' \
    "$label" "$target" "$client" "$body" "$conns" "$(insertall_latency "$target")" "$rps" "$ratio" "$p50" "$p99" \
    "$non2xx" "$socket_errors" "$per_call" "$(awk -v k="$peak_kib" 'BEGIN {print k / 1024}')")")
  log "$label: $(printf '%.0f' "$rps") req/s, p50 $p50 ms, p99 $p99 ms, non-2xx $non2xx, rows/insertAll $per_call"
}

INSERTALL_LATENCY=0
insertall_latency() { if [[ $1 == floor ]]; then echo "–"; else echo "${INSERTALL_LATENCY} ms"; fi; }

# coldstart: sub-v2 from exec to the first 200 on /healthz, and its RSS right then.
coldstart() {
  log "cold start of sub-v2 (median of $COLDSTART_RUNS)"
  local env result
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
  start_insertall "$INSERTALL_LATENCY"
  scenario floor-plain floor plain "$CONNS" "$DURATION"
  scenario floor-transcript floor transcript "$CONNS" "$DURATION"
  for INSERT_CLIENT in gcp-bigquery-client direct; do
    scenario "subv2-plain-$INSERT_CLIENT" sub-v2 plain "$CONNS" "$DURATION"
    scenario "tobq-transcript-$INSERT_CLIENT" to-bq transcript "$CONNS" "$DURATION"
  done
  INSERT_CLIENT=direct
  scenario subv2-skip sub-v2 skip "$CONNS" "$DURATION"
  if [[ -n ${BEFORE:-} ]]; then
    INSERT_CLIENT=gcp-bigquery-client # every earlier build has it (the default up to issue 17)
    scenario subv2-plain-before sub-v2@before plain "$CONNS" "$DURATION"
    scenario tobq-transcript-before to-bq@before transcript "$CONNS" "$DURATION"
    scenario subv2-skip-before sub-v2@before skip "$CONNS" "$DURATION"
    INSERT_CLIENT=direct
  fi

  INSERTALL_LATENCY=$SLOW_LATENCY_MS
  start_insertall "$INSERTALL_LATENCY"
  scenario floor-plain-c$HIGH_CONNS floor plain "$HIGH_CONNS" "$HIGH_DURATION"
  for INSERT_CLIENT in gcp-bigquery-client direct; do
    scenario "subv2-plain-c$HIGH_CONNS-$INSERT_CLIENT" sub-v2 plain "$HIGH_CONNS" "$HIGH_DURATION"
  done
  INSERT_CLIENT=direct

  coldstart
  stop insertall

  echo
  echo "## Load benchmark ($(date -u +%Y-%m-%d), ./scripts/bench-load.sh)"
  echo
  echo "wrk -t$THREADS, ${DURATION} at $CONNS connections, ${HIGH_DURATION} at $HIGH_CONNS; the server restarted per scenario."
  echo "% of floor: of the floor's req/s with the same body bytes at the same concurrency."
  echo "wrk is closed-loop: a push that writes waits for its batch (linger ${LINGER_MS} ms unless $MAX_ROWS rows come first),"
  if ((LINGER_MS > 0)); then
    echo "so at $CONNS connections req/s cannot exceed $CONNS / (${LINGER_MS} ms + insertAll latency) = $((CONNS * 1000 / LINGER_MS)) req/s."
  fi
  echo
  echo "| scenario | server | insertAll client | body | conns | insertAll latency | req/s | % of floor | p50 ms | p99 ms | non-2xx | socket errors | rows per insertAll | peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
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
  echo
  echo "(took $((SECONDS - started)) s; logs and wrk output in $OUT)"
}

main "$@"
