"""The `dataprep` command: thin Typer commands that build a config and call the library.

Stage commands are generated from the stage registry (`stages.py`); the other commands live
in their own modules here. This file is the one place where user errors become exit codes.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from typing import Any

INTERRUPTED = "interrupted; rerun the same command to resume"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _ctrl_c_while_starting(signum: int, frame: Any) -> None:
    """Ctrl-C while the command imports its modules (half a second): nothing has started."""
    os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(EXIT_INTERRUPTED)


def _started_as_command() -> bool:
    name = sys.argv[0] if sys.argv else ""
    return os.path.basename(name) == "dataprep" or name.endswith(f"dataprep{os.sep}__main__.py")


def _stage_word() -> str | None:
    """The command word, if it comes first (`dataprep STAGE ...`)."""
    return sys.argv[1] if len(sys.argv) > 1 else None


def _stage_names() -> dict[str, str]:
    from dataprep.stages import BUILTIN  # a dict of names: no pyarrow

    return BUILTIN


_ctrl_c_before_imports = (
    signal.signal(signal.SIGINT, _ctrl_c_while_starting) if _started_as_command() else None
)
# Start-up allocates only what lives to the end (modules, the app): no cyclic GC passes over
# it (~0.04 s of CPU), and it is frozen before the fork server is forked from this process,
# so collections there and in the workers do not write to (and copy) these pages.
_gc_held = _started_as_command() and gc.isenabled()
if _gc_held:
    gc.disable()
# numpy's OpenBLAS starts a thread per extra core when pyarrow imports numpy, and each spins
# 2^28 cycles (~0.05-0.1 s of CPU) waiting for work before it sleeps; this command runs no
# BLAS before the fork (threads are not forked). A short wait makes them sleep at once; a
# later BLAS call wakes them as usual. A user's own setting wins.
if _started_as_command():
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# Arrow's allocator (mimalloc, read when pyarrow loads) gives memory freed for a second back
# to the kernel, and the next block's buffers then fault and zero it again: a 201 MB shard's
# workers purged ~150 MB and re-zeroed it (0.1-0.2 s of system time, varying with the box).
# A stage command's processes live for one stage and reach their peak again at the next
# block, so they keep what they freed (peak RSS is the same). A user's own setting wins.
if _started_as_command() and _stage_word() in _stage_names():
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")

import importlib  # noqa: E402 (the handler above covers these imports)
import pkgutil  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402
import typer.core  # noqa: E402

from dataprep import __version__  # noqa: E402
from dataprep.errors import DataprepError, VerifyError, missing_extra  # noqa: E402


class _Commands(typer.core.TyperGroup):
    """The commands written here, plus one per registered stage (built-in or plugin), made
    from its config model when it is asked for (`cli/stages.py`)."""

    def list_commands(self, ctx: Any) -> list[str]:
        from dataprep.catalog import registry

        own = super().list_commands(ctx)
        return own + [n for n in registry() if n not in self.commands]

    def get_command(self, ctx: Any, name: str) -> Any:
        from dataprep.catalog import target

        found = super().get_command(ctx, name)
        if found is None and target(name) is not None:
            from dataprep.cli.stages import stage_command

            found = self.commands[name] = stage_command(name)
        return found

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """As Typer's, but "Did you mean" also offers stage names: Typer suggests only from
        the commands already built, and stage commands are built when asked for."""
        try:
            return super().resolve_command(ctx, args)
        except Exception as error:  # click's UsageError (Typer >= 0.26 vendors its own click)
            message = getattr(error, "message", None)
            if not (args and isinstance(message, str) and message.startswith("No such command")):
                raise
            import difflib

            asked = message.split(". Did you mean", 1)[0].rstrip(".")
            matches = difflib.get_close_matches(args[0], self.list_commands(ctx))
            offered = ", ".join(repr(m) for m in matches)
            error.message = f"{asked}. Did you mean {offered}?" if matches else f"{asked}."
            raise


app = typer.Typer(
    name="dataprep",
    help="Prepare training data as Parquet shards and stream it into distributed training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=_Commands,
)

# Importing a command module registers its commands on `app`; stage commands are generated.
# Every module in this package is a command module except these helpers.
_NOT_COMMANDS = {"output", "stages"}
COMMAND_MODULES = tuple(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name not in _NOT_COMMANDS and not m.name.startswith("_")
)


def _runs_a_builtin_stage() -> bool:
    """`dataprep STAGE ...` for a built-in stage, no help asked: no written command is used
    (none has a built-in stage's name: tests/test_startup_cli.py), so their modules are not
    imported (~0.02 s of CPU before the first task)."""
    from dataprep.stages import BUILTIN

    args = sys.argv[1:]
    return _started_as_command() and bool(args) and args[0] in BUILTIN and not _asks_help(args)


def _asks_help(args: list[str]) -> bool:
    return bool({"--help", "-h"} & set(args))


if not _runs_a_builtin_stage():
    for _module in COMMAND_MODULES:
        importlib.import_module(f"dataprep.cli.{_module}")
if _ctrl_c_before_imports is not None:  # from here on Ctrl-C is a KeyboardInterrupt again
    signal.signal(signal.SIGINT, _ctrl_c_before_imports)


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
        try:
            _warm_workers(sys.argv[1:])
        finally:
            if _gc_held:
                gc.freeze()
                gc.enable()
        _run_app(sys.argv[1:])  # always ends in SystemExit (Typer standalone mode) or an error
    except BaseException as exc:
        # The run is over: a late Ctrl-C must not cut the exit short with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _exit_for(exc)
        except SystemExit as done:
            if _is_the_program() and _stage_only(sys.argv[1:]):
                _leave(done)
            raise


def _is_the_program() -> bool:
    """Whether `main()` runs as the program (`dataprep`, `python -m dataprep`), not called
    by a caller's own code (a test, an embedding) that goes on after it."""
    program = sys.modules.get("__main__")
    spec = getattr(program, "__spec__", None)
    if spec is not None:
        return spec.name == "dataprep.__main__"
    return os.path.basename(getattr(program, "__file__", None) or "") == "dataprep"


def _leave(done: SystemExit) -> None:
    """End a stage command now, without tearing the interpreter down: freeing every module
    and a last collection over all start-up allocated (~0.02 s of CPU), each freed page first
    copied from the fork server that still shares it. What an exit owes is kept: the atexit
    handlers (multiprocessing's clean-up, temp dirs, logging), flushed output, the status.
    Stage code writes its files in `with` blocks; a written command (train: its trace file,
    TensorBoard) may leave one open for the teardown to flush, so those end as usual.
    Returns (the usual exit follows) where that would differ: a non-int status (printed by
    the interpreter), a thread the exit would wait for, output that cannot be flushed."""
    import threading  # loaded already by any run that started a thread

    status = 0 if done.code is None else done.code
    main = threading.main_thread()
    waits = [t for t in threading.enumerate() if not t.daemon and t is not main]
    if not isinstance(status, int) or waits:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe: the interpreter reports it as it always did
        return
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status & 0xFF)


def _run_app(args: list[str]) -> None:
    """Run the command line. `dataprep STAGE ...` builds only that stage's command: Typer
    builds every registered command (their signatures and type hints, ~0.05 s of CPU) to
    make its group, and none but the one asked for is used. Help before the command, or a
    name that is also a written command, builds them all as before."""
    if not isinstance(app, typer.Typer):  # replaced (a test's or an embedder's own command)
        app()
        return
    own = (app.registered_commands, app.registered_groups)
    if _stage_only(args):
        app.registered_commands, app.registered_groups = [], []
    try:
        app()
    finally:
        app.registered_commands, app.registered_groups = own


def _stage_only(args: list[str]) -> bool:
    """Whether `args` run a stage command (its name first, no help option anywhere)."""
    from dataprep.catalog import target

    if not args or args[0].startswith("-") or _asks_help(args):
        return False
    written = {g.name for g in app.registered_groups} | {
        c.name or typer.main.get_command_name(c.callback.__name__)
        for c in app.registered_commands
        if c.callback is not None
    }
    return args[0] not in written and target(args[0]) is not None


def _exit_for(exc: BaseException) -> None:
    """User errors become one sentence and an exit code; anything else is re-raised."""
    if isinstance(exc, DataprepError):
        _fail(str(exc), 1 if isinstance(exc, VerifyError) else 2)
    if isinstance(exc, ModuleNotFoundError):  # an optional package (an extra) is missing
        message = missing_extra(exc, _command(sys.argv[1:]))
        if message is not None:
            _fail(message, 2)
    if isinstance(exc, OSError):  # storage the run could not reach or write (after retries)
        _fail(f"storage: {exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), 1)
    if isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, SystemExit) and exc.code == EXIT_INTERRUPTED and _from_ctrl_c(exc)
    ):  # Typer turns Ctrl-C into a silent exit 130
        _interrupted()
    raise exc


def _warm_workers(args: list[str]) -> None:
    """`dataprep STAGE ...` with local workers: start the workers' fork server now.

    Where this process can be forked (`forkserver.can_fork`: one thread, as here before the
    command runs), the server is a fork of it once it imported the stage: a few ms, so it is
    done for the default worker count too, even if a small run then needs no worker. Else
    (`--workers N` only, N > 1) a fresh server imports pyarrow and the stage while this
    process does the same, instead of after the stage is planned."""
    from dataprep.catalog import target

    command = _command(args)
    stage = target(command) if command is not None else None
    if stage is None or {"--help", "-h"} & set(args):
        return
    if _option(args, "--executor", None) not in (None, "local"):
        return
    workers = _option(args, "--workers", "-w")
    if workers is not None and (not workers.isdigit() or int(workers) < 2):
        return
    from dataprep.executors import forkserver
    from dataprep.executors.local import default_workers

    if not forkserver.available():
        return
    if workers is None and (default_workers() < 2 or not forkserver.can_fork()):
        return
    module = stage.split(":")[0]
    if workers is None and module.startswith("dataprep.") and _small(args):
        return  # it will run in-process (runner): a fork now would only cost copied pages
    _audit_log_now(command, args)
    forkserver.start(extra=(module,), fork=True)


def _audit_log_now(command: str, args: list[str]) -> None:
    """`--audit-log PATH` into the environment before the fork server is forked, as the
    command sets it later (`set_log`, from the value click parses here the same way): set
    only then, the changed environment retired the forked server, and a fresh interpreter
    replaced it (~0.5 s of CPU). Workers read the log's path from their environment."""
    if not any(a == "--audit-log" or a.startswith("--audit-log=") for a in args):
        return
    from dataprep.audit_use import set_log
    from dataprep.cli.stages import stage_command

    after = args[args.index(command) + 1 :]
    try:
        ctx = stage_command(command).make_context(command, after, resilient_parsing=True)
    except Exception:  # the command reports a bad command line itself
        return
    set_log(ctx.params.get("audit_log"))


def _small(args: list[str]) -> bool:
    """Whether the stage's input is local and under the executor's in-process size. The input
    is the words between the command and its first option (`STAGE IN... -o OUT`); none there
    (options first, or a remote input) counts as not small."""
    from dataprep.executors.local import INLINE_BELOW_BYTES
    from dataprep.executors.sizing import local_bytes

    after = args[args.index(_command(args) or "") + 1 :]
    first_option = next((i for i, a in enumerate(after) if a.startswith("-")), len(after))
    size = local_bytes(after[:first_option], INLINE_BELOW_BYTES)
    return size is not None and size < INLINE_BELOW_BYTES


def _option(args: list[str], name: str, short: str | None) -> str | None:
    """The value a user gave an option (`--name V`, `--name=V`, `-s V`, `-sV`), if any."""
    for i, arg in enumerate(args):
        if arg in (name, short) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if short and arg.startswith(short) and len(arg) > len(short) and arg[1] != "-":
            return arg[len(short) :]
    return None


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
    sys.stderr.write(INTERRUPTED + "\n")
    sys.stderr.flush()
    sys.exit(EXIT_INTERRUPTED)


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    from dataprep.cli.output import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)
