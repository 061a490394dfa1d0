"""Reading inside one process: open shards (decrypt, verify), stream lane windows, prefetch.

Each process (the trainer, or one DataLoader worker) builds its own `ShardReader`s, one per
lane: pyarrow's decryption objects cannot be pickled, so they are made here from the key-file
path, and a lane's handles are never used by two threads at once. A lane is read sequentially
through `iter_batches`, so a row group larger than a window is decoded once, piece by piece,
and never held whole. The `Prefetcher` threads (two in a process without DataLoader workers,
on different lanes; one in each worker) load the windows this process will need, in the order
it will need them, while the trainer computes; they stop when the bytes queued reach the
budget (`prefetch_bytes`, shared by a rank's workers). A window not loaded when it is needed
is read by the iterating thread itself, from where a thread got to (caller runs; with
`decode_threads=0`, every window). A prefetcher is private to the iterator that made it:
nothing named or shared outlives a run.
"""

from __future__ import annotations

import atexit
import collections
import threading
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataprep.errors import DataprepError, checksum_mismatch, shard_error
from dataprep.loader.batch import Window
from dataprep.loader.index import DatasetIndex, check_footer
from dataprep.loader.order import EpochPlan
from dataprep.storage import file_checksum

_OPEN_FILES = 64  # ParquetFile handles kept per process
# ~bytes in memory per iter_batches step (wide rows: fewer rows): 1 MiB pieces stay in cache
# while they are copied out, ~8% less CPU than 4 MiB for token blocks and plain Parquet
_READ_BYTES = 1 << 20
# fixed-width reads (token blocks) go through one reused buffer of this size: unbuffered, each
# column chunk (tens of MB) lands in a fresh allocation the kernel must zero, ~10% of the CPU.
# Text reads measured 15-20% slower buffered, so they stay unbuffered.
_READ_BUFFER = 4 << 20
# each page's CRC-32 (written by every dataprep writer) is checked as it is read, so a flipped
# byte is an error naming the shard, never silently different samples; pages written without
# a CRC (older data, other tools) are read unchecked. A switch for benchmarks, not for users.
VERIFY_PAGES = True


class ShardReader:
    """Opens a dataset's shards for one process and reads row ranges of its units."""

    def __init__(
        self,
        index: DatasetIndex,
        columns: list[str],
        key_file: str | None,
        verify: bool,
        use_threads: bool = True,
        verified: set[int] | None = None,
    ):
        self.index = index
        self.columns = columns
        self.verify = verify
        self.use_threads = use_threads  # pyarrow's column threads: on only beside 2+ decode threads
        # sized by decoded bytes: pieces of 2048-id blocks sized by their zstd bytes were 10 MB
        # allocations, fresh pages each time (page zeroing was ~20% of a profile)
        self.read_rows = int(min(8192, max(16, _READ_BYTES // index.read_row_bytes(columns))))
        fixed = all(index.fixed_row_bytes([c]) for c in columns)
        self.buffer_size = _READ_BUFFER if fixed else 0
        # pre-buffering reads a row group's whole column chunks up front, each into fresh
        # memory (page zeroing was ~15% of a plain-Parquet profile) and all of them even when
        # a lane needs a few rows; locally the buffered reads above stream through one reused
        # buffer instead. Remote reads keep it: it coalesces their round trips.
        self.pre_buffer = not (self.buffer_size and index.filesystem.type_name == "local")
        self._files: collections.OrderedDict[int, pq.ParquetFile] = collections.OrderedDict()
        self._verified = verified if verified is not None else set()  # shared across readers
        self._decryption: Any = None
        self._key_file = key_file
        if index.encryption is not None:
            try:
                from dataprep.crypto import shard_decryption  # noqa: F401 - checks it is there
            except ImportError:
                raise DataprepError(
                    f"{index.uri} is encrypted but this dataprep has no dataprep.crypto module"
                ) from None
            from dataprep.audit_use import use

            with use("decrypt", key_file, index.uri, index.encryption, columns):  # audit record
                from dataprep.crypto import readable_columns

                readable_columns(index.encryption, key_file, index.schema.names).require(columns)

    def open(self, file: int) -> pq.ParquetFile:
        handle = self._files.get(file)
        if handle is not None:
            self._files.move_to_end(file)
            return handle
        shard = self.index.files[file]
        if self.verify and file not in self._verified:
            self._check(file)
        try:
            if self.index.encryption is not None:  # per shard: its wrapped keys may be beside it
                from dataprep.audit_use import use
                from dataprep.crypto import shard_decryption

                index = self.index
                with use("decrypt", self._key_file, index.uri, index.encryption, self.columns):
                    self._decryption = shard_decryption(
                        self._key_file, index.encryption, shard.path, index.filesystem
                    )
            handle = pq.ParquetFile(
                self.index.filesystem.open_input_file(shard.path),
                decryption_properties=self._decryption,
                buffer_size=self.buffer_size,
                pre_buffer=self.pre_buffer,
                # verify=True checked the whole file against the manifest: the CRCs are spare
                page_checksum_verification=VERIFY_PAGES and not self.verify,
            )
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise shard_error(shard.name, exc, self._decryption is not None) from None
        check_footer(handle, shard.name, shard.row_groups)
        self._files[file] = handle
        if len(self._files) > _OPEN_FILES:
            self._files.popitem(last=False)
        return handle

    def _check(self, file: int) -> None:
        """verify=True: the shard's bytes must match the manifest's xxh3-128 checksum."""
        shard = self.index.files[file]
        if shard.checksum is None:
            raise DataprepError(f"verify=True needs a manifest with checksums ({self.index.uri})")
        try:
            with self.index.filesystem.open_input_stream(shard.path) as f:
                digest = file_checksum(f)
        except OSError as exc:
            raise shard_error(shard.name, exc, False) from None
        if digest != shard.checksum:
            raise checksum_mismatch(shard.name)
        self._verified.add(file)

    def iter_unit(self, unit: int, start: int, stop: int) -> Iterator[pa.RecordBatch]:
        """Rows [start, stop) of one unit, streamed in pieces of ~`_READ_BYTES`."""
        file = int(self.index.unit_file[unit])
        handle = self.open(file)
        pos = 0
        try:
            for batch in handle.iter_batches(
                batch_size=min(self.read_rows, stop),  # a lane ending early in a unit: no more
                row_groups=[int(self.index.unit_rg[unit])],
                columns=self.columns,
                use_threads=self.use_threads,
            ):
                end = pos + batch.num_rows
                if end > start:
                    yield batch.slice(max(0, start - pos), min(stop, end) - max(start, pos))
                pos = end
                if pos >= stop:
                    return
        except (OSError, pa.ArrowException, ValueError) as exc:
            name = self.index.files[file].name
            raise shard_error(name, exc, self._decryption is not None) from None
        if pos < stop:
            name = self.index.files[file].name
            raise DataprepError(f"shard {name} has fewer rows than its index says; re-index it")


class LaneReader:
    """Sequential reader of one lane's stream rows; a jump forward re-opens at the target."""

    def __init__(self, plan: EpochPlan, lane: int, shards: ShardReader):
        self.plan, self.shards = plan, shards
        self.end = int(plan.lane_start[lane] + plan.lane_len[lane])
        self.pos = -1
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self._pending: pa.RecordBatch | None = None

    def _stream(self, a: int) -> Iterator[pa.RecordBatch]:
        for piece in self.plan.pieces(a, self.end):
            yield from self.shards.iter_unit(piece.unit, piece.start, piece.stop)

    def read_steps(self, a: int, b: int) -> Generator[None, None, pa.Table]:
        """Rows [a, b) as a table, yielding after each piece decoded: the rest of the read
        may go on in another thread (the prefetcher's caller-runs hand-over)."""
        if a != self.pos:
            if self._same_unit(self.pos, a):
                yield from self._take(a - self.pos, [])  # drop the gap: cheaper than re-decoding
            else:
                self._batches, self._pending = self._stream(a), None
        parts: list[pa.RecordBatch] = []
        yield from self._take(b - a, parts)
        self.pos = b
        return pa.Table.from_batches(parts, schema=parts[0].schema if parts else None)

    def _same_unit(self, pos: int, a: int) -> bool:
        """A forward jump that stays inside the unit being streamed."""
        if pos < 0 or a < pos:
            return False
        starts = self.plan.stream_start
        return bool(np.searchsorted(starts, pos, "right") == np.searchsorted(starts, a, "right"))

    def _take(self, need: int, parts: list[pa.RecordBatch]) -> Generator[None, None, None]:
        """Append the next `need` rows' pieces to `parts`, yielding between decodes."""
        while need:
            if self._pending is not None:
                batch, self._pending = self._pending, None
            else:
                if parts:
                    yield
                batch = next(self._batches)
            if batch.num_rows > need:
                self._pending = batch.slice(need)
                batch = batch.slice(0, need)
            parts.append(batch)
            need -= batch.num_rows


class _Job:
    """One need being loaded. Its steps (one `iter_batches` piece each) run on whichever
    thread holds it, never on two at once: a prefetch thread, or the consumer once it has
    claimed the job, at the thread's next step boundary."""

    __slots__ = ("seq", "key", "order", "steps", "busy", "claimed")

    def __init__(self, seq: int, key: tuple[int, ...], order: collections.deque[int]):
        self.seq, self.key, self.order = seq, key, order
        self.steps: Generator[None, None, Window] | None = None  # the load, once started
        self.busy = False  # a thread is inside one of its steps
        self.claimed = False  # the consumer wants it now: whoever holds it hands it over


class Prefetcher:
    """Loads windows on daemon threads, in need order, until `budget` bytes are queued.

    Key `(lane, ...)`: with several threads, loads of different lanes run at once (decoding
    releases the GIL) while each lane's loads still run one after another, in need order, as
    its sequential stream wants; `get` hands windows out in need order.

    Caller runs: when `get` needs a window that is not loaded yet, the consumer loads it
    itself rather than wait: a window no thread has started, or the rest of one a thread
    is part way through (taken over at its next piece; `load` may be a generator that yields
    between pieces and returns the window). So the threads only add work where a core has
    slack: a thread starved by a busy neighbour never holds a batch back for longer than one
    piece, and the consumer is never slower than reading inline (`threads=0`).
    """

    def __init__(
        self,
        needs: Iterator[tuple[int, ...]],
        load: Callable[..., Window | Generator[None, None, Window]],
        budget: int,
        threads: int = 1,
    ):
        self._needs = needs
        self._load = load
        self._done: dict[int, tuple[Any, Any]] = {}  # need number -> (key, window or error)
        self._jobs: dict[int, _Job] = {}  # need number -> its load in progress
        self._lanes: dict[int, collections.deque[int]] = {}  # lane -> its needs in flight
        self._pulled = 0  # needs taken from the iterator
        self._next = 0  # need number `get` hands out next
        self._queued = 0
        self._budget = max(1, budget)
        self._cond = threading.Condition()
        self._stop = False
        self._exhausted = False
        self.taken_over = 0  # loads a thread had started that the consumer finished
        self._threads = [
            threading.Thread(target=self._run, name="dataprep-prefetch", daemon=True)
            for _ in range(max(0, threads))
        ]
        for thread in self._threads:
            thread.start()
        _LIVE.add(self)

    def _run(self) -> None:
        while (job := self._pull(ahead=True)) is not None and self._drive(job, ahead=True):
            pass

    def _pull(self, ahead: bool) -> _Job | None:
        """Take the next need as a job; None once there is nothing more to do. A thread
        (`ahead`) first waits while the budget is full; `get` pulls what it needs now."""
        with self._cond:
            while ahead and self._done and self._queued >= self._budget and not self._stop:
                self._cond.wait()
            if self._stop or self._exhausted:
                return None
            seq = self._pulled
            try:
                key = next(self._needs, None)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                key = None
                self._done[seq] = (None, exc)
            if key is None:  # exhausted, or failed (the error takes number `seq`)
                self._exhausted = True
                self._pulled = seq + 1 if seq in self._done else seq
                self._cond.notify_all()
                return None
            self._pulled = seq + 1
            order = self._lanes.setdefault(key[0], collections.deque())
            order.append(seq)
            job = self._jobs[seq] = _Job(seq, key, order)
            job.claimed = not ahead
            return job

    def _drive(self, job: _Job, ahead: bool) -> bool:
        """Run `job`'s steps until it is loaded (True unless it failed). A thread (`ahead`)
        first waits for its lane's earlier loads, and hands the job over, at a step boundary,
        once the consumer claims it (True: the thread goes on to the next need)."""
        while True:
            with self._cond:
                while not self._stop and not job.claimed and job.order[0] != job.seq:
                    self._cond.wait()  # this lane's earlier loads first
                if self._stop or (ahead and job.claimed):
                    self._cond.notify_all()  # the consumer may wait for this step to end
                    return not self._stop
                job.busy = True
            result: tuple[Any, Any] | None = None
            try:
                if job.steps is None:
                    out = self._load(*job.key)
                    if isinstance(out, Generator):
                        job.steps = out
                    else:
                        result = (job.key, out)
                else:
                    next(job.steps)
            except StopIteration as done:
                result = (job.key, done.value)
            except BaseException as exc:
                result = (None, exc)
            with self._cond:
                job.busy = False
                if result is not None and not self._stop:  # closed: nothing is kept
                    job.order.popleft()
                    del self._jobs[job.seq]
                    self._done[job.seq] = result
                    if result[0] is not None:
                        self._queued += result[1].nbytes
                self._cond.notify_all()
            if result is not None:
                return result[0] is not None

    def get(self) -> tuple[tuple[int, ...], Window]:
        while True:
            job = None
            with self._cond:
                if self._stop:
                    raise RuntimeError("the prefetcher is closed")
                while self._next not in self._done:
                    job = self._jobs.get(self._next)
                    if job is None:
                        break
                    if not job.claimed:
                        job.claimed = True
                        self.taken_over += job.steps is not None or job.busy
                    if not job.busy:
                        break
                    self._cond.wait()  # the thread hands it over when this step ends
                if self._next in self._done:
                    key, item = self._done.pop(self._next)
                    self._next += 1
                    if key is None:
                        raise item
                    self._queued -= item.nbytes
                    self._cond.notify_all()
                    return key, item
                if job is None and self._exhausted:
                    raise RuntimeError("the prefetcher was asked for more windows than needed")
            if job is None:  # nobody has started it: load it here
                job = self._pull(ahead=False)
            if job is not None:
                self._drive(job, ahead=False)

    def close(self) -> None:
        """Stop the threads and wait for their current reads: no pyarrow call may outlive us."""
        with self._cond:
            self._stop = True
            self._done.clear()
            self._jobs.clear()
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=_JOIN_SECONDS)
        _LIVE.discard(self)


def _close_all() -> None:
    """At exit, stop threads of iterators never finished: a thread still inside pyarrow's C++
    while the process exits aborts it ("terminate called without an active exception")."""
    for prefetcher in list(_LIVE):
        prefetcher.close()


_JOIN_SECONDS = 30.0
_LIVE: weakref.WeakSet[Prefetcher] = weakref.WeakSet()
atexit.register(_close_all)
