"""Shared fixtures: the package under test comes from this checkout, data is generated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import restored_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic corpus (JSONL.zst sources with known duplicates and bad lines)."""
    from dataprep.sample import generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, docs=1500, seed=3)
    return out


@pytest.fixture(scope="session")
def s3_server() -> str:
    """A real S3-compatible server (moto's server mode) on 127.0.0.1, for remote paths.

    The endpoint and dummy credentials go into the environment, so both this process
    (pyarrow.fs, boto3) and the CLI subprocesses the tests start talk to it.
    """
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    with restored_env(_S3_ENV):
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
        )
        try:
            yield endpoint
        finally:
            server.terminate()
            server.wait(timeout=10)


_S3_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket; returns its `s3://` URI."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-bkt"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The test-only `flaky` stage registered, and the marker directory it counts attempts in."""
    from flaky_stage import FlakyStage  # imports dataprep: after ROOT is on sys.path

    from dataprep import stages

    monkeypatch.setitem(stages.BUILTIN, "flaky", f"flaky_stage:{FlakyStage.__name__}")
    marker = tmp_path / "marker"
    marker.mkdir()
    return marker
