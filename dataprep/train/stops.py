"""Stop signals in a rank (SIGTERM from a scheduler, SIGINT from Ctrl-C): noted only, and
acted on after the current step, on every rank at once (it saves a checkpoint and returns)."""

from __future__ import annotations

import signal
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
received: list[int] = []
requested: list[str] = []  # stops a rank asks for itself (e.g. "dp-budget"), not signals


def note(signum: int, frame: Any) -> None:
    received.append(signum)


def request(reason: str) -> None:
    """Stop after this step, like a signal, for a reason of the run's own (checkpointed)."""
    requested.append(reason)


def name() -> str:
    """The first stop signal's name, else the first requested reason (SIGTERM if neither
    came: the launcher's own stop)."""
    if received:
        return signal.Signals(received[0]).name
    return requested[0] if requested else "SIGTERM"
