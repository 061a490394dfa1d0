"""The recipe reference (docs/recipe-reference.md), generated from the config models.

The models are the only truth about a param's type, default and bounds, so the document is
rendered from them (`dataprep params > docs/recipe-reference.md`) and a test fails when the
committed file falls behind.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ByteSize

_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))

_INTRO = """\
# Recipe reference

Generated from the config models by `dataprep params > docs/recipe-reference.md`; do not edit.

A recipe is YAML: `vars:` (expanded first: `${NAME}` and `${env:NAME}` may be used in them and
everywhere below; `--set vars.NAME=VALUE` overrides one), an optional `key_file:` (for every
stage that reads or writes encrypted data; a stage may set its own `key_file:` next to
`params:`, and `dataprep run --key-file` replaces them all), `input:`, `executor:`, `output:`
and `stages:`, each `{id, op, params, input, key_file}`. `--set STAGE.PARAM=VALUE` overrides
a param. Errors name the recipe key, e.g. `stages[2].params.key`.

Every param of a stage is also a flag of its command (`text_column` is `dataprep shard
--text-column`; lists are comma-separated, `--sort-by a,b`; sizes are text, `--shard-bytes
128MB`; bools are `--x/--no-x`), and `executor:` keys are the run options `--executor`,
`--workers`, `--address`, `--cpus-per-task` and `--max-retries`. `--json`, for a stage command
and for `dataprep run` alike, prints one JSON list with an object per stage run:
`[{"id", "op", "out", "status": "ran" | "cached", "report": {...}}]`.
"""


def render() -> str:
    """The whole reference as Markdown."""
    from dataprep.executors.spec import ExecutorSpec
    from dataprep.recipe import EncryptionOutputSpec, OutputSpec, StageSpec
    from dataprep.stages import BUILTIN, get_stage

    parts = [_INTRO]
    for title, model in (
        ("executor", ExecutorSpec),
        ("output", OutputSpec),
        ("output.encryption", EncryptionOutputSpec),
        ("stages[N]", StageSpec),
    ):
        parts.append(f"## `{title}`\n\n{_table(model)}")
    for name in BUILTIN:
        stage = get_stage(name)
        about = stage.help or (stage.__doc__ or "").strip().splitlines()[0]
        parts.append(f"## stage `{name}`\n\n{about}\n\n{_table(stage.Config)}")
    return "\n".join(parts)


@dataclass(frozen=True)
class Param:
    """One field of a config model, as the docs and the command line (`cli/stages.py`)
    present it: both read it here, so they cannot disagree."""

    name: str
    kind: str  # bool, int, float, text, size (ByteSize), list, choice (Literal)
    choices: tuple[Any, ...] | None  # a Literal's values
    required: bool
    default: Any  # the model's default (a factory's value); None when required
    bounds: str  # e.g. "> 0, <= 64"
    description: str
    type: str


def params(model: type[BaseModel]) -> list[Param]:
    found = []
    for name, field in model.model_fields.items():
        annotation, choices = field.annotation, None
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else annotation
        if typing.get_origin(annotation) is Literal:
            kind, choices = "choice", typing.get_args(annotation)
        elif typing.get_origin(annotation) in (list, tuple, set):
            kind = "list"
        elif isinstance(annotation, type) and issubclass(annotation, ByteSize):
            kind = "size"
        else:
            kind = {int: "int", float: "float", bool: "bool"}.get(annotation, "text")
        required = field.is_required()
        bounds = ", ".join(
            f"{sign} {getattr(meta, attr)}"
            for meta in field.metadata
            for kind_, attr, sign in _BOUNDS
            if isinstance(meta, kind_)
        )
        default = None if required else field.get_default(call_default_factory=True)
        about, text = field.description or "", _type(field.annotation)
        found.append(Param(name, kind, choices, required, default, bounds, about, text))
    return found


def _table(model: type[BaseModel]) -> str:
    rows = ["| param | type | default | bounds | description |", "|---|---|---|---|---|"]
    for p in params(model):
        default = "required" if p.required else f"`{p.default!r}`"
        cells = [f"`{p.name}`", p.type, default, p.bounds, p.description]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _type(annotation: Any) -> str:
    if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return annotation.__name__
    text = str(annotation)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # no module paths
