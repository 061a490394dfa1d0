"""Stop signals in a rank (SIGTERM from a scheduler, SIGINT from Ctrl-C): noted only, and
acted on after the current step, on every rank at once (it saves a checkpoint and returns)."""

from __future__ import annotations

import signal
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
received: list[int] = []


def note(signum: int, frame: Any) -> None:
    received.append(signum)


def name() -> str:
    """The first stop signal's name (SIGTERM if none came: the launcher's own stop)."""
    return signal.Signals(received[0]).name if received else "SIGTERM"
