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

# Azurite (the Azure Blob tests run against it, installed into the project-local node_modules)
# and the project's Python environment (reference peers for the Python checks, and the ONNX
# Runtime library from the PyPI onnxruntime wheel that the ONNX tests load; those tests fail
# rather than skip when it is missing) install in the background while cargo lints and builds:
# both are mostly downloads, and the Rust build needs neither before `cargo test`.
mkdir -p target
if [ ! -x node_modules/.bin/azurite-blob ] && ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: npm is required to install Azurite for the Azure Blob tests (e.g. apt-get install -y nodejs npm)" >&2
  exit 1
fi
(
  if [ ! -x node_modules/.bin/azurite-blob ]; then
    npm install --no-save --no-package-lock --no-audit --no-fund --silent azurite@3.35.0
  fi
) > target/setup-azurite.log 2>&1 &
azurite_setup=$!
./scripts/python-env.sh > target/setup-python.log 2>&1 &
python_setup=$!
# A failing step below must not leave the set-up running on.
deny_setup=
trap 'kill "$azurite_setup" "$python_setup" $deny_setup 2>/dev/null || true' EXIT

# Prints a step's name with the seconds since the start, so a CI log shows where the time goes.
step() { echo "== $* [${SECONDS} s]"; }

# Waits for a background set-up step; on failure prints its log and stops.
finish_setup() {
  local pid=$1 name=$2 log=$3
  if ! wait "$pid"; then
    echo "test.sh: setting up $name failed:" >&2
    cat "$log" >&2
    exit 1
  fi
  step "$name ready"
}

# The kafka feature builds librdkafka from source: cmake and the libcurl headers.
step "librdkafka build tools"
./scripts/kafka-build-deps.sh

# One feature set for lints, docs and tests, so the Azure SDK is built once.
features="ml-registry/azure,streamscore/azure"
features="$features,ml-stream/kafka,streamscore/kafka"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked --features "$features" -- -D warnings
step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet --features "$features"
finish_setup "$azurite_setup" Azurite target/setup-azurite.log
finish_setup "$python_setup" "Python environment" target/setup-python.log
STREAMSCORE_ORT_LIB="$(.venv/bin/python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')"
export STREAMSCORE_ORT_LIB
export STREAMSCORE_REQUIRE_ONNX_RUNTIME=1
step "cargo test: build"
cargo test --workspace --locked --features "$features" --no-run
# cargo-deny (dependency bans, licenses and sources; see deny.toml), built once into the
# project-local .tools/ while the tests run: they wait on servers and child processes more than
# they compute, so the build takes cores the test build would otherwise want. A first install
# compiles it (minutes, see README); later runs find it there.
(
  if [ ! -x .tools/bin/cargo-deny ]; then
    # A quick build: the checks it runs take a second even unoptimised, and a full release
    # build of its ~200 crates would cost minutes of the CI budget.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
      CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
      CARGO_PROFILE_RELEASE_INCREMENTAL=false \
      nice -n 10 cargo install --locked cargo-deny@0.20.2 --root .tools
  fi
) > target/setup-cargo-deny.log 2>&1 &
deny_setup=$!
step "cargo test: run"
cargo test --workspace --locked --features "$features"
finish_setup "$deny_setup" cargo-deny target/setup-cargo-deny.log
# The advisory database cannot be fetched from here, so `advisories` is not checked.
step "cargo deny check bans licenses sources"
.tools/bin/cargo-deny check --hide-inclusion-graph bans licenses sources
step "30-second soak of serve and stream, alone on the machine (scripts/soak.sh runs it for 10 minutes)"
cargo test --workspace --locked --features "$features" --test it soak:: -- --ignored
step "Python checks (MLflow reads our exports and we import its; the Azure SDK reads our blobs; pyarrow reads our Parquet; real HTTP clients call our server)"
.venv/bin/python -m pytest -q ml-registry/tests/python ml-stream/tests/python ml-serve/tests/python
step "Python package (wheel from the workspace's dev build, installed into a fresh venv, pytest)"
./scripts/test-python-package.sh
step "all checks and tests passed"
