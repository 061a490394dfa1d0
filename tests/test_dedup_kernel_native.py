"""The dedup kernel's machine code, built once and mapped with llvmlite alone (dataprep/native.py).

Oracles: the numpy signature path (`minhash.numpy_signatures`) for the values a fresh process
computes; `sys.modules` of that process for what it imported; the files on disk for what was
built and when.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dataprep import native
from dataprep.stages.dedup import minhash
from dataprep.stages.dedup.normalise import normalise

kernel = pytest.importorskip("dataprep.stages.dedup.kernel")

DOCS = [
    "The quick brown fox jumps over the lazy dog " * 5,
    "Straße ÉCOLE naïve ﬁne nbsp\u00a0ideo\u3000x 日本語のテキストです",
    "",
    "one",
    "Hello, World!!! -- (quoted) [x] {y} a+b=c; 100% $5 ~tilde",
]
STEPS = ["nfkc", "lowercase", "punctuation"]

# A fresh interpreter signs DOCS and reports its signatures and what it imported.
CHILD = """
import json, sys
import pyarrow as pa
from dataprep.stages.dedup import kernel, minhash
docs, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sig, counts = kernel.sign_text(pa.array(docs), steps, 64, 7, 3, None)
keys = kernel.band_keys(sig, 4, minhash.np.arange(1, 9, dtype=minhash.np.uint64))
print(json.dumps({"sig": sig.tolist(), "counts": counts.tolist(), "keys": [str(k) for k in
      keys.ravel()], "numba": "numba" in sys.modules, "scipy": "scipy" in sys.modules,
      "llvmlite": "llvmlite" in sys.modules}))
"""


def _child(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(DOCS), json.dumps(STEPS)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _want() -> tuple[np.ndarray, np.ndarray]:
    norm = pa.compute.fill_null(normalise(pa.array(DOCS), STEPS), "")
    return minhash.numpy_signatures(norm, 64, 7, 3, None)


def test_built_once_then_loaded_without_numba(tmp_path) -> None:
    """First process: numba compiles and the build is saved; every later process maps it
    with llvmlite alone (no numba, no scipy) and computes the numpy path's values."""
    env = {"DATAPREP_KERNEL_CACHE": str(tmp_path)}
    first = _child(env)
    built = list(tmp_path.glob("dedup-kernel-*.native"))
    assert first["numba"] and len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = _child(env)
    assert not second["numba"] and not second["scipy"]
    assert second["llvmlite"]  # the object is mapped by llvmlite's MCJIT
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    sig, counts = _want()
    for run in (first, second):
        assert run["counts"] == counts.tolist()
        assert np.array_equal(np.array(run["sig"], np.uint32), sig)
    assert first["keys"] == second["keys"]
    # a damaged build is not loaded but rebuilt, with the same values
    built[0].write_bytes(built[0].read_bytes()[:-100])
    third = _child(env)
    assert third["numba"] and third["sig"] == first["sig"]
    assert native.read(built[0]) is not None


def test_a_damaged_or_foreign_file_reads_as_missing(tmp_path) -> None:
    path = tmp_path / "k.native"
    native.save(path, {"f": "sym"}, [b"abc", b"de"])
    assert native.read(path) == ({"f": "sym"}, [b"abc", b"de"])
    raw = path.read_bytes()
    for bad in (raw[:-1], raw + b"x", b"not ours\n" + raw, raw.replace(b'"sizes"', b'"sise"')):
        path.write_bytes(bad)
        assert native.read(path) is None
    assert native.read(tmp_path / "missing.native") is None


def test_the_key_follows_the_source_and_the_cpu(tmp_path, monkeypatch) -> None:
    """An edited source or another CPU gets another build, never stale machine code."""
    source = tmp_path / "k.py"
    source.write_text("x = 1\n")
    one = native.key([source])
    assert native.key([source]) == one
    source.write_text("x = 2\n")
    assert native.key([source]) != one
    source.write_text("x = 1\n")
    real_version = native.metadata.version
    monkeypatch.setattr(native.metadata, "version", lambda d: real_version(d) + ".post1")
    assert native.key([source]) != one  # another numba / llvmlite
    monkeypatch.setattr(native.metadata, "version", real_version)
    monkeypatch.setattr(native.sys, "version_info", (3, 99, 0))
    assert native.key([source]) != one  # another Python
    monkeypatch.undo()
    assert native.key([source]) == one
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    assert native.key([source]) != one
    monkeypatch.delenv("NUMBA_CPU_NAME")
    monkeypatch.setattr(
        native, "_host", lambda: ["x86_64-unknown-linux-gnu", "other-cpu", "", "", ""]
    )
    assert native.key([source]) != one  # another CPU or its features


def test_machine_code_that_needs_numba_is_refused() -> None:
    ok = 'declare i64 @llvm.smax.i64(i64, i64)\ndeclare void @"llvm.assume"(i1)\n'
    native.check_ir(ok)
    for foreign in (
        "declare i32 @NRT_decref(ptr)",
        "declare void @PyErr_Clear() local_unnamed_addr",
    ):
        with pytest.raises(native.NativeError, match="cannot be loaded without numba"):
            native.check_ir(ok + foreign + "\n")


def test_no_writable_cache_means_the_numpy_path(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DATAPREP_KERNEL_CACHE", str(blocker / "sub"))
    with pytest.raises(native.NativeError, match="no writable directory"):
        kernel.cache_path()
    assert not kernel.is_built()
    monkeypatch.setattr(kernel, "_FUNCS", {})
    monkeypatch.setattr(minhash, "_KERNEL", False)
    assert minhash.kernel_module() is None
    got = minhash.sign_text(pa.array(DOCS), STEPS, "fast", 64, 7, 3, None, compiled=True)
    want = _want()
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_inconsistent_arrays_are_refused_before_the_raw_loop() -> None:
    """The loop reads raw pointers without bounds checks: every index is checked first."""
    data = np.frombuffer(b"a b c d e f", np.uint8)
    sig = np.full((2, 8), 0xFFFFFFFF, np.uint32)
    counts = np.zeros(2, np.int64)
    table = minhash._densify_table(8, 1)
    ok = dict(starts=np.array([0, 4]), ends=np.array([3, 11]), rows=np.array([0, 1]))
    kernel.sign_rows(data, **ok, lower=False, punct=False, unicode_ws=False, char_mode=False,
                     n=2, mix=minhash.seed_mix(1), table=table, sig=sig, counts=counts)  # fmt: skip
    assert counts.tolist() == [1, 3]
    for name, value in (("ends", np.array([3, 12])), ("rows", np.array([0, 2])),
                        ("starts", np.array([-1, 4]))):  # fmt: skip
        with pytest.raises(ValueError, match="inconsistent"):
            kernel.sign_rows(data, **{**ok, name: value}, lower=False, punct=False,
                             unicode_ws=False, char_mode=False, n=2, mix=minhash.seed_mix(1),
                             table=table, sig=sig, counts=counts)  # fmt: skip
    with pytest.raises(ValueError, match="inconsistent"):
        kernel.band_keys(sig, 5, np.arange(2, dtype=np.uint64))


def test_the_build_lives_beside_the_source_by_default(monkeypatch) -> None:
    monkeypatch.delenv("DATAPREP_KERNEL_CACHE", raising=False)
    path = kernel.cache_path()
    assert path.parent == Path(kernel.__file__).parent / "__pycache__" or "dataprep" in str(path)
    assert path.name.startswith("dedup-kernel-") and path.suffix == ".native"


def test_home_unset_and_no_writable_folder_is_a_clear_fallback(monkeypatch) -> None:
    """No $HOME (Path.home() raises) and nothing writable: NativeError, which the stage
    answers with the numpy path (never a crash)."""
    monkeypatch.delenv("DATAPREP_KERNEL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.setattr(native, "_writable", lambda folder: False)
    with pytest.raises(native.NativeError, match="no writable directory"):
        native.cache_file("x", "0" * 32, Path(kernel.__file__))


def test_fork_server_and_ray_workers_sign_with_the_kernel(tmp_path) -> None:
    """Pool workers (forks of the fork server) find a damaged build, rebuild it at the same
    time (atomic renames: one whole file wins) and Ray workers then load it; both write the
    same shards as the numpy path in one process (the oracle)."""
    pytest.importorskip("ray")
    from helpers import cli

    from dataprep.dataset import read_manifest
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    raw = tmp_path / "raw"
    raw.mkdir()
    docs = [
        f"doc {i % 60} shares these words with others {i % 9} " * 3 + DOCS[i % 5]
        for i in range(600)
    ]
    (raw / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    src = tmp_path / "src"
    inline = make_executor("local", workers=1)
    run_stage("shard", {"shard_rows": 150}, src, inputs=[str(raw)], executor=inline)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"DATAPREP_KERNEL_CACHE": str(cache), "DATAPREP_DEDUP_KERNEL": "numba"}
    old = os.environ.copy()
    try:
        os.environ.update(env)
        build = kernel.cache_path()
    finally:
        os.environ.clear()
        os.environ.update(old)
    build.write_bytes(native.MAGIC + b"{damaged")
    out = {}
    for name, args in (("forks", ("--executor", "local", "-w", "2")),
                       ("ray", ("--executor", "ray", "-w", "2"))):  # fmt: skip
        cli("dedup", src, "-o", tmp_path / name, "--method", "minhash", *args, "-q", env=env)
        out[name] = [s.xxh3_128 for s in read_manifest(str(tmp_path / name)).shards]
        assert native.read(build) is not None, name
    assert not [p for p in cache.iterdir() if p != build]  # no temporary files left
    numpy_env = {"DATAPREP_DEDUP_KERNEL": "numpy"}
    cli(
        "dedup",
        src,
        "-o",
        tmp_path / "numpy",
        "--method",
        "minhash",
        "-w",
        "1",
        "-q",
        env=numpy_env,
    )
    want = [s.xxh3_128 for s in read_manifest(str(tmp_path / "numpy")).shards]
    assert out["forks"] == out["ray"] == want and len(read_manifest(str(src)).shards) == 4


def _printed_words(code: str, env: dict) -> list[str]:
    """What a fresh interpreter running `code` prints, split into words."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    return done.stdout.split()


def test_the_driver_finds_a_build_without_llvmlite_or_numba(tmp_path) -> None:
    """kernel_pays (the driver's choice) looks for a build by file name: a driver whose
    workers sign imports neither numba nor llvmlite (~0.05 s CPU, ~50 MB); with no build for
    this code it answers False below the build threshold."""
    kernel.load()
    env = {**os.environ, "DATAPREP_KERNEL_CACHE": str(tmp_path)}
    code = (
        "import sys\n"
        "from dataprep.stages.dedup import minhash\n"
        "print(minhash.kernel_pays(3 << 20), 'llvmlite' in sys.modules or 'numba' in sys.modules)\n"
    )
    run = lambda: _printed_words(code, env)  # noqa: E731
    assert run() == ["False", "False"]  # no build in this folder yet
    name = kernel.cache_path().name  # this code's build for this CPU
    saved = native.read(kernel.cache_path())
    assert saved is not None
    native.save(tmp_path / name, *saved)
    assert run() == ["True", "False"]


def test_warming_a_worker_never_builds(tmp_path) -> None:
    """The fork server's preload (`tasks.warm_kernel`) maps this CPU's build and never
    compiles one: with only another CPU's build of the same code on disk it imports no numba
    and saves nothing; with this CPU's build it maps it."""
    kernel.load()
    env = {**os.environ, "DATAPREP_KERNEL_CACHE": str(tmp_path)}
    code = (
        "import sys\n"
        "from dataprep.stages.dedup import kernel, tasks\n"
        "tasks.warm_kernel()\n"
        "print(bool(kernel._FUNCS), 'numba' in sys.modules)\n"
    )
    run = lambda: _printed_words(code, env)  # noqa: E731
    other = tmp_path / f"dedup-kernel-{native.code_key(kernel._SOURCES)}-000000000000.native"
    other.write_bytes(b"")  # another CPU's build (its content is never read here)
    assert run() == ["False", "False"]
    assert sorted(tmp_path.iterdir()) == [other]
    saved = native.read(kernel.cache_path())
    assert saved is not None
    native.save(tmp_path / kernel.cache_path().name, *saved)
    assert run() == ["True", "False"]
