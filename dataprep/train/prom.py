"""Training metrics on the Prometheus endpoint (`dataprep.observe.metrics`), from rank 0.

Rank 0 serves, as it writes metrics.jsonl: the loss is all-reduced, and every rank's step ends
at the same all-reduce, so its step time and tokens/s are the job's; one scrape target per
job and no port clash between ranks sharing a node. GPU memory and energy are rank 0's GPU.

A scrape reads one snapshot taken at the end of a step (a single reference swap), so the
series of one scrape always belong to the same step and a step costs no locking. A value a
run does not have (MFU and GPU memory on CPU, energy without NVML, eval loss before the first
evaluation) is not exported rather than exported as 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

P = "dataprep_train_"
# record key -> (gauge name, help, scale): the value of the last step
GAUGES = {
    "step": (P + "step", "The last optimizer step done.", 1),
    "loss": (P + "loss", "Training loss of the last step (mean over ranks).", 1),
    "lr": (P + "learning_rate", "Learning rate the last step used.", 1),
    "tokens_per_s": (P + "tokens_per_second", "Tokens per second over the last step.", 1),
    "step_time_s": (P + "step_duration_seconds", "Wall time of the last step.", 1),
    "data_wait_frac": (P + "data_wait_ratio", "Share of the last step spent waiting on data.", 1),
    "data_stall_frac": (P + "data_stall_ratio", "Share of the last step the device idled.", 1),
    "mfu": (P + "mfu_ratio", "Model FLOP utilisation of the last step (dense bf16 peak).", 1),
    "gpu_mem_gb": (P + "gpu_memory_max_allocated_bytes", "Peak GPU memory allocated.", 2**30),
    "gpu_energy_j": (P + "step_gpu_energy_joules", "GPU energy of the last step (NVML).", 1),
    "dp_epsilon": (P + "dp_epsilon", "Privacy budget spent so far (DP-SGD).", 1),
}
# record key -> (counter name without _total, help): summed over the steps since start
COUNTERS = {
    "step_time_s": (P + "step_seconds", "Wall time of the steps trained by this process."),
    "data_wait_s": (P + "data_wait_seconds", "Time waited on the data loader."),
    "data_stall_s": (P + "data_stall_seconds", "Time the device idled for want of data."),
    "gpu_energy_j": (P + "gpu_energy_joules", "Energy drawn by rank 0's GPU (NVML)."),
}


class TrainCollector(Collector):
    """Exposes the latest step's record; `rules`: the alert rules, each with a series."""

    def __init__(self, tokens_per_step: int, rules: list[str]):
        self.tokens_per_step = tokens_per_step
        self._totals: dict[str, float] = {"steps": 0.0, "tokens": 0.0}
        self._last: tuple[dict[str, Any], dict[str, float]] | None = None
        self._eval: float | None = None
        self._fired = dict.fromkeys(rules, 0)
        self._active = dict.fromkeys(rules, False)

    def update(self, record: Mapping[str, Any]) -> None:
        totals = dict(self._totals)
        totals["steps"] += 1
        totals["tokens"] += self.tokens_per_step
        for key in COUNTERS:
            if isinstance(record.get(key), int | float):
                totals[key] = totals.get(key, 0.0) + record[key]
        self._totals = totals
        self._last = (dict(record), totals)  # one swap: a scrape sees all of it or none

    def evaluated(self, loss: float) -> None:
        self._eval = loss

    def alerts(self, fired: list[str], active: Mapping[str, bool]) -> None:
        fired_now = dict(self._fired)
        for rule in fired:
            fired_now[rule] = fired_now.get(rule, 0) + 1
        self._fired, self._active = fired_now, dict(active)

    def collect(self) -> Iterator[Metric]:
        last, evaluated = self._last, self._eval
        fired, active = self._fired, self._active
        if last is not None:
            record, totals = last
            for key, (name, text, scale) in GAUGES.items():
                if isinstance(record.get(key), int | float):
                    yield GaugeMetricFamily(name, text, value=record[key] * scale)
            for key, (name, text) in COUNTERS.items():
                if key in totals:
                    yield CounterMetricFamily(name, text, value=totals[key])
            yield CounterMetricFamily(P + "steps", "Steps trained since start.", totals["steps"])
            text = "Tokens trained since start (all ranks)."
            yield CounterMetricFamily(P + "tokens", text, value=totals["tokens"])
        if evaluated is not None:
            yield GaugeMetricFamily(P + "eval_loss", "Loss of the last evaluation.", evaluated)
        if fired:
            count = CounterMetricFamily(P + "alerts", "Alert episodes started.", labels=["rule"])
            state = GaugeMetricFamily(
                P + "alert_active", "1 while the rule's condition holds.", labels=["rule"]
            )
            for rule in fired:
                count.add_metric([rule], fired[rule])
                state.add_metric([rule], float(active.get(rule, False)))
            yield count
            yield state
