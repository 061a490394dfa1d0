"""`dataprep compress`: re-encode shards with another codec, level or layout."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.compress import CompressConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def compress(
    input: Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    codec: Annotated[str, typer.Option(help="zstd, lz4, snappy, gzip, brotli or none.")] = "zstd",
    level: Annotated[
        int | None, typer.Option(help="Codec level (zstd 1-22; default: the codec's).")
    ] = None,
    dictionary: Annotated[bool, typer.Option(help="Dictionary-encode columns.")] = True,
    row_group_rows: Annotated[int | None, typer.Option(help="Rows per row group.")] = None,
    sort_by: Annotated[
        str | None,
        typer.Option(help="Comma-separated columns to sort rows by within each shard."),
    ] = None,
    page_bytes: Annotated[
        str | None,
        typer.Option(help="Page size, e.g. 16MB (default 8 MiB): bigger pages, smaller files."),
    ] = None,
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Re-encode shards; .report.json has bytes before/after, ratio per column and MB/s."""
    params = {
        "codec": codec,
        "level": level,
        "dictionary": dictionary,
        "row_group_rows": row_group_rows,
        "sort_by": sort_by.split(",") if sort_by else None,
    }
    if page_bytes is not None:  # else the stage's default (8 MiB), not "no value"
        params["page_bytes"] = page_bytes
    config = CompressConfig.parse(params)
    result = output.run_and_print(
        "compress",
        config,
        out,
        input_path=input,
        options=options,
        key_file=key_file,
    )
    if options.chatty and result.report:
        r = result.report
        output.console.print(
            f"{r.get('bytes_before', 0):,} -> {r.get('bytes_after', 0):,} bytes "
            f"(x{r.get('ratio_vs_input', 0)} vs input, x{r.get('ratio', 0)} vs uncompressed), "
            f"{r.get('mb_per_s', 0)} MB/s"
        )
