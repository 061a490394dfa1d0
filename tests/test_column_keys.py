"""Per-column master keys and partial key files, on real encrypted shards of real text.

Oracle: the plaintext dataset the encrypted one was made from, read with plain pyarrow. The
labelling team's key file (footer key + the `label` key) must read `id` (plaintext) and `label`
exactly as the plaintext has them, and any read of `text` must stop with one sentence naming
the column and the key id it needs, in the library, the loader, `export`, and stages.
"""

from __future__ import annotations

import glob
import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprep import crypto, dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from tests.helpers import cli

INLINE = make_executor("local", workers=1)
SENTENCE = (
    r"column text is encrypted with key 'text-[0-9a-f]{8}', which key file .*lab\.keys "
    "does not hold"
)


def _license_rows(path: Path) -> int:
    """Paragraphs of the licences in /usr/share/common-licenses as id, text, label rows."""
    rows = []
    for name in sorted(glob.glob("/usr/share/common-licenses/*")):
        if not os.path.isfile(name):
            continue
        base = os.path.basename(name)
        parts = [p for p in Path(name).read_text(errors="replace").split("\n\n") if p.strip()]
        rows += [
            {"id": f"{base}-{i}", "text": p, "label": base.split("-")[0]}
            for i, p in enumerate(parts)
        ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("colkeys")
    rows = _license_rows(tmp / "in.jsonl")
    assert rows > 200
    plain = tmp / "plain"
    run_stage(
        "shard", {"shard_bytes": 40_000}, plain, inputs=[str(tmp / "in.jsonl")], executor=INLINE
    )
    keys = tmp / "all.keys"
    cli("keygen", "-o", keys, "--keys", "text,label")
    enc = tmp / "enc"
    cli("encrypt", plain, "-o", enc, "-k", keys, "--columns", "text:text,label:label", "-w", "1")
    lab = tmp / "lab.keys"
    cli("keys", "export-subset", keys, "--keys", "label", "-o", lab)
    return {"plain": plain, "keys": keys, "enc": enc, "lab": lab, "tmp": tmp}


def _plain(root: Path, columns: list[str]) -> pa.Table:
    manifest = dataset.read_manifest(root)
    return pa.concat_tables(pq.read_table(root / s.path, columns=columns) for s in manifest.shards)


def test_manifest_names_a_key_per_column_group(world: dict[str, Path]) -> None:
    ring = crypto.load_key_file(world["keys"])
    enc = dataset.read_manifest(world["enc"])
    assert len(enc.shards) > 2
    text_key, label_key = ring.resolve("text"), ring.resolve("label")
    info = enc.encryption
    assert info["column_keys"] == {text_key: ["text"], label_key: ["label"]}
    assert info["plaintext_columns"] == ["id"]
    assert set(info["key_checks"]) == {ring.footer_key, text_key, label_key}
    # wrapped data keys beside the data, one file per shard; no key bytes anywhere
    for shard in enc.shards:
        assert (world["enc"] / ".keys" / "0" / f"_KEY_MATERIAL_FOR_{shard.path}.json").is_file()
    import base64

    secrets = [base64.b64encode(k).decode() for k in ring.keys.values()]
    text = (world["enc"] / ".manifest.json").read_text()
    assert not any(s in text for s in secrets)
    # the plaintext of `text` is not in any shard (uncompressed pages would show it verbatim)
    sample = _plain(world["plain"], ["text"]).column("text")[3].as_py()[:40]
    assert all(sample.encode() not in (world["enc"] / s.path).read_bytes() for s in enc.shards)


def test_partial_key_file_holds_footer_and_named_keys(world: dict[str, Path]) -> None:
    full, lab = crypto.load_key_file(world["keys"]), crypto.load_key_file(world["lab"])
    assert set(lab.keys) == {full.footer_key, full.resolve("label")}
    assert all(lab.keys[k] == full.keys[k] for k in lab.keys)
    assert lab.key_set == full.key_set and lab.column_key is None
    assert stat.S_IMODE(os.stat(world["lab"]).st_mode) == 0o600
    again = cli(
        "keys",
        "export-subset",
        world["keys"],
        "--keys",
        "nope",
        "-o",
        world["tmp"] / "x",
        check=False,
    )
    assert again.returncode == 2 and "has no key 'nope'" in again.stderr
    assert not (world["tmp"] / "x").exists()


def test_labeller_reads_id_and_label_exactly(world: dict[str, Path]) -> None:
    enc = dataset.read_manifest(world["enc"])
    access = crypto.readable_columns(enc.encryption, world["lab"], enc.schema.names)
    label_key = crypto.load_key_file(world["keys"]).resolve("text")
    assert access.readable == ["id", "label"] and access.missing == {"text": label_key}
    reader = ReadOptions(str(world["lab"]), enc.encryption)
    got = pa.concat_tables(
        reader.read_table(p, ["id", "label"])
        for _, p in dataset.iter_shard_paths(world["enc"], enc)
    )
    assert got.equals(_plain(world["plain"], ["id", "label"]))
    # the full key file reads every column, equal to the plaintext
    full = ReadOptions(str(world["keys"]), enc.encryption)
    every = pa.concat_tables(
        full.read_table(p) for _, p in dataset.iter_shard_paths(world["enc"], enc)
    )
    assert every.equals(_plain(world["plain"], ["id", "text", "label"]))


def test_reading_text_without_its_key_is_one_sentence(world: dict[str, Path]) -> None:
    enc = dataset.read_manifest(world["enc"])
    shard = world["enc"] / enc.shards[0].path
    reader = ReadOptions(str(world["lab"]), enc.encryption)
    with pytest.raises(DataprepError, match=SENTENCE):
        reader.read_table(shard, ["text"])
    with pytest.raises(DataprepError, match=SENTENCE):
        crypto.readable_columns(enc.encryption, world["lab"], enc.schema.names).require(
            ["id", "text"]
        )
    out = world["tmp"] / "t.jsonl"
    proc = cli(
        "export", world["enc"], "-o", out, "-k", world["lab"], "--columns", "id,text", check=False
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "column text is encrypted with key 'text-" in proc.stderr and not out.exists()
    ok = cli("export", world["enc"], "-o", out, "-k", world["lab"], "--columns", "id,label")
    assert ok.returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == _plain(world["plain"], ["id", "label"]).to_pylist()


@pytest.mark.parametrize("op", ["decrypt", "clean"])
def test_stage_needing_text_stops_naming_column_and_key(world: dict[str, Path], op: str) -> None:
    out = world["tmp"] / f"out-{op}"
    proc = cli(op, world["enc"], "-o", out, "-k", world["lab"], "-w", "1", check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "column text is encrypted with key 'text-" in proc.stderr
    assert not (out / ".manifest.json").exists()


def test_loader_with_partial_keys(world: dict[str, Path]) -> None:
    pytest.importorskip("torch")
    from dataprep.loader import ShardDataset

    ds = ShardDataset(str(world["enc"]), key_file=world["lab"], batch_size=50)
    assert ds.columns == ["id", "label"]
    ids, labels = [], []
    for batch in ds:
        assert set(batch) == {"id", "label"}
        ids += list(batch["id"])
        labels += list(batch["label"])
    plain = _plain(world["plain"], ["id", "label"])
    assert ids == plain.column("id").to_pylist() and labels == plain.column("label").to_pylist()
    with pytest.raises(DataprepError, match=SENTENCE):
        ShardDataset(str(world["enc"]), columns=["id", "text"], key_file=world["lab"])


def test_key_names_resolve_and_bad_ones_are_one_sentence(world: dict[str, Path]) -> None:
    out = world["tmp"] / "bad"
    bad = {"key_file": str(world["keys"]), "columns": ["text:nope"]}
    with pytest.raises(DataprepError, match="has no key 'nope'"):
        run_stage("encrypt", bad, out, input_path=world["plain"], executor=INLINE)
    with pytest.raises(DataprepError, match="'footer' is taken"):
        crypto.generate_key_file(world["tmp"] / "k2", ["footer"])
    assert not (world["tmp"] / "k2").exists()
    # a column named without a key goes under the default (first named) key
    enc2 = world["tmp"] / "enc2"
    good = {"key_file": str(world["keys"]), "columns": ["text", "label:label"]}
    run_stage("encrypt", good, enc2, input_path=world["plain"], executor=INLINE)
    ring = crypto.load_key_file(world["keys"])
    keyed = dataset.read_manifest(enc2).encryption["column_keys"]
    assert keyed == {ring.column_key: ["text"], ring.resolve("label"): ["label"]}


def test_recipe_keeps_each_column_under_its_key_through_stages(world: dict[str, Path]) -> None:
    import yaml

    recipe = world["tmp"] / "cols.yaml"
    root = world["tmp"] / "recipe-run"
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "cols",
                "vars": {"root": str(root)},
                "input": {"path": str(world["tmp"] / "in.jsonl"), "text_column": "text"},
                "executor": {"kind": "local", "workers": 1},
                "output": {
                    "encryption": {
                        "key_file": str(world["keys"]),
                        "columns": ["text:text", "label:label"],
                    }
                },
                "stages": [
                    {"id": "shards", "op": "shard", "params": {"shard_rows": 300}},
                    {"id": "exact", "op": "dedup", "params": {"method": "exact"}},
                ],
            }
        )
    )
    cli("run", recipe)
    ring = crypto.load_key_file(world["keys"])
    want = {ring.resolve("text"): ["text"], ring.resolve("label"): ["label"]}
    for stage in ("shards", "exact"):
        info = dataset.read_manifest(root / stage).encryption
        assert info["column_keys"] == want and info["plaintext_columns"] == ["id"], stage
    lab = ReadOptions(str(world["lab"]), dataset.read_manifest(root / "exact").encryption)
    first = root / "exact" / dataset.read_manifest(root / "exact").shards[0].path
    assert lab.read_table(first, ["id", "label"]).num_rows > 0


def test_column_key_spelling_with_colons_in_column_names(world: dict[str, Path]) -> None:
    ring = crypto.load_key_file(world["keys"])
    schema = pa.schema([("a:b", pa.string()), ("label", pa.string()), ("x", pa.int64())])
    spec = crypto.EncryptionSpec(str(world["keys"]), ("a:b", "label:label", "x:text"))
    assert spec.assignment(schema, ring) == {
        "a:b": ring.column_key,
        "label": ring.resolve("label"),
        "x": ring.resolve("text"),
    }
    spec = crypto.EncryptionSpec(str(world["keys"]), ("a:b:label",))
    assert spec.assignment(schema, ring) == {"a:b": ring.resolve("label")}
