"""Per-step metrics: appended to metrics.jsonl (and TensorBoard when installed), rank 0 only.

A resumed run first drops the records of steps after its checkpoint (a killed run logged
them, and they are about to be trained again), so every step appears once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Dense bf16 peak FLOP/s per GPU, for MFU; unknown devices report no MFU rather than a guess.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "L40S": 362e12}


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


class MetricsLog:
    def __init__(self, out: Path, enabled: bool, resumed_step: int | None = None):
        """`resumed_step`: the step training starts from; later records are dropped."""
        self.enabled = enabled
        self._file: Any = None
        self._tb: Any = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.jsonl"
        if resumed_step is not None:
            drop_after(path, resumed_step, lambda line: int(json.loads(line)["step"]))
        self._file = open(path, "a")  # appended across resumes
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed: JSONL only
            self._tb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def drop_after(path: Path, step: int, step_of: Callable[[str], int]) -> None:
    """Rewrite `path` (atomically) without the lines of steps after `step`, and without a
    final line torn by a kill; lines `step_of` cannot read are kept. Untouched if all stay."""
    if not path.exists():
        return
    text = path.read_text()
    lines = text.splitlines()
    torn = bool(lines) and not text.endswith("\n")
    kept = []
    for n, line in enumerate(lines):
        try:
            if step_of(line) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError, IndexError):
            if not (torn and n == len(lines) - 1):
                kept.append(line)
    if len(kept) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write("".join(f"{line}\n" for line in kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Energy:
    """Joules a GPU drew between reads, from NVML's total-energy counter (Volta and newer).
    `open` gives None where pynvml, the driver or the counter is missing: then no energy is
    reported at all rather than a zero."""

    def __init__(self, nvml: Any, handle: Any):
        self._nvml, self._handle = nvml, handle
        self._last = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # millijoules

    @classmethod
    def open(cls, cuda_index: int) -> Energy | None:
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            try:  # CUDA and NVML number GPUs differently under CUDA_VISIBLE_DEVICES
                import torch

                uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
                handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            except Exception:
                handle = pynvml.nvmlDeviceGetHandleByIndex(cuda_index)
            return cls(pynvml, handle)
        except Exception:
            return None

    def read(self) -> float:
        """Joules since the previous read."""
        now = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        joules, self._last = (now - self._last) / 1000, now
        return joules
