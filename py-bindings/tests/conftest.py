"""Shared fixtures: the `streamscore` command (the Rust API's front end) for parity checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def streamscore_bin() -> Path:
    """The `streamscore` binary: $STREAMSCORE_BIN, else the workspace's debug build."""
    path = Path(os.environ.get("STREAMSCORE_BIN") or REPO / "target" / "debug" / "streamscore")
    if not path.is_file():
        pytest.fail(f"no streamscore binary at {path}: run `cargo build -p streamscore` or set STREAMSCORE_BIN")
    return path


@pytest.fixture(scope="session")
def run_cli(streamscore_bin: Path):
    def run(*args: str) -> str:
        done = subprocess.run([str(streamscore_bin), *args], capture_output=True, text=True)
        assert done.returncode == 0, f"streamscore {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run
