"""`verify`: a dataset's manifest against its shard files, byte for byte and footer by footer.

Loading the manifest (`read_manifest`) already refuses one no stage could have written; this
adds what only the files can tell: a missing, resized or changed shard, or a footer whose rows,
row groups or schema disagree with the entry that lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataprep.errors import DataprepError, VerifyError, checksum_mismatch, shard_error
from dataprep.layout import iter_shard_paths, read_manifest
from dataprep.manifest import Manifest, ManifestError, ShardEntry, spell_column
from dataprep.shardio import ReadOptions, file_checksum
from dataprep.storage import StoragePath, as_path, parquet_source


@dataclass
class VerifyResult:
    shards: int
    rows: int
    skipped: str | None = None  # what could not be checked, and why


def verify_dataset(root: str | Path | StoragePath, key_file: str | None = None) -> VerifyResult:
    """Check the manifest, then every shard: size, xxh3-128, and its footer (rows, row groups,
    schema) against the manifest; raise `VerifyError` at the first bad one.

    Encrypted footers need the key: without `key_file` an encrypted dataset's shards are
    checked by size and checksum only (which still catches any changed byte), and the result
    says what was skipped; with it each footer is decrypted and checked too, which also finds
    a shard whose wrapped keys in `.keys/` were replaced (no checksum covers those).
    """
    try:
        manifest = read_manifest(root)
    except ManifestError as exc:
        raise VerifyError(str(exc)) from None
    rows = 0
    reader = _key_reader(key_file, manifest.encryption)  # a wrong key file: exit 2, here
    for shard, path in iter_shard_paths(root, manifest):
        if not path.is_file():
            raise VerifyError(f"shard {shard.path} is missing")
        size = path.size()
        if size != shard.bytes:
            raise VerifyError(f"shard {shard.path}: size {size} != manifest {shard.bytes}")
        checksum = file_checksum(path)
        if checksum != shard.xxh3_128:
            raise VerifyError(str(checksum_mismatch(shard.path)))
        if manifest.encryption is None:
            try:
                with pq.ParquetFile(parquet_source(path)) as file:
                    problem = footer_problem(file, shard, manifest.schema)
            except (OSError, pa.ArrowException) as exc:
                raise VerifyError(str(shard_error(shard.path, exc))) from None
            if problem:
                raise VerifyError(f"shard {shard.path}: {problem}")
        elif reader is not None:
            try:
                problem = footer_problem(reader.open(path), shard, manifest.schema)
            except DataprepError as exc:
                raise VerifyError(str(exc)) from None
            if problem:
                raise VerifyError(f"shard {shard.path}: {problem}")
        rows += shard.rows
    stray = unlisted_data_files(root, manifest)
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise VerifyError(
            f"{stray[0]}{more} is in the dataset directory but not in its manifest: pyarrow, "
            "duckdb, polars and Hugging Face would read it as data; move it out of the directory"
        )
    if manifest.encryption is not None:  # wrapped data keys beside the data: no key needed
        from dataprep.crypto_material import check_material

        problem = check_material(root, manifest.encryption, [s.path for s in manifest.shards])
        if problem:
            raise VerifyError(problem)
    skipped = None
    if manifest.encryption is not None and manifest.shards and reader is None:
        skipped = (
            f"rows, row groups and schema of {len(manifest.shards)} encrypted shards not "
            "checked (their footers need the key); sizes and checksums were"
        )
    return VerifyResult(shards=len(manifest.shards), rows=rows, skipped=skipped)


def _key_reader(key_file: str | None, encryption: dict | None) -> ReadOptions | None:
    if key_file is None or encryption is None:
        return None
    from dataprep.crypto import ring_for

    ring_for(key_file, encryption)  # the footer key and the key checks, before any shard
    return ReadOptions(key_file, encryption)


def unlisted_data_files(root: str | Path | StoragePath, manifest: Manifest) -> list[str]:
    """Parquet files beside the shards that the manifest does not list (a stray copy, an
    older run's shard): dataprep ignores them, but every other tool reading the directory
    (`DIR/*.parquet`, `pyarrow.dataset`) adds their rows. Only dot names are skipped by all."""
    listed = {s.path for s in manifest.shards}
    names = (c.name for c in as_path(root).iterdir())
    return sorted(n for n in names if n.endswith(".parquet") and n[0] != "." and n not in listed)


def footer_problem(file: pq.ParquetFile, shard: ShardEntry, schema: pa.Schema) -> str | None:
    """How a shard's footer (rows, row groups, schema) disagrees with the manifest, if it does."""
    meta = file.metadata
    if meta.num_rows != shard.rows:
        return f"{meta.num_rows} rows != manifest {shard.rows}"
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    if shard.row_groups and groups != shard.row_groups:
        return f"row groups {_clip(groups)} != manifest {_clip(shard.row_groups)}"
    actual = file.schema_arrow
    if not actual.equals(schema, check_metadata=False):
        return f"schema differs from the manifest's: {_schema_diff(actual, schema)}"
    return None


def _schema_diff(file: pa.Schema, manifest: pa.Schema) -> str:
    ours = [spell_column(f.name, str(f.type), f.nullable) for f in file]
    theirs = [spell_column(f.name, str(f.type), f.nullable) for f in manifest]
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b]
    if pairs:
        a, b = pairs[0]
        return f"the file has {a} where the manifest has {b}"
    if len(ours) != len(theirs):
        return f"the file has {len(ours)} columns, the manifest {len(theirs)}"
    return "nested fields differ"


def _clip(values: list[int], most: int = 8) -> str:
    return str(values) if len(values) <= most else f"[{', '.join(map(str, values[:most]))}, …]"
