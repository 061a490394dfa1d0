"""The shard fast path's shortcuts read exactly what the plain way reads (issue 19.3).

Each shortcut is checked against an independent oracle: Python's own bytes operations for line
counts, `counted_blocks` (a fresh `bytes` per block) for the reused block buffer.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import cli, column, manifest

from dataprep.stages.readers_common import (
    LINE_ROOM,
    NewlineCounter,
    counted_blocks,
    view_blocks,
)
from dataprep.stages.shard import parses_ahead

OPEN = ord("{")


def _oracle(data: bytes, lead: int) -> tuple[int, int]:
    """Newlines, and lines after the first not starting with `lead`, the plain way."""
    starts = [i + 1 for i, byte in enumerate(data) if byte == 10 and i + 1 < len(data)]
    return data.count(b"\n"), sum(data[i] != lead for i in starts)


def _lines(rng: random.Random, count: int, longest: int) -> bytes:
    out = []
    for _ in range(count):
        size = int(rng.paretovariate(1.2) * 20) % longest
        head = b"{" if rng.random() < 0.9 else rng.choice([b" ", b"x", b"", b"\n"])
        out.append(head + bytes(rng.choice(b"ab{ \t\xc3\xa9") for _ in range(size)))
    return b"\n".join(out) + (b"\n" if rng.random() < 0.5 else b"")


@pytest.mark.parametrize("seed", range(6))
def test_line_counts_equal_a_plain_count(seed: int) -> None:
    rng = random.Random(seed)
    data = _lines(rng, 30_000 if seed % 2 else 800, 4000)
    buf = bytearray(data)
    counter = NewlineCounter(buf)
    for _ in range(20):
        lo = rng.randrange(0, len(buf) // 3)
        hi = rng.randrange(lo + 1, len(buf) + 1)
        got = counter.lines(lo, hi, OPEN)
        assert (got.newlines, got.unled) == _oracle(bytes(buf[lo:hi]), OPEN)
        assert counter(lo, hi) == buf.count(b"\n", lo, hi)


@pytest.mark.parametrize(("block", "longest"), [(1 << 16, 3000), (3 << 20, 9000), (2 << 20, 0)])
def test_reused_buffer_blocks_equal_fresh_blocks(block: int, longest: int) -> None:
    """Same bytes, first line numbers and counts per block as `counted_blocks`, whatever the
    cut lines carried between blocks: short ones (kept in the buffer's LINE_ROOM) and, with
    `longest` 0, one line longer than a block and its room (the buffer grows)."""
    rng = random.Random(block)
    if longest:
        data = _lines(rng, 20_000, longest)
    else:
        long_line = b"{" + b"x" * (block + LINE_ROOM + 12345)
        data = b"\n".join([_lines(rng, 3000, 3000), long_line, _lines(rng, 3000, 3000)])
    for limit in (None, len(data) - 7):
        fresh = list(counted_blocks(io.BytesIO(data), limit, 1, block))
        viewed = [
            (bytes(view), line, counts, _oracle(bytes(view), OPEN)[1])
            for view, line, counts in view_blocks(io.BytesIO(data), limit, 1, block)
        ]
        assert [(d, line, n) for d, line, n in fresh] == [
            (d, line, c.newlines) for d, line, c, _ in viewed
        ]
        assert [c.unled for *_, c, _ in viewed] == [unled for *_, unled in viewed]
        assert b"".join(d for d, *_ in fresh) == data[:limit]


def _mimalloc_options(*args: str, **env: str) -> str:
    proc = cli(*args, env={"MIMALLOC_VERBOSE": "1", **env})
    return "\n".join(line for line in proc.stderr.splitlines() if "purge_delay" in line)


@pytest.mark.skipif(
    pa.default_memory_pool().backend_name != "mimalloc", reason="Arrow's pool is not mimalloc"
)
def test_a_stage_commands_allocator_keeps_what_it_frees(tmp_path: Path) -> None:
    """A stage's workers reuse the memory a block freed for the next one instead of handing
    it back to the kernel and faulting it in again (issue 19.3: ~0.1-0.2 s of system time per
    200 MB shard); a user's own MIMALLOC_PURGE_DELAY wins, and other commands keep Arrow's."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    assert "'purge_delay': -1" in _mimalloc_options("shard", src, "-o", tmp_path / "a")
    mine = _mimalloc_options("shard", src, "-o", tmp_path / "b", MIMALLOC_PURGE_DELAY="250")
    assert "'purge_delay': 250" in mine
    other = _mimalloc_options("head", tmp_path / "a", "-n", "1")
    assert "'purge_delay'" in other and "'purge_delay': -1" not in other


def test_a_plain_file_shards_as_its_compressed_copy(tmp_path: Path) -> None:
    """End to end: a plain file (its range read into one reused buffer) and its .gz copy
    (a stream) give the same rows, ids and quarantine, with blocks small enough to cut lines."""
    rng = random.Random(5)
    rows = [{"id": f"d{i}", "text": "é" * rng.randrange(1, 3000)} for i in range(3000)]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    lines[1700] = b'{"id": "cut", "text": "a line cut in the'
    data = b"\n".join(lines) + b"\n"
    (tmp_path / "plain.jsonl").write_bytes(data)
    (tmp_path / "packed.jsonl.gz").write_bytes(gzip.compress(data))
    out = {}
    for name in ("plain.jsonl", "packed.jsonl.gz"):
        target = tmp_path / f"out-{name}"
        cli("shard", tmp_path / name, "-o", target, "-w", "2", "--block-bytes", "64KB", "-q")
        out[name] = (
            column(target, "id"),
            column(target, "text"),
            [
                json.loads(q)["line"]
                for q in (target / ".quarantine.jsonl").read_text().splitlines()
            ],
        )
    assert out["plain.jsonl"] == out["packed.jsonl.gz"]
    assert len(out["plain.jsonl"][0]) == 2999 and out["plain.jsonl"][2] == [1701]


def test_tasks_parse_ahead_only_where_a_core_would_idle() -> None:
    waves = [parses_ahead(i, 5, 2) for i in range(5)]
    assert waves == [False, False, False, False, True]  # 2 full waves, then one task alone
    assert not any(parses_ahead(i, 4, 2) for i in range(4))
    assert parses_ahead(0, 1, 2) and all(parses_ahead(i, 3, 1) for i in range(3))


def test_shards_are_the_same_bytes_with_or_without_parsing_ahead(tmp_path: Path) -> None:
    """-w 1 parses ahead in every task, -w 2 in none of the first 4 of 5: the same shards."""
    rng = random.Random(9)
    rows = [{"id": f"d{i}", "text": "x" * rng.randrange(1, 4000)} for i in range(4000)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sums = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        cli("shard", src, "-o", out, "-w", workers, "--chunk-bytes", "1700KB", "-q")
        sums.append([(s["path"], s["xxh3_128"]) for s in manifest(out)["shards"]])
    assert len(sums[0]) == 5 and sums[0] == sums[1]
