"""What rank 0 does with each step's metrics record besides logging it: GPU energy, alert
rules (`alerts`) and the Prometheus endpoint (`prom`). The training loop calls three hooks.

Rank 0 alone judges the alerts, on the record metrics.jsonl holds, and alone writes
`alerts.jsonl`. `--on-alert stop` asks for a stop (`stops.request`) that travels in the next
step's all-reduced stop flag, so every rank leaves after the same step and saves the same
checkpoint; no rank waits on a collective another one skipped. Weights that come from a
non-finite loss are not checkpointed under `--on-alert stop`: the loss is the all-reduced one,
the same on every rank, so all ranks skip that save together and resume takes the last good
checkpoint.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from dataprep.train import stops
from dataprep.train.alerts import Alerts, Fired
from dataprep.train.config import TrainConfig
from dataprep.train.metrics import Energy, drop_after
from dataprep.train.runlog import Console

ALERT_STOP = "alert"  # the stop reason; `launch.STOPPED_EXIT` maps it to exit code 3


class Watch:
    def __init__(
        self,
        cfg: TrainConfig,
        rank: int,
        console: Console,
        resumed: int | None,
        tokens_per_step: int,
        cuda_index: int | None,
    ):
        self.lead = rank == 0
        self.console = console
        self.stop_on_alert = cfg.on_alert == "stop"
        self.stopped_by: str | None = None  # the rule whose alert stopped the run
        self.alerts = Alerts(cfg.alerts)
        self.path = Path(cfg.out) / "alerts.jsonl"
        self._file: IO[str] | None = None
        self.energy = Energy.open(cuda_index) if self.lead and cuda_index is not None else None
        self.prom: Any = None
        if not self.lead:
            return
        if resumed is not None:  # the steps after the checkpoint are trained again
            drop_after(self.path, resumed, lambda line: int(json.loads(line)["step"]))
        if cfg.metrics_port is not None:
            from dataprep.observe import metrics as endpoint
            from dataprep.train.prom import TrainCollector

            self.prom = TrainCollector(tokens_per_step, [r.name for r in self.alerts.rules])
            endpoint.registry().register(self.prom)
            endpoint.serve_and_announce(cfg.metrics_port)

    def observe(self, record: dict[str, Any]) -> None:
        """Every step, before the record is logged (energy joins it)."""
        if not self.lead:
            return
        if self.energy is not None:
            record["gpu_energy_j"] = self.energy.read()
        fired = self.alerts.observe(record)
        for alert in fired:
            self._fire(alert)
        if self.prom is not None:
            self.prom.update(record)
            self.prom.alerts([a.rule for a in fired], self.alerts.active)

    def evaluated(self, loss: float) -> float:
        """The eval loss, passed through (Prometheus shows it)."""
        if self.prom is not None:
            self.prom.evaluated(loss)
        return loss

    def may_save(self, loss: float) -> bool:
        """False for weights trained on a non-finite loss under --on-alert stop (the same
        verdict on every rank: the loss is all-reduced)."""
        return not (self.stop_on_alert and not math.isfinite(loss))

    def summary(self) -> dict[str, Any]:
        return {"alerts": self.alerts.fired, "alert": self.stopped_by}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.prom is not None:  # the last step's values are final: a lingering endpoint
            from dataprep.observe import metrics as endpoint  # serves them to one more scrape

            endpoint.changed()
            endpoint.finish()  # $DATAPREP_METRICS_LINGER: ranks skip atexit, so end here

    def _fire(self, alert: Fired) -> None:
        self.console.warn(f"alert {alert.rule} at step {alert.step}: {alert.message}")
        if self._file is None:
            self._file = open(self.path, "a")
        time = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._file.write(json.dumps(alert.record(time)) + "\n")
        self._file.flush()
        if self.stop_on_alert and self.stopped_by is None:
            self.stopped_by = alert.rule
            stops.request(ALERT_STOP)
