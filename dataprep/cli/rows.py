"""`dataprep head`: look at a few rows (a table for people, JSON or JSONL for scripts)."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dataprep.cli import app, output
from dataprep.cli.audit import AuditLog

_WHERE = "Only rows where this holds (the filter stage's --where language)."
_SHUFFLE = (
    "A seeded random sample instead of the first rows (reads at most N row groups; "
    "with --where, random row groups)."
)


@app.command(rich_help_panel="Datasets")
def head(
    path: Annotated[str, typer.Argument(metavar="DIR", help="Dataset directory or URI.")],
    n: Annotated[int, typer.Option("-n", "--rows", min=0, help="Rows to show.")] = 10,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: all).")
    ] = None,
    where: Annotated[str | None, typer.Option(help=_WHERE)] = None,
    shuffle: Annotated[bool, typer.Option("--shuffle", help=_SHUFFLE)] = False,
    seed: Annotated[int, typer.Option(help="Seed for --shuffle.")] = 0,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", "-k", help="Key file, if DIR is encrypted.")
    ] = None,
    audit_log: AuditLog = None,
    max_chars: Annotated[
        int, typer.Option(min=0, help="Table cells longer than this are cut (0 = never).")
    ] = 80,
    json: output.Json = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
) -> None:
    """Print the first N rows of a dataset (or a seeded sample), reading only the row groups
    that hold them. --json and --jsonl print whole values; the table cuts long ones."""
    from dataprep.errors import DataprepError
    from dataprep.export import json_lines
    from dataprep.rows import cell
    from dataprep.rows import head as read_head

    if json and jsonl:
        raise DataprepError("--json and --jsonl are two formats of the same rows; pick one")
    from dataprep.audit_use import set_log

    set_log(audit_log)
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    found = read_head(
        path, n, columns=names, where=where, shuffle=shuffle, seed=seed, key_file=key_file
    )
    if found.left_out:
        keys = ", ".join(f"{c} (key {k!r})" for c, k in found.left_out.items())
        output.err_console.print(
            f"note: left out {keys}: key file {key_file} does not hold their keys", **output.PLAIN
        )
    data = b"".join(json_lines(b) for b in found.table.to_batches())
    with output.closed_pipe_ok():
        if jsonl:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        elif json:
            rows = [jsonlib.loads(line) for line in data.splitlines()]
            print(jsonlib.dumps(rows, indent=2, ensure_ascii=False), flush=True)
        else:
            from rich.table import Table

            table = Table(title=f"{path}: {found.sample}", title_justify="left")
            for name in found.table.column_names:
                table.add_column(escape(name), overflow="fold")
            for row in found.table.to_pylist():
                table.add_row(*(escape(cell(v, max_chars)) for v in row.values()))
            output.console.print(table)
            groups, shards = found.row_groups_read, found.shards_opened
            output.console.print(
                f"{found.table.num_rows:,} of {found.rows_total:,} rows (read {groups:,} row "
                f"group{'s' * (groups != 1)} of {shards:,} shard{'s' * (shards != 1)})",
                highlight=False,
            )
