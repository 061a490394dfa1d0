"""Tasks and their results: what a stage hands an executor, and what comes back.

A `Task[C, P]` carries the stage's config `C` and its phase's own frozen payload `P` (a plan
piece: byte ranges, quotas, a tokenizer...), so a task function reads `task.payload.quota`
instead of unpacking a tuple. Tasks are pickled to workers (process pool, Ray), so payloads
are plain frozen dataclasses of picklable values.

A `TaskResult[R]` comes back with committed shards, counters and an optional payload `R`. The
driver keeps every result as a JSON task record (`records`, never pickle) until the stage
commits, so a killed run resumes without redoing finished tasks; a result payload is a
dataclass marked `@recordable` (stored by name and fields) or plain JSON-able data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pyarrow as pa

from dataprep import progress, records
from dataprep.dataset import ReadOptions, ShardEntry, WriteOptions
from dataprep.records import recordable
from dataprep.storage import StoragePath, file_checksum

__all__ = [
    "Quarantine",
    "Task",
    "TaskResult",
    "ValueCounts",
    "load_record",
    "record_path",
    "recordable",
    "save_record",
    "sum_counts",
]

C = TypeVar("C")  # the stage's config
P = TypeVar("P")  # a phase's task payload
R = TypeVar("R")  # a phase's result payload


@dataclass(frozen=True)
class Task(Generic[C, P]):
    """One unit of work, picklable so any executor can ship it to a worker."""

    phase: str
    index: int
    inputs: tuple[str, ...]
    out_dir: str
    work_dir: str
    config: C
    write_options: WriteOptions = WriteOptions()
    payload: P = None  # type: ignore[assignment]  # None for phases that need nothing more
    read_options: ReadOptions = ReadOptions()

    @property
    def extra(self) -> P:
        """The payload under its name before issue 20 (plugins written then still run)."""
        return self.payload

    @property
    def out(self) -> StoragePath:
        return StoragePath(self.out_dir)

    @property
    def work(self) -> StoragePath:
        return StoragePath(self.work_dir)

    def quarantine(self) -> Quarantine:
        path = self.work / "quarantine" / f"{self.phase}-{self.index:05d}.jsonl"
        return Quarantine(path, keep_rows=self.write_options.encryption is None)


@dataclass(init=False)
class TaskResult(Generic[R]):
    """What a task hands back: its committed shards, counters, and any small plan data."""

    shards: list[ShardEntry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    schema: pa.Schema | None = None
    payload: R = None  # type: ignore[assignment]

    def __init__(
        self,
        shards: list[ShardEntry] | None = None,
        counts: dict[str, int] | None = None,
        schema: pa.Schema | None = None,
        payload: R = None,  # type: ignore[assignment]
        *,
        extra: Any = None,  # the payload's name before issue 20
    ):
        self.shards = [] if shards is None else shards
        self.counts = {} if counts is None else counts
        self.schema = schema
        self.payload = extra if payload is None else payload

    @property
    def extra(self) -> R:
        """The payload under its name before issue 20 (plugins written then still run)."""
        return self.payload


@recordable
@dataclass(frozen=True)
class ValueCounts:
    """Rows per distinct value of one column in one shard (None counts the nulls)."""

    counts: dict[Any, int]


def sum_counts(results: Sequence[TaskResult[Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            total[key] = total.get(key, 0) + value
    return total


class Quarantine:
    """Append-only JSONL of rows a task could not use, with where they came from and why.

    With `keep_rows=False` (an encrypted run) no row content is written next to the
    ciphertext: no raw row, and a reason is cut before its first ": ", where reasons quote
    the offending value (`field 'n': 'abc' is not int64` -> `field 'n'`).
    """

    def __init__(self, path: StoragePath, keep_rows: bool = True):
        self.path = path
        self.keep_rows = keep_rows
        self.count = 0
        self._file: Any = None

    def add(self, source: str, line: int | None, reason: str, raw: str | None = None) -> None:
        if self._file is None:
            self.path.parent.mkdir()
            self._file = self.path.open_output()
        if not self.keep_rows:
            reason, raw = reason.split(": ", 1)[0], None
        record = {"source": source, "line": line, "reason": reason}
        if raw is not None:
            record["raw"] = raw[:2000]
        self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            progress.tick(quarantined=self.count)  # live metrics (--metrics-port) count them


RECORD_FORMAT = "dataprep-task-record"
# 2: typed result payloads under "payload" (1 kept tuples and dicts under "extra"): a record a
# killed run of an older version left is reported in one line and its task reruns
RECORD_VERSION = 2


def record_path(work: StoragePath, task: Task[Any, Any]) -> StoragePath:
    """Where a finished task's result is kept until the stage commits its manifest."""
    return work / "tasks" / f"{task.phase}-{task.index:05d}.json"


def save_record(path: StoragePath, task: Task[Any, Any], result: TaskResult[Any]) -> None:
    """JSON via `records` (never pickle: a work folder must not be able to run code)."""
    record = {
        "format": RECORD_FORMAT,
        "format_version": RECORD_VERSION,
        "phase": task.phase,
        "index": task.index,
        "shards": result.shards,
        "counts": result.counts,
        "schema": result.schema,
        "payload": result.payload,
    }
    path.write_atomic(records.dumps(record))


def load_record(path: StoragePath, task: Task[Any, Any]) -> TaskResult[Any]:
    """The result `save_record` kept for this very task; RecordError for anything else."""
    data = records.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise records.RecordError("not a dataprep task record")
    if data.get("format_version") != RECORD_VERSION:
        raise records.RecordError(
            f"record format {data.get('format_version')!r} is not one this dataprep reads"
        )
    if (data.get("phase"), data.get("index")) != (task.phase, task.index):
        raise records.RecordError(f"it records task {data.get('phase')}-{data.get('index')}")
    shards, counts, schema = data.get("shards"), data.get("counts"), data.get("schema")
    if not isinstance(shards, list) or not all(isinstance(s, ShardEntry) for s in shards):
        raise records.RecordError("its shards are not shard entries")
    if not isinstance(counts, dict) or not all(isinstance(k, str) for k in counts):
        raise records.RecordError("its counts are not a dict of names")
    if schema is not None and not isinstance(schema, pa.Schema):
        raise records.RecordError("its schema is not an Arrow schema")
    for shard in shards:
        _check_shard(task.out / shard.path, shard)
    return TaskResult(shards, counts, schema, data.get("payload"))


def _check_shard(path: StoragePath, entry: ShardEntry) -> None:
    """A recorded shard must hold the bytes its record describes before a resume trusts it.

    After a power loss (or a hand-copied work folder) a record can describe a shard cut short
    or holding zeroed pages; trusting it would commit a shard that fails every later read. A
    local shard is hashed again (on a resume only, and only its finished shards); an
    object-store upload is all or nothing, so there its size is enough and costs no download.
    """
    try:
        size = path.size()
    except OSError:
        raise records.RecordError(f"its shard {entry.path} is gone") from None
    if size != entry.bytes:
        raise records.RecordError(
            f"its shard {entry.path} has {size} bytes, not the {entry.bytes} it recorded"
        )
    if not path.remote and file_checksum(path) != entry.xxh3_128:
        raise records.RecordError(f"its shard {entry.path} does not hold the bytes it recorded")
