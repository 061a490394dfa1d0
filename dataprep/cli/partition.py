"""`dataprep partition`: route rows to N partitions by a consistent hash of a key column."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.partition import PartitionConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def partition(
    input_path: Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    key: Annotated[str, typer.Option(help="Column whose value picks the partition.")],
    partitions: Annotated[int, typer.Option(help="Number of partitions.")],
    scheme: Annotated[
        str, typer.Option(help="jump (default, unweighted), rendezvous or ring.")
    ] = "jump",
    weights: Annotated[
        str | None,
        typer.Option(help="Comma-separated relative weights, one per partition (rendezvous/ring)."),
    ] = None,
    names: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated partition names (rendezvous/ring): a partition's keys depend "
            "on its name, so removing one name moves only that partition's keys."
        ),
    ] = None,
    vnodes: Annotated[int, typer.Option(help="Ring: virtual nodes per unit of weight.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the xxh64 key hash.")] = 0,
    previous: Annotated[
        str | None,
        typer.Option(help="An earlier partition output: report the fraction of rows that moved."),
    ] = None,
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Write each partition as its own shard set; the manifest tags every shard's partition.

    Rows with a null key go to OUT/.quarantine.jsonl. .report.json records partition sizes and
    balance (max/mean), and with --previous the fraction of rows that changed partition.
    """
    config = PartitionConfig.parse(
        {
            "key": key,
            "partitions": partitions,
            "scheme": scheme,
            "weights": weights.split(",") if weights else None,  # pydantic checks the numbers
            "names": names.split(",") if names else None,
            "vnodes": vnodes,
            "seed": seed,
            "previous": previous or None,
        }
    )
    output.run_and_print(
        "partition",
        config,
        out,
        input_path=input_path,
        options=options,
        key_file=key_file,
    )
