"""Alert rules a training run judges on each step's metrics record (pure: no I/O, no torch).

A rule looks at one record (the dict metrics.jsonl holds for a step) and says whether its
condition holds, with the value and threshold it compared. `Alerts` turns that into episodes:
a rule fires once when its condition starts to hold and re-arms only after the condition has
cleared, so a run stuck in a stall gives one alert, not one per step.

Rules are written `NAME[:KEY=VALUE,...]` (`--alert loss_spike:k=4,window=50`):

    nonfinite                          loss is NaN or infinite
    loss_spike:k=4,window=50,min=10    loss > mean + k*std of the last `window` finite losses
                                       (judged once `min` are known; a spike joins no window)
    stall:pct=30,skip=5                data stall > pct % of the step's time
    throughput:pct=50,window=5,skip=5,min=10
                                       median tokens/s of the last `window` steps < pct % of
                                       the median of all the run's steps before (judged once
                                       `min` are known)

`skip`: steps after the process (re)starts that are not judged (loader start-up, warm-up);
they do not enter the median either.
"""

from __future__ import annotations

import builtins
import heapq
import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from dataprep.errors import DataprepError

DEFAULTS = ("nonfinite", "loss_spike", "stall", "throughput")


@dataclass(frozen=True)
class Judged:
    """One rule's verdict on one step: `active` = the condition holds."""

    active: bool
    value: float
    threshold: float | None
    message: str | bool  # what an alert says (False while the condition does not hold)


@dataclass(frozen=True)
class Fired:
    """The start of an episode: what alerts.jsonl records and the log line says."""

    step: int
    rule: str
    value: float
    threshold: float | None
    message: str

    def record(self, time: str) -> dict[str, Any]:
        return {
            "time": time,
            "step": self.step,
            "rule": self.rule,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


class Rule:
    """Base of the rules: `name`, typed parameters with defaults, `judge`."""

    name: ClassVar[str]
    params: ClassVar[dict[str, type]] = {}

    def judge(self, record: Mapping[str, Any]) -> Judged | None:
        """The verdict on this step's record; None: not judged (too little history yet)."""
        raise NotImplementedError

    def spec(self) -> str:
        values = ",".join(f"{k}={getattr(self, k):g}" for k in self.params)
        return f"{self.name}:{values}" if values else self.name


class NonFinite(Rule):
    name = "nonfinite"

    def judge(self, record: Mapping[str, Any]) -> Judged | None:
        loss = float(record["loss"])
        return Judged(not math.isfinite(loss), loss, None, f"loss is {loss}")


class LossSpike(Rule):
    name = "loss_spike"
    params = {"k": float, "window": int, "min": int}

    def __init__(self, k: float = 4.0, window: int = 50, min: int | None = None):
        _positive(self.name, k=k, window=window)
        self.k, self.window = k, window
        self.min = min if min is not None else builtins.min(10, window)
        if not 2 <= self.min <= window:
            raise DataprepError(f"alert {self.name}: min must be from 2 to window ({window})")
        self._recent: deque[float] = deque(maxlen=window)
        self._sum = self._squares = 0.0  # of the window, kept as values come and go

    def _push(self, loss: float) -> None:
        if len(self._recent) == self.window:
            old = self._recent[0]
            self._sum, self._squares = self._sum - old, self._squares - old * old
        self._recent.append(loss)
        self._sum, self._squares = self._sum + loss, self._squares + loss * loss

    def judge(self, record: Mapping[str, Any]) -> Judged | None:
        loss = float(record["loss"])
        if not math.isfinite(loss):
            return None  # the nonfinite rule's case; it joins no window
        if len(self._recent) < self.min:
            self._push(loss)
            return None
        n = len(self._recent)
        mean = self._sum / n
        std = math.sqrt(max(0.0, self._squares / n - mean * mean))
        threshold = mean + self.k * std
        active = loss > threshold
        if not active:
            self._push(loss)
        message = active and (  # only an alert's is read: not formatted every step
            f"loss {loss:.4g} > {threshold:.4g} (mean {mean:.4g} + "
            f"{self.k:g} x std {std:.3g} of the last {len(self._recent)} steps)"
        )
        return Judged(active, loss, threshold, message)


class Stall(Rule):
    name = "stall"
    params = {"pct": float, "window": int, "skip": int}

    def __init__(self, pct: float = 30.0, window: int = 10, skip: int = 5):
        _percent(self.name, pct)
        _not_negative(self.name, skip=skip)
        _positive(self.name, window=window)
        self.pct, self.window, self.skip = pct, window, skip
        self._seen = 0
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)

    def judge(self, record: Mapping[str, Any]) -> Judged | None:
        """The stall's share of the last `window` steps' time: one slow read on a busy host
        (10 ms of a 30 ms step) is no stall; judged once the window is full."""
        self._seen += 1
        if self._seen <= self.skip:
            return None
        seconds = float(record["step_time_s"])
        self._recent.append((float(record["data_stall_frac"]), seconds))
        if len(self._recent) < self.window:
            return None
        total = sum(t for _, t in self._recent)
        value = 100 * sum(f * (t / total) for f, t in self._recent) if total > 0 else 0.0
        active = value > self.pct
        steps = f"the last {self.window} steps" if self.window > 1 else "the step"
        message = active and (
            f"data stall {value:.1f}% of {steps}' {total:.3g} s > {self.pct:g}%"
            if self.window > 1
            else f"data stall {value:.1f}% of the step's {total:.3g} s > {self.pct:g}%"
        )
        return Judged(active, value, self.pct, message)


class Throughput(Rule):
    name = "throughput"
    params = {"pct": float, "window": int, "skip": int, "min": int}

    def __init__(self, pct: float = 50.0, window: int = 5, skip: int = 5, min: int = 10):
        _percent(self.name, pct)
        _not_negative(self.name, skip=skip)
        _positive(self.name, window=window, min=min)
        self.pct, self.window, self.skip, self.min = pct, window, skip, min
        self._seen = 0
        self._recent: deque[float] = deque(maxlen=window)
        self._run = RunningMedian()  # every judged step's tokens/s

    def judge(self, record: Mapping[str, Any]) -> Judged | None:
        """The median of the last `window` steps against `pct` % of the median of all the
        steps before this one: one slow step on a busy host is no drop."""
        self._seen += 1
        if self._seen <= self.skip:
            return None
        tokens = float(record["tokens_per_s"])
        self._recent.append(tokens)
        judged = None
        if len(self._run) >= self.min:
            value = statistics.median(self._recent)
            median = self._run.median()
            threshold = self.pct / 100 * median
            active = value < threshold
            message = active and (
                f"{value:,.0f} tokens/s (median of the last {len(self._recent)} steps) "
                f"< {self.pct:g}% of the run's median {median:,.0f}"
            )
            judged = Judged(active, value, threshold, message)
        self._run.add(tokens)
        return judged


class RunningMedian:
    """The median of every value added, O(log n) a value: the lower half in a max-heap
    (negated), the upper half in a min-heap, the lower one at most one longer."""

    def __init__(self) -> None:
        self._low: list[float] = []
        self._high: list[float] = []

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        if len(self._low) > len(self._high) + 1:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        elif len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def median(self) -> float:
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2


RULES: dict[str, type[Rule]] = {r.name: r for r in (NonFinite, LossSpike, Stall, Throughput)}


def parse(spec: str) -> Rule:
    """`NAME[:KEY=VALUE,...]` -> a fresh rule; a bad spec is one sentence (DataprepError)."""
    name, _, rest = spec.strip().partition(":")
    rule = RULES.get(name.strip())
    if rule is None:
        raise DataprepError(f"--alert {spec!r}: unknown rule {name!r}; rules: {', '.join(RULES)}")
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, text = item.partition("=")
        kind = rule.params.get(key.strip())
        if not eq or kind is None:
            known = ", ".join(f"{k}=" for k in rule.params) or "no parameters"
            raise DataprepError(f"--alert {spec!r}: {item!r} is not KEY=VALUE with {known}")
        try:
            values[key.strip()] = kind(text.strip())
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise DataprepError(f"--alert {spec!r}: {key.strip()} must be {what}") from None
    return rule(**values)


def resolve(specs: list[str], defaults: bool = True) -> list[str]:
    """The rule specs a run uses: the defaults (unless turned off), each replaced by a given
    rule of the same name, then the other given rules. Checked: bad specs raise here."""
    given = {parse(spec).name: parse(spec).spec() for spec in specs}
    chosen = [given.pop(name, RULES[name]().spec()) for name in DEFAULTS] if defaults else []
    return chosen + list(given.values())


class Alerts:
    """Rules with episode state: `observe` returns the alerts that start at this step."""

    def __init__(self, specs: list[str] | tuple[str, ...]):
        self.rules = [parse(spec) for spec in specs]
        self.active = {rule.name: False for rule in self.rules}
        self.fired = 0

    def observe(self, record: Mapping[str, Any]) -> list[Fired]:
        started = []
        for rule in self.rules:
            judged = rule.judge(record)
            if judged is None:
                continue
            if judged.active and not self.active[rule.name]:
                started.append(
                    Fired(int(record["step"]), rule.name, judged.value, judged.threshold,
                          str(judged.message))
                )  # fmt: skip
            self.active[rule.name] = judged.active
        self.fired += len(started)
        return started


def _positive(rule: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise DataprepError(f"alert {rule}: {key} must be positive, not {value:g}")


def _not_negative(rule: str, **values: float) -> None:
    for key, value in values.items():
        if value < 0:
            raise DataprepError(f"alert {rule}: {key} must be 0 or more, not {value:g}")


def _percent(rule: str, pct: float) -> None:
    if not 0 < pct <= 100:
        raise DataprepError(f"alert {rule}: pct must be in (0, 100], not {pct:g}")
