"""`ShardDataset`: an iterable of ready batches over a dataset directory or plain Parquet.

It yields whole batches (dict column -> tensor, or list for strings), so a DataLoader over it
runs with `batch_size=None` and never collates per sample. What a pass yields is decided by
`order.EpochPlan` (the topology-free global order) and `split.Schedule` (this rank's share);
this module wires them to the reader in the current process; the resume protocol it shares
with the mixture is `resume.Resumable`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from dataprep.errors import DataprepError
from dataprep.loader.batch import Window, join_parts, to_batch
from dataprep.loader.index import DatasetIndex, open_index
from dataprep.loader.mix import MixedDataset
from dataprep.loader.order import CUTS, EpochPlan
from dataprep.loader.reader import LaneReader, Prefetcher, ShardReader
from dataprep.loader.resume import (
    STATE_VERSION,
    PassCount,
    ReadPosition,
    Resumable,
    get_worker_info,
    is_count,
)
from dataprep.loader.split import Item, Schedule, Strided

try:
    import torch.distributed as dist
except ImportError:  # pragma: no cover - without torch the dataset is a plain iterable
    dist = None  # type: ignore[assignment]

log = logging.getLogger("dataprep.loader")

DEFAULT_BATCH_SIZE = 64
DEFAULT_PREFETCH_BYTES = 64 << 20
DECODE_THREADS = 2  # per process without DataLoader workers (workers decode on one thread)
PIECE_BYTES = 8 << 20  # in memory per unshuffled read: small buffers are reused, not faulted in


def _topology(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values first, then torch.distributed, then RANK / WORLD_SIZE, else (0, 1)."""
    if rank is None or world_size is None:
        if dist is not None and dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        else:
            rank = int(os.environ.get("RANK", 0)) if rank is None else rank
            world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataprepError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
    return rank, world_size


class ShardDataset(Resumable):
    """Batches of a dataset for this rank, deterministic in (seed, epoch), exactly resumable.

    Parameters (what each does, its default, and why one would change it):

    - `path`: a dataset directory (its manifest gives row counts and checksums without
      opening files), or a Parquet file, a folder of them or a glob; local or a URI.
    - `columns` (None: all): the columns a batch holds. Name only what training reads: other
      columns are then never decoded, which is most of the cost for wide text columns.
    - `batch_size` (64): rows per yielded batch (the DataLoader runs with `batch_size=None`;
      batches are built here, not collated per sample). Part of the order: a resume state
      saved with another batch size is refused.
    - `shuffle` (False): permute row groups, then rows inside windows, anew each epoch. Turn
      on for training; leave off to read the data in stored order (evaluation, export).
    - `seed` (0): with the epoch, fixes the whole order on every rank. Change it for another
      order of the same data; a resume state saved with another seed is refused.
    - `rank`, `world_size` (None: from torch.distributed, else `RANK` / `WORLD_SIZE`, else
      0 of 1): this process's share, global batches rank, rank + world_size, ... Pass them
      when the process group is not set up yet, or to read one rank's share elsewhere.
    - `equal_batches` (False): every rank yields the same number of batches; the last round
      is re-split into smaller batches. Turn on under DDP, where a rank that steps once more
      than the others hangs the job.
    - `drop_last` (False): with `equal_batches`, trim the last round's samples instead of
      re-splitting them, so every batch is full (a fixed shape for compiled models). The
      count trimmed is logged and in `trimmed`.
    - `prefetch_bytes` (64 MiB): decoded data read ahead on a thread, shared by this rank's
      DataLoader workers. Raise it when reads from remote storage are slow or bursty; lower it
      when memory is tight.
    - `decode_threads` (None: two in a process without DataLoader workers, one in each
      worker): threads that read and decode ahead while training computes. 0 reads in the
      iterating thread, with pyarrow's own threads off too: the least CPU when there is no
      compute to overlap or no core to spare (another busy process on a small machine).
    - `key_file` (None): the key file an encrypted dataset was encrypted with; required for
      one, refused without.
    - `verify` (False): check every shard's bytes against the manifest's checksum before its
      first use. Turn on for data that crossed an unreliable copy; costs one extra full read.

    Settings on the instance, before iterating: `lanes` (4) and `shuffle_window_rows` shape
    the epoch order (see `order`); they are fixed per dataset, not per topology, and a resume
    state carries its own. The default window is ~`shuffle_window_bytes` (16 MiB) of stored
    data (at most 8192 rows), so wide rows such as token blocks keep memory bounded: a process
    holds one window per lane it reads (unshuffled: one ~PIECE_BYTES piece of it). A larger
    window mixes rows more thoroughly at the cost of that memory.
    """

    lanes: int = 4
    lane_cuts: str = "up"  # "nearest" when continuing a version-1 state (see `order`)
    shuffle_window_rows: int | None = None
    shuffle_window_bytes: int = 16 << 20

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: list[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        equal_batches: bool = False,
        drop_last: bool = False,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
        decode_threads: int | None = None,
        key_file: str | os.PathLike[str] | None = None,
        verify: bool = False,
    ):
        if int(batch_size) < 1:
            raise DataprepError(f"batch_size must be at least 1 (got {batch_size})")
        self.path = os.fspath(path)
        self.index: DatasetIndex = open_index(self.path)
        self.columns = self.index.check_columns(list(columns) if columns is not None else None)
        if self.index.encryption is not None and key_file is None:
            raise DataprepError(
                f"{self.path} is encrypted (key set {self.index.encryption.get('key_set')}); "
                "pass key_file= with the key file it was encrypted with"
            )
        if self.index.encryption is not None:  # a partial key file: its columns, or one sentence
            from dataprep.audit_use import use
            from dataprep.crypto import readable_columns

            # a refused key is recorded here; the readers record the reads that follow
            with use("decrypt", key_file, self.path, self.index.encryption, columns, ok=False):
                access = readable_columns(self.index.encryption, key_file, self.index.schema.names)
            self.columns = access.readable if columns is None else access.require(self.columns)
        if verify and any(f.checksum is None for f in self.index.files):
            raise DataprepError(
                f"verify=True needs a dataset directory with a manifest; {self.path} is plain "
                "Parquet without checksums"
            )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank, self.world_size = _topology(rank, world_size)
        self.equal_batches = bool(equal_batches)
        self.drop_last = bool(drop_last)
        self.prefetch_bytes = int(prefetch_bytes)
        if decode_threads is not None and int(decode_threads) < 0:
            raise DataprepError(f"decode_threads must be 0 or more (got {decode_threads})")
        self.decode_threads = None if decode_threads is None else int(decode_threads)
        self.key_file = os.fspath(key_file) if key_file is not None else None
        self.verify = bool(verify)
        self.epoch = 0

    @staticmethod
    def mix(
        datasets: dict[str, ShardDataset],
        weights: list[float] | None = None,
        seed: int | None = None,
    ) -> MixedDataset:
        """Draw whole batches from several datasets in fixed proportions (see `loader.mix`)."""
        return MixedDataset(datasets, weights, seed)

    # --- the epoch ---------------------------------------------------------------------------

    def plan(self, epoch: int | None = None) -> EpochPlan:
        return EpochPlan(
            self.index.unit_rows,
            self.batch_size,
            self.seed,
            self.epoch if epoch is None else epoch,
            self.shuffle,
            self.lanes,
            self.window_rows,
            self.lane_cuts,
        )

    @property
    def window_rows(self) -> int:
        """Rows per shuffle window (before rounding to whole batches)."""
        if self.shuffle_window_rows is not None:
            return int(self.shuffle_window_rows)
        return int(min(8192, max(1, self.shuffle_window_bytes // max(1.0, self.index.row_bytes))))

    def schedule(self, start: int | None = None, epoch: int | None = None) -> Schedule:
        """This rank's items for a pass over `epoch` beginning at global batch `start`."""
        epoch = self.epoch if epoch is None else epoch
        start = self.pass_start(epoch) if start is None else start
        return Schedule(
            self.plan(epoch), start, self.rank, self.world_size, self.equal_batches, self.drop_last
        )

    @property
    def trimmed(self) -> int:
        """Samples of the current epoch that no rank yields (equal_batches / drop_last)."""
        return self.schedule(start=0).trimmed

    @property
    def batch_bytes(self) -> int:
        """Bytes of one batch's fixed-width columns (what the DataLoader's hand-over carries)."""
        return self.batch_size * self.index.fixed_row_bytes(self.columns)

    def __len__(self) -> int:
        """Batches this rank yields in the next pass."""
        return len(self.schedule())

    # --- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        origin, count = self.counted_pass()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        schedule = self.schedule(origin.start, origin.epoch)
        if schedule.trimmed and worker == 0:
            log.info(
                "epoch %d: %d samples trimmed (equal_batches / drop_last)",
                origin.epoch,
                schedule.trimmed,
            )
        return self._generate(schedule, worker, workers, count)

    def _generate(
        self, schedule: Schedule, worker: int, workers: int, count: PassCount | None
    ) -> Iterator[dict[str, Any]]:
        mine = Strided(schedule, worker, workers)
        for batch in self.read_items(schedule.plan, mine):
            if count is not None:
                count.done += 1
            yield batch

    def read_items(self, plan: EpochPlan, items: Sequence[Item]) -> Iterator[dict[str, Any]]:
        """Yield the batches `items` name, in order, prefetching their windows on a thread."""
        if not items:
            return
        info = get_worker_info()
        threads = self._threads(info is not None)
        lanes: dict[int, LaneReader] = {}
        verified: set[int] = set()
        piece = plan.window if plan.shuffle else self._piece_rows(plan)

        def load(
            lane: int, window: int, _piece: int, lo: int, hi: int
        ) -> Generator[None, None, Window]:
            """One window (piece), a step per decoded piece: the prefetcher's threads start
            loads, the iterating thread finishes any it needs before they do."""
            reader = lanes.get(lane)
            if reader is None:  # its own file handles: lanes may be read on two threads at once
                shards = ShardReader(
                    self.index, self.columns, self.key_file, self.verify, threads > 1, verified
                )
                reader = lanes[lane] = LaneReader(plan, lane, shards)
            a, b = plan.window_span(lane, window)
            if plan.shuffle:  # a batch's rows are spread over the whole window
                return Window((yield from reader.read_steps(a, b)), True)
            return Window((yield from reader.read_steps(a + lo, a + hi)), False, offset=lo)

        # prefetch_bytes is the rank's budget: its DataLoader workers share it
        budget = self.prefetch_bytes // (info.num_workers if info is not None else 1)
        prefetch = Prefetcher(_needs(plan, items, piece), load, budget, threads)
        held: dict[int, tuple[tuple[int, int], Window]] = {}
        try:
            for item in items:
                parts = []
                for b, s0, s1 in item:
                    lane, window, rows = plan.batch_rows(b, s0, s1)
                    at = (window, rows.start // piece if isinstance(rows, slice) else 0)
                    current = held.get(lane)
                    if current is None or current[0] != at:
                        key, loaded = prefetch.get()
                        assert key[:3] == (lane, *at), (key, lane, at)
                        held[lane] = current = (at, loaded)
                    parts.append(current[1].take(rows))
                yield to_batch(join_parts(parts))
        finally:
            prefetch.close()

    def _threads(self, in_worker: bool) -> int:
        """Decode threads here: workers already run in parallel, so one each by default; the
        training process decodes two lanes at once (pyarrow releases the GIL)."""
        if self.decode_threads is not None:
            return self.decode_threads
        return 1 if in_worker else min(DECODE_THREADS, os.cpu_count() or 1)

    def _piece_rows(self, plan: EpochPlan) -> int:
        """Rows per unshuffled read: whole batches, ~PIECE_BYTES in memory, at most a window."""
        batch_bytes = plan.batch_size * self.index.read_row_bytes(self.columns)
        return min(plan.window, max(1, int(PIECE_BYTES // batch_bytes)) * plan.batch_size)

    # --- resume ------------------------------------------------------------------------------

    def state_for(self, position: ReadPosition) -> dict[str, Any]:
        """The resume state once this rank yielded `position.done` batches of a pass."""
        schedule = self.schedule(position.start, position.epoch)
        state = {
            "version": STATE_VERSION if self.lane_cuts == "up" else 1,
            "epoch": position.epoch,
            "next_batch": schedule.consumed(position.done),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "lanes": self.lanes,
            "window_rows": self.window_rows,
            "rows": self.index.num_rows,
            "world_size": self.world_size,
        }
        if self.lane_cuts != "up":  # a version-1 order is saved as version 1 wrote it
            return state
        return {**state, "lane_cuts": self.lane_cuts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state` stopped: the next pass yields the remaining batches.

        The order's shape (`lanes`, window rows) is taken from the state, so a job restarted
        with other settings for them still continues the saved order; what would change the
        order itself (batch size, seed, shuffle, the data) is refused.
        """
        version = state.get("version")
        if version not in (1, STATE_VERSION):
            raise DataprepError(f"loader state version {version} is not supported")
        cuts = "nearest" if version == 1 else state.get("lane_cuts")
        if cuts not in CUTS:
            raise DataprepError(f"loader state has an unknown lane_cuts {cuts!r}")
        mine = {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rows": self.index.num_rows,
        }
        changed = [f"{k} {state.get(k)} -> {v}" for k, v in mine.items() if state.get(k) != v]
        if changed:
            raise DataprepError(
                "the loader state was saved with a different order "
                f"({', '.join(changed)}); resume with the same dataset and settings"
            )
        counts = {k: state.get(k) for k in ("epoch", "next_batch", "lanes", "window_rows")}
        positions = ("epoch", "next_batch")  # may be 0; lanes and window rows may not
        bad = [f"{k} {v!r}" for k, v in counts.items() if not is_count(v, k in positions)]
        batches = -(-self.index.num_rows // self.batch_size)
        if not bad and counts["next_batch"] > batches:
            bad = [f"next_batch {counts['next_batch']} (the epoch has {batches} batches)"]
        if bad:  # an edited or foreign state would resume elsewhere, or yield nothing
            raise DataprepError(f"the loader state has {', '.join(bad)}: not one it saved")
        self.lanes = int(state["lanes"])
        self.lane_cuts = cuts
        self.shuffle_window_rows = int(state["window_rows"])
        self.resume_at(int(state["epoch"]), int(state["next_batch"]))


def _needs(
    plan: EpochPlan, items: Sequence[Item], piece: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """(lane, window, piece, lo, hi) in first-need order: rows [lo, hi) of the window that
    this process's items touch. Unshuffled, only those rows are decoded, in batch-aligned
    pieces: a reader that takes a window's last batch (the epoch tail, a lane shared at the
    end of an epoch, a resume point) does not decode the whole window for it, and memory in
    use stays small. Shuffled, a piece is the window."""
    pending: dict[tuple[int, int, int], list[int]] = {}  # insertion order = need order
    current: dict[int, tuple[int, int, int]] = {}  # lane -> its piece being extended
    for item in items:
        for b, s0, s1 in item:
            lane, idx = plan.locate(b)
            window = idx // plan.window_batches
            first = idx * plan.batch_size - window * plan.window
            key = (lane, window, first // piece)
            if current.get(lane) != key:
                current[lane] = key
                pending[key] = [first + s0, first + s1]
            else:
                span = pending[key]
                span[0], span[1] = min(span[0], first + s0), max(span[1], first + s1)
        while pending:  # windows whose lane moved on are final
            head = next(iter(pending))
            if current[head[0]] == head:
                break
            yield (*head, *pending.pop(head))
    for key, span in pending.items():
        yield (*key, *span)
