"""The shard fast path's shortcuts read exactly what the plain way reads (issue 19.3).

Each shortcut is checked against an independent oracle: Python's own bytes operations for line
counts, `counted_blocks` (a fresh `bytes` per block) for the reused block buffer.
"""

from __future__ import annotations

import io
import random

import pytest

from dataprep.stages.readers_common import (
    LINE_ROOM,
    NewlineCounter,
    counted_blocks,
    view_blocks,
)

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
