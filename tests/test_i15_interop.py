"""Issue 15 item 7: a dataset directory opens as-is in other tools (everything that is not a
shard is named `.x`), old directories (`manifest.json`) still read, and `tokenize
--tokenizer PATH/tokenizer.json` uses an existing Hugging Face tokenizer (item 9: a numeric
`--text-column` is one sentence)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from helpers import cli

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.loader.index import open_index
from dataprep.runner import run_stage

LICENSES = Path("/usr/share/common-licenses")
OLD_NAMES = {".manifest.json": "manifest.json", ".report.json": "report.json"}


def _paragraphs() -> list[str]:
    """Real text: the paragraphs of this machine's licence files."""
    texts: list[str] = []
    for path in sorted(LICENSES.glob("*")):
        if path.is_file() and not path.is_symlink():
            parts = path.read_text(errors="replace").split("\n\n")
            texts += [p.strip() for p in parts if len(p.strip()) > 40]
    return texts[:600]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shard-stage output of real text in 3+ shards, with a report and a quarantine file."""
    root = tmp_path_factory.mktemp("interop")
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(_paragraphs())]
    lines.insert(5, "{not json")  # one bad line, so the quarantine file exists too
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    run_stage("shard", {"shard_rows": 200}, root / "ds", inputs=[str(root / "in.jsonl")])
    return root


def _expected(path: Path) -> list[tuple[str, str]]:
    """The rows dataprep itself reads, in a canonical order."""
    table = dataset.read_rows(path, ["id", "text"])
    return _rows(table.column("id").to_pylist(), table.column("text").to_pylist())


def _rows(ids: list, texts: list) -> list[tuple[str, str]]:
    return sorted(zip(ids, texts, strict=True))


def _old_layout(src: Path, dst: Path) -> Path:
    """A copy of `src` as dataprep wrote it before the `_` names."""
    shutil.copytree(src, dst)
    for new, old in OLD_NAMES.items():
        if (dst / new).exists():
            (dst / new).rename(dst / old)
    return dst


# -- item 7: other tools open a dataset directory as-is ------------------------------------


def test_every_non_shard_name_is_hidden_from_other_tools(data: Path) -> None:
    names = sorted(p.name for p in (data / "ds").iterdir())
    shards = [n for n in names if n.endswith(".parquet")]
    assert len(shards) >= 3
    assert sorted(set(names) - set(shards)) == [
        ".manifest.json",
        ".quarantine.jsonl",
        ".report.json",
    ]
    assert json.loads((data / "ds" / ".report.json").read_text())["quarantined"] == 1
    assert len((data / "ds" / ".quarantine.jsonl").read_text().splitlines()) == 1


def test_pyarrow_dataset_opens_the_directory(data: Path) -> None:
    import pyarrow.dataset as ds

    table = ds.dataset(str(data / "ds"), format="parquet").to_table(columns=["id", "text"])
    assert _rows(table.column("id").to_pylist(), table.column("text").to_pylist()) == _expected(
        data / "ds"
    )


def test_polars_reads_the_directory(data: Path) -> None:
    import polars as pl

    expected = _expected(data / "ds")
    frame = pl.read_parquet(f"{data / 'ds'}/*.parquet", columns=["id", "text"])
    assert _rows(frame["id"].to_list(), frame["text"].to_list()) == expected
    # polars lists every file of a directory (dot files too) unless told which to skip
    lazy = pl.scan_parquet(str(data / "ds"), hidden_file_prefix=["_", "."])
    lazy = lazy.select("id", "text").collect()
    assert _rows(lazy["id"].to_list(), lazy["text"].to_list()) == expected


def test_duckdb_reads_the_directory(data: Path) -> None:
    import duckdb

    rows = duckdb.sql(f"SELECT id, text FROM read_parquet('{data / 'ds'}/*.parquet')").fetchall()
    assert sorted(rows) == _expected(data / "ds")


def test_hugging_face_datasets_loads_the_directory(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets  # after the env above: it reads the offline switches on import

    loaded = datasets.load_dataset(
        "parquet", data_dir=str(data / "ds"), cache_dir=str(tmp_path / "cache")
    )
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert _rows(train["id"], train["text"]) == _expected(data / "ds")


# -- item 7: old directories (manifest.json, report.json) still read ------------------------


def test_an_old_layout_directory_still_reads_verifies_and_feeds_a_stage(
    data: Path, tmp_path: Path
) -> None:
    old = _old_layout(data / "ds", tmp_path / "old")
    assert (old / "manifest.json").is_file() and not (old / ".manifest.json").exists()
    assert dataset.is_dataset(old)
    assert dataset.verify_dataset(old).rows == len(_expected(data / "ds"))
    assert _expected(old) == _expected(data / "ds")
    assert open_index(str(old)).num_rows == len(_expected(data / "ds"))
    proc = cli("verify", old)
    assert proc.returncode == 0
    run = run_stage("dedup", {"method": "exact"}, tmp_path / "dd", input_path=old)
    assert run.status == "ran" and (tmp_path / "dd" / ".manifest.json").is_file()


def test_an_old_layout_output_is_cached_then_replaced_with_the_new_names(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(_paragraphs()[:50])
        )
    )
    out = tmp_path / "out"
    run_stage("shard", {"shard_rows": 20}, out, inputs=[str(src)])
    for new, old in OLD_NAMES.items():  # as an older dataprep left it
        (out / new).rename(out / old)
    again = run_stage("shard", {"shard_rows": 20}, out, inputs=[str(src)])
    assert again.status == "cached" and again.report["rows_out"] == 50
    rerun = run_stage("shard", {"shard_rows": 25}, out, inputs=[str(src)])  # staged + swapped
    assert rerun.status == "ran"
    names = sorted(p.name for p in out.iterdir())
    shards = [s.path for s in dataset.read_manifest(out).shards]
    assert len(shards) == 2 and names == sorted([".manifest.json", ".report.json", *shards])
    assert len(dataset.read_rows(out)) == 50


def test_with_both_an_old_and_a_new_manifest_the_new_one_wins(data: Path, tmp_path: Path) -> None:
    both = tmp_path / "both"
    shutil.copytree(data / "ds", both)
    (both / "manifest.json").write_text("{stale")  # an old, unreadable leftover
    assert dataset.read_manifest(both).rows == len(_expected(data / "ds"))
    assert open_index(str(both)).num_rows == len(_expected(data / "ds"))


# -- --tokenizer PATH/tokenizer.json ---------------------------------------------------------


def _train_tokenizer(path: Path, vocab: int) -> None:
    """A tiny BPE trained on real licence text, with BOS added by its own post-processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(_paragraphs(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def test_tokenize_with_a_hugging_face_tokenizer_file(data: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    path = tmp_path / "tok" / "tokenizer.json"
    _train_tokenizer(path, 400)
    hf = Tokenizer.from_file(str(path))
    out = tmp_path / "ids"
    config = {"tokenizer": str(path), "seq_len": 63}
    run = run_stage("tokenize", config, out, input_path=data / "ds")
    assert run.status == "ran"

    meta = dataset.read_manifest(out).metadata["tokenizer"]
    eos, bos = hf.token_to_id("</s>"), hf.token_to_id("<s>")
    assert meta["digest"] == xxhash.xxh3_128(path.read_bytes()).hexdigest()
    assert meta["vocab_size"] == hf.get_vocab_size() and meta["eot_id"] == eos
    assert meta["bos_id"] == bos and meta["special_tokens"]["eos"] == "</s>"
    assert (out / meta["file"]).read_bytes() == path.read_bytes()  # kept beside the shards
    assert meta["file"] == ".tokenizer.json"

    # the ids are the tokenizer's own, each document followed by EOS, cut into 64-id blocks
    first = dataset.read_manifest(data / "ds").shards[0].path
    texts = pq.read_table(data / "ds" / first, columns=["text"]).column("text").to_pylist()
    stream = [i for t in texts for i in [*hf.encode(t).ids, eos]]
    blocks = pq.read_table(out / "part-00000.parquet").column("tokens").to_pylist()
    assert blocks[0][0] == bos
    assert np.array_equal(np.asarray(blocks).reshape(-1), stream[: len(blocks) * 64])

    assert run_stage("tokenize", config, out, input_path=data / "ds").status == "cached"
    _train_tokenizer(path, 300)  # same path, other content: the cache must not hold
    again = run_stage("tokenize", config, out, input_path=data / "ds")
    assert again.status == "ran"
    assert dataset.read_manifest(out).metadata["tokenizer"]["vocab_size"] == 300


def _one_sentence(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    text = proc.stderr.strip()
    assert len(text.splitlines()) == 1, text
    return text


def test_a_missing_or_invalid_tokenizer_file_is_one_sentence(data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    proc = cli("tokenize", data / "ds", "-o", tmp_path / "a", "--tokenizer", missing, check=False)
    assert str(missing) in _one_sentence(proc) and "does not exist" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.0", "model": 7}')
    with pytest.raises(DataprepError, match="is not a Hugging Face tokenizer") as exc:
        run_stage("tokenize", {"tokenizer": str(bad)}, tmp_path / "b", input_path=data / "ds")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tokenize_text_column_naming_a_numeric_column_is_one_sentence(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b"], "text": ["x y", "z"], "n": [1, 2]})
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    run_stage("shard", {}, tmp_path / "ds", inputs=[str(src)])
    proc = cli("tokenize", tmp_path / "ds", "-o", tmp_path / "t", "--text-column", "n", check=False)
    assert "'n'" in _one_sentence(proc) and "int64" in proc.stderr
