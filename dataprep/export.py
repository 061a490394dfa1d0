"""Export a dataset as JSONL (optionally zstd-compressed, streamed) for tools that want it.

Row groups are read one at a time and compressed as a stream, so memory stays at one row
group whatever the dataset size. The file is written under a temporary name and renamed,
so a killed export never leaves a truncated file that looks complete. `out="-"` streams
plain JSONL to stdout instead (for `jq`, `head`, another program's stdin).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataprep.audit_use import use
from dataprep.crypto import readable_columns
from dataprep.dataset import Manifest, ReadOptions, iter_shard_paths, read_manifest
from dataprep.errors import DataprepError
from dataprep.progress import tick

STDOUT = "-"


def export_jsonl(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    level: int = 3,
    threads: int = 0,
    key_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write every row of dataset `src` to `out` (.jsonl, or .jsonl.zst / .zst for zstd; "-"
    for plain JSONL on stdout, where a reader that closes the pipe raises BrokenPipeError)."""
    if str(out) == STDOUT:
        source, chunks = _chunks(src, columns, key_file)
        rows, sink = 0, sys.stdout.buffer
        for data, count in chunks:
            sink.write(data)
            rows += count
        sink.flush()
        return _summary(rows, None, STDOUT, source)
    target = Path(out)
    name = target.name
    if not name.endswith((".jsonl", ".jsonl.zst", ".zst")):
        raise DataprepError(
            f"export writes .jsonl or .jsonl.zst (or - for stdout); {name} is neither"
        )
    if target.exists() and not overwrite:
        raise DataprepError(f"{target} already exists; pass --force to overwrite it")
    source, chunks = _chunks(src, columns, key_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
    rows = 0
    try:
        with open(tmp, "wb") as raw:
            sink: Any = raw
            if name.endswith(".zst"):
                import zstandard

                compressor = zstandard.ZstdCompressor(level=level, threads=threads)
                sink = compressor.stream_writer(raw, closefd=False)
            for data, count in chunks:
                sink.write(data)
                rows += count
            if sink is not raw:
                sink.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _summary(rows, target.stat().st_size, str(target), source)


@dataclass(frozen=True)
class _Source:
    manifest: Manifest
    left_out: dict[str, str]  # column -> the key id the key file lacks


def _summary(rows: int, size: int | None, path: str, source: _Source) -> dict[str, Any]:
    return {
        "rows": rows,
        "bytes": size,
        "path": path,
        "was_encrypted": source.manifest.encryption is not None,
        "columns_left_out": source.left_out,
    }


def _chunks(
    src: str | os.PathLike[str],
    columns: Sequence[str] | None,
    key_file: str | os.PathLike[str] | None,
) -> tuple[_Source, Iterator[tuple[bytes, int]]]:
    """The manifest (read and checked now) and the JSONL bytes of up to 8192 rows at a time."""
    manifest = read_manifest(src)
    cols = list(columns) if columns else None
    missing = [c for c in cols or [] if c not in manifest.schema.names]
    if missing:
        raise DataprepError(
            f"--columns names {', '.join(missing)}, which {src} does not have "
            f"(columns: {', '.join(manifest.schema.names)})"
        )
    # a partial key file exports the columns under the keys it holds (the summary lists the
    # rest); a --columns column it cannot read is one sentence
    # (no key file: the first shard read says which one to pass, naming the shard)
    left_out: dict[str, str] = {}
    if key_file is not None:
        # a refused key is recorded in the key-use audit log (the reads record themselves)
        with use("decrypt", key_file, src, manifest.encryption, cols, ok=False):
            access = readable_columns(manifest.encryption, key_file, manifest.schema.names)
            if cols:
                access.require(cols)
            elif access.missing:
                cols, left_out = access.readable, access.missing
    read = tuple(cols) if cols is not None else None
    reader = ReadOptions(str(key_file) if key_file else None, manifest.encryption, columns=read)

    def chunks() -> Iterator[tuple[bytes, int]]:
        for shard, path in iter_shard_paths(src, manifest):
            # all of a shard is read: check its manifest checksum too (covers shards without
            # page checksums, page headers and the footer; export is JSON-bound anyway)
            checksum = shard.xxh3_128 if cols is None else None
            for table in reader.row_groups(path, cols, checksum=checksum):
                for batch in table.to_batches(max_chunksize=8192):
                    yield json_lines(batch), batch.num_rows
                    tick(rows=batch.num_rows)

    return _Source(manifest, left_out), chunks()


def json_lines(batch: pa.RecordBatch) -> bytes:
    """One JSON object per row; non-JSON types (bytes, dates, NaN) become strings or null."""
    names = batch.schema.names
    dumps = json.JSONEncoder(ensure_ascii=False, default=_default, allow_nan=False).encode
    columns = [
        _clean(col.to_pylist()) if _needs_clean(col.type) else col.to_pylist()
        for col in batch.columns
    ]
    out = [dumps(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
    return ("\n".join(out) + "\n").encode() if out else b""


def _needs_clean(kind: pa.DataType) -> bool:
    return pa.types.is_floating(kind) or pa.types.is_nested(kind)


def _clean(values: list[Any]) -> list[Any]:
    """NaN/inf are not JSON: write them as null, as pandas' to_json does."""
    return [_clean_value(v) for v in values]


def _clean_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_value(v) for k, v in value.items()}
    return value


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, dt.timedelta)):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
