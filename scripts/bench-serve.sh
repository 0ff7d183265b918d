#!/usr/bin/env bash
# Load benchmark of `streamscore serve`: 1-row POST /score with a random forest of 100 trees
# (depth 8) at 32 connections, the server pinned to core 0 (it then runs on one thread: a
# current-thread runtime) and the load generator (Debian's `wrk`) on core 1. Prints requests/s,
# p50, p99, the server's CPU time per request (user + system: what requests/s would be on a
# core of its own is 1e6 / that, a figure that other load on the machine disturbs far less than
# requests/s), the server's RSS, the time from process start to ready, and the load average.
# Targets: >= 30,000 req/s, p99 <= 2 ms, RSS <= 50 MB, ready <= 200 ms.
#
# Usage: scripts/bench-serve.sh [DURATION_S]   (builds the release binary first)
# Environment: STREAMSCORE_BIN=path/to/streamscore uses that binary instead (to compare builds:
# alternate them, several runs each, and compare medians).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}"
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench-serve: wrk is required (apt-get install -y wrk)" >&2
  exit 1
fi
bin="${STREAMSCORE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -p streamscore --quiet
  bin="$PWD/target/release/streamscore"
fi
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" generate --rows 20000 --seed 1 --out "$work/credit.csv" >/dev/null 2>&1
"$bin" train --data "$work/credit.csv" --target default --estimator random_forest_classifier \
  --param n_estimators=100 --param max_depth=8 --register credit --registry "$work/reg" >/dev/null 2>&1
"$bin" promote credit:1 --alias prod --registry "$work/reg" >/dev/null 2>&1

# One row as Stream Analytics sends it.
python3 - "$work/credit.csv" > "$work/body.json" <<'PY'
import csv, json, sys
row = next(csv.DictReader(open(sys.argv[1])))
print(json.dumps({"data": [{k: int(v) for k, v in row.items() if k != "default"}]}))
PY
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.body = f:read("*a")
f:close()
LUA

start_ns=$(date +%s%N)
taskset -c 0 "$bin" serve --model credit@prod --registry "$work/reg" --port 0 \
  > "$work/out" 2> "$work/err" &
server=$!
until [ -s "$work/out" ]; do sleep 0.001; done
url="$(head -n1 "$work/out")"
until curl -sf -o /dev/null "$url/v2/health/ready"; do sleep 0.002; done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
rss_idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
cpu_before=$(cpu_ticks)
BODY_FILE="$work/body.json" taskset -c 1 wrk -t1 -c32 -d"${duration}s" --latency -s "$work/post.lua" "$url/score" | tee "$work/wrk"
cpu_after=$(cpu_ticks)
requests=$(awk '/requests in/ {print $1}' "$work/wrk")
tick_hz=$(getconf CLK_TCK)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")

echo "---"
echo "requests/s: $(awk '/Requests\/sec/ {print $2}' "$work/wrk")"
echo "p50: $(awk '$1 == "50%" {print $2}' "$work/wrk")  p99: $(awk '$1 == "99%" {print $2}' "$work/wrk")"
echo "non-2xx: $(awk '/Non-2xx/ {print $NF}' "$work/wrk")"
echo "server CPU per request: $(awk -v t="$((cpu_after - cpu_before))" -v n="$requests" -v hz="$tick_hz" \
  'BEGIN { if (n > 0) printf "%.1f us", t * 1e6 / hz / n; else print "?" }')"
echo "RSS: idle $((rss_idle_kb / 1024)) MB, after load $((rss_kb / 1024)) MB, peak $((hwm_kb / 1024)) MB"
echo "ready: ${ready_ms} ms after start (server's own count: $(grep -o 'ready [0-9]* ms' "$work/err" || echo '?'))"
echo "load average (1 min) at the end: $(cut -d' ' -f1 /proc/loadavg)"
