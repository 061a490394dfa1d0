"""dedup's scratch files: written without an fsync each, sealed by checksum lists (scratch.py),
and the band keys' sort (buckets.argsort_stable). A run SIGKILLed mid-way resumes to the same
output as a clean run; scratch files that a crashed machine never wrote out (truncated, empty)
make their tasks rerun instead of being trusted."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.dedup import DedupConfig, buckets, scratch
from dataprep.storage import StoragePath

PARAMS = {"method": "both", "threshold": 0.7, "keep": "longest"}


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10, dtype=np.uint32).reshape(2, 5),
        np.zeros((12, 0), np.uint64),
        np.array([True, False, True]),
        np.zeros(3, "S16"),
        np.arange(9, dtype=np.int64)[::2],
        np.random.default_rng(0).integers(0, 2**32, (3000, 128), dtype=np.uint64),
    ],
)
def test_save_writes_what_np_save_writes_and_the_seal_notices_damage(
    array: np.ndarray, tmp_path: Path
) -> None:
    folder = StoragePath(str(tmp_path))
    sums = {"a.npy": scratch.save(folder / "a.npy", array)}
    oracle = io.BytesIO()
    np.save(oracle, array)
    assert (tmp_path / "a.npy").read_bytes() == oracle.getvalue()
    scratch.seal(folder / "t.sums", sums)
    assert scratch.intact(folder / "t.sums")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-1])  # short
    assert not scratch.intact(folder / "t.sums")
    (tmp_path / "a.npy").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, changed
    assert not scratch.intact(folder / "t.sums")
    (tmp_path / "a.npy").write_bytes(data)
    assert scratch.intact(folder / "t.sums")
    (tmp_path / "t.sums").write_bytes(b"")  # a list that never reached the disk
    assert not scratch.intact(folder / "t.sums")
    assert not scratch.intact(folder / "missing.sums")


@pytest.mark.parametrize("expected", [0, 5, 2500, 2501, 9000])
def test_row_writer_writes_what_np_save_of_the_whole_writes(expected: int, tmp_path: Path):
    """Blocks streamed to disk equal np.save of their concatenation, also when the expected
    row count was wrong (the header is rewritten and the file hashed again)."""
    rng = np.random.default_rng(expected)
    blocks = [rng.integers(0, 2**32, (n, 16), dtype=np.uint64).astype(np.uint32) for n in
              (2048, 0, 452)]  # fmt: skip
    folder = StoragePath(str(tmp_path))
    writer = scratch.RowWriter(folder / "s.npy", np.dtype(np.uint32), 16, expected)
    for block in blocks:
        writer.write(block)
    with pytest.raises(ValueError):
        writer.write(blocks[0].astype(np.int64))
    sums = {"s.npy": writer.close()}
    oracle = io.BytesIO()
    np.save(oracle, np.concatenate(blocks))
    assert (tmp_path / "s.npy").read_bytes() == oracle.getvalue()
    scratch.seal(folder / "t.sums", sums)
    assert scratch.intact(folder / "t.sums")
    aborted = scratch.RowWriter(folder / "a.npy", np.dtype(np.uint32), 16, 1)
    aborted.write(blocks[0])
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "t.sums"]


@pytest.mark.parametrize("n,distinct", [(0, 1), (1, 1), (7, 1), (5000, 5000), (50000, 9000)])
def test_argsort_stable_is_numpys_stable_sort(n: int, distinct: int) -> None:
    rng = np.random.default_rng(n)
    pool = rng.integers(0, 2**64, distinct, dtype=np.uint64, endpoint=False)
    pool[0] = np.uint64(2**64 - 1)  # the top bit set too
    keys = pool[rng.integers(0, distinct, n)]
    order = buckets.argsort_stable(keys)
    assert order.dtype == np.int64
    assert np.array_equal(order, np.argsort(keys, kind="stable"))


def _dedup(src: Path, out: Path):
    return run_stage(
        "dedup",
        DedupConfig.parse(dict(PARAMS)),
        out,
        input_path=src,
        executor=make_executor("local", workers=1),
    )


def _killed_at(phase: str, src: Path, out: Path, params: dict | None = None) -> None:
    """Run dedup in a child process that SIGKILLs its own process group as `phase` starts
    (a DedupStage method, or `module.function` of the dedup package): what ran before it
    committed its task records."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from dataprep.executors import make_executor
        from dataprep.runner import run_stage
        from dataprep.stages.dedup import DedupConfig
        from dataprep.stages.dedup.stage import DedupStage

        def kill(*args, **kwargs):
            os.killpg(os.getpgid(0), signal.SIGKILL)

        phase = {phase!r}
        if "." in phase:  # module.function of the dedup package
            import importlib
            module, name = phase.split(".")
            setattr(importlib.import_module("dataprep.stages.dedup." + module), name, kill)
        else:
            setattr(DedupStage, phase, kill)
        run_stage("dedup", DedupConfig.parse({params or PARAMS!r}), {str(out)!r},
                  input_path={str(src)!r}, executor=make_executor("local", workers=1))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, start_new_session=True, timeout=300
    )
    assert proc.returncode == -9


def _same_output(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.glob("*.parquet"))
    assert names and names == sorted(p.name for p in b.glob("*.parquet"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    def facts(path: Path) -> dict:
        report = json.loads((path / ".report.json").read_text())
        report.pop("phases", None)
        report.pop("seconds", None)
        return report

    assert facts(a) == facts(b)


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scratch") / "shards"
    run_stage(
        "shard",
        {"shard_rows": 300},
        out,
        inputs=[str(corpus_dir)],
        executor=make_executor("local", workers=1),
    )
    return out


@pytest.fixture(scope="module")
def clean(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    run = _dedup(shards, out)
    assert run.report["rows_in"] > run.report["rows_out"] > 0
    return out


@pytest.mark.parametrize("phase", ["_bucket", "_write"])
def test_a_run_killed_between_phases_resumes_to_the_same_output(
    phase: str, shards: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _killed_at(phase, shards, out)
    assert list((out / ".dataprep" / "tasks").glob("sign-*.json"))  # there is work to resume
    _dedup(shards, out)
    _same_output(clean, out)


def test_scratch_files_lost_in_a_crash_rerun_their_tasks(
    shards: Path, clean: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """What a machine that went down before writing out its page cache could leave: a sign
    task's signatures empty and a bucket task's edges cut short, their records on disk."""
    out = tmp_path / "out"
    _killed_at("_write", shards, out)
    work = out / ".dataprep"
    (work / "scratch" / "s00000" / "sig.npy").write_bytes(b"")
    edges = sorted((work / "scratch" / "edges").glob("*.npy"))[-1]
    edges.write_bytes(edges.read_bytes()[:-8])
    capfd.readouterr()
    _dedup(shards, out)
    err = capfd.readouterr().err
    assert "task sign-00000 are incomplete" in err
    assert "incomplete" in err.replace("task sign-00000 are incomplete", "", 1)  # the bucket one
    _same_output(clean, out)


def test_band_files_equal_an_oracle_with_empty_and_null_rows(tmp_path: Path) -> None:
    """A sign task's band runs (both methods; rows without shingles: null, empty, blank)
    equal keys computed from scratch: signatures of the whole shard, band keys of the rows
    with shingles, numpy's stable sort."""
    import pyarrow as pa

    from dataprep import dataset
    from dataprep.dataset import Manifest, ShardWriter
    from dataprep.stages.dedup import lsh, minhash

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    texts = [" ".join(words[(i + k) % 10] + str(i % 7) for k in range(30)) for i in range(300)]
    for i in range(0, 300, 17):
        texts[i] = None  # type: ignore[call-overload]
    for i in range(5, 300, 23):
        texts[i] = "" if i % 2 else "   \n "
    table = pa.table({"id": [f"r{i}" for i in range(300)], "text": texts})
    src = tmp_path / "in"
    src.mkdir()
    writer = ShardWriter(src / "part-00000.parquet", table.schema)
    writer.write(table)
    dataset.write_manifest(src, Manifest(table.schema, [writer.close()]))
    out = tmp_path / "out"
    params = {"method": "both", "threshold": 0.7}
    _killed_at("_bucket", src, out, params)
    folder = out / ".dataprep" / "scratch" / "s00000"
    config = DedupConfig.parse(params)
    bands, rows = lsh.choose_bands(config.num_perm, config.threshold, config.recall)
    sig, counts = minhash.sign_text(
        table.column("text"), [s for s in config.normalize if s != "whitespace"],
        config.signature, config.num_perm, config.seed, config.ngram, config.char_ngram,
    )  # fmt: skip
    usable = counts > 0
    assert 0 < usable.sum() < 300 - 18
    keys = minhash.band_keys(sig[usable], bands, rows, config.seed)
    order = np.argsort(keys, axis=1, kind="stable")
    assert np.array_equal(np.load(folder / "bands.npy"), np.take_along_axis(keys, order, 1))
    want_rows = np.flatnonzero(usable)[order].astype(np.uint32)
    assert np.array_equal(np.load(folder / "bandrows.npy"), want_rows)
    assert np.array_equal(np.load(folder / "sig.npy")[usable], sig[usable])


def test_index_files_lost_in_a_crash_rerun_their_tasks(shards: Path, tmp_path: Path) -> None:
    """--index-out: an index task's staged keys cut short by a crash (its record on disk) are
    rebuilt on resume, so the saved index equals a clean run's (it was checksummed as cut)."""
    params = {**PARAMS, "index_out": str(tmp_path / "clean-idx")}
    run_stage(
        "dedup",
        DedupConfig.parse(params),
        tmp_path / "clean",
        input_path=shards,
        executor=make_executor("local", workers=1),
    )
    params["index_out"] = str(tmp_path / "idx")
    _killed_at("index.finish", shards, tmp_path / "out", params)
    staged = sorted((tmp_path / "out" / ".dataprep" / "index").glob("*.keys"))
    assert staged
    staged[-1].write_bytes(staged[-1].read_bytes()[:-16])
    run_stage(
        "dedup",
        DedupConfig.parse(params),
        tmp_path / "out",
        input_path=shards,
        executor=make_executor("local", workers=1),
    )
    clean = sorted(p.name for p in (tmp_path / "clean-idx").iterdir())
    assert clean == sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert not [n for n in clean if n.endswith(".sums")]
    for name in clean:
        if name != "index.json":
            assert (tmp_path / "idx" / name).read_bytes() == (
                tmp_path / "clean-idx" / name
            ).read_bytes(), name
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["files"] == json.loads((tmp_path / "clean-idx" / "index.json").read_text())["files"]
