"""Review (H7) of the dedup kernel's on-disk machine code (dataprep/native.py, kernel.py).

Oracles: the numpy signature path (`minhash.numpy_signatures`) for values; numba's own cache
and Python's `__pycache__` for what a cache file's permissions and fallbacks should be (a
file written with the process's umask; an unusable in-tree cache falls to the user's cache).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dataprep import native
from dataprep.stages.dedup import minhash
from dataprep.stages.dedup.normalise import normalise

pytest.importorskip("dataprep.stages.dedup.kernel")

DOCS = ["The quick brown fox jumps over the lazy dog " * 5, "Straße ÉCOLE naïve", "", "one"]
STEPS = ["nfkc", "lowercase", "punctuation"]

# The product path: minhash.sign_text with the kernel chosen, as a dedup task calls it.
CHILD = """
import json, sys
import pyarrow as pa
from dataprep.stages.dedup import minhash
docs, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sig, counts = minhash.sign_text(pa.array(docs), steps, "fast", 64, 7, 3, None, compiled=True)
print(json.dumps({"sig": sig.tolist(), "kernel": minhash._KERNEL is not None,
                  "numba": "numba" in sys.modules}))
"""


def _child(cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(DOCS), json.dumps(STEPS)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "DATAPREP_KERNEL_CACHE": str(cache)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_build_damaged_in_place_is_rebuilt_not_kept(tmp_path) -> None:
    pytest.importorskip("numba")  # builds the kernel
    first = _child(tmp_path)
    assert first["kernel"] and first["numba"]  # built here
    (built,) = tmp_path.glob("dedup-kernel-*.native")
    raw = built.read_bytes()
    head_end = raw.index(b"\n", len(native.MAGIC)) + 1
    # same size, object bytes zeroed: what a crash leaves of a file whose data never reached
    # the disk (save() does not fsync before its rename)
    built.write_bytes(raw[:head_end] + bytes(len(raw) - head_end))
    second = _child(tmp_path)
    norm = pa.compute.fill_null(normalise(pa.array(DOCS), STEPS), "")
    want, _ = minhash.numpy_signatures(norm, 64, 7, 3, None)
    assert np.array_equal(np.array(second["sig"], np.uint32), want)  # values stay right
    assert second["kernel"], "the damaged build is kept and the kernel never used again"
    assert native.read(built) is not None and built.read_bytes() == raw


def test_a_saved_build_is_readable_as_the_umask_allows(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        native.save(tmp_path / "k.native", {"f": "sym"}, [b"abc"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.native").stat().st_mode) == 0o644


def test_an_unusable_in_tree_build_falls_to_the_users_cache(tmp_path, monkeypatch) -> None:
    source = tmp_path / "pkg" / "kernel_source.py"
    in_tree = source.parent / "__pycache__"
    in_tree.mkdir(parents=True)
    foreign = in_tree / "dedup-kernel-k.native"
    foreign.write_bytes(b"another user's build, unreadable to this one")
    monkeypatch.delenv("DATAPREP_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real_writable = native._writable
    # as a non-root user sees a root-installed package: its __pycache__ is not writable
    monkeypatch.setattr(native, "_writable", lambda f: f != in_tree and real_writable(f))
    assert native.read(foreign) is None  # what this user's process gets from it
    path = native.cache_file("dedup-kernel", "k", source)
    assert path == tmp_path / "xdg" / "dataprep" / "kernels" / "dedup-kernel-k.native"
