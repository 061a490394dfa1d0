"""`dataprep head`: the rows it prints are the dataset's rows (pyarrow reading the shards is the
oracle), it reads only the row groups that hold them, and bad input is one sentence (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, encrypted_copy, manifest, shard_rows, text_dataset

from dataprep import crypto
from dataprep.errors import DataprepError
from dataprep.rows import head


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_dataset(tmp_path_factory.mktemp("head") / "texts", shard_rows=50)


@pytest.fixture(scope="module")
def rows(texts: Path) -> list[dict]:
    return shard_rows(texts)


def _json(*args: object) -> list[dict]:
    return json.loads(cli("head", *args, "--json").stdout)


def test_first_rows_as_json_and_jsonl(texts: Path, rows: list[dict]) -> None:
    assert _json(texts) == rows[:10]
    jsonl = cli("head", texts, "-n", "3", "--columns", "text,id", "--jsonl").stdout
    assert [json.loads(line) for line in jsonl.splitlines()] == [
        {"text": r["text"], "id": r["id"]} for r in rows[:3]
    ]
    assert head(texts, 0).table.num_rows == 0
    assert head(texts, len(rows) + 5).table.to_pylist() == rows  # more than there are: all


def test_where_uses_the_filter_language(texts: Path, rows: list[dict]) -> None:
    where = "id >= 'p' and id not in ['passwd/copyright']"
    expected = [r for r in rows if r["id"] >= "p" and r["id"] != "passwd/copyright"]
    assert _json(texts, "-n", "7", "--where", where) == expected[:7]


def test_table_cuts_long_text_and_says_how_long(texts: Path, rows: list[dict]) -> None:
    out = cli("head", texts, "-n", "2", "--max-chars", "20", env={"COLUMNS": "300"}).stdout
    for row in rows[:2]:
        assert row["id"][:20] in out
        assert (
            f"{row['text'][:20].replace(chr(10), chr(92) + 'n')}… ({len(row['text']):,} chars)"
            in out
        )
    assert f"2 of {len(rows):,} rows (read 1 row group of 1 shard)" in out


def test_reads_only_the_row_groups_it_needs(texts: Path) -> None:
    shards = len(manifest(texts)["shards"])
    assert shards > 10
    first = head(texts, 5)
    assert (first.shards_opened, first.row_groups_read, first.table.num_rows) == (1, 1, 5)
    assert head(texts, 60).row_groups_read == 2  # 50 rows a shard
    sample = head(texts, 3, shuffle=True, seed=7)
    assert sample.row_groups_read <= 3 and sample.table.num_rows == 3


def test_shuffle_is_a_seeded_sample_of_distinct_rows(texts: Path, rows: list[dict]) -> None:
    ids = [r["id"] for r in rows]
    first = _json(texts, "-n", "8", "--shuffle", "--seed", "1")
    assert first == head(texts, 8, shuffle=True, seed=1).table.to_pylist()  # same seed, same rows
    other = head(texts, 8, shuffle=True, seed=2).table.to_pylist()
    assert first != other and first != rows[:8]
    for sample in (first, other):
        assert len({r["id"] for r in sample}) == 8 and all(r in rows for r in sample)
    # every row is reachable and the draw is not stuck at the front: over many seeds the
    # sampled positions cover the whole dataset
    seen = {
        ids.index(r["id"])
        for s in range(40)
        for r in head(texts, 5, shuffle=True, seed=s).table.select(["id"]).to_pylist()
    }
    assert min(seen) < len(ids) // 4 and max(seen) > 3 * len(ids) // 4
    everything = head(texts, len(rows), shuffle=True, seed=3).table.to_pylist()
    assert everything != rows and sorted(everything, key=str) == sorted(rows, key=str)
    matched = _json(texts, "-n", "4", "--shuffle", "--where", "id < 'c'", "--columns", "id")
    assert len(matched) == 4 and all(r["id"] < "c" for r in matched)


def test_encrypted_dataset_with_key_file(texts: Path, rows: list[dict], tmp_path: Path) -> None:
    enc, keys = encrypted_copy(texts, tmp_path)
    assert _json(enc, "-n", "4", "--key-file", keys) == rows[:4]
    other = tmp_path / "other.json"
    crypto.generate_key_file(other)
    ring = json.loads(keys.read_text())  # the same key ids with other bytes: a wrong key
    ring["keys"][ring["column_key"]] = json.loads(other.read_text())["keys"].popitem()[1]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(ring))
    for args, says in [
        ((), "is encrypted"),
        (("--key-file", other), "has no key"),
        (("--key-file", wrong), "does not unwrap"),
    ]:
        proc = cli("head", enc, *args, check=False)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr
    proc = cli("export", enc, "-o", "-", "--key-file", keys)
    assert [json.loads(line) for line in proc.stdout.splitlines()] == rows


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--columns", "id,nope"), "--columns names nope"),
        (("--where", "id >"), "is not a valid expression"),
        (("--where", "idd == 'x'"), "names 'idd', which is not a column of the dataset"),
        (("--where", "id > 3"), "cannot be compared"),
        (("--json", "--jsonl"), "pick one"),
    ],
)
def test_bad_input_is_one_sentence(texts: Path, args: tuple[str, ...], says: str) -> None:
    proc = cli("head", texts, *args, check=False, env={"COLUMNS": "400"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr


def test_missing_directory(tmp_path: Path) -> None:
    proc = cli("head", tmp_path / "nothing", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_dataset_on_s3(texts: Path, rows: list[dict], s3_bucket: str) -> None:
    from dataprep.storage import StoragePath

    uri = f"{s3_bucket}/texts"
    for file in sorted(texts.iterdir()):
        if file.is_file():
            (StoragePath(uri) / file.name).write_atomic(file.read_bytes())
    assert _json(uri, "-n", "3") == rows[:3]
    assert _json(uri, "-n", "3", "--shuffle", "--seed", "5") == _json(
        texts, "-n", "3", "--shuffle", "--seed", "5"
    )
    exported = cli("export", uri, "-o", "-").stdout.splitlines()
    assert [json.loads(line) for line in exported] == rows


def test_partial_key_file_shows_the_columns_it_can_read(
    texts: Path, rows: list[dict], tmp_path: Path
) -> None:
    """Keys per column group: a key file with only the `id` key reads ids; `text` is listed as
    left out, and naming it is one sentence with its key id."""
    keys, part = tmp_path / "all.keys", tmp_path / "id.keys"
    cli("keygen", "-o", keys, "--keys", "text,id")
    enc = tmp_path / "enc"
    cli("encrypt", texts, "-o", enc, "-k", keys, "--columns", "text:text,id:id", "-w", "1", "-q")
    cli("keys", "export-subset", keys, "--keys", "id", "-o", part)
    proc = cli("head", enc, "-n", "5", "-k", part, "--json", env={"COLUMNS": "400"})
    assert json.loads(proc.stdout) == [{"id": r["id"]} for r in rows[:5]]
    assert "left out text (key 'text-" in proc.stderr
    exported = cli("export", enc, "-o", "-", "-k", part, env={"COLUMNS": "400"})
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [
        {"id": r["id"]} for r in rows
    ]
    assert "left out text" in exported.stderr
    proc = cli("head", enc, "-k", part, "--columns", "id,text", check=False, env={"COLUMNS": "400"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "column text is encrypted with key 'text-" in proc.stderr
    with pytest.raises(DataprepError, match="column text is encrypted with key 'text-"):
        head(enc, where="text == 'x'", columns=["id"], key_file=part)
    assert head(enc, 3, key_file=keys).table.to_pylist() == rows[:3]  # all keys read it all
