"""`dataprep shard`: raw files to Parquet shards."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.shard import ShardConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def shard(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or globs.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    shard_rows: Annotated[int | None, typer.Option(help="Rows per shard.")] = None,
    shard_bytes: Annotated[
        str | None,
        typer.Option(
            help="Compressed (on-disk Parquet) bytes per shard, e.g. 128MB; the default, "
            "128MB, applies when --shard-rows is not given."
        ),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    id_column: Annotated[
        str, typer.Option(help="Id column; generated as SOURCE:LINE when absent.")
    ] = "id",
    keep: Annotated[
        str | None, typer.Option(help="Comma-separated fields to keep (default: all).")
    ] = None,
    format: Annotated[str, typer.Option(help="auto, jsonl, csv, parquet or text.")] = "auto",
    lines: Annotated[bool, typer.Option(help="Plain text: one document per line.")] = False,
    chunk_bytes: Annotated[
        str,
        typer.Option(
            help="Input bytes per task: bigger files are split at line ends, files under "
            "1/64 of it are joined with others."
        ),
    ] = "64MB",
    on_truncated: Annotated[
        str,
        typer.Option(
            help="A cut .zst/.gz input: error (stop), or quarantine (keep the rows before the "
            "cut; the cut goes to quarantine)."
        ),
    ] = "error",
    *,
    options: output.RunOptions,
) -> None:
    """Read JSONL / CSV / Parquet / text (plain, .zst, .gz) into Parquet shards.

    Malformed rows go to OUT/.quarantine.jsonl with their source and line; the run goes on.
    """
    config = ShardConfig.parse(
        {
            "shard_rows": shard_rows,
            "shard_bytes": shard_bytes,
            "text_column": text_column,
            "id_column": id_column,
            "keep": keep.split(",") if keep else None,
            "format": format,
            "lines": lines,
            "on_truncated": on_truncated,
            "chunk_bytes": chunk_bytes,
        }
    )
    output.run_and_print(
        "shard",
        config,
        out,
        inputs=inputs,
        options=options,
    )
