"""How results reach a person (rich tables) or a script (`--json` on stdout)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
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


@contextlib.contextmanager
def closed_pipe_ok() -> Iterator[None]:
    """A reader that stops early (`dataprep export DIR -o - | head -1`) closes stdout: end
    quietly with exit 0, as `cat` does, not with a traceback."""
    try:
        yield
    except BrokenPipeError:
        # stdout now leads nowhere, so Python's flush at exit cannot fail a second time
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def compress(r: dict[str, Any]) -> None:
    console.print(
        f"{r.get('bytes_before', 0):,} -> {r.get('bytes_after', 0):,} bytes "
        f"(x{r.get('ratio_vs_input', 0)} vs input, x{r.get('ratio', 0)} vs uncompressed), "
        f"{r.get('mb_per_s', 0)} MB/s"
    )


def encrypt(r: dict[str, Any]) -> None:
    if r.get("plaintext_columns"):
        console.print(f"[yellow]left in the clear[/]: {', '.join(r['plaintext_columns'])}")


def dedup(rep: dict[str, Any]) -> None:
    """S-curve, clusters, examples, phases."""
    say = functools.partial(console.print, highlight=False)
    if rep.get("message"):
        say(f"[green]{rep['message']}[/]")
    say(
        f"removed {rep.get('duplicates_removed', 0):,} rows "
        f"(exact duplicates {rep.get('exact_duplicates', 0):,}; "
        f"clusters {rep.get('clusters', 0):,}; sizes {rep.get('cluster_sizes', {})})"
    )
    lsh = rep.get("lsh")
    if lsh:
        curve = "  ".join(f"J={j}: {p:.3f}" for j, p in lsh["s_curve"].items())
        say(f"LSH {lsh['bands']} bands x {lsh['rows']} rows; catch probability {curve}")
    for name, info in rep.get("by_source", {}).items():
        say(
            f"  source {name}: {info['removed']:,}/{info['rows']:,} "
            f"({info['dup_rate']:.1%}) removed"
        )
    for ex in rep.get("examples", [])[:3]:
        est = ex.get("estimated_jaccard")
        kind = "id" if "kept_id" in ex else "row"
        removed, kept = (repr(ex[f"{k}_{kind}"]) for k in ("removed", "kept"))
        say(
            f"  e.g. {kind} {removed} ~ {kind} {kept}: true J "
            f"{ex['true_jaccard']:.2f}" + (f", estimated {est:.2f}" if est is not None else "")
        )
    phases = ", ".join(
        f"{k} {v['seconds']:.2f}s/{v['peak_rss_mb']:.0f}MB"
        for k, v in rep.get("phases", {}).items()
    )
    say(f"phases: {phases}")


# What a stage command prints after the table, for the stages that say more.
SUMMARIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "compress": compress,
    "encrypt": encrypt,
    "dedup": dedup,
}
