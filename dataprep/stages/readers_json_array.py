"""A `.json` input holding one JSON array of objects (`json.dump(rows)`, Alpaca's
instruction sets), read as JSON Lines: each element becomes one line (its raw newlines, which
JSON allows only between tokens, made spaces), so the JSONL reader takes it as it takes any
line, and its number is the element's (1-based), in ids (`SOURCE:N`) and the quarantine.

Streamed: Python's decoder finds where each element ends in a buffer of a block or so; memory
is a block plus the largest element (twice it at most), never the whole file."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source

READ = 1 << 20  # bytes read from the source at a time (more for a long element: `fill`)
SPACE = " \t\r\n"


OnCut = Callable[[int, bytes], None]


def array_lines(
    src: SourceFile, block: int, on_cut: OnCut | None = None
) -> Iterator[tuple[bytes, int]]:
    """Blocks of about `block` bytes of JSON Lines, one element a line, each with the number of
    its first element. A cut compressed input raises `TruncatedInput`, or, given `on_cut`
    (`--on-truncated quarantine`), ends after the last whole element and hands the number and
    text of the cut one to `on_cut`, as the JSONL reader does with a cut line."""
    lines: list[str] = []
    size, first = 0, 1
    for number, line in _elements(src, on_cut):
        if not lines:
            first = number
        lines.append(line)
        size += len(line) + 1
        if size >= block:
            yield ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"), first
            lines, size = [], 0
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"), first


def _elements(src: SourceFile, on_cut: OnCut | None = None) -> Iterator[tuple[int, str]]:
    decoder = json.JSONDecoder()
    # a byte that is not UTF-8 is kept as it was (surrogateescape): inside a string, its
    # element's line is quarantined by the JSONL reader ("invalid UTF-8"), the others are rows
    text = codecs.getincrementaldecoder("utf-8-sig")("surrogateescape")
    cut = False
    with open_source(src) as raw:

        def more(size: int) -> str:
            nonlocal cut
            try:
                data = raw.read(size)
            except TruncatedInput:
                if on_cut is None:
                    raise
                cut, data = True, b""  # the bytes before the cut were all read
            return text.decode(data, final=not data and not cut)

        buf, pos, eof, number = "", 0, False, 0

        def stop() -> bool:
            """At a cut: the cut element goes to `on_cut`, and reading ends."""
            if cut and on_cut is not None:
                on_cut(number + 1, buf[pos:].encode("utf-8", "surrogateescape"))
            return cut

        def fill(want: int = 0) -> bool:
            """More text after `pos` (`want`: at least so many bytes read, where an element
            goes on: each retry of it reads as much again, so a long one is decoded a few
            times, not once per READ: a 40 MB element took 1.2 s of CPU)."""
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = more(max(READ, want))
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0
            return bool(chunk)

        def skip() -> str:
            """The next character after white space ('' at the end)."""
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in SPACE:
                    pos += 1
                if pos < len(buf) or not fill():
                    return buf[pos] if pos < len(buf) else ""

        if skip() != "[":
            if stop():
                return
            raise DataprepError(f"input {src.path} does not start with a JSON array")
        pos += 1
        while True:
            mark = skip()
            if mark == "]":
                pos += 1
                if skip():
                    raise _bad(src, number + 1, "text after the array's end")
                return
            if number:
                if mark != ",":
                    if stop():
                        return
                    raise _bad(src, number + 1, "',' or ']' expected")
                pos += 1
                skip()
            while True:
                try:
                    _, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or not fill():  # a number may go on in the next read
                        break
                except json.JSONDecodeError as exc:  # cut by the buffer's end, or bad
                    if not fill(len(buf) - pos):  # as much again: linear, not quadratic
                        if stop():
                            return
                        raise _bad(src, number + 1, exc.msg) from None
                except RecursionError:
                    raise _bad(src, number + 1, "nested too deeply to read") from None
            number += 1
            yield number, buf[pos:end].replace("\n", " ").replace("\r", " ")
            pos = end


def _bad(src: SourceFile, element: int, why: str) -> DataprepError:
    return DataprepError(
        f"input {src.path} is a JSON array that is not valid JSON at element {element:,} "
        f"({why}); repair it, or convert it to JSON Lines with `jq -c '.[]'` and shard that"
    )
