"""How results reach a person (rich tables) or a script (`--json` on stdout)."""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dataprep.executors import DEFAULT_MAX_RETRIES, make_executor
from dataprep.progress import Reporter
from dataprep.runner import StageRun, run_stage

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

# Options every stage command shares.
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        help="Tasks at once (default: cores; with Ray: the cluster's CPUs / --cpus-per-task).",
    ),
]
ExecutorKind = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="local (processes on this machine; default) or ray (a Ray cluster; "
        "pip install 'dataprep\\[ray]'). Overrides a recipe's executor.kind.",
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster: auto, HOST:6379 or ray://HOST:10001 (default: start a local Ray).",
    ),
]
CpusPerTask = Annotated[
    float | None,
    typer.Option("--cpus-per-task", min=0.01, help="Ray: CPUs reserved per task (default 1)."),
]
MaxRetries = Annotated[
    int | None,
    typer.Option(
        "--max-retries",
        min=0,
        help=f"Reruns of a task that raised or whose worker died (default {DEFAULT_MAX_RETRIES}; "
        "user errors are not retried).",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (batch jobs).")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]
Force = Annotated[bool, typer.Option("--force", help="Rerun even if the output is up to date.")]
KeyFile = Annotated[
    str | None,
    typer.Option("--key-file", "-k", help="Key file, if the input is encrypted (output stays so)."),
]


def reporter(quiet: bool, as_json: bool) -> Reporter:
    return Reporter(quiet=quiet or as_json)


@dataclass(frozen=True)
class RunOptions:
    """The options every stage command shares (Workers ... Force above), as one value."""

    workers: int | None = None
    executor: str | None = None
    address: str | None = None
    cpus_per_task: float | None = None
    max_retries: int | None = None
    quiet: bool = False
    as_json: bool = False
    force: bool = False

    @property
    def chatty(self) -> bool:
        """Whether a command may print more than the summary table."""
        return not (self.quiet or self.as_json)


# (parameter, type, default) of the shared options, in --help order
_SHARED = (
    ("workers", Workers, None),
    ("executor", ExecutorKind, None),
    ("address", Address, None),
    ("cpus_per_task", CpusPerTask, None),
    ("max_retries", MaxRetries, None),
    ("quiet", Quiet, False),
    ("json", Json, False),
    ("force", Force, False),
)


def stage_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a stage command the shared options: its `options: RunOptions` parameter becomes
    --workers ... --force on the command line, declared once here instead of in every command.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in inspect.signature(command).parameters.values()
        if p.name != "options"
    ]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in _SHARED
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name, _, _ in _SHARED}
        values["as_json"] = values.pop("json")
        return command(**kwargs, options=RunOptions(**values))

    del wrapper.__wrapped__  # Typer must read the signature below, not the command's
    wrapper.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def run_and_print(
    op: str,
    config: Any,
    out: str,
    *,
    options: RunOptions,
    input_path: str | None = None,
    inputs: Sequence[str] = (),
    key_file: str | Path | None = None,
) -> StageRun:
    """The body of every stage command: run it with the shared options, print the summary."""
    with make_executor(
        options.executor or "local",
        workers=options.workers,
        address=options.address,
        cpus_per_task=options.cpus_per_task or 1.0,
        max_retries=DEFAULT_MAX_RETRIES if options.max_retries is None else options.max_retries,
    ) as pool:
        result = run_stage(
            op,
            config,
            out,
            input_path=input_path,
            inputs=inputs,
            executor=pool,
            reporter=reporter(options.quiet, options.as_json),
            force=options.force,
            key_file=str(key_file) if key_file else None,
        )
    print_runs([result], options.quiet, options.as_json)
    return result


def print_runs(runs: Sequence[StageRun], quiet: bool, as_json: bool) -> None:
    """One summary for one stage or a whole recipe."""
    for r in runs:  # on stderr, so --json output stays clean
        for warning in r.report.get("warnings", []):
            err_console.print(f"[yellow]warning[/]: {r.stage_id}: {escape(warning)}")
    if as_json:
        payload = [
            {
                "id": r.stage_id,
                "op": r.op,
                "out": str(r.out),
                "status": r.status,
                "report": r.report,
            }
            for r in runs
        ]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=str))
        return
    if quiet:
        return
    table = Table(title="dataprep", title_justify="left")
    for column in ("stage", "status", "rows in", "rows out", "quarantined", "seconds", "output"):
        table.add_column(column, justify="right" if column.startswith(("rows", "q", "s")) else None)
    for r in runs:
        rep = r.report
        status = "[green]ran[/]" if r.status == "ran" else "[dim]skipped[/]"
        table.add_row(
            r.stage_id,
            status,
            f"{rep.get('rows_in', 0):,}",
            f"{rep.get('rows_out', 0):,}",
            f"{rep.get('quarantined', 0):,}",
            f"{rep.get('seconds', 0):.2f}",
            str(r.out),
        )
    console.print(table)
    if len(runs) == 1 and runs[0].status == "cached":
        console.print(f"{runs[0].out} is up to date (same input and config): nothing to do.")
    for r in runs:  # a stage that changed the columns says what its encryption now covers
        enc = r.report.get("encryption") or {}
        if enc.get("added") or enc.get("dropped"):
            changes = [f"{k}: {', '.join(enc[k])}" for k in ("added", "dropped") if enc.get(k)]
            console.print(
                f"{r.stage_id}: encrypted columns {', '.join(enc['columns']) or 'none'} "
                f"({'; '.join(changes)})"
            )
    if any(r.report.get("quarantined") for r in runs):
        console.print(
            "[yellow]Rows that could not be read are in each output's .quarantine.jsonl.[/]"
        )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
