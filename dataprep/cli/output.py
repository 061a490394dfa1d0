"""How results reach a person (rich tables) or a script (`--json` on stdout)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from dataprep.runner import StageRun

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def print_runs(runs: Sequence[StageRun], quiet: bool, as_json: bool) -> None:
    """One summary for one stage or a whole recipe; --json is the same list for both."""
    for r in runs:  # on stderr, so --json output stays clean
        for warning in r.report.get("warnings", []):
            err_console.print(f"[yellow]warning[/]: {r.stage_id}: {escape(warning)}")
    if as_json:
        print_json(
            [
                {"id": r.stage_id, "op": r.op, "out": r.out, "status": r.status, "report": r.report}
                for r in runs
            ]
        )
        return
    if quiet:
        return
    from rich.table import Table

    table = Table(title="dataprep", title_justify="left")
    for column in ("stage", "status", "rows in", "rows out", "quarantined", "seconds", "output"):
        table.add_column(column, justify="right" if column.startswith(("rows", "q", "s")) else None)
    for r in runs:
        rep = r.report
        table.add_row(
            r.stage_id,
            "[green]ran[/]" if r.status == "ran" else "[dim]skipped[/]",
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
