"""Stage commands, made from the stage registry: every field of a stage's config model becomes
an option (`text_column` -> `--text-column`) with the model's type, default, bounds, choices
and description, so a recipe key and its flag cannot drift apart. The run options are made
the same way from `ExecutorSpec`, the model of a recipe's `executor:`.

A model becomes a spec (plain JSON data, `describe`), a spec becomes a command (`command`);
the catalog (`catalog.py`) keeps the built-in specs, so `--help` loads neither pyarrow nor a
stage module. Lists are comma-separated (`--sort-by a,b`), sizes are text (`--shard-bytes
128MB`), bools are `--x/--no-x`, Literals are choices.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from dataprep.cli import output, summaries

KEY_FILE_HELP = "Key file, if the input is encrypted (output stays so)."
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
_KW = inspect.Parameter.KEYWORD_ONLY


def describe(stage: Any) -> dict[str, Any]:
    """The JSON-able spec of a stage's command, read from its class and config model."""
    doc = inspect.getdoc(stage) if stage.__doc__ else ""
    return {
        "name": stage.name,
        "help": "\n\n".join(p for p in (getattr(stage, "help", ""), doc) if p) or stage.name,
        "reads_dataset": bool(getattr(stage, "reads_dataset", True)),
        "fields": fields(stage.Config),
    }


def fields(model: Any) -> list[dict[str, Any]]:
    """One entry per field of a pydantic model: kind, choices, default as typed, help."""
    from pydantic import ByteSize

    described = []
    for name, info in model.model_fields.items():
        annotation, choices = info.annotation, None
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else annotation
        if typing.get_origin(annotation) is Literal:
            kind, choices = "choice", [str(a) for a in typing.get_args(annotation)]
        elif typing.get_origin(annotation) in (list, tuple, set):
            kind = "list"
        elif inspect.isclass(annotation) and issubclass(annotation, ByteSize):
            kind = "size"
        else:
            kind = {int: "int", float: "float", bool: "bool"}.get(annotation, "text")
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        bounds = [
            f"{sign} {getattr(meta, attr)}"
            for meta in info.metadata
            for attr, sign in _BOUNDS
            if getattr(meta, attr, None) is not None
        ]
        about = (info.description or "").strip()
        about = about[:1].upper() + about[1:] + (f" ({', '.join(bounds)})" if bounds else "")
        shown = _shown(default, kind)
        entry = {"name": name, "kind": kind, "choices": choices, "default": shown, "help": about}
        described.append(entry | {"required": info.is_required()})
    return described


def _shown(value: Any, kind: str) -> Any:
    """A default as the command line writes it (it parses back to the same value)."""
    if value is None or kind in ("bool", "int", "float"):
        return value
    if kind == "list":
        return ",".join(map(str, value))
    if kind == "size":
        for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("GB", 10**9), ("MB", 10**6)):
            if value >= scale and value % scale == 0:
                return f"{value // scale}{unit}"
    return str(value)


def option(field: dict[str, Any], names: tuple[str, ...] = (), given_only: bool = False) -> Any:
    """The parameter for one field; `given_only`: its default is None (not given), shown in
    the help instead, so a recipe's value is kept unless the flag is given."""
    flag = "--" + field["name"].replace("_", "-")
    names = names or (flag, *(("-k",) if field["name"] == "key_file" else ()))
    kind, default, about = field["kind"], field["default"], escape(field["help"])
    if kind == "bool":
        names, value = (f"{names[0]}/--no-{names[0][2:]}", *names[1:]), bool
    elif kind == "choice":
        value = Literal[tuple(field["choices"])]  # type: ignore[misc]
    else:
        value = {"int": int, "float": float}.get(kind, str)
    if given_only and default is not None:
        about, default = f"{about} (default {default})", None
    metavar = {"list": "A,B,...", "size": "SIZE"}.get(kind)
    value = value if field["required"] else value | None
    typed = Annotated[value, typer.Option(*names, help=about, metavar=metavar)]
    if field["required"]:
        return inspect.Parameter(field["name"], _KW, annotation=typed)
    return inspect.Parameter(field["name"], _KW, annotation=typed, default=default)


def run_options(force: bool = True) -> list[inspect.Parameter]:
    """--executor, --workers ... (from ExecutorSpec), --quiet, --json and --force."""
    from dataprep.executors.spec import ExecutorSpec

    params = [
        option(f, output.EXECUTOR_FLAGS.get(f["name"], ()), given_only=True)
        for f in fields(ExecutorSpec)
    ]
    shared = (*output.RUN_FLAGS, *((output.FORCE,) if force else ()))
    return params + [inspect.Parameter(n, _KW, default=d, annotation=t) for n, t, d in shared]


def with_run_options(command: Any) -> Any:
    """`command` (a non-stage command such as `run`) with its `**values` as the run options."""
    own = [p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD]
    command.__signature__ = inspect.Signature(own + run_options(force=False))
    return command


def command(spec: dict[str, Any]) -> Any:
    """The Typer (click) command for a spec; running it validates with the real model."""
    p = inspect.Parameter
    if spec["reads_dataset"]:
        source = Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")]
    else:
        help = "Files, directories or globs."
        source = Annotated[list[str], typer.Argument(metavar="INPUTS", help=help)]
    out = Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")]
    params = [
        p("source", p.POSITIONAL_OR_KEYWORD, annotation=source),
        p("out", _KW, annotation=out),
    ]
    shared = run_options()
    taken = {"source", "out"} | {s.name for s in shared}
    for field in spec["fields"]:
        if field["name"] in taken:
            raise ValueError(f"stage {spec['name']}: param {field['name']!r} is a run option")
        params.append(option(field))
    if spec["reads_dataset"] and "key_file" not in {f["name"] for f in spec["fields"]}:
        key = Annotated[str | None, typer.Option("--key-file", "-k", help=KEY_FILE_HELP)]
        params.append(p("key_file", _KW, default=None, annotation=key))

    def run(**values: Any) -> None:
        _run(spec, values)

    run.__signature__ = inspect.Signature(params + shared)  # type: ignore[attr-defined]
    app = typer.Typer(add_completion=False, rich_markup_mode="rich")
    app.command(spec["name"], help=spec["help"], rich_help_panel="Stages")(run)
    return typer.main.get_command(app)


def _run(spec: dict[str, Any], values: dict[str, Any]) -> None:
    """Validate the flags with the stage's model, run it, print the summary."""
    from dataprep.executors.spec import ExecutorSpec
    from dataprep.progress import Reporter
    from dataprep.runner import run_stage
    from dataprep.stages import get_stage

    options = output.RunOptions.pop(values)
    source, out = values.pop("source"), values.pop("out")
    own_key = any(f["name"] == "key_file" for f in spec["fields"])  # encrypt, decrypt
    key_file = None if own_key else values.pop("key_file", None)
    params = {}
    for field in spec["fields"]:
        value = values[field["name"]]
        if field["kind"] == "list" and value is not None:
            value = [v.strip() for v in value.split(",") if v.strip()] or None
        if value is not None:
            params[field["name"]] = value
    config = get_stage(spec["name"]).Config.parse(params)
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
    summary = summaries.SUMMARIES.get(spec["name"])
    if summary is not None and options.chatty and result.report:
        summary(result.report)
