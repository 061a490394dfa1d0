"""YAML recipes: a whole pipeline validated before any data is read, then run stage by stage.

Every error names the stage and the key to fix. Stages are looked up in the registry, so a
plugin stage works in a recipe exactly like a built-in one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dataprep.dataset import WriteOptions
from dataprep.errors import DataprepError
from dataprep.executors.spec import ExecutorSpec
from dataprep.overlap import check_output
from dataprep.progress import Reporter
from dataprep.recipe_checks import _in_stage
from dataprep.recipe_checks import check_inputs as check_inputs
from dataprep.recipe_vars import _apply_overrides, _interpolate
from dataprep.recipe_vars import expand_vars as expand_vars
from dataprep.recipe_yaml import MAX_RECIPE_BYTES as MAX_RECIPE_BYTES
from dataprep.recipe_yaml import MAX_YAML_NODES as MAX_YAML_NODES
from dataprep.recipe_yaml import safe_yaml as safe_yaml
from dataprep.runner import StageRun, run_stage
from dataprep.stage import StageConfig, describe_validation
from dataprep.stages import get_stage
from dataprep.storage import StoragePath

_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(BaseModel):
    """Where the pipeline starts; other keys are defaults for a first `shard` stage."""

    model_config = ConfigDict(extra="allow")
    path: str | list[str]

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class EncryptionOutputSpec(_Strict):
    """`output: {encryption: {key_file: ..., columns: [...]}}`; columns default to all, the key
    file to the recipe's `key_file:`."""

    key_file: str | None = Field(None, description="default: the recipe's key_file")
    columns: list[str] | None = Field(None, description="columns to encrypt (default: all)")


class OutputSpec(_Strict):
    compression: Literal["zstd", "lz4", "snappy", "gzip", "brotli", "none"] = Field(
        "zstd", description="Parquet codec of every stage's shards"
    )
    compression_level: int | None = Field(3, description="codec level (None: the codec's own)")

    @field_validator("compression_level")
    @classmethod
    def _level_suits_codec(cls, level: int | None, info: ValidationInfo) -> int | None:
        """The CLI checks `--level` against the codec; a recipe's level gets the same check
        (codecs without levels ignore it, so the default 3 suits every codec)."""
        from dataprep.stages.compress import LEVELLED_CODECS, level_problem

        codec = info.data.get("compression", "zstd")
        problem = level_problem(codec, level) if codec in LEVELLED_CODECS else None
        if problem:
            raise ValueError(problem)
        return level

    row_group_rows: int = Field(65536, gt=0, description="rows per Parquet row group")
    use_dictionary: bool = Field(True, description="dictionary-encode columns")
    encryption: EncryptionOutputSpec | None = Field(
        None, description="encrypt every stage's output (see output.encryption)"
    )

    def write_options(self) -> WriteOptions:
        encryption = None
        if self.encryption is not None:
            from dataprep.crypto import EncryptionSpec, load_key_file

            if self.encryption.key_file is None:
                raise DataprepError(
                    "output.encryption needs a key file: set output.encryption.key_file or "
                    "key_file: at the top of the recipe, or pass --key-file"
                )
            load_key_file(self.encryption.key_file)  # fail before any stage runs
            columns = tuple(self.encryption.columns) if self.encryption.columns else None
            encryption = EncryptionSpec(self.encryption.key_file, columns)
        return WriteOptions(
            self.compression,
            self.compression_level,
            self.row_group_rows,
            self.use_dictionary,
            encryption,
        )


class StageSpec(_Strict):
    id: str = Field(description="plain name; the stage writes ${root}/ID")
    op: str = Field(description="the stage: one of the sections below, or a plugin's")
    params: dict[str, Any] = Field(default_factory=dict, description="the op's params, below")
    input: str | None = Field(None, description="an earlier stage id (default: the one before)")
    key_file: str | None = Field(
        None, description="key file for encrypted data (default: the recipe's key_file)"
    )

    @field_validator("id")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        """An id names the stage's directory under root, so it must not be a path."""
        if not _ID.fullmatch(value):
            raise PydanticCustomError(
                "stage_id",
                "{id} is not a plain name (use letters, digits, '_', '.', '-', not starting "
                "with '.'): each id names the stage's directory under root",
                {"id": repr(value)},
            )
        return value


class RecipeModel(_Strict):
    version: Literal[1] = 1
    name: str = "recipe"
    vars: dict[str, str] = Field(default_factory=dict)
    key_file: str | None = None  # for every stage that needs one and names none itself
    input: InputSpec | None = None
    executor: ExecutorSpec = ExecutorSpec()
    output: OutputSpec = OutputSpec()
    stages: list[StageSpec] = Field(min_length=1)


@dataclass
class PlannedStage:
    spec: StageSpec
    config: StageConfig
    out: StoragePath
    input_path: StoragePath | None  # a dataset directory, or None for a raw-input stage
    inputs: list[str]  # raw inputs for a stage such as shard
    index: int = 0  # its place in `stages:`, for errors that name `stages[N].params.KEY`
    key_file: str | None = None  # the key file it reads encrypted data with

    @property
    def where(self) -> str:
        return f"stage {self.spec.id!r}"

    def param(self, name: str) -> str:
        return f"stages[{self.index}].params.{name}"


@dataclass
class Recipe:
    model: RecipeModel
    stages: list[PlannedStage]


def load(path: str | Path, overrides: Sequence[str] = (), key_file: str | None = None) -> Recipe:
    """Read, interpolate, override and validate a recipe as a whole."""
    path = Path(path)
    if not path.is_file():
        raise DataprepError(f"recipe {path} does not exist")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise DataprepError(
            f"recipe {path} is larger than {MAX_RECIPE_BYTES >> 20} MiB; a recipe is a short "
            "YAML file"
        )
    raw = safe_yaml(path.read_text(), f"recipe {path}")
    if not isinstance(raw, dict):
        raise DataprepError(f"recipe {path} must be a mapping with 'stages:'")
    return build(raw, overrides, key_file)


def build(
    raw: dict[str, Any], overrides: Sequence[str] = (), key_file: str | None = None
) -> Recipe:
    """Vars first (with `--set vars.NAME=...`), expanded; then `${...}` everywhere else; then
    the other overrides; then one validation of the whole recipe. `key_file` (`run
    --key-file`) replaces every key file the recipe names."""
    var_sets = [o for o in overrides if o.startswith("vars.")]
    variables = expand_vars(raw.get("vars"), var_sets)
    raw = {k: v if k == "vars" else _interpolate(v, variables) for k, v in raw.items()}
    raw["vars"] = variables
    _apply_overrides(raw, [o for o in overrides if not o.startswith("vars.")])
    try:
        model = RecipeModel.model_validate(raw)
    except ValidationError as exc:
        raise DataprepError(describe_validation(exc, "recipe")) from None
    root = StoragePath(variables["root"])  # a local directory or a URI such as s3://b/run
    if key_file is not None and model.output.encryption is not None:
        model.output.encryption.key_file = key_file
    elif model.output.encryption is not None and model.output.encryption.key_file is None:
        model.output.encryption.key_file = model.key_file
    encrypt_out = model.output.encryption
    default_key = model.key_file or (encrypt_out.key_file if encrypt_out is not None else None)
    planned: list[PlannedStage] = []
    outputs: dict[str, StoragePath] = {}
    for n, spec in enumerate(model.stages):
        if spec.id in outputs:
            raise DataprepError(f"stage id {spec.id!r} is used twice; ids must be unique")
        where = f"stage {spec.id!r}"
        try:
            stage = get_stage(spec.op)
        except DataprepError as exc:
            raise DataprepError(f"{where}: {exc}") from None
        params = dict(spec.params)
        key = key_file or spec.key_file or default_key
        needs_key = "key_file" in stage.Config.model_fields
        if needs_key and (key_file is not None or "key_file" not in params):
            if key is None:
                raise DataprepError(
                    f"{where} ({spec.op}) needs a key file: set key_file: at the top of the "
                    "recipe or on this stage, or pass --key-file"
                )
            params["key_file"] = key
        if needs_key and key is None:
            key = str(params["key_file"])
        inputs: list[str] = []
        input_path: StoragePath | None = None
        if not stage.reads_dataset:
            if n != 0 or spec.input is not None or model.input is None:
                raise DataprepError(
                    f"{where}: op {spec.op!r} reads raw files, so it must be the first stage "
                    "and the recipe needs 'input: {path: ...}'"
                )
            inputs = model.input.paths()
            params = {**(model.input.model_extra or {}), **params}
        elif spec.input is not None:
            if spec.input not in outputs:
                raise DataprepError(f"{where}: input {spec.input!r} is not an earlier stage id")
            input_path = outputs[spec.input]
        elif n > 0:
            input_path = planned[-1].out
        elif model.input is None:
            raise DataprepError(f"{where}: the first stage needs 'input: {{path: DATASET_DIR}}'")
        else:
            if model.input.model_extra:
                extra = ", ".join(model.input.model_extra)
                raise DataprepError(
                    f"input: {extra} only apply when the first stage is 'shard'; "
                    f"move them into {where}'s params"
                )
            input_path = StoragePath(model.input.paths()[0])
        try:
            config = stage.Config.model_validate(params)
        except ValidationError as exc:
            location = f"stages[{n}].params."
            raise DataprepError(
                describe_validation(exc, f"{where} ({spec.op})", location)
            ) from None
        outputs[spec.id] = root / spec.id
        planned.append(PlannedStage(spec, config, root / spec.id, input_path, inputs, n, key))
    _check_outputs_apart(model, planned)
    return Recipe(model, planned)


def _check_outputs_apart(model: RecipeModel, planned: list[PlannedStage]) -> None:
    """No stage may write into the recipe's input or into the dataset it reads."""
    sources = model.input.paths() if model.input is not None else []
    raw = bool(planned[0].inputs)
    for stage in planned:
        where = f"stage {stage.spec.id!r}"
        if raw:
            check_output(stage.out, raw=sources, where=where)
        for source in [] if raw else sources:
            check_output(stage.out, dataset=source, where=where)
        if stage.input_path is not None:
            check_output(stage.out, dataset=stage.input_path, where=where)


def run(
    recipe: Recipe,
    *,
    reporter: Reporter | None = None,
    workers: int | None = None,
    force_from: str | None = None,
    on_stage: Any = None,
    executor_options: dict[str, Any] | None = None,
) -> list[StageRun]:
    """Run every stage in order; finished stages with unchanged input+config are skipped.

    `executor_options` (kind, workers, address, cpus_per_task, max_retries; None: not given)
    override the recipe's `executor:`, as the command line's run options do.
    """
    ids = [p.spec.id for p in recipe.stages]
    if force_from is not None and force_from not in ids:
        raise DataprepError(f"--from {force_from!r} is not a stage id (ids: {', '.join(ids)})")
    check_inputs(recipe)  # bad columns or key files stop here, before any output exists
    given = {**(executor_options or {}), **({"workers": workers} if workers is not None else {})}
    spec = recipe.model.executor.overridden(**given)
    executor = spec.build()
    write_options = recipe.model.output.write_options()
    force = False
    runs = []
    try:
        for planned in recipe.stages:
            force = force or planned.spec.id == force_from
            try:
                result = run_stage(
                    planned.spec.op,
                    planned.config,
                    planned.out,
                    input_path=planned.input_path,
                    inputs=planned.inputs,
                    executor=executor,
                    reporter=reporter,
                    write_options=write_options,
                    force=force,
                    stage_id=planned.spec.id,
                    key_file=planned.key_file,
                )
            except DataprepError as exc:
                raise _in_stage(exc, planned) from None
            runs.append(result)
            if on_stage is not None:
                on_stage(result)
    finally:
        executor.close()  # one warm worker pool served every stage
    return runs
