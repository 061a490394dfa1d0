"""The `dataprep` command: thin Typer commands that build a config and call the library.

Each stage's command lives in its own module here and registers itself on `app`; this file
holds the shared options and the one place where user errors become exit codes.
"""

from __future__ import annotations

import importlib
import sys

import typer

from dataprep.errors import DataprepError, VerifyError

app = typer.Typer(
    name="dataprep",
    help="Prepare training data as Parquet shards and stream it into distributed training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Importing a command module registers its commands on `app` (one module per line).
COMMAND_MODULES = (
    "core",
    "shard",
    "dedup",
    "tokenize",
    "train",
    "partition",
    "rebalance",
    "resample",
    "compress",
    "crypto",
    "export",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"dataprep.cli.{_module}")


def main() -> None:
    try:
        app()
    except DataprepError as exc:
        _fail(str(exc), 1 if isinstance(exc, VerifyError) else 2)
    except OSError as exc:  # storage the run could not reach or write (after any retries)
        _fail(f"storage: {exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), 1)


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    from dataprep.cli.output import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)
