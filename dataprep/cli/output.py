"""How results reach a person (rich tables) or a script (`--json` on stdout)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from dataprep.runner import StageRun

# Width of output that is not a terminal (a pipe, a CI log): rich would cut and wrap it at 80
# columns; lines are as long as their content instead (tables are only as wide as they need).
UNCUT_WIDTH = 10_000


def _console(stderr: bool = False) -> Console:
    """A terminal gets its own width; COLUMNS, when set, wins everywhere (as in rich)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """A reader that stopped early (`dataprep head DIR | head -3`): end quietly with
            exit 0, as `export -o -` does (rich's own exits 1)."""
            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0)

    made = _Console(stderr=stderr, soft_wrap=stderr)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        made.width = UNCUT_WIDTH
    return made


def __getattr__(name: str) -> Any:
    """`console` and `err_console` are made when first used: a quiet or --json stage run
    prints nothing through rich, so it does not import it (~0.01 s of CPU)."""
    if name in ("console", "err_console"):
        made = globals()[name] = _console(stderr=name == "err_console")
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _shared(name: str) -> Console:
    return globals().get(name) or __getattr__(name)


# rich.markup.escape's pattern (a tag-like `[x...]`, with the backslashes before it)
_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(text: str) -> str:
    """rich.markup.escape without importing rich (~0.01 s of CPU): option help is escaped each
    time a stage command is built, and a quiet or --json run prints nothing through rich.
    tests/test_cli.py checks it against rich's on every catalog help text."""
    text = _MARKUP.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def print_runs(runs: Sequence[StageRun], quiet: bool, as_json: bool) -> None:
    """One summary for one stage or a whole recipe; --json is the same list for both."""
    for r in runs:  # on stderr, so --json output stays clean
        for warning in r.report.get("warnings", []):
            _shared("err_console").print(f"[yellow]warning[/]: {r.stage_id}: {escape(warning)}")
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

    console = _shared("console")
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
    for r in runs:  # each stage's own line(s), from its report (cached runs' too)
        lines = details(r.op, r.report or {})
        for n, line in enumerate(lines):
            console.print(f"{r.stage_id}: {line}" if n == 0 else f"  {line}", **PLAIN)
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


PLAIN: dict[str, Any] = {"markup": False, "highlight": False}


def details(op: str, report: dict[str, Any]) -> list[str]:
    """The lines a stage run prints after the summary table: the stage's own (`Stage.details`,
    made from its report), then what its output's encryption covers when that changed or the
    stage left columns in the clear. A stage without its own says its shards and bytes."""
    from dataprep.stages import get_stage

    hook = getattr(get_stage(op), "details", None)  # a duck-typed plugin may not have it
    try:
        lines = list(hook(report)) if hook is not None else []
    except (TypeError, ValueError, AttributeError, KeyError):  # a damaged stored .report.json
        return []  # no line rather than a wrong one or a traceback
    if not lines:
        lines.append(f"{report.get('shards', 0):,} shards, {report.get('bytes_out', 0):,} bytes")
    enc, extra = report.get("encryption") or {}, []
    changes = [f"{k}: {', '.join(enc[k])}" for k in ("added", "dropped") if enc.get(k)]
    if changes or (enc and report.get("stage") == "encrypt"):
        noted = f" ({'; '.join(changes)})" if changes else ""
        extra.append(f"encrypted columns {', '.join(enc.get('columns', [])) or 'none'}{noted}")
    if report.get("plaintext_columns"):
        extra.append(f"left in the clear: {', '.join(report['plaintext_columns'])}")
    return lines + (["; ".join(extra)] if extra else [])
