-- wrk script of scripts/bench-load.sh: POSTs the file named by BODY_FILE as JSON, and at the end
-- prints one machine-readable line (latencies in microseconds) that the script parses:
-- BENCH requests=… duration_us=… rps=… p50_us=… p99_us=… non2xx=… connect=… read=… write=… timeout=…
local path = assert(os.getenv("BODY_FILE"), "BODY_FILE is not set")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout))
end
