"""Stage commands, made from the stage registry: every field of a stage's config model becomes
an option (`text_column` -> `--text-column`) with the model's type, default, bounds, choices
and description (its spec, `dataprep.catalog`), so a recipe key and its flag cannot drift
apart. The run options are made the same way from `ExecutorSpec`, a recipe's `executor:`.
Lists are comma-separated (`--sort-by a,b`), sizes are text (`--shard-bytes 128MB`), bools
are `--x/--no-x`, Literals are choices.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer

from dataprep import catalog
from dataprep.cli import output
from dataprep.cli.output import escape

KEY_FILE_HELP = "Key file, if the input is encrypted (output stays so)."
AUDIT_LOG_HELP = (
    "Where key uses are recorded (default KEYFILE.audit.jsonl; env DATAPREP_AUDIT_LOG)."
)
RUNS_JSON = (
    "Print a machine-readable summary on stdout: always a JSON list with one object per "
    "stage run, {id, op, out, status (ran|cached), report}."
)
# The run options besides the executor's (ExecutorSpec fields); "flag": a bool without --no-x.
QUIET = "No progress bars (batch jobs)."
FORCE = "Rerun even if the output is up to date."
RUN_FLAGS = [
    {"name": "quiet", "kind": "flag", "names": ("--quiet", "-q"), "help": QUIET},
    {"name": "json", "kind": "flag", "help": RUNS_JSON},
    {"name": "force", "kind": "flag", "help": FORCE},
]
METRICS_PORT = {
    "name": "metrics_port",
    "kind": "int",
    "help": "Serve Prometheus metrics (rows, tasks, bytes per stage) on this port while the "
    "command runs; 0 picks a free port, printed on stderr.",
}
EXECUTOR_NAMES = {"kind": ("--executor",), "workers": ("--workers", "-w")}
_KW = inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class RunOptions:
    """The run options of one command; `executor` holds the ExecutorSpec fields given (None:
    not given), which override a recipe's `executor:` or the model's defaults."""

    executor: dict[str, Any]
    quiet: bool = False
    as_json: bool = False
    force: bool = False
    metrics_port: int | None = None

    @classmethod
    def pop(cls, values: dict[str, Any]) -> RunOptions:
        """Take the run options out of a command's parsed parameters."""
        executor = {f["name"]: values.pop(f["name"]) for f in catalog.executor_fields()}
        flags = values.pop("quiet"), values.pop("json"), values.pop("force", False)
        return cls(executor, *flags, values.pop("metrics_port", None))

    def serve_metrics(self) -> None:
        """--metrics-port: serve the stage metrics from now until the process ends."""
        if self.metrics_port is not None:
            from dataprep.observe import stage_metrics

            stage_metrics.serve(self.metrics_port)

    @property
    def chatty(self) -> bool:
        """Whether a command may print more than the summary table."""
        return not (self.quiet or self.as_json)


def option(field: dict[str, Any], given_only: bool = False) -> inspect.Parameter:
    """The parameter for one field; `given_only`: its default is None (not given), shown in
    the help instead, so a recipe's value is kept unless the flag is given."""
    flag = "--" + field["name"].replace("_", "-")
    names = field.get("names") or (flag, *(("-k",) if field["name"] == "key_file" else ()))
    kind, default, about = field["kind"], field.get("default"), escape(field["help"])
    value: Any = {"int": int, "float": float, "bool": bool, "flag": bool}.get(kind, str)
    if kind == "bool":
        names = (f"{names[0]}/--no-{names[0][2:]}", *names[1:])
    elif kind == "choice":
        value = Literal[tuple(map(str, field["choices"]))]
    elif kind == "flag":
        default = False
    if given_only and default is not None:
        about, default = f"{about} (default {default})", None
    metavar = {"list": "A,B,...", "size": "SIZE"}.get(kind)
    required = field.get("required", False)
    typed = Annotated[
        value if required else value | None, typer.Option(*names, help=about, metavar=metavar)
    ]
    if required:
        return inspect.Parameter(field["name"], _KW, annotation=typed)
    return inspect.Parameter(field["name"], _KW, annotation=typed, default=default)


def run_options(force: bool = True) -> list[inspect.Parameter]:
    """--executor, --workers ... (the ExecutorSpec fields), --quiet, --json, --force and
    --metrics-port."""
    executor = [f | {"names": EXECUTOR_NAMES.get(f["name"])} for f in catalog.executor_fields()]
    flags = [*(RUN_FLAGS if force else RUN_FLAGS[:2]), METRICS_PORT]
    return [option(f, given_only=True) for f in executor] + [option(f) for f in flags]


def with_run_options(command: Any) -> Any:
    """`command` (a non-stage command such as `run`) with its `**values` as the run options."""
    params = inspect.signature(command, eval_str=True).parameters.values()
    own = [p for p in params if p.kind != p.VAR_KEYWORD]
    command.__signature__ = inspect.Signature(own + run_options(force=False))
    return command


def command(spec: dict[str, Any]) -> Any:
    """The Typer (click) command for a spec; running it validates with the real model."""
    if spec["reads_dataset"]:
        source = Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")]
    else:
        about = "Files, directories or globs."
        source = Annotated[list[str], typer.Argument(metavar="INPUTS", help=about)]
    out = {"name": "out", "names": ("--out", "-o"), "required": True, "kind": "text"}
    params = [
        inspect.Parameter("source", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=source)
    ]
    params.append(option(out | {"help": "Output dataset directory."}))
    shared, names = run_options(), {f["name"] for f in spec["fields"]}
    clash = names & ({"source", "out"} | {p.name for p in shared})
    if clash:
        raise ValueError(f"stage {spec['name']}: {', '.join(sorted(clash))} is a run option")
    params += [option(field) for field in spec["fields"]]
    if spec["reads_dataset"] and "key_file" not in names:  # encrypt/decrypt: a param
        params.append(option({"name": "key_file", "kind": "text", "help": KEY_FILE_HELP}))
    if spec["reads_dataset"]:  # every command that takes --key-file
        params.append(option({"name": "audit_log", "kind": "text", "help": AUDIT_LOG_HELP}))

    def run(**values: Any) -> None:
        _run(spec, values)

    run.__signature__ = inspect.Signature(params + shared)  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False, rich_markup_mode="rich")
    app.command(spec["name"], help=spec["help"], rich_help_panel="Stages")(run)
    return typer.main.get_command(app)


def stage_command(name: str) -> Any:
    """The command of a registered stage. One whose module fails to import (a broken plugin,
    a missing extra) is listed with the reason and raises it when run; the rest still work."""
    try:
        return command(catalog.spec(name))
    except Exception as error:
        failure = error

        def run(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
            raise failure

        about = escape(f"(cannot load: {type(error).__name__}: {error})")
        settings = {"ignore_unknown_options": True, "allow_extra_args": True}
        app = typer.Typer(add_completion=False)
        app.command(name, help=about, rich_help_panel="Stages", context_settings=settings)(run)
        return typer.main.get_command(app)


def _run(spec: dict[str, Any], values: dict[str, Any]) -> None:
    """Validate the flags with the stage's model, run it, print the summary."""
    from dataprep.executors.spec import ExecutorSpec
    from dataprep.progress import Reporter
    from dataprep.runner import run_stage
    from dataprep.stages import get_stage

    options = RunOptions.pop(values)
    source, out = values.pop("source"), values.pop("out")
    own_key = any(f["name"] == "key_file" for f in spec["fields"])  # encrypt, decrypt
    key_file = None if own_key else values.pop("key_file", None)
    if spec["reads_dataset"]:
        from dataprep.audit_use import set_log

        set_log(values.pop("audit_log"))
    params = {}
    for field in spec["fields"]:  # only what the user gave: the model fills in its defaults
        value = values[field["name"]]
        if value is None or value == field["default"]:
            continue
        if field["kind"] == "list":
            value = [v.strip() for v in value.split(",") if v.strip()] or None
        elif field["kind"] == "choice":  # Literal[1, 2]: the model wants the int back
            value = {str(c): c for c in field["choices"]}[value]
        params[field["name"]] = value
    config = get_stage(spec["name"]).Config.parse(params)
    options.serve_metrics()
    where = {"input_path": source} if spec["reads_dataset"] else {"inputs": source}
    with ExecutorSpec().overridden(**options.executor).build() as pool:
        result = run_stage(
            spec["name"],
            config,
            out,
            **where,
            executor=pool,
            reporter=Reporter(quiet=options.quiet or options.as_json),
            force=options.force,
            key_file=key_file,
        )
    output.print_runs([result], options.quiet, options.as_json)
