#!/usr/bin/env bash
# Builds streamscore and runs `streamscore demo` on the embedded local default: no services,
# no network beyond fetching crates on the first build. Extra arguments go to `demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "demo.sh: cargo is required (install Rust with rustup)" >&2
  exit 1
fi
exec cargo run --release --locked --quiet -p streamscore --bin streamscore -- demo "$@"
