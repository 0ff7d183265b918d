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

# The Azure Blob tests run against Azurite, installed into the project-local node_modules.
echo "== Azurite"
if [ ! -x node_modules/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "test.sh: npm is required to install Azurite for the Azure Blob tests (e.g. apt-get install -y nodejs npm)" >&2
    exit 1
  fi
  npm install --no-save --no-package-lock --no-audit --no-fund --silent azurite@3.35.0
fi
# The project's Python environment: reference peers for the Python checks, and the ONNX Runtime
# library (PyPI onnxruntime wheel) that the ONNX tests load; those tests fail rather than skip
# when it is missing here.
echo "== Python environment"
./scripts/python-env.sh
STREAMSCORE_ORT_LIB="$(.venv/bin/python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')"
export STREAMSCORE_ORT_LIB
export STREAMSCORE_REQUIRE_ONNX_RUNTIME=1
# One feature set for lints, docs and tests, so the Azure SDK is built once.
features="ml-registry/azure,streamscore/azure"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked --features "$features" -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet --features "$features"
echo "== cargo test"
cargo test --workspace --locked --features "$features"
echo "== Python checks (MLflow reads our exports and we import its; the Azure SDK reads our blobs; pyarrow reads our Parquet; real HTTP clients call our server)"
.venv/bin/python -m pytest -q ml-registry/tests/python ml-stream/tests/python ml-serve/tests/python
echo "== Python package (wheel from the workspace's dev build, installed into a fresh venv, pytest)"
./scripts/test-python-package.sh
