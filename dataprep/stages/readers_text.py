"""Plain-text input: whole files as documents (ids are file names) or one document per line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source
from dataprep.stage import Quarantine
from dataprep.stages.readers_common import LINE, quarantine_cut


def read_text_documents(
    sources: Iterable[SourceFile], schema: pa.Schema, config: Any, q: Quarantine, block: int
) -> Iterator[pa.Table]:
    """Whole files as documents, their ids the file names, many files to a table of about
    `block` bytes, in `schema`'s columns (others null); a cut or non-UTF-8 file is not kept.

    One table per file would cost more than reading a small file does."""
    id_type = schema.field(config.id_column).type
    names: list[str] = []
    texts: list[str] = []
    size = 0
    for src in sources:
        if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
            raise DataprepError(
                f"input {src.path} is a text file, whose id is its name, but the ids of the "
                f"first input are {id_type}; shard text files on their own"
            )
        with open_source(src) as stream:
            text = _document(stream, src, config, q)
        if text is None:
            continue
        names.append(src.name)
        texts.append(text)
        size += len(text)
        if size >= block or len(texts) >= 65536:
            yield _documents_table(names, texts, schema, config)
            names, texts, size = [], [], 0
    if texts:
        yield _documents_table(names, texts, schema, config)


def _document(stream: BinaryIO, src: SourceFile, config: Any, q: Quarantine) -> str | None:
    try:
        data = stream.read()
    except TruncatedInput:
        if config.on_truncated != "quarantine":
            raise
        quarantine_cut(q, src, None, b"")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        q.add(src.name, None, "invalid UTF-8", data[:2000].decode("utf-8", errors="replace"))
        return None


def _documents_table(
    names: list[str], texts: list[str], schema: pa.Schema, config: Any
) -> pa.Table:
    given = {config.id_column: names, config.text_column: texts}
    return pa.table(
        [
            pa.array(given[f.name], f.type) if f.name in given else pa.nulls(len(texts), f.type)
            for f in schema
        ],
        schema=schema,
    )


def read_text_lines(
    blocks: Iterator[tuple[bytes, int]], src: SourceFile, config: Any, q: Quarantine
) -> Iterator[pa.Table]:
    """One document per non-empty line."""
    for data, first_line in blocks:
        texts, numbers = [], []
        for offset, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            try:
                texts.append(raw.decode("utf-8").rstrip("\r"))
                numbers.append(first_line + offset)
            except UnicodeDecodeError:
                q.add(
                    src.name, first_line + offset, "invalid UTF-8", raw.decode("utf-8", "replace")
                )
        yield pa.table(
            {config.text_column: pa.array(texts, pa.string()), LINE: pa.array(numbers, pa.int64())}
        )
