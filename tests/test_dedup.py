"""The dedup stage end to end: real shards, real processes, results checked against oracles
(plain-Python exact dedup, the sample corpus's known clusters, brute-force Jaccard)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from dataprep import dataset
from dataprep.dataset import Manifest, ShardWriter
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.dedup import DedupConfig


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dedup") / "shards"
    run_stage(
        "shard",
        {"shard_rows": 250},
        out,
        inputs=[str(corpus_dir)],
        executor=make_executor("local", workers=1),
    )
    return out


def make_dataset(root: Path, tables: list[pa.Table]) -> Path:
    """A dataset directory from in-memory tables, one shard each."""
    root.mkdir(parents=True)
    entries = []
    for i, table in enumerate(tables):
        writer = ShardWriter(root / f"part-{i:05d}.parquet", tables[0].schema)
        writer.write(table)
        entries.append(writer.close())
    dataset.write_manifest(root, Manifest(tables[0].schema, entries))
    return root


def dedup(src: Path, out: Path, workers: int = 1, **params: object):
    return run_stage(
        "dedup",
        DedupConfig.parse(dict(params)),
        out,
        input_path=src,
        executor=make_executor("local", workers=workers),
    )


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_exact_matches_python_oracle(shards: Path, tmp_path: Path) -> None:
    rows = dataset.read_rows(shards).to_pylist()
    seen: set[str] = set()
    expected = []
    for row in rows:  # first occurrence in (shard, row) order survives
        key = norm(row["text"])
        if key not in seen:
            seen.add(key)
            expected.append(row["id"])
    run = dedup(shards, tmp_path / "exact", method="exact", normalize="lowercase,whitespace")
    got = dataset.read_rows(tmp_path / "exact", ["id"]).column("id").to_pylist()
    assert got == expected
    assert run.report["exact_duplicates"] == len(rows) - len(expected) > 0
    assert dataset.verify_dataset(tmp_path / "exact").rows == len(expected)


def _truth(shards: Path) -> tuple[list[dict], dict[int, int]]:
    rows = dataset.read_rows(shards).to_pylist()
    return rows, {i: r["cluster"] for i, r in enumerate(rows)}


def test_minhash_against_known_clusters(shards: Path, tmp_path: Path) -> None:
    rows, _ = _truth(shards)
    run = dedup(shards, tmp_path / "near", method="both")
    kept = set(dataset.read_rows(tmp_path / "near", ["id"]).column("id").to_pylist())
    by_cluster: dict[int, list[dict]] = {}
    for row in rows:
        by_cluster.setdefault(row["cluster"], []).append(row)
    removed = [r for r in rows if r["id"] not in kept]
    # precision: every removed row has a true cluster-mate
    precise = sum(len(by_cluster[r["cluster"]]) > 1 for r in removed) / len(removed)
    # every true cluster keeps at least one row
    assert all(any(m["id"] in kept for m in members) for members in by_cluster.values())
    assert precise >= 0.98
    rep = run.report
    assert rep["lsh"]["bands"] * rep["lsh"]["rows"] <= 128
    assert rep["lsh"]["s_curve"]["0.80"] >= 0.95
    assert set(rep["by_source"]) == {r["source"] for r in rows}
    assert sum(v["removed"] for v in rep["by_source"].values()) == len(removed)
    assert rep["examples"] and all("estimated_jaccard" in e for e in rep["examples"])
    assert set(rep["phases"]) == {"sign", "bucket", "cluster", "write"}
    assert sum(int(k.rstrip("+")) * v for k, v in rep["cluster_sizes"].items()) > len(removed)


def test_same_rows_whatever_the_workers(shards: Path, tmp_path: Path) -> None:
    a = dedup(shards, tmp_path / "one", workers=1, method="both", keep="max:quality")
    b = dedup(
        shards, tmp_path / "two", workers=2, method="both", keep="max:quality", merge_rows=1000
    )
    ids_a = dataset.read_rows(tmp_path / "one", ["id"]).column("id").to_pylist()
    ids_b = dataset.read_rows(tmp_path / "two", ["id"]).column("id").to_pylist()
    assert ids_a == ids_b
    assert a.report["clusters"] == b.report["clusters"]
    # bands cut into key-range tasks (read through the fences) find the very same clusters
    c = dedup(
        shards,
        tmp_path / "parts",
        workers=2,
        method="both",
        keep="max:quality",
        band_part_rows=300,
        merge_rows=1000,
    )
    assert c.report["bucket_tasks"] > 4 * a.report["bucket_tasks"]
    assert dataset.read_rows(tmp_path / "parts", ["id"]).column("id").to_pylist() == ids_a
    for key in ("clusters", "cluster_sizes", "exact_duplicates", "duplicates_removed"):
        assert c.report[key] == a.report[key], key
    for key in ("candidate_pairs", "rejected_by_verify"):
        assert c.report["lsh"][key] == a.report["lsh"][key], key


def test_mark_only_and_keep_policies(shards: Path, tmp_path: Path) -> None:
    dedup(shards, tmp_path / "mark", mark_only=True, keep="max:quality")
    table = dataset.read_rows(tmp_path / "mark")
    assert table.num_rows == dataset.read_manifest(shards).rows
    df = table.select(["id", "quality", "text", "dup_cluster", "dup_keep"]).to_pylist()
    groups: dict[int, list[dict]] = {}
    for row in df:
        if row["dup_cluster"] is None:
            assert row["dup_keep"]
        else:
            groups.setdefault(row["dup_cluster"], []).append(row)
    assert groups
    for members in groups.values():
        assert len(members) > 1
        kept = [m for m in members if m["dup_keep"]]
        assert len(kept) == 1
        assert kept[0]["quality"] == max(m["quality"] for m in members)
    dedup(shards, tmp_path / "long", mark_only=True, keep="longest")
    longest = dataset.read_rows(tmp_path / "long").to_pylist()
    clusters: dict[int, list[dict]] = {}
    for row in longest:
        if row["dup_cluster"] is not None:
            clusters.setdefault(row["dup_cluster"], []).append(row)
    for members in clusters.values():
        kept = [m for m in members if m["dup_keep"]]
        assert len(kept[0]["text"]) == max(len(m["text"]) for m in members)


def test_signature_datasketch_mode_runs_the_stage(shards: Path, tmp_path: Path) -> None:
    fast = dedup(shards, tmp_path / "fast", method="minhash")
    ref = dedup(shards, tmp_path / "ds", method="minhash", signature="datasketch")
    # Two independent hashings of the same data: nearly the same decisions.
    assert abs(fast.report["rows_out"] - ref.report["rows_out"]) <= 0.01 * ref.report["rows_in"]


def test_bad_rows_quarantined_and_no_duplicates(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "text": ["the first unique document here", None, "another different text", None],
            "source": ["x", "x", "y", "y"],
        }
    )
    src = make_dataset(tmp_path / "in", [table])
    run = dedup(src, tmp_path / "out", method="both")
    assert run.report["quarantined"] == 2
    assert run.report["rows_out"] == 2
    assert run.report["message"] == "no duplicates found"
    lines = (tmp_path / "out" / ".quarantine.jsonl").read_text().splitlines()
    assert [json.loads(x)["line"] for x in lines] == [1, 3]


def test_empty_input(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    src = tmp_path / "empty"
    src.mkdir()
    dataset.write_manifest(src, Manifest(schema, []))
    run = dedup(src, tmp_path / "out", method="both", index_out=str(tmp_path / "idx"))
    assert run.report["rows_out"] == 0
    assert run.report["message"] == "no rows to dedup"
    assert dataset.read_manifest(tmp_path / "out").rows == 0


def test_incremental_index(shards: Path, tmp_path: Path) -> None:
    manifest = dataset.read_manifest(shards)
    half = len(manifest.shards) // 2
    old = [pq.read_table(shards / s.path) for s in manifest.shards[:half]]
    new = [pq.read_table(shards / s.path) for s in manifest.shards[half:]]
    old_ds = make_dataset(tmp_path / "old", old)
    new_ds = make_dataset(tmp_path / "new", new)
    idx = tmp_path / "idx"
    dedup(old_ds, tmp_path / "old-out", method="both", index_out=str(idx))
    both_alone = dedup(new_ds, tmp_path / "new-alone", method="both")
    run = dedup(new_ds, tmp_path / "new-out", method="both", against=str(idx))
    assert run.report["against"]["rows_matching_index"] > 0
    assert run.report["rows_out"] < both_alone.report["rows_out"]
    # exact oracle: no kept new row repeats an old kept row's normalised text
    old_kept = {
        norm(t)
        for t in dataset.read_rows(tmp_path / "old-out", ["text"]).column("text").to_pylist()
    }
    new_kept = dataset.read_rows(tmp_path / "new-out", ["text"]).column("text").to_pylist()
    assert not old_kept & {norm(t) for t in new_kept}
    # a whole-corpus run keeps the same clusters: old+new index == dedup of everything
    full = dedup(shards, tmp_path / "full", method="both")
    kept_twice = dataset.read_manifest(tmp_path / "old-out").rows + run.report["rows_out"]
    assert abs(kept_twice - full.report["rows_out"]) <= 0.01 * full.report["rows_in"]


def test_index_checksum_and_settings_are_checked(shards: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    dedup(shards, tmp_path / "a", index_out=str(idx))
    with pytest.raises(DataprepError, match="num_perm"):
        dedup(shards, tmp_path / "b", against=str(idx), num_perm=64)
    with pytest.raises(DataprepError, match="exact"):
        dedup(shards, tmp_path / "c", against=str(idx), method="exact")
    keys = idx / "band-000.keys"
    data = bytearray(keys.read_bytes())
    data[0] ^= 0xFF
    keys.write_bytes(bytes(data))
    with pytest.raises(DataprepError, match="checksum"):
        dedup(shards, tmp_path / "d", against=str(idx))


def test_char_ngrams_and_cached_rerun(shards: Path, tmp_path: Path) -> None:
    first = dedup(shards, tmp_path / "chars", char_ngram=8, verify=True)
    assert first.status == "ran" and first.report["rows_out"] < first.report["rows_in"]
    again = dedup(shards, tmp_path / "chars", char_ngram=8, verify=True)
    assert again.status == "cached"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text-column", "nosuch"], "--text-column 'nosuch' is not a column"),
        (["--keep", "max:text"], "numeric or date"),
        (["--keep", "biggest"], "first, longest"),
        (["--bands", "40", "--rows", "4"], "bands x rows"),
        (["--method", "fuzzy"], "method"),
    ],
)
def test_cli_errors_are_one_line(shards: Path, tmp_path: Path, args: list[str], message: str):
    proc = cli("dedup", shards, "-o", tmp_path / "o", "-q", *args, check=False)
    assert proc.returncode == 2, (proc.args, proc.stdout, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_prints_summary(shards: Path, tmp_path: Path) -> None:
    proc = cli("dedup", shards, "-o", tmp_path / "o", "--method", "both", "-w", "1")
    assert proc.returncode == 0, proc.stderr
    assert "catch probability" in proc.stdout and "J=0.80" in proc.stdout
    report = json.loads((tmp_path / "o" / ".report.json").read_text())
    assert report["rows_out"] < report["rows_in"]
    assert np.isclose(sum(report["lsh"]["s_curve"].values()) > 0, True)
