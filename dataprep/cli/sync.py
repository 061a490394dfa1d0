"""`sync` (copy a dataset to another store) and the output of `verify --repair-from`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataprep.cli import app, output
from dataprep.cli.output import console, err_console

if TYPE_CHECKING:
    from dataprep.repair import RepairResult


class _Bar:
    """A byte progress bar with speed and ETA on stderr; found-already-there bytes shrink the
    total instead of counting as speed."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]sync"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        self.task = self.bar.add_task("sync", total=None)

    def start(self, files: int, total_bytes: int) -> None:
        self.bar.update(self.task, total=total_bytes)

    def advance(self, copied: int, skipped: int) -> None:
        if skipped:
            total = self.bar.tasks[0].total or 0
            self.bar.update(self.task, total=max(total - skipped, 0))
        if copied:
            self.bar.advance(self.task, copied)


@app.command(rich_help_panel="Datasets")
def sync(
    src: Annotated[
        str, typer.Argument(metavar="SRC", help="Dataset directory or URI to copy from.")
    ],
    dst: Annotated[
        str, typer.Argument(metavar="DST", help="Directory or URI (s3://...) to copy to.")
    ],
    workers: Annotated[int, typer.Option(help="Files copied at once.")] = 8,
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="Remove shards and dataprep side files at DST that SRC does not have "
            "(other files are never touched).",
        ),
    ] = False,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum",
            help="Re-read every file already at DST instead of trusting sync's record of it.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json: output.Json = False,
) -> None:
    """Copy a dataset to another store: only shards DST lacks or holds differently, each
    checked against the manifest after the copy, side files too, the manifest last.

    Rerun after a kill: it resumes. Exit 1 names any file that could not be copied.
    """
    from dataprep.sync import sync_dataset

    bar = None if quiet or json else _Bar()
    if bar is not None:
        bar.bar.start()
    try:
        result = sync_dataset(
            src, dst, workers=workers, delete=delete, checksum=checksum, progress=bar
        )
    finally:
        if bar is not None:
            bar.bar.stop()
    if json:
        output.print_json(result.to_json())
        return
    if quiet:
        return
    console.print(
        f"[green]synced[/] {src} -> {dst}: {len(result.copied)} copied, "
        f"{len(result.skipped)} already there, {len(result.deleted)} deleted; "
        f"{result.bytes_copied / 1e6:,.1f} MB in {result.seconds:.1f} s "
        f"({result.mb_per_s:,.1f} MB/s)"
    )
    if result.kept:
        shown = ", ".join(result.kept[:5]) + (" …" if len(result.kept) > 5 else "")
        console.print(f"[yellow]note[/]: kept {len(result.kept)} file(s) not in SRC: {shown}")


def print_repair(result: RepairResult, as_json: bool) -> None:
    """What `verify --repair-from` replaced, refused or could not find; exit 1 unless the
    dataset verifies afterwards."""
    doc: dict[str, Any] = result.to_json()
    if as_json:
        output.print_json(doc)
    else:
        from rich.table import Table

        if result.repairs:
            table = Table(title="repair", title_justify="left")
            for column in ("shard", "problem", "action", "detail"):
                table.add_column(column, overflow="fold")
            for r in result.repairs:
                colour = "green" if r.action == "replaced" else "red"
                table.add_row(r.shard, r.problem, f"[{colour}]{r.action}[/]", r.detail)
            console.print(table)
        if result.ok:
            console.print(
                f"[green]ok[/]: {result.shards} shards, {result.rows:,} rows verified "
                f"({len(result.repairs)} replaced from {result.backup})"
            )
        else:
            err_console.print(f"[bold red]error:[/] {result.error}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
