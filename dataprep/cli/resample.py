"""`dataprep resample`: balance classes by under/oversampling or a weight column."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.resample import ResampleConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def resample(
    input_path: Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    label: Annotated[str, typer.Option(help="Column holding the class label.")],
    strategy: Annotated[str, typer.Option(help="undersample, oversample or weights.")],
    target: Annotated[
        str | None, typer.Option(help="'uniform': equal classes (the default target).")
    ] = None,
    ratios: Annotated[
        str | None, typer.Option(help="Explicit class ratios, e.g. pos=1,neg=3.")
    ] = None,
    max_ratio: Annotated[
        float | None, typer.Option(help="Cap the largest/smallest class ratio, e.g. 10.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed keeps the same rows.")] = 0,
    weight_column: Annotated[
        str, typer.Option(help="weights: name of the added column.")
    ] = "sample_weight",
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Undersample / oversample to exact planned class counts, or add inverse-frequency weights.

    Class counts after the run equal the plan in .report.json exactly. Rows with a null label
    go to OUT/.quarantine.jsonl.
    """
    config = ResampleConfig.parse(
        {
            "label": label,
            "strategy": strategy,
            "target": target,
            "ratios": ratios,
            "max_ratio": max_ratio,
            "seed": seed,
            "weight_column": weight_column,
        }
    )
    output.run_and_print(
        "resample",
        config,
        out,
        input_path=input_path,
        options=options,
        key_file=key_file,
    )
