"""Issue 15: encryption composes across stages, recipes name their own keys, check columns
before any data is read, expand and override vars, and failed runs leave no empty output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import cli, restored_env

from dataprep import recipe
from dataprep.crypto import generate_key_file
from dataprep.dataset import is_dataset, read_manifest
from dataprep.errors import DataprepError
from dataprep.runner import run_stage

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("pos", "neg", "mid")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small JSONL corpus: id, text, label (strings), n (numbers)."""
    folder = tmp_path_factory.mktemp("raw")
    lines = [
        json.dumps(
            {
                "id": f"d{i}",
                "text": f"document {i} says " + "words and more words " * (1 + i % 5),
                "label": LABELS[i % 3],
                "n": i,
            }
        )
        for i in range(60)
    ]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def ds(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "shards"
    run_stage("shard", {"shard_rows": 25}, out, inputs=[str(raw)])
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    generate_key_file(path)
    return path


def _write(tmp_path: Path, data: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _recipe(tmp_path: Path, raw: Path, stages: list, **extra) -> Path:
    data = {
        "version": 1,
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(raw)},
        "executor": {"kind": "local", "workers": 1},
        "stages": stages,
        **extra,
    }
    return _write(tmp_path, data)


# --- item 1: encryption composes ------------------------------------------------------------


def test_encrypted_dataset_tokenizes_with_every_new_column_encrypted(
    ds: Path, keys: Path, tmp_path: Path
) -> None:
    """encrypt && tokenize -k: the new `tokens` column is encrypted, the report says so."""
    enc = tmp_path / "enc"
    cli("encrypt", ds, "-o", enc, "-k", keys, "-q", "--columns", "text")
    proc = cli("tokenize", enc, "-o", tmp_path / "tok", "-k", keys, "--seq-len", "16", "--json")
    report = json.loads(proc.stdout)[0]["report"]
    assert report["encryption"] == {
        "columns": ["tokens"],
        "dropped": ["text"],
        "added": ["tokens"],
    }
    assert read_manifest(tmp_path / "tok").encryption["plaintext_columns"] == []
    # truncate keeps the other columns: what was plaintext stays so, text stays encrypted
    trunc = run_stage(
        "tokenize",
        {"seq_len": 16, "mode": "truncate"},
        tmp_path / "trunc",
        input_path=enc,
        key_file=str(keys),
    )
    enc_out = read_manifest(tmp_path / "trunc").encryption
    assert sorted(enc_out["plaintext_columns"]) == ["id", "label", "n"]
    assert sorted(trunc.report["encryption"]["columns"]) == ["length", "text", "tokens"]


def test_recipe_key_file_reaches_encrypt_and_later_stages(
    raw: Path, keys: Path, tmp_path: Path
) -> None:
    stages = [
        {"id": "shards", "op": "shard", "params": {"shard_rows": 25}},
        {"id": "enc", "op": "encrypt"},
        {"id": "tok", "op": "tokenize", "params": {"seq_len": 16}},
    ]
    path = _recipe(tmp_path, raw, stages, key_file="${env:I15_KEYS}")
    with restored_env(["I15_KEYS"]):
        os.environ["I15_KEYS"] = str(keys)
        runs = recipe.run(recipe.load(path))
    assert [r.status for r in runs] == ["ran", "ran", "ran"]
    assert read_manifest(tmp_path / "work/tok").encryption["column_keys"]
    # per stage, next to params; `run --key-file` wins over a recipe's missing file
    stages[1]["key_file"] = str(tmp_path / "nope.json")
    stages[2]["key_file"] = str(keys)
    path = _recipe(tmp_path, raw, stages)
    proc = cli("validate", path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stage 'enc'" in proc.stderr and "nope.json does not exist" in proc.stderr
    proc = cli("run", path, "--key-file", keys, "--json", "-q")
    assert [r["status"] for r in json.loads(proc.stdout)] == ["cached", "cached", "cached"]


def test_validate_catches_a_stage_that_needs_a_key_file(
    raw: Path, keys: Path, tmp_path: Path
) -> None:
    stages = [
        {"id": "shards", "op": "shard"},
        {"id": "enc", "op": "encrypt", "params": {"key_file": str(keys)}},
        {"id": "tok", "op": "tokenize"},
    ]
    proc = cli("validate", _recipe(tmp_path, raw, stages), check=False)
    assert proc.returncode == 2
    assert "stage 'tok'" in proc.stderr and "key file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_validate_catches_decrypt_without_key_file(raw: Path, keys: Path, tmp_path: Path) -> None:
    stages = [
        {"id": "shards", "op": "shard"},
        {"id": "enc", "op": "encrypt", "params": {"key_file": str(keys)}},
        {"id": "dec", "op": "decrypt"},
    ]
    proc = cli("validate", _recipe(tmp_path, raw, stages), check=False)
    assert proc.returncode == 2
    assert "stage 'dec'" in proc.stderr and "key_file" in proc.stderr


# --- item 6: recipes ------------------------------------------------------------------------


def test_validate_checks_columns_against_each_stage_schema(raw: Path, tmp_path: Path) -> None:
    """A column a stage names is checked against the schema it will see, before any data."""
    cases = [
        ([{"id": "p", "op": "partition", "params": {"key": "idd", "partitions": 2}}], "key"),
        ([{"id": "d", "op": "dedup", "params": {"text_column": "body"}}], "text_column"),
        ([{"id": "d", "op": "dedup", "params": {"keep": "max:score"}}], "keep"),
        (
            [{"id": "r", "op": "resample", "params": {"label": "lbl", "strategy": "weights"}}],
            "label",
        ),
        (
            [
                {"id": "t", "op": "tokenize", "params": {"seq_len": 16}},
                {"id": "p", "op": "partition", "params": {"key": "label", "partitions": 2}},
            ],
            "key",
        ),
    ]
    for later, key in cases:
        stages = [{"id": "shards", "op": "shard"}, *later]
        path = _recipe(tmp_path, raw, stages)
        with pytest.raises(DataprepError) as info:
            recipe.check_inputs(recipe.load(path))
        message = str(info.value)
        assert f"stages[{len(stages) - 1}].params.{key}" in message, message
        assert "--" not in message, message
        assert not (tmp_path / "work").exists()
    # the weights column a resample adds is seen by the next stage
    stages = [
        {"id": "shards", "op": "shard"},
        {"id": "r", "op": "resample", "params": {"label": "label", "strategy": "weights"}},
        {"id": "p", "op": "partition", "params": {"key": "sample_weight", "partitions": 2}},
    ]
    recipe.check_inputs(recipe.load(_recipe(tmp_path, raw, stages)))


def test_runtime_error_in_a_recipe_names_the_recipe_key(raw: Path, tmp_path: Path) -> None:
    stages = [
        {"id": "shards", "op": "shard", "params": {"shard_rows": 25}},
        {"id": "d", "op": "dedup", "params": {"method": "exact", "keep": "max:text"}},
    ]
    proc = cli("run", _recipe(tmp_path, raw, stages), "-q", check=False)
    assert proc.returncode == 2
    assert "stages[1].params.keep" in proc.stderr and "--keep" not in proc.stderr


def test_set_overrides_vars(raw: Path, tmp_path: Path) -> None:
    path = _recipe(tmp_path, raw, [{"id": "shards", "op": "shard"}])
    plan = recipe.load(path, [f"vars.root={tmp_path / 'elsewhere'}"])
    assert Path(str(plan.stages[0].out)) == tmp_path / "elsewhere/shards"


def test_recipe_reference_is_up_to_date() -> None:
    from dataprep.reference import render

    committed = (ROOT / "docs/recipe-reference.md").read_text()
    assert committed == render(), "run `dataprep params > docs/recipe-reference.md`"
    assert "| `text_column` | str | `'text'` |" in committed
    assert "ngram" in committed and ">= 1" in committed


# --- item 10: recipe variables --------------------------------------------------------------


def test_vars_expand_env_and_the_cache_follows_them(raw: Path, tmp_path: Path) -> None:
    data = {
        "vars": {"root": "${env:I15_ROOT}", "sub": "${root}/inner"},
        "input": {"path": str(raw)},
        "stages": [{"id": "shards", "op": "shard", "params": {"shard_rows": 25}}],
    }
    path = _write(tmp_path, data)
    statuses = []
    for name in ("x", "y"):
        with restored_env(["I15_ROOT"]):
            os.environ["I15_ROOT"] = str(tmp_path / name)
            statuses += [r.status for r in recipe.run(recipe.load(path))]
    assert statuses == ["ran", "ran"]
    assert is_dataset(tmp_path / "x/shards") and is_dataset(tmp_path / "y/shards")
    assert not list(tmp_path.glob("$*"))


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"a": "${b}", "b": "${a}"}, "vars: a -> b -> a is a cycle"),
        ({"root": "${root}/x"}, "vars: root -> root is a cycle"),
        ({"root": "${env:I15_SURELY_UNSET}"}, "I15_SURELY_UNSET is not set"),
    ],
)
def test_bad_vars_are_one_sentence(raw: Path, tmp_path: Path, variables, message) -> None:
    data = {"vars": variables, "input": {"path": str(raw)}, "stages": [{"id": "s", "op": "shard"}]}
    proc = cli("validate", _write(tmp_path, data), check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- item 8: failed runs leave no empty output directory -----------------------------------


def test_failed_run_leaves_no_new_output_directory(ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "deep/parts"
    proc = cli("partition", ds, "-o", out, "--key", "idd", "--partitions", "2", check=False)
    assert proc.returncode == 2 and "--key 'idd' is not a column" in proc.stderr
    assert not (tmp_path / "deep").exists()
    # a directory that was there before stays, emptied of nothing
    (tmp_path / "mine").mkdir()
    proc = cli("dedup", ds, "-o", tmp_path / "mine", "--keep", "max:text", check=False)
    assert proc.returncode == 2
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())
    # a failure once the stage has started (its output prepared, no task done) leaves nothing
    proc = cli("dedup", ds, "-o", tmp_path / "dd", "--keep", "max:text", check=False)
    assert proc.returncode == 2 and not (tmp_path / "dd").exists()
