"""Recipes: whole-recipe validation with one clear message, overrides, caching, --from."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import cli, column

from dataprep import recipe
from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    map_shards,
)
from dataprep.stages import BUILTIN

ROOT = Path(__file__).resolve().parents[1]


class UpperConfig(StageConfig):
    column: str = "text"


def upper_task(task: Task) -> TaskResult:
    table = pq.read_table(task.inputs[0])
    index = table.schema.get_field_index(task.config.column)
    table = table.set_column(index, task.config.column, pc.utf8_upper(table.column(index)))
    writer = ShardWriter(
        task.out / f"part-{task.index:05d}.parquet", table.schema, task.write_options
    )
    writer.write(table)
    return TaskResult([writer.close()], {}, table.schema)


class UpperStage(Stage):
    """A stage defined outside the package, as a plugin would be."""

    name = "upper"
    Config = UpperConfig

    def run(self, ctx: StageContext) -> StageResult:
        return map_shards(ctx, upper_task)


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTIN, "upper", f"{__name__}:UpperStage")


def _recipe(tmp_path: Path, corpus: Path, stages: list, **extra) -> Path:
    data = {
        "version": 1,
        "name": "t",
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(corpus), "text_column": "text"},
        "executor": {"kind": "local", "workers": 1},
        "stages": stages,
        **extra,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_chained_stages_cache_and_from(tmp_path: Path, corpus_dir: Path, plugin: None) -> None:
    path = _recipe(
        tmp_path,
        corpus_dir,
        [
            {"id": "shards", "op": "shard", "params": {"shard_rows": 500}},
            {"id": "loud", "op": "upper"},
        ],
    )
    runs = recipe.run(recipe.load(path))
    assert [r.status for r in runs] == ["ran", "ran"]
    work = tmp_path / "work"
    assert column(work / "loud", "text") == [t.upper() for t in column(work / "shards", "text")]
    lineage = json.loads((work / "loud/.manifest.json").read_text())["lineage"]
    assert [e["id"] for e in lineage] == ["shards", "loud"]

    assert [r.status for r in recipe.run(recipe.load(path))] == ["cached", "cached"]
    assert [r.status for r in recipe.run(recipe.load(path), force_from="loud")] == ["cached", "ran"]
    changed = recipe.run(recipe.load(path, ["shards.shard_rows=200"]))
    assert [r.status for r in changed] == ["ran", "ran"]
    assert len(json.loads((work / "shards/.manifest.json").read_text())["shards"]) >= 8


@pytest.mark.parametrize(
    ("stages", "override", "message"),
    [
        ([{"id": "a", "op": "shardz"}], [], "stage 'a': unknown stage 'shardz'"),
        (
            [{"id": "a", "op": "shard", "params": {"shard_rowz": 5}}],
            [],
            "params.shard_rowz: unknown key",
        ),
        (
            [{"id": "a", "op": "shard", "params": {"shard_rows": "many"}}],
            [],
            "shard_rows: Input should be a valid integer",
        ),
        ([{"id": "a", "op": "shard"}, {"id": "a", "op": "shard"}], [], "used twice"),
        ([{"id": "a", "op": "shard"}], ["b.shard_rows=3"], "no stage with id 'b'"),
        (
            [{"id": "a", "op": "shard"}],
            ["a.shard_rows=-3"],
            "shard_rows: Input should be greater than 0",
        ),
        (
            [{"id": "a", "op": "shard"}, {"id": "b", "op": "shard"}],
            [],
            "stage 'b': op 'shard' reads raw files",
        ),
    ],
)
def test_validation_names_stage_and_key(tmp_path, corpus_dir, stages, override, message) -> None:
    path = _recipe(tmp_path, corpus_dir, stages)
    with pytest.raises(DataprepError, match=message.replace("(", r"\(")):
        recipe.load(path, override)


def test_cli_validate_and_run_errors(tmp_path: Path, corpus_dir: Path) -> None:
    good = _recipe(tmp_path, corpus_dir, [{"id": "shards", "op": "shard"}])
    assert "ok" in cli("validate", good).stdout
    missing = _recipe(tmp_path, tmp_path / "no-such-dir", [{"id": "shards", "op": "shard"}])
    for command in ("validate", "run"):
        proc = cli(command, missing, check=False)
        assert proc.returncode == 2
        assert "stage 'shards': input:" in proc.stderr and "does not exist" in proc.stderr
        assert "Traceback" not in proc.stderr
    (tmp_path / "broken.yaml").write_text("stages: [unclosed\n")
    assert "not valid YAML" in cli("validate", tmp_path / "broken.yaml", check=False).stderr
    unknown = _recipe(tmp_path, corpus_dir, [{"id": "s", "op": "shard"}], extra_key=1)
    assert "extra_key: unknown key" in cli("validate", unknown, check=False).stderr


def test_quickstart_recipe_runs_from_the_repo(tmp_path: Path) -> None:
    """The README's main job, on the committed sample_data/, with the output under tmp."""
    raw = yaml.safe_load((ROOT / "pipelines/quickstart.yaml").read_text())
    raw["vars"]["root"] = str(tmp_path / "work")
    raw["input"]["path"] = str(ROOT / "sample_data")
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    summary = json.loads(cli("run", path, "--json").stdout)
    assert all(s["status"] == "ran" for s in summary)
    truth = json.loads((ROOT / "sample_data/corpus.json").read_text())
    assert summary[0]["report"]["rows_out"] == truth["docs"]
    assert summary[0]["report"]["quarantined"] == truth["malformed"]
    again = json.loads(cli("run", path, "--json", "-q").stdout)
    assert all(s["status"] == "cached" for s in again)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"compression": "zstd", "compression_level": 99}, "zstd levels run from"),
        ({"compression": "gzip", "compression_level": 0}, "gzip levels run from"),
    ],
)
def test_output_compression_level_is_checked(tmp_path, corpus_dir, output, message) -> None:
    path = _recipe(tmp_path, corpus_dir, [{"id": "a", "op": "shard"}], output=output)
    with pytest.raises(DataprepError, match=f"output.compression_level: .*{message}"):
        recipe.load(path, [])


def test_output_level_default_suits_every_codec(tmp_path, corpus_dir) -> None:
    for codec in ("zstd", "lz4", "snappy", "gzip", "brotli", "none"):
        path = _recipe(
            tmp_path, corpus_dir, [{"id": "a", "op": "shard"}], output={"compression": codec}
        )
        recipe.load(path, [])  # the default level 3 is ignored by codecs without levels


def test_one_executor_model_for_recipes_and_flags() -> None:
    """A recipe's `executor:` and the run options are one model (ExecutorSpec): flags override
    the recipe's keys, a bad flag is named as typed, a bad key as written in the recipe."""
    from dataprep.executors.spec import ExecutorSpec

    raw = {"vars": {"root": "/tmp/x"}, "input": {"path": "/tmp/in"}, "stages": []}
    raw["executor"] = {"kind": "ray", "address": "auto", "cpus_per_task": 2}
    raw["stages"] = [{"id": "s", "op": "shard"}]
    spec = recipe.build(raw).model.executor
    assert isinstance(spec, ExecutorSpec) and (spec.kind, spec.cpus_per_task) == ("ray", 2)
    local = spec.overridden(kind="local", workers=3, address=None)
    assert (local.kind, local.workers, local.address, local.max_retries) == ("local", 3, None, 2)
    with pytest.raises(DataprepError, match=r"^--workers: .*greater than 0"):
        spec.overridden(workers=0)
    raw["executor"] = {"workers": 0}
    with pytest.raises(DataprepError, match=r"executor\.workers: .*greater than 0"):
        recipe.build(raw)
    with pytest.raises(DataprepError, match="--address needs --executor ray"):
        ExecutorSpec(address="auto").build()
