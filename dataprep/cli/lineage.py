"""`dataprep lineage`: from a checkpoint, run or dataset back to the raw inputs."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app
from dataprep.cli.output import Json, console, print_json


@app.command(rich_help_panel="Training")
def lineage(
    path: Annotated[
        str, typer.Argument(help="A checkpoint (step-N), a run directory or a dataset directory.")
    ],
    json: Json = False,
) -> None:
    """Show where a model or dataset came from: each dataset's manifest digest and rows, each
    stage's rows in and out, back to the raw input files.

    Inputs deleted or changed since are "not available" and the chain goes on from what the
    manifests and the checkpoint recorded; raw files are re-checked by path, size and mtime.
    """
    from dataprep import lineage as chain
    from dataprep.lineage_text import lines

    node = chain.of(path)
    if json:
        print_json(node)
        return
    for line in lines(node):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
