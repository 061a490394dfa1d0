"""The `dataprep` command: thin Typer commands that build a config and call the library.

Each stage's command lives in its own module here and registers itself on `app`; this file
holds the shared options and the one place where user errors become exit codes.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from dataprep import __version__
from dataprep.errors import DataprepError, VerifyError, missing_extra

INTERRUPTED = "interrupted; rerun the same command to resume"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dataprep {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # options before the command; the app's help text stays the Typer(help=...) above
    pass


def main() -> None:
    try:
        app()
    except DataprepError as exc:
        _fail(str(exc), 1 if isinstance(exc, VerifyError) else 2)
    except ModuleNotFoundError as exc:  # an optional package (an extra) is not installed
        message = missing_extra(exc, _command(sys.argv[1:]))
        if message is None:
            raise
        _fail(message, 2)
    except OSError as exc:  # storage the run could not reach or write (after any retries)
        _fail(f"storage: {exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), 1)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:  # Typer turns Ctrl-C into a silent exit 130
        if exc.code == EXIT_INTERRUPTED and _from_ctrl_c(exc):
            _interrupted()
        raise


def _command(args: list[str]) -> str | None:
    """The subcommand a user typed (the first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def _from_ctrl_c(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupted() -> None:
    """Ctrl-C: finished tasks are kept, so the same command resumes; say so in one line."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    sys.stderr.write(INTERRUPTED + "\n")
    sys.stderr.flush()
    sys.exit(EXIT_INTERRUPTED)


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    from dataprep.cli.output import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)
