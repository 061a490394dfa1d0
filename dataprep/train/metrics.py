"""Per-step metrics: appended to metrics.jsonl (and TensorBoard when installed), rank 0 only."""

from __future__ import annotations

import json
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
    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self._file: Any = None
        self._tb: Any = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self._file = open(out / "metrics.jsonl", "a")  # appended across resumes
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
