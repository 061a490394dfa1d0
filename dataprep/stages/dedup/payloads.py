"""What dedup's driver hands each task phase, and what the tasks hand back.

Task payloads travel pickled to workers; result payloads are also kept in JSON task records
(`@recordable`), so a killed run resumes from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from dataprep.manifest import ShardEntry
from dataprep.stage import recordable


@dataclass(frozen=True)
class SignJob:
    """A `sign` task: the LSH banding (bands x rows of the signature), and whether to sign with
    the compiled kernel (decided once by the driver from the input's size: same values)."""

    bands: int
    rows: int
    compiled: bool = False
    docs: int = 0  # the shard's rows (its manifest entry): sig.npy's header is written first


@dataclass(frozen=True)
class BucketJob:
    """A `bucket` task: key range `part` of `parts` of one band (or of the exact pass)."""

    band: int
    part: int
    parts: int
    offsets: list[int]  # global row id of each shard's first row, then the total
    against: str | None  # a saved index to match against


@dataclass(frozen=True)
class IndexJob:
    """An `index` task: one band of the new saved index."""

    band: int
    offsets: list[int]
    kept_before: list[int]  # index id of each shard's first kept row
    staging: str
    against: str | None


@dataclass(frozen=True)
class IndexSignaturesJob:
    """The `index-sig` task: the new saved index's signatures."""

    shards: int
    staging: str
    against: str | None


@dataclass(frozen=True)
class WriteJob:
    """A `write` task: the output schema, the input columns it reads, the example rows to
    fetch (local row -> global id), the column that names rows in the report, and the input
    shard's manifest entry when the shard keeps every row and may be copied (`passthrough`)."""

    schema: pa.Schema
    input_columns: list[str]
    examples: dict[int, int]
    id_column: str | None
    copy_of: ShardEntry | None = None
    partition: int | None = None  # the input shard's partition tag: the output keeps it


@recordable
@dataclass(frozen=True)
class TaskStats:
    """A task's peak RSS (for the report's phases) and its seconds."""

    peak_rss_mb: float
    seconds: float


@recordable
@dataclass(frozen=True)
class WriteStats(TaskStats):
    """A `write` task's stats, rows and removed rows per source, and the example rows' texts
    and ids by global id."""

    per_source: dict[str, list[int]]
    examples: dict[int, str]
    example_ids: dict[int, str]
