"""Executors run a list of picklable tasks through a module-level function.

`Executor.run(fn, tasks)` is the whole interface (`executors.protocol`, which imports nothing of
ours), so stage code never needs to know whether it runs in-process, in a process pool, or on
Ray.
"""

from __future__ import annotations

from dataprep.executors.protocol import Executor
from dataprep.executors.spec import DEFAULT_MAX_RETRIES, EXECUTORS, ExecutorSpec, make_executor

__all__ = ["DEFAULT_MAX_RETRIES", "EXECUTORS", "Executor", "ExecutorSpec", "make_executor"]
