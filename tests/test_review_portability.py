"""Review (H4): a dataset directory, or a whole recipe root, copied or moved elsewhere (`cp -r`,
`mv`, rsync) keeps working: verify, head, the reader, decrypting, a rerun that is a cache hit,
and `dataprep lineage`.

Everything inside a dataset is relative (shard names, `.keys/N`, `.tokenizer.json`), but each
lineage entry records its input's absolute location. After `mv work moved`, `dataprep
lineage moved/tok` said every ancestor "was deleted" and stopped reading their manifests,
though each sat beside it, unchanged. Now the walk also looks where the input would be if it
moved with its consumer (same relative place, or beside it), and takes it only when its
manifest has the digest the consumer recorded: a different dataset under that name is never
shown as the ancestor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from dataprep import dataset, lineage
from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:24]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/work/{shards,part,reb,enc} from real copyright files, and root/team.keys."""
    root = tmp_path_factory.mktemp("portable")
    raw = root / "raw.jsonl"
    with raw.open("w") as out:
        for i, doc in enumerate(DOCS):
            text = doc.read_bytes().decode("utf-8", "replace")
            out.write(json.dumps({"id": f"d{i}", "text": text, "label": "ab"[i % 2]}) + "\n")
    work = root / "work"
    run_stage("shard", {"shard_rows": 5}, work / "shards", inputs=[str(raw)])
    run_stage(
        "partition", {"key": "id", "partitions": 3}, work / "part", input_path=work / "shards"
    )
    run_stage("rebalance", {"shards": 2}, work / "reb", input_path=work / "part")
    cli("keygen", "-o", root / "team.keys", "--keys", "text")
    cli("encrypt", work / "reb", "-o", work / "enc", "-k", root / "team.keys", "-q")
    return root


def _chain(node: dict) -> list[dict]:
    out = [node]
    while node.get("inputs") and node["inputs"][0]["kind"] == "dataset":
        node = node["inputs"][0]
        out.append(node)
    return out


def _rows(path: Path) -> list[dict]:
    table = pa.concat_tables(
        pq.read_table(path / s.path) for s in dataset.read_manifest(path).shards
    )
    return sorted(table.to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("how", ["move", "copy"])
def test_lineage_follows_a_moved_or_copied_tree(tree: Path, tmp_path: Path, how: str) -> None:
    moved = tmp_path / "elsewhere" / "work"
    moved.parent.mkdir()
    shutil.copytree(tree / "work", moved)
    if how == "move":  # the old tree is gone: only the moved one can be found
        original = tmp_path / "original"
        shutil.copytree(tree / "work", original)
        old = tree / "work"
        shutil.rmtree(old)
    try:
        chain = _chain(lineage.of(moved / "enc"))
    finally:
        if how == "move":
            shutil.copytree(original, old)
    assert [n["stage"]["op"] for n in chain] == ["encrypt", "rebalance", "partition", "shard"]
    names = ["enc", "reb", "part", "shards"]
    if how == "move":
        assert all(n["available"] for n in chain), [n.get("note") for n in chain]
        assert [n["path"] for n in chain] == [str(moved / name) for name in names]
        assert [n.get("recorded_path") for n in chain[1:]] == [
            str(tree / "work" / name) for name in names[1:]
        ]
        assert "moved: recorded at" in chain[1]["note"]
    else:  # the original is still there with the same digest: it is what was recorded
        assert [n["path"] for n in chain[1:]] == [str(tree / "work" / n) for n in names[1:]]


def test_a_different_dataset_in_the_moved_place_is_not_taken_for_the_input(
    tree: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "work"
    shutil.copytree(tree / "work", moved)
    shutil.rmtree(moved / "part")  # another dataset under the input's name
    run_stage("rebalance", {"shards": 1}, moved / "part", input_path=moved / "shards")
    backup = tmp_path / "backup"
    shutil.move(tree / "work" / "part", backup)
    try:
        chain = _chain(lineage.of(moved / "reb"))
    finally:
        shutil.move(backup, tree / "work" / "part")
    part = chain[1]
    assert part["available"] is False and part["path"] == str(tree / "work" / "part")
    assert "was deleted" in part["note"]
    assert part["digest"] != dataset.read_manifest(moved / "part").digest()


def test_a_moved_dataset_verifies_reads_decrypts_and_reruns_as_a_cache_hit(
    tree: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "m"
    shutil.copytree(tree / "work", moved)
    keys = tmp_path / "keys.json"
    shutil.copy(tree / "team.keys", keys)
    for name in ("shards", "part", "reb", "enc"):
        assert cli("verify", moved / name, check=False).returncode == 0, name
    cli("decrypt", moved / "enc", "-o", moved / "dec", "-k", keys, "-q")
    assert _rows(moved / "dec") == _rows(tree / "work" / "reb")
    rerun = cli("rebalance", moved / "part", "-o", moved / "reb", "--shards", "2", "--json")
    assert json.loads(rerun.stdout)[0]["status"] == "cached"
    head = cli("head", moved / "enc", "-k", keys, "--jsonl", "-n", "3")
    assert len(head.stdout.splitlines()) == 3


def test_lineage_follows_a_tree_synced_to_s3(tree: Path, s3_bucket: str) -> None:
    """`dataprep sync` each dataset to s3://BUCKET/work/NAME: the chain is read there."""
    for name in ("shards", "part", "reb"):
        cli("sync", tree / "work" / name, f"{s3_bucket}/work/{name}", "-q")
    backup = tree / "gone"
    shutil.move(tree / "work" / "part", backup)  # the local input is gone: only S3 has it
    try:
        chain = _chain(lineage.of(f"{s3_bucket}/work/reb"))
    finally:
        shutil.move(backup, tree / "work" / "part")
    assert [n["path"] for n in chain[:2]] == [f"{s3_bucket}/work/{n}" for n in ("reb", "part")]
    assert chain[2]["path"] == str(tree / "work" / "shards")  # still where it was recorded
    assert all(n["available"] for n in chain)
    assert chain[1]["recorded_path"] == str(tree / "work" / "part")


RESUMED = [
    ("partition", {"key": "id", "partitions": 3}),
    ("rebalance", {"shards": 3, "shuffle": True}),
    ("rebalance", {"shards": 3, "by": "label"}),
    ("rebalance", {"target_bytes": 20_000}),
    ("resample", {"label": "label", "strategy": "oversample"}),
    ("tokenize", {"seq_len": 64}),
]


@pytest.mark.parametrize(
    ("op", "params"), RESUMED, ids=[f"{o}-{i}" for i, (o, _) in enumerate(RESUMED)]
)
def test_a_killed_run_moved_with_its_input_resumes_at_the_new_place(
    tree: Path, tmp_path: Path, op: str, params: dict
) -> None:
    """Task records and scratch live in OUT/.dataprep/ and name shards, not places: a half-
    done output moved together with its input (`mv work elsewhere`) resumes there, redoing
    only the unfinished task, into the same shards as an uninterrupted run."""
    from test_faults_records import CheckingExecutor, Crash

    source = tree / "work" / "shards"
    clean = tmp_path / "clean"
    with CheckingExecutor() as ex:
        run_stage(op, params, clean, input_path=source, executor=ex)
    first = tmp_path / "first"
    shutil.copytree(source, first / "in")
    with CheckingExecutor(crash_after=ex.committed - 1) as ex2, pytest.raises(Crash):
        run_stage(op, params, first / "out", input_path=first / "in", executor=ex2)
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    with CheckingExecutor() as ex3:
        run_stage(op, params, moved / "out", input_path=moved / "in", executor=ex3)
    assert ex3.committed == 1, "only the unfinished task reruns"
    sums = [s.xxh3_128 for s in dataset.read_manifest(moved / "out").shards]
    assert sums == [s.xxh3_128 for s in dataset.read_manifest(clean).shards]


def test_a_checkpoint_moved_with_its_data_finds_it(tree: Path, tmp_path: Path) -> None:
    """A project copied elsewhere (root/{work/reb, runs/r/checkpoints/step-N}): the
    checkpoint's data is found where it sits relative to the run, by its digest."""
    from dataprep.train.provenance import data_record

    project = tmp_path / "project"
    shutil.copytree(tree / "work", project / "work")
    step = project / "runs" / "r" / "checkpoints" / "step-00000004"
    step.mkdir(parents=True)
    state = {
        "step": 4,
        "config": {"data": str(project / "work" / "reb"), "out": str(project / "runs" / "r")},
        "data": {"train": data_record(str(project / "work" / "reb")), "eval": None},
    }
    (step / lineage.CHECKPOINT_STATE).write_text(json.dumps(state))
    moved = tmp_path / "elsewhere"
    shutil.move(project, moved)
    node = lineage.of(moved / "runs" / "r")
    train = node["data"]["train"]
    assert train["available"] and train["path"] == str(moved / "work" / "reb"), train.get("note")
    assert train["recorded_path"] == str(project / "work" / "reb")
    assert [n["stage"]["op"] for n in _chain(train)] == ["rebalance", "partition", "shard"]


def test_relative_raw_inputs_of_a_moved_project_recheck_unchanged(tmp_path: Path) -> None:
    """`dataprep shard raw.jsonl -o work/shards` run in a project folder, the project then
    moved (mtimes kept, as mv, cp -a and rsync -a do): the raw files are re-checked where the
    project now is, not reported missing at the old working directory."""
    import contextlib

    project = tmp_path / "project"
    (project / "work").mkdir(parents=True)
    lines = [
        json.dumps({"id": f"d{i}", "text": d.read_text(errors="replace")})
        for i, d in enumerate(DOCS[:6])
    ]
    (project / "raw.jsonl").write_text("\n".join(lines) + "\n")
    with contextlib.chdir(project):
        run_stage("shard", {"shard_rows": 3}, project / "work" / "shards", inputs=["raw.jsonl"])
    run_stage(
        "partition",
        {"key": "id", "partitions": 2},
        project / "work" / "part",
        input_path=project / "work" / "shards",
    )
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)  # copy2: mtimes kept
    shutil.rmtree(project)
    raw = _chain(lineage.of(moved / "work" / "part"))[-1]["inputs"][0]
    assert raw["kind"] == "raw" and raw["check"] == "unchanged", raw["note"]
    assert raw["paths"] == [str(moved / "raw.jsonl")]
    assert f"recorded {project}" in raw["note"]


def test_lineage_follows_a_tree_copied_between_buckets(tree: Path, s3_server: str) -> None:
    """Stages run on s3://lineage-one/work, the tree then copied to s3://lineage-two/proj/work
    (sync S3 to S3) and the first bucket emptied: the chain is read at the second bucket."""
    import boto3

    s3 = boto3.resource("s3")
    for bucket in ("lineage-one", "lineage-two"):
        s3.create_bucket(Bucket=bucket)
    one = "s3://lineage-one/work"
    run_stage("rebalance", {"shards": 2}, f"{one}/part", input_path=tree / "work" / "shards")
    run_stage("partition", {"key": "id", "partitions": 2}, f"{one}/reb", input_path=f"{one}/part")
    for name in ("part", "reb"):
        cli("sync", f"{one}/{name}", f"s3://lineage-two/proj/work/{name}", "-q")
    s3.Bucket("lineage-one").objects.all().delete()
    chain = _chain(lineage.of("s3://lineage-two/proj/work/reb"))
    paths = [n["path"] for n in chain]
    assert paths[:2] == [f"s3://lineage-two/proj/work/{n}" for n in ("reb", "part")]
    assert all(n["available"] for n in chain)
    assert chain[1]["recorded_path"] == f"{one}/part"
