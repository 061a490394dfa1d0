"""What a run reports besides checkpoints: console lines, metrics.jsonl, the sample trace.

Rank 0 speaks for the run; each rank traces its own samples. A resumed run drops the records
and trace lines of steps after its checkpoint (they are about to be trained again), so every
step appears once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import xxhash

from dataprep.errors import DataprepError
from dataprep.train.metrics import MetricsLog, drop_after


@dataclass(frozen=True)
class Console:
    """Lines for the person who started the run: rank 0 only."""

    rank: int
    quiet: bool
    steps: int

    def say(self, text: str) -> None:
        if self.rank == 0 and not self.quiet:
            print(f"[dataprep train] {text}", flush=True)

    def warn(self, text: str) -> None:
        """On stderr, also with --quiet/--json: what the run chose to do about a fault."""
        if self.rank == 0:
            print(f"[dataprep train] {text}", file=sys.stderr, flush=True)

    def progress(self, record: dict[str, Any]) -> None:
        if self.rank == 0 and not self.quiet:
            print(
                f"step {record['step']:>6}/{self.steps}  loss {record['loss']:.4f}  "
                f"lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tok/s  "
                f"data wait {100 * record['data_wait_frac']:.1f}%",
                flush=True,
            )


class RunLog:
    """metrics.jsonl (rank 0) and, with `trace`, samples-rank<R>.txt: the fingerprints of
    every sample each step trained on. `resumed`: the step training continues from (None:
    keep any earlier log, as --no-resume does)."""

    def __init__(self, out: Path, rank: int, trace: bool, resumed: int | None):
        self.out = out
        with _writable(out / "metrics.jsonl"):
            self.metrics = MetricsLog(out, rank == 0, resumed_step=resumed)
        self._trace: IO[str] | None = None
        if trace:
            path = out / f"samples-rank{rank}.txt"
            with _writable(path):
                if resumed is not None:
                    drop_after(path, resumed, lambda line: int(line.split(maxsplit=1)[0]))
                self._trace = open(path, "a")

    def trace(self, step: int, batch: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace.write(f"{step} {' '.join(_fingerprints(batch))}\n")

    def log(self, record: dict[str, Any]) -> None:
        self.metrics.log(record)

    def last_loss(self, step: int) -> float:
        """The loss logged for the latest step up to `step` (NaN if none was logged)."""
        path = self.out / "metrics.jsonl"
        loss = float("nan")
        if path.exists():
            for line in path.read_text().splitlines():
                with suppress(ValueError, KeyError, TypeError):
                    record = json.loads(line)
                    if "loss" in record and int(record["step"]) <= step:
                        loss = float(record["loss"])
        return loss

    def close(self) -> None:
        self.metrics.close()
        if self._trace is not None:
            self._trace.close()


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """An OSError on a file of the run directory is the user's to fix: one sentence."""
    try:
        yield
    except OSError as exc:
        raise DataprepError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fingerprints(batch: dict[str, Any]) -> list[str]:
    """xxh64 of each sample's token ids: lets an audit check what each rank trained on."""
    rows = batch["tokens"].numpy()
    return [xxhash.xxh64(row.tobytes()).hexdigest() for row in rows]
