#!/usr/bin/env bash
# Soak test of `streamscore serve` and `streamscore stream`, run at the same time (the hidden
# `streamscore soak` command does the work):
#   - serve: the built-in load generator (Rust, reqwest on Tokio, 16 keep-alive connections,
#     one-row POST /score) measures the server's maximum for 10 s, then holds 50 % of it at fixed
#     request times for the whole duration, counting errors and latencies (p50, p99);
#   - stream: `streamscore stream` follows a file that a steady producer appends 1000 events/s
#     to, writing to its standard output, which is counted (every event must come out).
# Both processes' RSS and open file descriptors are sampled every 10 s. Checks: no error, RSS
# growth after the warm-up (first 20 %) below 5 %, descriptors flat (spread <= 2), serve rate held
# (>= 90 % of the target), no stream event lost. Prints the report and writes OUT/soak.json and
# OUT/soak.md; exits 1 when a check fails.
#
# Usage: scripts/soak.sh [DURATION_S (default 600)] [OUT_DIR (default target/soak)]
# Environment: STREAMSCORE_BIN=path/to/streamscore uses that binary instead of building the
# release one; SOAK_INTERVAL_S (10), SOAK_PROBE_S (10), SOAK_CONNECTIONS (16),
# SOAK_STREAM_RATE (1000) change the other settings.
# The 30-second version runs in the test suite: streamscore/tests/it/soak.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-600}"
out="${2:-target/soak}"
bin="${STREAMSCORE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -p streamscore --quiet
  bin="$PWD/target/release/streamscore"
fi
mkdir -p "$out"
exec "$bin" soak --duration-s "$duration" --out "$out" \
  --interval-s "${SOAK_INTERVAL_S:-10}" --probe-s "${SOAK_PROBE_S:-10}" \
  --connections "${SOAK_CONNECTIONS:-16}" --stream-rate "${SOAK_STREAM_RATE:-1000}"
