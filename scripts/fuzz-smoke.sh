#!/usr/bin/env bash
# A short fuzz run of every target (default 10 s each), as a smoke test of the fuzz build and
# targets. Not part of scripts/test.sh (the build alone takes minutes); the log goes to
# fuzz/scratch/ so the committed long-run log (docs/fuzz/fuzz-log.md) is not overwritten.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec ./fuzz/run --seconds "${1:-10}" --log fuzz/scratch/fuzz-smoke-log.md "${@:2}"
