"""Shared pytest fixtures of the Python checks (scripts/test.sh runs them from the workspace root)."""

import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account key (public).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def azurite(tmp_path):
    """Azurite on a free 127.0.0.1 port, in memory; yields its connection string."""
    if not AZURITE.is_file():
        pytest.fail(f"{AZURITE} not found: run `npm install azurite` in the workspace root (scripts/test.sh does)")
    port = free_port()
    proc = subprocess.Popen(
        [str(AZURITE), "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Azurite did not start"
                time.sleep(0.05)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
