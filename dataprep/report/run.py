"""What a report plots about one training run: the series in its metrics.jsonl.

`dataprep train` appends one record per logged step (loss, lr, tokens/s, data wait and stall,
and on a GPU memory and MFU) and one `{"step", "eval_loss"}` record per evaluation; a series
the run never recorded is named as such, not drawn empty.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataprep.errors import DataprepError

METRICS = "metrics.jsonl"
ALERTS = "alerts.jsonl"  # what `train --alert` rules fired (dataprep.train.alerts)
ALERTS_SHOWN = 200
MAX_POINTS = 5000  # points per series on the page; longer runs are thinned evenly

# (key, what it is): the series a run may record, in the order the page shows them
SERIES = (
    ("loss", "training loss"),
    ("eval_loss", "eval loss"),
    ("lr", "learning rate"),
    ("tokens_per_s", "tokens/s"),
    ("data_wait_frac", "data wait (fraction of step time)"),
    ("data_stall_frac", "data stall (fraction of step time)"),
    ("step_time_s", "step time (s)"),
    ("gpu_mem_gb", "GPU memory (GiB, peak)"),
    ("mfu", "MFU"),
)
SKIPPED = {"epoch"}  # recorded, but a step count says it better


@dataclass
class RunFacts:
    path: str
    records: int = 0
    bad_lines: int = 0
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    thinned: dict[str, int] = field(default_factory=dict)  # key -> points before thinning
    files: list[str] = field(default_factory=list)  # what else the run directory holds
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_total: int = 0
    checkpoint: str | None = None  # the newest checkpoint's name
    config: dict[str, Any] = field(default_factory=dict)  # its train_state.json config
    data: dict[str, Any] = field(default_factory=dict)  # train/eval: path, digest, rows, lineage

    def extra(self) -> list[str]:
        """Numeric series the run recorded beyond the known ones (dp_epsilon, ...)."""
        known = {key for key, _ in SERIES} | SKIPPED
        return sorted(k for k in self.series if k not in known)

    def missing(self) -> list[str]:
        return [key for key, _ in SERIES if key not in self.series]


def is_run(path: str) -> bool:
    return (Path(path) / METRICS).is_file()


def collect_run(path: str) -> RunFacts:
    """Every numeric series of the run's metrics.jsonl, by step (a torn or odd line is
    counted and skipped: a run killed mid-write leaves one)."""
    target = Path(path) / METRICS
    facts = RunFacts(path)
    try:
        lines = target.read_text().splitlines()
        facts.files = sorted(p.name for p in Path(path).iterdir())
    except OSError as exc:
        raise DataprepError(f"cannot read {target}: {exc.strerror or exc}") from None
    raw: dict[str, dict[int, float]] = {}
    for line in lines:
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            facts.bad_lines += bool(line.strip())
            continue
        facts.records += 1
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                raw.setdefault(key, {})[step] = float(value)  # a resumed step: the last wins
    for key, points in raw.items():
        steps = sorted(points)
        if len(steps) > MAX_POINTS:
            facts.thinned[key] = len(steps)
            stride = math.ceil(len(steps) / MAX_POINTS)
            steps = steps[::stride] + ([steps[-1]] if (len(steps) - 1) % stride else [])
        facts.series[key] = (steps, [points[s] for s in steps])
    _read_alerts(facts, Path(path) / ALERTS)
    _read_checkpoint(facts, Path(path) / "checkpoints")
    return facts


def _read_checkpoint(facts: RunFacts, folder: Path) -> None:
    """The newest checkpoint's train_state.json: the run's config and the data it trained on
    (`dataprep.train.provenance`); JSON only, so no torch is needed to report."""
    states = sorted(folder.glob("step-*/train_state.json")) if folder.is_dir() else []
    for state in reversed(states):
        try:
            doc = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict):
            facts.checkpoint = state.parent.name
            config = doc.get("config")
            facts.config = dict(config) if isinstance(config, dict) else {}
            if isinstance(doc.get("world_size"), int):
                facts.config["world_size"] = doc["world_size"]
            data = doc.get("data")
            facts.data = {k: v for k, v in (data or {}).items() if isinstance(v, dict)}
            return


def _read_alerts(facts: RunFacts, target: Path) -> None:
    if not target.is_file():
        return
    for line in target.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            facts.alerts_total += 1
            if len(facts.alerts) < ALERTS_SHOWN:
                facts.alerts.append(record)
