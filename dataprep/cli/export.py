"""`dataprep export`: a dataset back out as JSONL or JSONL.zst, for tools that want it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app, output


@app.command(rich_help_panel="Datasets")
def export(
    input: Annotated[str, typer.Argument(metavar="IN", help="Dataset directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="out.jsonl or out.jsonl.zst")],
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: all).")
    ] = None,
    level: Annotated[int, typer.Option(help="zstd level for .zst output.")] = 3,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", "-k", help="Key file, if IN is encrypted.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    json: output.Json = False,
) -> None:
    """Write every row as one JSON object per line (zstd-compressed when OUT ends in .zst)."""
    from dataprep.export import export_jsonl

    summary = export_jsonl(
        input,
        out,
        columns=columns.split(",") if columns else None,
        level=level,
        key_file=key_file,
        overwrite=force,
    )
    if json:
        output.print_json(summary)
        return
    output.console.print(
        f"[green]wrote[/] {summary['rows']:,} rows, {summary['bytes']:,} bytes to {out}"
        + (" [yellow](plaintext of an encrypted dataset)[/]" if summary["was_encrypted"] else "")
    )
