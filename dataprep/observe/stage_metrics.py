"""What running stages publish on the metrics endpoint, gathered on the driver.

Task code only calls `progress.tick` (rows per batch, quarantined rows per task), wherever it
runs: pool workers forward ticks over their queue and Ray tasks through their actor, so every
count reaches the driver's sink. The executors tick failed and retried attempts on the driver,
and finished task results bring the bytes read and written. Here those counts are summed in
plain dicts under one lock; the Prometheus collector turns the sums into metric families only
when the endpoint is scraped, so the task path never calls into prometheus_client.

Off by default: `enable()` (what `--metrics-port` does) registers the collector, and the runner
asks `begin()` for a recorder per stage run, which is None while metrics are off.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dataprep.executors.protocol import Executor

T = TypeVar("T")
R = TypeVar("R")
Sink = Callable[[dict[str, int]], None]

RUN_STATUSES = ("ran", "cached", "failed")
NO_PHASE = "tasks"  # the phase label of tasks that do not name one

# name (without _total for counters), type, help; the label sets are fixed by the collector
METRICS: dict[str, tuple[str, str]] = {
    "dataprep_stage_rows": ("counter", "Rows processed by the stage's tasks, per phase."),
    "dataprep_stage_rows_per_second": (
        "gauge",
        "Rows per second of the running phase since it started (0 when the stage is not running).",
    ),
    "dataprep_stage_tasks_planned": ("gauge", "Tasks this run executes in the phase."),
    "dataprep_stage_tasks_done": ("counter", "Tasks finished, per phase."),
    "dataprep_stage_task_failures": (
        "counter",
        "Task attempts that failed (raised, or their worker died), retried or not.",
    ),
    "dataprep_stage_task_retries": ("counter", "Failed task attempts that were run again."),
    "dataprep_stage_tasks_failed": (
        "counter",
        "Tasks that failed for good (retries spent, or a user error); they fail the stage.",
    ),
    "dataprep_stage_read_bytes": (
        "counter",
        "Bytes of the input files of finished tasks (a file read by several tasks counts once "
        "per phase).",
    ),
    "dataprep_stage_written_bytes": ("counter", "Bytes of the shards finished tasks wrote."),
    "dataprep_stage_quarantined_rows": ("counter", "Rows sent to the stage's quarantine."),
    "dataprep_stage_running": ("gauge", "1 while the stage runs, else 0."),
    "dataprep_stage_duration_seconds": (
        "gauge",
        "Seconds the stage has run (while running), or took (once finished).",
    ),
    "dataprep_stage_start_time_seconds": ("gauge", "Unix time the stage's last run started."),
    "dataprep_stage_last_progress_time_seconds": (
        "gauge",
        "Unix time of the stage's last progress (rows ticked or a task finished).",
    ),
    "dataprep_stage_runs": ("counter", "Stage runs by outcome: ran, cached or failed."),
}


PER_PHASE = frozenset(
    {
        "dataprep_stage_rows",
        "dataprep_stage_tasks_planned",
        "dataprep_stage_tasks_done",
        "dataprep_stage_task_failures",
        "dataprep_stage_task_retries",
        "dataprep_stage_tasks_failed",
    }
)


@dataclass
class _StageState:
    """One (stage id, op)'s sums; kept across runs in one process, so counters stay monotone."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    planned: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    runs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    read_bytes: int = 0
    written_bytes: int = 0
    quarantined: int = 0
    quarantined_this_run: int = 0
    running: bool = False
    started: float = 0.0  # unix time
    started_mono: float = 0.0
    duration: float = 0.0
    last_progress: float = 0.0
    phase: str = NO_PHASE
    phase_started: float = 0.0  # monotonic
    phase_rows_at_start: int = 0


class StageMetrics:
    """The collector: every stage run in this process, exposed when scraped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stages: dict[tuple[str, str], _StageState] = {}

    def begin(self, stage: str, op: str, sizes: Mapping[str, int] | None = None) -> StageRecorder:
        with self.lock:
            state = self.stages.setdefault((stage, op), _StageState())
            now = time.time()
            state.running, state.started, state.last_progress = True, now, now
            state.started_mono = time.monotonic()
            state.quarantined_this_run = 0
            for status in RUN_STATUSES:  # at 0 from the start: a first failure is an increase
                state.runs[status] += 0
            state.phase, state.phase_started = NO_PHASE, state.started_mono
            state.phase_rows_at_start = state.rows.get(NO_PHASE, 0)
        return StageRecorder(self, state, dict(sizes or {}))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict[str, Any] = {}
        for name, (kind, about) in METRICS.items():
            labels = ["stage", "op"] + (["phase"] if name in PER_PHASE else [])
            labels += ["status"] if name == "dataprep_stage_runs" else []
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families[name] = cls(name, about, labels=labels)
        with self.lock:
            for (stage, op), s in self.stages.items():
                self._add(families, stage, op, s)
        yield from families.values()

    def _add(self, families: dict[str, Any], stage: str, op: str, s: _StageState) -> None:
        now = time.monotonic()
        per_phase = {
            "dataprep_stage_rows": s.rows,
            "dataprep_stage_tasks_planned": s.planned,
            "dataprep_stage_tasks_done": s.done,
            "dataprep_stage_task_failures": s.failures,
            "dataprep_stage_task_retries": s.retries,
            "dataprep_stage_tasks_failed": s.failed,
        }
        for name, values in per_phase.items():
            for phase, value in values.items():
                families[name].add_metric([stage, op, phase], value)
        for status, value in s.runs.items():
            families["dataprep_stage_runs"].add_metric([stage, op, status], value)
        rate = 0.0
        if s.running:
            rows = s.rows.get(s.phase, 0) - s.phase_rows_at_start
            rate = rows / max(now - s.phase_started, 1e-6)
        duration = now - s.started_mono if s.running else s.duration
        single = {
            "dataprep_stage_rows_per_second": rate,
            "dataprep_stage_read_bytes": s.read_bytes,
            "dataprep_stage_written_bytes": s.written_bytes,
            "dataprep_stage_quarantined_rows": s.quarantined,
            "dataprep_stage_running": float(s.running),
            "dataprep_stage_duration_seconds": duration,
            "dataprep_stage_start_time_seconds": s.started,
            "dataprep_stage_last_progress_time_seconds": s.last_progress,
        }
        for name, value in single.items():
            families[name].add_metric([stage, op], value)


class StageRecorder:
    """One stage run's handle: a progress sink, an executor wrapper, and the run's end."""

    def __init__(self, metrics: StageMetrics, state: _StageState, sizes: dict[str, int]):
        self._lock = metrics.lock
        self._s = state
        self._sizes = sizes
        self._read: set[str] = set()  # input files counted in this phase

    def sink(self, downstream: Sink | None) -> Sink:
        """A progress sink that counts, then passes the tick on (to the progress bar)."""

        def counted(counts: dict[str, int]) -> None:
            self.on_tick(counts)
            if downstream is not None:
                downstream(counts)

        return counted

    def on_tick(self, counts: dict[str, int]) -> None:
        s = self._s
        with self._lock:
            phase = s.phase
            for key, value in counts.items():
                if key == "rows":
                    s.rows[phase] += value
                    s.last_progress = time.time()
                elif key == "quarantined":
                    s.quarantined += value
                    s.quarantined_this_run += value
                elif key == "task_failures":
                    s.failures[phase] += value
                elif key == "task_retries":
                    s.retries[phase] += value
                elif key == "tasks_failed":
                    s.failed[phase] += value

    def input_sizes(self, sizes: Mapping[str, int]) -> None:
        """Path -> bytes of the input dataset's shards (from its manifest)."""
        self._sizes.update(sizes)

    def executor(self, inner: Executor) -> Executor:
        """`inner`, counting each `run` as a phase and each finished task's bytes."""
        return _MeteredExecutor(inner, self)

    def start_phase(self, phase: str, tasks: int) -> None:
        s = self._s
        with self._lock:
            s.phase = phase
            s.planned[phase] = tasks
            s.phase_started = time.monotonic()
            s.phase_rows_at_start = s.rows[phase]
            self._read = set()
            for values in (s.done, s.failures, s.retries, s.failed):
                values[phase] += 0  # the phase's series exist (at 0) from its start

    def task_done(self, task: Any, result: Any) -> None:
        paths = {str(p) for p in getattr(task, "inputs", ()) or ()} - self._read
        self._read |= paths  # the executor calls back from one thread, its run's
        read = sum(self._size(p) for p in paths)
        written = sum(getattr(shard, "bytes", 0) for shard in getattr(result, "shards", ()) or ())
        s = self._s
        with self._lock:
            s.done[s.phase] += 1
            s.read_bytes += read
            s.written_bytes += written
            s.last_progress = time.time()

    def finish(self, status: str, report: Mapping[str, Any] | None = None) -> None:
        """The run ended ("ran", "cached" or "failed"); quarantined rows the tasks did not tick
        (a stage that counts them only at the end) are added from the report."""
        s = self._s
        with self._lock:
            if report:
                missing = int(report.get("quarantined") or 0) - s.quarantined_this_run
                s.quarantined += max(0, missing) if status == "ran" else 0
            s.runs[status] += 1
            s.running = False
            s.duration = time.monotonic() - s.started_mono
            s.phase = NO_PHASE
        from dataprep.observe import metrics

        metrics.changed()

    def _size(self, path: str) -> int:
        """An input's bytes: from the input manifest, else a local file's size; 0 for other
        remote files (a request per file is not worth a metric)."""
        size = self._sizes.get(path)
        if size is not None:
            return size
        if "://" in path and not path.startswith("file://"):
            return 0
        try:
            return os.stat(path.removeprefix("file://")).st_size
        except OSError:
            return 0


class _MeteredExecutor:
    """An executor that tells the recorder which phase runs and which tasks finish."""

    def __init__(self, inner: Executor, recorder: StageRecorder):
        self.inner = inner
        self.recorder = recorder
        self.workers = inner.workers

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        phase = str(getattr(tasks[0], "phase", None) or NO_PHASE) if tasks else NO_PHASE
        self.recorder.start_phase(phase, len(tasks))

        def done(index: int, result: R) -> None:
            self.recorder.task_done(tasks[index], result)
            if on_done is not None:
                on_done(index, result)

        return self.inner.run(fn, tasks, done)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else a stage or plugin reads
        return getattr(self.inner, name)

    def __enter__(self) -> _MeteredExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_collector: StageMetrics | None = None
_enable_lock = threading.Lock()


def enable() -> StageMetrics:
    """Register the stage collector on the endpoint's registry (once per process)."""
    global _collector
    with _enable_lock:
        if _collector is None:
            from dataprep.observe import metrics

            collector = StageMetrics()
            metrics.registry().register(collector)
            _collector = collector
        return _collector


def serve(port: int) -> int:
    """What `--metrics-port` does: publish stage metrics and serve them (announced on stderr)."""
    from dataprep.observe import metrics

    enable()
    bound = metrics.serve(port)
    metrics.announce(bound)
    return bound


def begin(stage: str, op: str, sizes: Mapping[str, int] | None = None) -> StageRecorder | None:
    """A recorder for one stage run, or None while metrics are off (the common case)."""
    collector = _collector
    return None if collector is None else collector.begin(stage, op, sizes)
