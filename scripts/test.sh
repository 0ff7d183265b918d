#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine: formatting, lints, docs, and the
# whole test suite (unit, integration, doc tests). Installs what it needs itself; idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is required (install Rust with rustup)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== cargo test"
cargo test --workspace --locked
echo "== Python checks (MLflow reads our exports; we import what MLflow writes)"
./scripts/python-env.sh
.venv/bin/python -m pytest -q ml-registry/tests/python
