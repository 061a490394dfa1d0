"""Start training: through torch's elastic launcher (what `torchrun` runs), or in place when
`torchrun` already started this process.

SIGTERM (a scheduler's "stop now") and SIGINT (Ctrl-C) are passed to the ranks, which finish
the step, save a checkpoint and return; the command then exits with `STOPPED_EXIT[signal]`.
A user error in a rank comes back as its one sentence (see `user_error`), never retried.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dataprep.errors import DataprepError
from dataprep.train.config import TrainConfig
from dataprep.train.data import inspect_data
from dataprep.train.user_error import reported

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# 143 and 130: what shells and schedulers report after SIGTERM and Ctrl-C
STOPPED_EXIT = {s.name: 128 + s for s in STOP_SIGNALS}
STOPPED_EXIT["dp-budget"] = 4  # DP-SGD: the next step would spend more than --dp-epsilon
STOPPED_EXIT["alert"] = 3  # --on-alert stop: an alert rule fired (train/watch.py)


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def processes(nproc_per_node: str, device: str) -> int:
    """`auto`: one per GPU, or 2 processes on CPU. On GPUs each process needs its own GPU
    (NCCL refuses two ranks on one device), so asking for more stops here."""
    import torch

    gpus = torch.cuda.device_count() if device != "cpu" and torch.cuda.is_available() else 0
    if nproc_per_node == "auto":
        return gpus or 2
    try:
        count = int(nproc_per_node)
    except ValueError:
        raise DataprepError(
            f"--nproc-per-node must be a number or 'auto', not {nproc_per_node!r}"
        ) from None
    if count < 1:
        raise DataprepError("--nproc-per-node must be at least 1")
    if gpus and count > gpus:
        raise DataprepError(
            f"--nproc-per-node {count} needs {count} GPUs on this node, but {gpus} "
            f"{'is' if gpus == 1 else 'are'} visible; pass --nproc-per-node {gpus} or --device cpu"
        )
    return count


def _nodes(nnodes: str) -> tuple[int, int]:
    low, _, high = nnodes.partition(":")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise DataprepError(f"--nnodes must be N or MIN:MAX, not {nnodes!r}") from None


def launch(
    cfg: TrainConfig,
    nproc_per_node: str = "auto",
    nnodes: str = "1",
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    max_restarts: int = 0,
) -> dict[str, Any]:
    """Check the data first (one clear error, not N tracebacks), then start the ranks."""
    inspect_data(cfg)
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise DataprepError("--device cuda was asked for, but no CUDA GPU is visible")
    if cfg.grad_compression == "bf16" and (cfg.device == "cpu" or not torch.cuda.is_available()):
        raise DataprepError(
            "--grad-compression bf16 needs GPUs (NCCL); on CPU pass --grad-compression fp16"
        )
    from dataprep.train.worker import train_worker

    if under_torchrun():
        return _result({0: train_worker(cfg.model_dump_json())})
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    min_nodes, max_nodes = _nodes(nnodes)
    if max_nodes > 1 and not rdzv_endpoint:
        raise DataprepError("multi-node training needs --rdzv-endpoint HOST:PORT")
    config = LaunchConfig(
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        nproc_per_node=processes(nproc_per_node, cfg.device),
        run_id=rdzv_id or f"dataprep-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        # port 0: the run's store binds a free port itself, as `torchrun --standalone` does; a
        # port picked beforehand may be taken by then (side-by-side runs met at one store)
        rdzv_endpoint=rdzv_endpoint or "127.0.0.1:0",
        max_restarts=max_restarts,
        monitor_interval=0.5,
        start_method="spawn",
        signals_to_handle="SIGHUP,SIGQUIT",  # SIGTERM, SIGINT: `_stops_to_ranks`
    )
    with (
        tempfile.TemporaryDirectory(prefix="dataprep-train-") as scratch,
        _stops_to_ranks() as stopped,
        _quiet_torch(lambda: bool(stopped) or reported(Path(scratch)) is not None),
        _no_retry_of_user_errors(Path(scratch)),
    ):
        try:
            results = elastic_launch(config, train_worker)(cfg.model_dump_json(), scratch)
        except ChildFailedError as exc:
            sentence = reported(Path(scratch))
            if sentence is not None:
                raise DataprepError(sentence) from None
            if stopped:  # the signal killed a rank before it could save
                return _stopped_summary(Path(cfg.out), signal.Signals(stopped[0]).name)
            rank, first = next(iter(exc.failures.items()))
            raise DataprepError(
                f"training failed on rank {rank} (exit code {first.exitcode}) after "
                f"{max_restarts} restart(s); see the log above, and rerun to resume from the "
                "latest checkpoint"
            ) from None
        except (RuntimeError, TimeoutError) as exc:
            if "rendezvous" in str(exc).lower() or isinstance(exc, TimeoutError):
                raise DataprepError(
                    f"cannot reach the rendezvous at {config.rdzv_endpoint}: {exc}"
                ) from None
            raise
    return _result(results)


def _result(results: dict[int, Any]) -> dict[str, Any]:
    """Rank 0's summary, or the sentence every rank returned instead of one."""
    first = results.get(0) or next(iter(results.values()))
    if "error" in first:
        raise DataprepError(first["error"])
    return first


@contextlib.contextmanager
def _quiet_torch(quiet: Callable[[], bool]) -> Iterator[None]:
    """While `quiet()` holds (a stop signal came, or a rank reported a user error), torch's
    launcher logs nothing: its report of ranks ending (tracebacks, "terminating process") is
    replaced by the command's one line."""

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not quiet()

    drop = Drop()
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(("torch.distributed", "torch.multiprocessing"))
    ]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


@contextlib.contextmanager
def _no_retry_of_user_errors(scratch: Path) -> Iterator[None]:
    """torch's agent restarts the ranks on any failure (--max-restarts); a user error fails the
    same way on every try, so once a rank reported one the agent has no restarts left. torch
    offers no hook for this: its launcher's agent class is swapped for a subclass meanwhile."""
    from torch.distributed.launcher import api

    base = api.LocalElasticAgent

    class Agent(base):  # type: ignore[misc, valid-type]
        def _monitor_workers(self, worker_group: Any) -> Any:
            result = super()._monitor_workers(worker_group)
            if result.is_failed() and reported(scratch) is not None:
                self._remaining_restarts = 0
            return result

    api.LocalElasticAgent = Agent
    try:
        yield
    finally:
        api.LocalElasticAgent = base


@contextlib.contextmanager
def _stops_to_ranks() -> Iterator[list[int]]:
    """While the ranks run, this process passes SIGTERM and SIGINT on to them instead of
    letting torch's agent raise `SignalException` (a traceback, exit 1, and ranks that
    finished saving but wait for the agent killed 30 s later). Yields the signals received.

    A thread passes it to each child of this process once, also to a rank spawned after it
    came (the handler itself only takes note, so no spawn is ever interrupted halfway)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers belong to the main thread: torch's behaviour
        return
    asked, finished = threading.Event(), threading.Event()

    def note(signum: int, frame: Any) -> None:
        # a rank still starting dies of it, and the agent would log that with a traceback:
        # the stop is reported once, by the command (`_quiet_torch`)
        received.append(signum)
        asked.set()

    def forward() -> None:
        asked.wait()
        told: set[int] = set()  # once each: a rank that is exiting must not die of a second
        while not finished.is_set():
            for rank in multiprocessing.active_children():
                if rank.pid is not None and rank.pid not in told:
                    told.add(rank.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rank.pid, received[0])
            finished.wait(0.25)

    forwarder = threading.Thread(target=forward, name="dataprep-stop", daemon=True)
    forwarder.start()
    previous = {signum: signal.signal(signum, note) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        finished.set()
        asked.set()
        forwarder.join()


def _stopped_summary(out: Path, signame: str) -> dict[str, Any]:
    from dataprep.train import checkpoint

    latest = checkpoint.latest(out)
    step = int(latest.name.removeprefix(checkpoint.PREFIX)) if latest else 0
    return {
        "status": "stopped",
        "step": step,
        "checkpoint": str(latest) if latest else None,
        "stopped_by": signame,
    }
