"""`dataprep report`: one offline HTML page about datasets and training runs."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.cli.audit import AuditLog

Opt = typer.Option


@app.command(rich_help_panel="Datasets")
def report(
    paths: Annotated[
        list[str], typer.Argument(help="Dataset directories and/or training run directories.")
    ],
    out: Annotated[str, Opt("--out", "-o", help="The HTML file to write.")] = "report.html",
    key_file: Annotated[
        str | None, Opt("--key-file", "-k", help="Key file, to plot encrypted columns.")
    ] = None,
    audit_log: AuditLog = None,
    sample_rows: Annotated[
        int, Opt(help="Rows whose values are plotted (a seeded sample of row groups).", min=0)
    ] = 100_000,
    seed: Annotated[int, Opt(help="Seed of the row-group sample.")] = 0,
    json: output.Json = False,
) -> None:
    """Write one self-contained HTML report (plots, lineage, training curves; opens offline).

    Datasets: rows, bytes, schema, compression per column, histograms of text length and
    numeric columns, source/label counts, lineage with rows per stage, dedup clusters and
    S-curve, resample before/after, partition balance, quarantine reasons. Runs: loss,
    eval loss, lr, tokens/s, data wait, GPU memory and MFU from metrics.jsonl.
    """
    from dataprep.audit_use import set_log
    from dataprep.report import build_report

    set_log(audit_log)
    summary = build_report(paths, out, key_file, sample_rows, seed)
    if json:
        output.print_json(summary.to_json())
    else:
        output.console.print(f"wrote {summary.path} ({summary.bytes:,} bytes)")
