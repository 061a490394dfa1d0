"""Shared fixtures: the package under test comes from this checkout, data is generated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

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
