#!/usr/bin/env bash
# Builds the `streamscore` wheel (py-bindings) in the workspace's dev profile and target
# directory, so it reuses what `cargo test --workspace` compiled, installs it into a fresh
# virtual environment and runs the package's pytest suite there. Called by scripts/test.sh
# after the cargo steps; expects the project venv (.venv, scripts/python-env.sh) and the
# workspace's debug `streamscore` binary (the parity tests compare against it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

wheels=target/wheels-test
venv=target/py-package-venv
python="${PYTHON:-python3}"

t0=$SECONDS
rm -rf "$wheels"
# --profile dev: the workspace's profile (dependencies optimised, see Cargo.toml), not a release build.
# The interpreter only names the wheel: it is abi3 (CPython >= 3.9). `--features` replaces the
# pyproject's feature list, so it names all of them: `azure` (the pyproject's) and `kafka` give
# the feature set of scripts/test.sh's cargo steps, so nothing of the workspace but the binding
# crate compiles again (with `kafka` alone, every crate that `azure` touches compiled a second
# time: 3+ minutes on a 2-core machine). This wheel is installed on this machine
# only, so the manylinux repair (which would copy librdkafka's system libraries into it and
# needs patchelf) is skipped.
.venv/bin/maturin build --quiet --manifest-path py-bindings/Cargo.toml --profile dev --locked \
  --features azure,kafka --auditwheel skip --out "$wheels" --interpreter .venv/bin/python
wheel=$(ls "$wheels"/streamscore-*.whl)
t1=$SECONDS
echo "python package: built $(basename "$wheel") in $((t1 - t0)) s"

# A fresh venv each run holding the wheel. Its third-party packages (numpy, pandas, pytest,
# scikit-learn, skl2onnx, onnxruntime, mypy, river, and nbclient with ipykernel for the example
# notebook: py-bindings/tests/requirements.txt) are those of
# the project venv, reached through a .pth file: installing them again costs minutes on a 2-core
# machine. STREAMSCORE_PY_ISOLATED=1 installs them into the fresh venv instead.
rm -rf "$venv"
"$python" -m venv "$venv"
if [ "${STREAMSCORE_PY_ISOLATED:-0}" = 1 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
    "$wheel" -r py-bindings/tests/requirements.txt
else
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  .venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/project-venv.pth"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$wheel"
fi
t2=$SECONDS
echo "python package: fresh venv with the wheel in $((t2 - t1)) s"

# Outside the source tree, so `import streamscore` is the installed wheel; the ONNX Runtime
# library is found next to the venv's onnxruntime package, as a user's would be. The suite
# executes examples/notebook.ipynb (test_notebook.py) in a kernel of this fresh venv's Python.
(
  cd py-bindings/tests
  env -u STREAMSCORE_ORT_LIB -u VIRTUAL_ENV STREAMSCORE_BIN="$PWD/../../target/debug/streamscore" \
    STREAMSCORE_EXPECT_INSTALLED=1 "../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
)
t3=$SECONDS
echo "python package: pytest in $((t3 - t2)) s (total $((t3 - t0)) s)"
