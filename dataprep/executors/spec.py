"""Which executor a run uses: one model for the CLI's run options, a recipe's `executor:` and
the runner's default, and the one function that builds an executor from it.

Pydantic only, no pyarrow: the CLI's start-up reads it before any data library is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataprep.errors import DataprepError

if TYPE_CHECKING:
    from dataprep.executors.protocol import Executor

DEFAULT_MAX_RETRIES = 2  # a raised exception or a dead worker; user errors are never retried
EXECUTORS = ("local", "ray")


class ExecutorSpec(BaseModel):
    """`executor: {kind: ray, address: auto, cpus_per_task: 2, max_retries: 3}` in a recipe;
    --executor, --workers, --address, --cpus-per-task and --max-retries on the command line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = Field(
        "local",
        description="local (processes on this machine) or ray (a Ray cluster; pip install "
        "'dataprep[ray]')",
    )
    workers: int | None = Field(
        None,
        gt=0,
        description="tasks at once (default: cores; with Ray: the cluster's CPUs / cpus per task)",
    )
    address: str | None = Field(
        None,
        description="Ray cluster: auto, HOST:6379 or ray://HOST:10001 (default: start a local Ray)",
    )
    cpus_per_task: float = Field(1.0, gt=0, description="Ray: CPUs reserved per task")
    max_retries: int = Field(
        DEFAULT_MAX_RETRIES,
        ge=0,
        description="reruns of a task that raised or whose worker died (user errors are not "
        "retried)",
    )

    def overridden(self, **options: Any) -> ExecutorSpec:
        """Command-line options win over the recipe's; None means not given. A bad value is
        named by its flag (`--workers: ...`), as the user typed it."""
        given = {k: v for k, v in options.items() if v is not None}
        if given.get("kind") == "local":
            given.setdefault("address", None)  # a recipe's Ray address means nothing locally
        try:
            return ExecutorSpec.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise DataprepError(
                "\n".join(
                    f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}"
                    if e["loc"] and e["loc"][0] in given
                    else f"executor: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                    for e in exc.errors()
                )
            ) from None

    def build(self) -> Executor:
        """`local`: this machine's cores; `ray`: a Ray cluster at `address`, or a local Ray.
        `address` and `cpus_per_task` only mean something to Ray."""
        if self.kind == "local":
            if self.address:
                raise DataprepError("--address needs --executor ray")
            from dataprep.executors.local import LocalExecutor

            return LocalExecutor(workers=self.workers, max_retries=self.max_retries)
        from dataprep.executors.ray import RayExecutor

        return RayExecutor(
            workers=self.workers,
            address=self.address,
            cpus_per_task=self.cpus_per_task,
            max_retries=self.max_retries,
        )


def make_executor(
    kind: str = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Executor:
    """`ExecutorSpec(...).build()` for Python callers and tests."""
    if kind not in EXECUTORS:
        raise DataprepError(f"unknown executor {kind!r}; use 'local' or 'ray'")
    spec = ExecutorSpec().overridden(
        kind=kind,
        workers=workers,
        address=address,
        cpus_per_task=cpus_per_task,
        max_retries=max_retries,
    )
    return spec.build()
