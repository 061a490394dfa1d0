"""Remote storage end to end, against a real S3-compatible server (moto's server mode).

The same recipe runs once on local disk and once with its input and every output on s3://;
the shards must come out byte-identical, the reader must stream them from s3, and a failed
stage must leave no manifest on the object store and resume when rerun.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import yaml
from helpers import cli

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage
from dataprep.storage import StoragePath, copy_file

STAGES = [
    {"id": "shards", "op": "shard", "params": {"shard_rows": 400}},
    {"id": "exact", "op": "dedup", "params": {"method": "exact"}},
    # key-range bucket tasks: on s3 each reads its part of every band file by ranged reads
    {"id": "near", "op": "dedup", "params": {"method": "minhash", "band_part_rows": 300}},
    {
        "id": "balanced",
        "op": "resample",
        "params": {"label": "label", "strategy": "oversample", "max_ratio": 10},
    },
    {"id": "even", "op": "rebalance", "params": {"shards": 3, "shuffle": True}},
    {"id": "parts", "op": "partition", "params": {"key": "id", "partitions": 4}},
    {"id": "packed", "op": "compress", "params": {"codec": "zstd", "level": 9}},
    {"id": "tokens", "op": "tokenize", "params": {"seq_len": 64, "tokenizer": "bpe"}},
]


def upload(local: Path, uri: str) -> None:
    for file in sorted(local.rglob("*")):
        if file.is_file():
            (StoragePath(uri) / file.relative_to(local).as_posix()).write_atomic(file.read_bytes())


def recipe_file(tmp: Path, name: str, root: str, source: str) -> Path:
    path = tmp / f"{name}.yaml"
    recipe = {
        "version": 1,
        "name": name,
        "vars": {"root": root},
        "input": {"path": source, "text_column": "text"},
        "executor": {"kind": "local", "workers": 2},
        "stages": STAGES,
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def halves(source: str, root: str) -> tuple[str, str]:
    """Two datasets holding the first and the second half of `source`'s shards."""
    manifest = dataset.read_manifest(source)
    half = len(manifest.shards) // 2
    parts = {f"{root}/first": manifest.shards[:half], f"{root}/second": manifest.shards[half:]}
    for out, shards in parts.items():
        for shard in shards:
            copy_file(StoragePath(source) / shard.path, StoragePath(out) / shard.path)
        dataset.write_manifest(out, dataset.Manifest(manifest.schema, shards))
    return f"{root}/first", f"{root}/second"


def checksums(root: str) -> list[str]:
    return [s.xxh3_128 for s in dataset.read_manifest(root).shards]


@pytest.fixture(scope="module")
def both_runs(
    s3_server: str, corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    import boto3

    tmp = tmp_path_factory.mktemp("s3run")
    boto3.client("s3").create_bucket(Bucket="pipeline")
    raw = "s3://pipeline/raw"
    upload(corpus_dir, raw)
    local_root = tmp / "work"
    cli("run", recipe_file(tmp, "local", str(local_root), str(corpus_dir)), "--quiet")
    cli("run", recipe_file(tmp, "remote", "s3://pipeline/work", raw), "--quiet")
    return local_root, "s3://pipeline/work"


def test_recipe_on_s3_matches_local_byte_for_byte(both_runs: tuple[Path, str]) -> None:
    local_root, remote_root = both_runs
    for stage in STAGES:
        local = checksums(str(local_root / stage["id"]))
        remote = checksums(f"{remote_root}/{stage['id']}")
        assert local and local == remote, stage["id"]
    near = dataset.read_manifest(f"{remote_root}/near")
    assert near.rows < dataset.read_manifest(f"{remote_root}/exact").rows  # dedup removed rows
    # the BPE tokenizer was written beside the shards on s3, and is the same file
    assert (StoragePath(remote_root) / "tokens" / ".tokenizer.json").read_bytes() == (
        local_root / "tokens" / ".tokenizer.json"
    ).read_bytes()
    # scratch space (dedup bucket files, task records) is gone once the manifest exists
    assert not (StoragePath(remote_root) / "near" / dataset.WORK_DIR).walk_files()
    quarantine = (StoragePath(remote_root) / "shards" / dataset.QUARANTINE).read_text()
    assert quarantine == (local_root / "shards" / dataset.QUARANTINE).read_text()
    assert all(json.loads(line)["source"] for line in quarantine.splitlines())


def test_verify_and_reader_stream_from_s3(both_runs: tuple[Path, str]) -> None:
    torch = pytest.importorskip("torch")
    from dataprep.loader import ShardDataset, make_dataloader

    local_root, remote_root = both_runs
    assert dataset.verify_dataset(f"{remote_root}/tokens").rows > 0

    def blocks(root: str) -> np.ndarray:
        ds = ShardDataset(root, columns=["tokens"], batch_size=16, shuffle=True, seed=3)
        batches = list(make_dataloader(ds, num_workers=2))
        return torch.cat([b["tokens"] for b in batches]).numpy()

    remote = blocks(f"{remote_root}/tokens")
    assert np.array_equal(remote, blocks(str(local_root / "tokens")))
    assert len(remote) == dataset.read_manifest(f"{remote_root}/tokens").rows


def test_failed_stage_leaves_no_manifest_on_s3_and_resumes(
    both_runs: tuple[Path, str],
) -> None:
    _, remote_root = both_runs
    source = f"{remote_root}/even"
    shards = dataset.read_manifest(source).shards
    missing = StoragePath(source) / shards[1].path
    saved = missing.read_bytes()
    missing.unlink()
    out = f"{remote_root}/recompressed"
    inline = LocalExecutor(workers=1)  # tasks in order, so exactly shard 0 is done at failure
    with pytest.raises(DataprepError, match=shards[1].path):
        run_stage("compress", {"codec": "gzip"}, out, input_path=source, executor=inline)
    assert not (StoragePath(out) / dataset.MANIFEST).exists()
    done = (StoragePath(out) / dataset.WORK_DIR / "tasks").glob("*.json")
    assert [p.name for p in done] == ["compress-00000.json"]  # the shard before the missing one
    missing.write_atomic(saved)
    run = run_stage("compress", {"codec": "gzip"}, out, input_path=source, executor=inline)
    assert run.status == "ran"
    manifest = dataset.read_manifest(out)
    assert manifest.rows == dataset.read_manifest(source).rows
    assert dataset.verify_dataset(out).shards == len(shards)
    filesystem, path = pafs.FileSystem.from_uri(out)
    names = {i.base_name for i in filesystem.get_file_info(pafs.FileSelector(path))}
    assert names == {dataset.MANIFEST, dataset.REPORT, *(s.path for s in manifest.shards)}


def test_incremental_dedup_index_on_s3_matches_local(
    both_runs: tuple[Path, str], tmp_path: Path
) -> None:
    """--index-out / --against with the index, the outputs and the scratch all on s3."""
    local_root, remote_root = both_runs
    roots = {"local": str(tmp_path), "s3": f"{remote_root}/incremental"}
    kept: dict[str, list[str]] = {}
    for where, root in roots.items():
        base = str(local_root) if where == "local" else remote_root
        first, second = halves(f"{base}/shards", root)
        params = {"method": "both", "index_out": f"{root}/index"}
        run_stage("dedup", params, f"{root}/old", input_path=first)
        params = {"method": "both", "against": f"{root}/index"}
        run = run_stage("dedup", params, f"{root}/new", input_path=second)
        alone = run_stage("dedup", {"method": "both"}, f"{root}/alone", input_path=second)
        assert run.report["against"]["rows_matching_index"] > 0
        assert 0 < run.report["rows_out"] < alone.report["rows_out"]
        kept[where] = sorted(dataset.read_rows(f"{root}/new", ["id"]).column("id").to_pylist())
    assert kept["s3"] == kept["local"]
    index = StoragePath(roots["s3"]) / "index"
    assert sorted(p.name for p in index.iterdir())[:2] == ["band-000.ids", "band-000.keys"]
    assert json.loads((index / "index.json").read_text())["rows"] > 0


def test_unreachable_storage_is_one_line(both_runs: tuple[Path, str]) -> None:
    local_root, _ = both_runs
    proc = cli("compress", local_root / "shards", "-o", "s3://no-such-bucket/out", check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bucket does not exist" in proc.stderr and proc.stderr.startswith("error:")
