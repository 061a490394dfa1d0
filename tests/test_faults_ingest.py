"""Ingestion under damaged input: cut or corrupt .zst/.gz files, invalid UTF-8 in strings.

A cut compressed file must never pass for a shorter complete one, whatever reader reads it
(JSONL, CSV, text per line, text per file); with `on_truncated: quarantine` the rows before
the cut are kept and the cut is one quarantine record. Invalid UTF-8 in a string value goes
to quarantine with its field named, whichever parser (Arrow's fast path or not) read it.

Files are compressed with explicit flushes at known line boundaries, so a cut there leaves a
decodable prefix that ends exactly on a newline: the case a line-based check cannot see.
"""

from __future__ import annotations

import io
import json
import random
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard
from helpers import cli, column

from dataprep.errors import DataprepError
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage
from dataprep.sources import TruncatedInput
from dataprep.stages.readers import counted_blocks, line_blocks, line_ranges, view_blocks

ROOT = Path(__file__).resolve().parents[1]
ROWS = 3000


def _payload(kind: str) -> tuple[bytes, list[int]]:
    """Input bytes of one reader path, and the offsets just after each row (flush points)."""
    rows = []
    for i in range(1, ROWS + 1):
        text = f"row {i} " + " ".join(f"{(i * 7919 + k * 104729) % 99991:x}" for k in range(i % 17))
        if kind == "jsonl":
            rows.append(json.dumps({"id": f"r{i}", "text": text}).encode() + b"\n")
        elif kind == "csv":
            rows.append(f"r{i},{text}\n".encode())
        else:
            rows.append(text.encode() + b"\n")
    head = b"id,text\n" if kind == "csv" else b""
    ends, offset = [], len(head)
    for row in rows:
        offset += len(row)
        ends.append(offset)
    return head + b"".join(rows), ends


def _compress(codec: str, payload: bytes, flush_at: list[int]) -> tuple[bytes, dict[int, int]]:
    """One zstd frame / gzip member, flushed at `flush_at`: {payload offset: compressed size}."""
    if codec == "zst":
        obj = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
        flush, end = (lambda: obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)), obj.flush
    else:
        obj = zlib.compressobj(6, zlib.DEFLATED, 31)
        flush, end = (lambda: obj.flush(zlib.Z_SYNC_FLUSH)), obj.flush
    out, sizes, start = b"", {}, 0
    for offset in flush_at:
        out += obj.compress(payload[start:offset]) + flush()
        sizes[offset] = len(out)
        start = offset
    return out + obj.compress(payload[start:]) + end(), sizes


def _decodable(codec: str, cut: bytes) -> bytes:
    """What an independent decoder gets out of a cut file (zlib's own for gzip)."""
    if codec == "zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    return zlib.decompressobj(31).decompress(cut)


PATHS = {  # reader path -> (payload kind, file suffix, shard config)
    "jsonl": ("jsonl", ".jsonl", {}),
    "csv": ("csv", ".csv", {}),
    "text-lines": ("text", ".txt", {"lines": True}),
    "text-file": ("text", ".txt", {}),
}


def _cut_file(tmp_path: Path, path_kind: str, codec: str, cut: str) -> tuple[Path, bytes]:
    """A cut input file, and the bytes a decoder can still recover from it."""
    kind, suffix, _ = PATHS[path_kind]
    payload, ends = _payload(kind)
    boundary = ends[len(ends) // 2]  # the prefix decodes to exactly this many bytes
    data, sizes = _compress(codec, payload, [boundary])
    keep = {"mid": int(len(data) * 0.7), "line": sizes[boundary], "trailer": len(data) - 1}[cut]
    path = tmp_path / f"in{suffix}.{codec}"
    path.write_bytes(data[:keep])
    prefix = _decodable(codec, data[:keep])
    if cut == "line":
        assert prefix == payload[:boundary]  # the hard case: the prefix ends on a newline
    return path, prefix


def _shard(inputs: list[Path], out: Path, **config) -> dict:
    run = run_stage(
        "shard", config, out, inputs=[str(p) for p in inputs], executor=LocalExecutor(1)
    )
    return run.report


def _quarantine(out: Path) -> list[dict]:
    path = out / ".quarantine.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("cut", ["mid", "line", "trailer"])
@pytest.mark.parametrize("codec", ["zst", "gz"])
@pytest.mark.parametrize("path_kind", list(PATHS))
def test_cut_compressed_input_stops_with_a_sentence_naming_the_file(
    tmp_path: Path, path_kind: str, codec: str, cut: str
) -> None:
    src, _ = _cut_file(tmp_path, path_kind, codec, cut)
    with pytest.raises(DataprepError) as caught:
        _shard([src], tmp_path / "out", shard_rows=1000, **PATHS[path_kind][2])
    message = str(caught.value)
    assert f"input {src} is truncated or corrupt" in message
    assert "--on-truncated quarantine" in message and "\n" not in message
    assert not (tmp_path / "out" / ".manifest.json").exists()


@pytest.mark.parametrize("cut", ["mid", "line", "trailer"])
@pytest.mark.parametrize("codec", ["zst", "gz"])
@pytest.mark.parametrize("path_kind", list(PATHS))
def test_on_truncated_quarantine_keeps_rows_before_the_cut(
    tmp_path: Path, path_kind: str, codec: str, cut: str
) -> None:
    src, prefix = _cut_file(tmp_path, path_kind, codec, cut)
    extra = PATHS[path_kind][2]
    out = tmp_path / "out"
    report = _shard([src], out, shard_rows=1000, on_truncated="quarantine", **extra)
    complete = prefix[: prefix.rfind(b"\n") + 1].decode()
    if path_kind == "text-file":  # one document per file: a cut document is not kept
        expected_texts: list[str] = []
        line = None
    elif path_kind == "csv":
        rows = complete.splitlines()[1:]
        expected_texts = [r.split(",", 1)[1] for r in rows]
        line = len(rows) + 1  # CSV rows are numbered after the header
    else:
        rows = complete.splitlines()
        expected_texts = [json.loads(r)["text"] for r in rows] if path_kind == "jsonl" else rows
        line = len(rows) + 1
    texts = column(out, "text") if expected_texts else []
    assert texts == expected_texts
    assert report["rows_out"] == len(expected_texts) and report["quarantined"] == 1
    [record] = _quarantine(out)
    assert record["reason"] == "truncated" and record["source"] == src.name
    assert record["line"] == line


def test_cut_inside_a_quoted_csv_value_is_not_kept_as_a_row(tmp_path: Path) -> None:
    """A newline inside quotes is not a row end: the half value goes to quarantine."""
    head = b'id,text\nr1,"first\nsecond"\nr2,"third\n'
    data, sizes = _compress("zst", head + b'fourth"\nr3,fifth\n', [len(head)])
    src = tmp_path / "q.csv.zst"
    src.write_bytes(data[: sizes[len(head)]])
    report = _shard([src], tmp_path / "out", on_truncated="quarantine")
    assert column(tmp_path / "out", "text") == ["first\nsecond"]
    assert report["quarantined"] == 1
    assert _quarantine(tmp_path / "out")[0]["reason"] == "truncated"


@pytest.mark.parametrize("codec", ["zst", "gz"])
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_cut_before_the_first_whole_row_is_one_sentence(
    tmp_path: Path, kind: str, codec: str
) -> None:
    """The first input fixes the schema; cut inside its first row, there is none to read."""
    head = b"id,text\n" if kind == "csv" else b""
    row = b"r1," + b"w" * 5000 if kind == "csv" else json.dumps({"text": "w" * 5000}).encode()
    data, _ = _compress(codec, head + row + b"\n", [])
    src = tmp_path / f"one.{kind}.{codec}"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataprepError, match=f"input {src} is truncated"):
        _shard([src], tmp_path / "out")
    with pytest.raises(DataprepError, match="truncated before its first whole row"):
        _shard([src], tmp_path / "out", on_truncated="quarantine")


def test_cli_cut_files_exit_2_with_one_line(tmp_path: Path) -> None:
    """The shipped symptoms: a cut .zst ran to exit 0, a cut .gz printed only 'Aborted.'."""
    for codec, workers in (("zst", "1"), ("gz", "2")):  # 2: the error crosses processes
        src, _ = _cut_file(tmp_path, "jsonl", codec, "mid")
        proc = cli("shard", src, "-o", tmp_path / f"out-{codec}", "-q", "-w", workers, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and f"{src}" in lines[0] and "truncated or corrupt" in lines[0]
    ok = cli("shard", src, "-o", tmp_path / "kept", "--on-truncated", "quarantine", "--json", "-q")
    report = json.loads(ok.stdout)[0]["report"]
    assert report["quarantined"] == 1 and report["rows_out"] > 0


def test_recipe_says_on_truncated_too(tmp_path: Path) -> None:
    from dataprep import recipe

    src, _ = _cut_file(tmp_path, "jsonl", "gz", "line")
    data = {
        "version": 1,
        "name": "cut",
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(src), "text_column": "text"},
        "executor": {"kind": "local", "workers": 1},
        "stages": [{"id": "shards", "op": "shard", "params": {"on_truncated": "quarantine"}}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    [run] = recipe.run(recipe.load(path))
    assert run.report["rows_out"] == ROWS // 2 + 1 and run.report["quarantined"] == 1
    data["stages"][0]["params"]["on_truncated"] = "ignore"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        DataprepError, match="on_truncated: Input should be 'error' or 'quarantine'"
    ):
        recipe.load(path)


@pytest.mark.parametrize("mode", ["error", "quarantine"])
@pytest.mark.parametrize("codec", ["zst", "gz"])
def test_garbage_compressed_file_is_one_sentence(tmp_path: Path, codec: str, mode: str) -> None:
    src = tmp_path / f"plain.jsonl.{codec}"
    src.write_bytes(b'{"id": "a", "text": "not compressed at all"}\n' * 50)
    with pytest.raises(DataprepError, match=rf"input {src} is not a valid \.{codec} file"):
        _shard([src], tmp_path / "out", on_truncated=mode)


def test_cut_or_compressed_parquet_is_one_sentence(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a"] * 100, "text": ["x"] * 100}), tmp_path / "p.parquet")
    data = (tmp_path / "p.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataprepError, match=r"input \S+cut.parquet is not a valid Parquet file"):
        _shard([tmp_path / "cut.parquet"], tmp_path / "out")
    (tmp_path / "p.parquet.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    with pytest.raises(DataprepError, match=r"p.parquet.zst is a compressed Parquet file"):
        _shard([tmp_path / "p.parquet.zst"], tmp_path / "out")


def test_concatenated_zstd_frames_are_all_read(tmp_path: Path) -> None:
    """`cat a.zst b.zst` and pzstd write several frames; every frame's rows are data."""
    payload, _ = _payload("jsonl")
    half = payload.index(b"\n", len(payload) // 2) + 1
    c = zstandard.ZstdCompressor(level=1)
    src = tmp_path / "two.jsonl.zst"
    src.write_bytes(c.compress(payload[:half]) + c.compress(payload[half:]))
    report = _shard([src], tmp_path / "out")
    assert report["rows_out"] == ROWS and report["quarantined"] == 0


# --- invalid UTF-8 inside strings -------------------------------------------------------


def _assert_valid_utf8(out: Path) -> None:
    for shard in sorted(out.glob("*.parquet")):
        pq.read_table(shard).validate(full=True)


def test_invalid_utf8_in_json_strings_goes_to_quarantine_with_the_field(tmp_path: Path) -> None:
    """Arrow's JSON parser accepts these blocks whole; the bad rows must not reach shards."""
    lines = [
        json.dumps({"id": f"g{i}", "text": f"good {i}", "source": "web"}).encode()
        for i in range(1, 201)
    ]
    lines[2] = b'{"id": "a", "text": "ok \xff bad", "source": "web"}'
    lines[149] = b'{"id": "b", "text": "fine", "source": "w\xfe\xffb"}'
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    report = _shard([src], out)
    expected = [f"g{i}" for i in range(1, 201) if i not in (3, 150)]
    assert column(out, "id") == expected and report["rows_out"] == 198
    records = _quarantine(out)
    assert [(r["source"], r["line"], r["reason"]) for r in records] == [
        ("mixed.jsonl", 3, "invalid UTF-8 in field 'text'"),
        ("mixed.jsonl", 150, "invalid UTF-8 in field 'source'"),
    ]
    _assert_valid_utf8(out)
    cli("export", out, "-o", tmp_path / "back.jsonl")  # died with a traceback before
    assert len((tmp_path / "back.jsonl").read_text().splitlines()) == 198


def test_invalid_utf8_in_csv_and_parquet_goes_to_quarantine(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_bytes(b"id,text,n\nc1,good,1\nc2,bad \xff here,2\nc3,fine,3\n")
    report = _shard([csv], tmp_path / "csv-out")
    assert column(tmp_path / "csv-out", "id") == ["c1", "c3"] and report["quarantined"] == 1
    [record] = _quarantine(tmp_path / "csv-out")
    assert (record["line"], record["reason"]) == (2, "invalid UTF-8 in field 'text'")

    text = pa.array([b"good", b"bad \xff", b"fine", b"ok"], pa.binary()).view(pa.string())
    blob = pa.array([b"\xff\x00", b"x", b"\xfe", b"y"])  # binary columns may hold any bytes
    table = pa.table({"id": ["p0", "p1", "p2", "p3"], "text": text, "blob": blob})
    pq.write_table(table, tmp_path / "in.parquet")
    report = _shard([tmp_path / "in.parquet"], tmp_path / "pq-out")
    assert column(tmp_path / "pq-out", "id") == ["p0", "p2", "p3"]
    assert column(tmp_path / "pq-out", "blob") == [b"\xff\x00", b"\xfe", b"y"]
    [record] = _quarantine(tmp_path / "pq-out")
    assert (record["line"], record["reason"]) == (1, "invalid UTF-8 in field 'text'")
    _assert_valid_utf8(tmp_path / "pq-out")


def test_quickstart_on_sampled_data_with_planted_bad_utf8(tmp_path: Path) -> None:
    """The quickstart died at `exact` on `dataprep sample --docs 200000` (8 MB blocks).

    With the default 8 MB read blocks the smallest corpus tried that hits it is --docs 120000
    (115000 does not); 64 KB blocks put the planted invalid-UTF-8 rows into blocks Arrow
    accepts whole at 1,500 documents, so the same failure reproduces in seconds.
    """
    data = tmp_path / "sample"
    cli("sample", "-o", data, "--docs", "1500")
    raw = yaml.safe_load((ROOT / "pipelines/quickstart.yaml").read_text())
    raw["vars"]["root"] = str(tmp_path / "work")
    raw["input"]["path"] = str(data)
    recipe = tmp_path / "quickstart.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    proc = cli("run", recipe, "--json", "-q", "--set", "shards.block_bytes=64KB", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert all(s["status"] == "ran" for s in summary)
    truth = json.loads((data / "corpus.json").read_text())
    shards = summary[0]["report"]
    assert shards["rows_out"] == truth["docs"] and shards["quarantined"] == truth["malformed"]
    reasons = [r["reason"] for r in _quarantine(tmp_path / "work" / "shards")]
    assert sum(r.startswith("invalid UTF-8") for r in reasons) == 3


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes a read, then (if `cut`) raises
    TruncatedInput where its data ends, as a cut .zst/.gz stream does."""

    def __init__(self, data: bytes, step: int, cut: bool = False):
        self.data, self.step, self.cut, self.pos = data, step, cut, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.pos >= len(self.data) and self.cut:
            raise TruncatedInput("cut")
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("step", [3, 1 << 20])
def test_line_blocks_are_whole_lines_with_their_numbers(block: int, step: int) -> None:
    """Oracle: the blocks join back to the input, each but the last ends at a newline, and a
    block's number is 1 + the newlines before it; a cut stream hands over every whole line
    before the cut, then the cut line."""
    rng = random.Random(block * step)
    lines = [b"x" * rng.choice([0, 1, 5, 30, 200]) for _ in range(300)]
    data = b"\n".join(lines) + b"\ntail without newline"
    for limit in (None, len(data) // 2):
        want = data if limit is None else data[:limit]
        got = list(line_blocks(_Trickle(data, step), limit, 1, block))
        assert b"".join(bytes(b) for b, _ in got) == want
        assert all(bytes(b).endswith(b"\n") for b, _ in got[:-1])
        seen = 0
        for chunk, number in got:
            assert number == 1 + want[:seen].count(b"\n")
            seen += len(chunk)
        counted = list(counted_blocks(_Trickle(data, step), limit, 1, block))
        assert [(b, n) for b, n, _ in counted] == got
        assert [c for _, _, c in counted] == [bytes(b).count(b"\n") for b, _ in got]
    cuts: list[tuple[int, bytes]] = []
    stream = _Trickle(data, step, cut=True)
    got = list(line_blocks(stream, None, 1, block, lambda n, tail: cuts.append((n, tail))))
    whole = data[: data.rfind(b"\n") + 1]
    assert b"".join(bytes(b) for b, _ in got) == whole
    assert cuts == [(whole.count(b"\n") + 1, b"tail without newline")]


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20, 2 << 20])  # the last: an mmap buffer
@pytest.mark.parametrize("step", [3, 1 << 20])
def test_view_blocks_are_counted_blocks_without_copies(block: int, step: int) -> None:
    """`view_blocks` reuses one buffer, so each view is read before the next step (as the
    JSONL reader parses it); oracle: `counted_blocks`' bytes, numbers and counts (and Python's
    count of the lines that do not start with the lead byte), for whole streams,
    limited ones, lines longer than the block, and a cut stream's whole lines followed by the
    cut line handed to `on_cut`."""
    rng = random.Random(block * step + 1)
    lines = [b"y" * rng.choice([0, 1, 5, 30, 200, 3000]) for _ in range(300)]
    data = b"\n".join(lines) + b"\ntail without newline"

    def unled(chunk: bytes) -> int:  # lines after a newline that do not start with "y"
        return sum(chunk[i + 1] != ord("y") for i, b in enumerate(chunk[:-1]) if b == 10)

    def views(stream: _Trickle, *args: Any) -> list[tuple[bytes, int, int]]:
        got = []
        for view, number, counted in view_blocks(stream, *args, lead=ord("y")):
            assert counted.unled == unled(bytes(view))
            got.append((bytes(view), number, counted.newlines))
        return got

    for limit in (None, len(data) // 2, 0):
        want = list(counted_blocks(_Trickle(data, step), limit, 5, block))
        assert views(_Trickle(data, step), limit, 5, block) == want
    calls: list[list[tuple[int, bytes]]] = [[], []]
    results = []
    for read, cuts in zip([counted_blocks, views], calls, strict=True):
        stream = _Trickle(data, step, cut=True)
        blocks = read(stream, None, 1, block, lambda n, tail, cuts=cuts: cuts.append((n, tail)))
        results.append([(bytes(b), n, c) for b, n, c in blocks])
    assert results[0] == results[1] and calls[0] == calls[1] == [(301, b"tail without newline")]
    with pytest.raises(TruncatedInput):
        list(view_blocks(_Trickle(data, step, cut=True), None, 1, block))


@pytest.mark.parametrize("block", [5, 64, 1 << 20])
def test_line_ranges_cut_at_line_ends_with_first_line_numbers(tmp_path: Path, block: int) -> None:
    """Oracle: a cut right after the first newline at or past each `chunk_bytes` step from the
    previous cut, and a range's first line = 1 + the newlines before it; lines longer than a
    read block, a cut target on a newline, a last line without one, and one range for a file
    no bigger than `chunk_bytes`."""
    rng = random.Random(block)
    lines = [b"z" * rng.choice([0, 1, 9, 40, 300]) for _ in range(400)]
    data = b"\n".join(lines) + b"\nno newline at the end"
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    for chunk in (1, 37, 500, 4096, len(data) // 2, len(data), len(data) + 5):
        want, start = [], 0
        while start < len(data):
            cut = data.find(b"\n", start + chunk) if start + chunk < len(data) else -1
            end = len(data) if cut < 0 or cut + 1 >= len(data) else cut + 1
            want.append((start, end, data[:start].count(b"\n") + 1))
            start = end
        assert line_ranges(str(src), len(data), chunk, block) == want, chunk


@pytest.mark.parametrize("read", [5, 1 << 16])
def test_line_cuts_are_line_ranges_without_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: int
) -> None:
    """`line_cuts` finds `line_ranges`' cuts by reading from each target to the next line end
    (lines longer than its reads, a target on a newline, a last line without one); a range's
    first line is known only at the file's start, and `newlines_before` counts the others.
    Oracle: Python's search of the same bytes."""
    from dataprep.stages import readers_lines

    monkeypatch.setattr(readers_lines, "CUT_READ", read)
    rng = random.Random(read)
    lines = [b"z" * rng.choice([0, 1, 9, 40, 300]) for _ in range(400)]
    data = b"\n".join(lines) + b"\nno newline at the end"
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    for chunk in (1, 37, 500, 4096, len(data) // 2, len(data), len(data) + 5):
        want = line_ranges(str(src), len(data), chunk)
        got = readers_lines.line_cuts(str(src), len(data), chunk)
        assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in want], chunk
        assert [first for _, _, first in got] == [1] + [None] * (len(got) - 1)
        for start, _, first in want:
            assert readers_lines.newlines_before(str(src), start, block=64) + 1 == first


def test_newline_counter_lines_across_its_steps() -> None:
    """`NewlineCounter.lines` counts a MiB at a time: newlines on both sides of a step, a line
    start just past one, and a newline as the last byte (it starts no line in the range).
    Oracle: Python's search of the same bytes."""
    from dataprep.stages.readers_common import NewlineCounter

    step = NewlineCounter.STEP
    rng = random.Random(11)
    data = bytearray(rng.choice(b"{ab\n") for _ in range(3 * step + 77))
    for at in (step - 1, step, 2 * step - 1, 2 * step):
        data[at] = 10
    data[step] = ord("x")  # a line start just past a step that is not led by "{"
    buf = bytearray(data)
    counter = NewlineCounter(buf)
    for lo, hi in ((0, len(buf)), (5, step + 1), (step - 1, 2 * step + 1), (0, 1000), (0, step)):
        chunk = bytes(buf[lo:hi])
        starts = [i + 1 for i in range(len(chunk) - 1) if chunk[i] == 10]
        got = counter.lines(lo, hi, ord("{"))
        assert got.newlines == chunk.count(b"\n")
        assert got.unled == sum(chunk[i] != ord("{") for i in starts)


def test_cut_csv_with_a_malformed_row_keeps_numbers_to_the_cut(tmp_path: Path) -> None:
    """`on_truncated: quarantine` on a cut .csv.gz whose malformed row sends it down the csv
    module's path: every whole row before the cut, numbered as data rows, the malformed one and
    the cut one quarantined with theirs. Oracle: the csv module over the bytes gzip gives back
    up to the cut."""
    import csv
    import gzip

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["text", "n"])
    for i in range(3000):
        writer.writerow([f"row {i} " + "x" * 50, i] + (["extra"] if i == 10 else []))
    packed = gzip.compress(text.getvalue().encode())
    src = tmp_path / "cut.csv.gz"
    src.write_bytes(packed[: len(packed) * 2 // 3])
    whole = zlib.decompressobj(31).decompress(src.read_bytes())
    records = list(csv.reader(io.StringIO(whole[: whole.rfind(b"\n") + 1].decode())))[1:]
    want = [f"cut.csv.gz:{n}" for n, r in enumerate(records, start=1) if len(r) == 2]
    out = tmp_path / "out"
    run_stage(
        "shard",
        {"on_truncated": "quarantine", "block_bytes": 4096},
        out,
        inputs=[str(src)],
        executor=LocalExecutor(1),
    )
    assert column(out, "id") == want
    quarantined = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["reason"].split(":")[0]) for q in quarantined] == [
        (11, "malformed CSV row"),
        (len(records) + 1, "truncated"),
    ]
