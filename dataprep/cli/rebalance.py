"""`dataprep rebalance`: rewrite uneven shards into equal ones, or balance groups."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.rebalance import RebalanceConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def rebalance(
    input_path: Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    shards: Annotated[int | None, typer.Option(help="Number of output shards.")] = None,
    target_rows: Annotated[int | None, typer.Option(help="Rows per output shard.")] = None,
    target_bytes: Annotated[
        str | None, typer.Option(help="Bytes per output shard, e.g. 64MB (keeps order).")
    ] = None,
    shuffle: Annotated[bool, typer.Option(help="Seeded global shuffle instead of order.")] = False,
    seed: Annotated[int, typer.Option(help="Shuffle seed.")] = 0,
    by: Annotated[
        str | None,
        typer.Option(help="Keep groups of this column together, packed evenly (LPT)."),
    ] = None,
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Rewrite shards so row counts differ by at most one (or bytes by a few percent).

    Give exactly one of --shards, --target-rows, --target-bytes. Order is kept unless
    --shuffle; --by COL keeps each group in one shard, splitting only groups bigger than a
    fair share, and packs them largest-first onto the emptiest shard.
    """
    config = RebalanceConfig.parse(
        {
            "shards": shards,
            "target_rows": target_rows,
            "target_bytes": target_bytes,
            "shuffle": shuffle,
            "seed": seed,
            "by": by,
        }
    )
    output.run_and_print(
        "rebalance",
        config,
        out,
        input_path=input_path,
        options=options,
        key_file=key_file,
    )
