"""The entry point each training process runs: signals, threads, the process group, and how
a user error leaves the process (one sentence for the launcher, not a traceback)."""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dataprep.errors import DataprepError
from dataprep.train import stops
from dataprep.train.config import TrainConfig
from dataprep.train.loop import Trainer
from dataprep.train.user_error import USER_ERROR_EXIT, RunRefused, report, reported


def _init_process_group(backend: str, world: int) -> None:
    """Join the group through a store namespaced by restart attempt.

    After an elastic restart the agent's store still holds the dead attempt's peer addresses
    under the same keys; a rank that reads one before its new peer overwrites it connects to a
    closed port and the restart fails. A prefix per attempt makes stale keys invisible.
    """
    rank = int(os.environ["RANK"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=not agent_store and rank == 0,
        timeout=timedelta(minutes=10),
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    prefixed = dist.PrefixStore(f"dataprep/attempt-{attempt}", store)
    dist.init_process_group(backend, store=prefixed, rank=rank, world_size=world)


def train_worker(config_json: str, errors: str | None = None) -> dict[str, Any]:
    """The entry point each process runs (module-level, so the elastic launcher can spawn it).

    `errors`: the launcher's folder for a user error (see `user_error`); without it (started
    by `torchrun`) a user error is raised here."""
    for signum in stops.SIGNALS:
        signal.signal(signum, stops.note)
    cfg = TrainConfig.model_validate_json(config_json)
    folder = Path(errors) if errors else None
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))  # no oversubscription
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo"
        _init_process_group(backend, world)
    try:
        return Trainer(cfg).train()
    except DataprepError as exc:
        if folder is None:
            if isinstance(exc, RunRefused):
                return {"error": str(exc)}
            raise
        report(folder, int(os.environ.get("RANK", 0)), str(exc))
        sys.exit(USER_ERROR_EXIT)
    except Exception:
        if reported(folder) is not None:  # a peer's user error broke this rank's collective
            sys.exit(USER_ERROR_EXIT)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
