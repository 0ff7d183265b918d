#!/usr/bin/env bash
# Creates (or updates) the project-local Python environment `.venv` with the reference peers used by
# the reference scripts and the Python tests. Idempotent: it reinstalls only when
# scripts/requirements-dev.txt changed since the last successful run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements-dev.txt"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "python-env: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "python-env: installing scripts/requirements-dev.txt" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # --no-compile: byte-compiling every module of scipy, pandas, mypy ... at install costs a
  # minute of CPU; Python compiles the few modules the tests import when it first loads them.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r "$req"
  echo "$want" > "$stamp"
fi
