"""A real Azure client sees what our Azure Blob registry wrote: the `streamscore` binary (built
with `--features azure`) registers into Azurite, then the official Python SDK lists the blobs and
reads the metadata. Run by scripts/test.sh after the Rust tests; the `azurite` fixture is in the
workspace conftest.py."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

blob = pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is not installed: run ./scripts/python-env.sh")

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))


def streamscore(*args, env):
    done = subprocess.run([str(BIN), *map(str, args)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_python_sdk_reads_what_the_registry_wrote(azurite, tmp_path):
    env = dict(os.environ, AZURE_STORAGE_CONNECTION_STRING=azurite)
    env.pop("STREAMSCORE_REGISTRY", None)
    probe = subprocess.run([str(BIN), "models", "--registry", "blob://probe"], env=env, capture_output=True, text=True)
    if "--features azure" in probe.stderr:
        pytest.fail("the streamscore binary was built without `--features azure` (scripts/test.sh builds it with it)")
    data = tmp_path / "credit.csv"
    streamscore("generate", "--rows", 1500, "--seed", 4, "--out", data, env=env)
    reg = "blob://models/team-a"
    for _ in range(2):
        streamscore("train", "--data", data, "--target", "default", "--register", "credit", "--registry", reg, env=env)
    streamscore("promote", "credit:1", "--alias", "prod", "--registry", reg, env=env)

    service = blob.BlobServiceClient.from_connection_string(azurite)
    container = service.get_container_client("models")
    names = {b.name for b in container.list_blobs(name_starts_with="team-a/")}
    for v in (1, 2):
        for f in ("version.json", "artifact/MLmodel", "artifact/model.json", "artifact/metrics.json", "artifact/checksums"):
            assert f"team-a/credit/versions/{v}/{f}" in names, sorted(names)
    assert "team-a/credit/counter" in names
    assert "team-a/credit/aliases.json" in names

    meta = json.loads(container.download_blob("team-a/credit/versions/1/version.json").readall())
    assert meta["name"] == "credit" and meta["version"] == 1
    sums = container.download_blob("team-a/credit/versions/1/artifact/checksums").readall()
    assert meta["sha256"] == hashlib.sha256(sums).hexdigest()
    model = container.download_blob("team-a/credit/versions/1/artifact/model.json").readall()
    assert f"{hashlib.sha256(model).hexdigest()}  model.json" in sums.decode()
    assert json.loads(container.download_blob("team-a/credit/aliases.json").readall()) == {"prod": 1}
    assert container.download_blob("team-a/credit/counter").readall() == b"2"
