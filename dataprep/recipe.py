"""YAML recipes: a whole pipeline validated before any data is read, then run stage by stage.

Every error names the stage and the key to fix. Stages are looked up in the registry, so a
plugin stage works in a recipe exactly like a built-in one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dataprep.dataset import WriteOptions, read_manifest
from dataprep.errors import DataprepError
from dataprep.executors import DEFAULT_MAX_RETRIES, make_executor
from dataprep.overlap import check_output
from dataprep.progress import Reporter
from dataprep.runner import StageRun, run_stage
from dataprep.sources import resolve
from dataprep.stage import StageConfig, describe_validation
from dataprep.stages import get_stage
from dataprep.storage import StoragePath

_VAR = re.compile(r"\$\{([^}]+)\}")
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of YAML; anything near this is a mistake
MAX_YAML_NODES = 100_000  # nodes after alias expansion (a "billion laughs" has 10**9)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(BaseModel):
    """Where the pipeline starts; other keys are defaults for a first `shard` stage."""

    model_config = ConfigDict(extra="allow")
    path: str | list[str]

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class ExecutorSpec(_Strict):
    """`executor: {kind: ray, address: auto, cpus_per_task: 2, max_retries: 3}`."""

    kind: Literal["local", "ray"] = "local"
    workers: int | None = Field(None, gt=0)
    address: str | None = None  # Ray only; none starts a local Ray
    cpus_per_task: float = Field(1.0, gt=0)  # Ray only
    max_retries: int = Field(DEFAULT_MAX_RETRIES, ge=0)

    def overridden(self, **options: Any) -> ExecutorSpec:
        """The CLI's --executor/--address/... win over the recipe's; None means not given."""
        given = {k: v for k, v in options.items() if v is not None}
        if given.get("kind") == "local":
            given.setdefault("address", None)  # a recipe's Ray address means nothing locally
        try:
            return ExecutorSpec.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise DataprepError(describe_validation(exc, "executor")) from None


class EncryptionOutputSpec(_Strict):
    """`output: {encryption: {key_file: ..., columns: [...]}}`; columns default to all."""

    key_file: str
    columns: list[str] | None = None


class OutputSpec(_Strict):
    compression: Literal["zstd", "lz4", "snappy", "gzip", "brotli", "none"] = "zstd"
    compression_level: int | None = 3
    row_group_rows: int = Field(65536, gt=0)
    use_dictionary: bool = True
    encryption: EncryptionOutputSpec | None = None

    def write_options(self) -> WriteOptions:
        encryption = None
        if self.encryption is not None:
            from dataprep.crypto import EncryptionSpec, load_key_file

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
    id: str
    op: str
    params: dict[str, Any] = Field(default_factory=dict)
    input: str | None = None

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


@dataclass
class Recipe:
    model: RecipeModel
    stages: list[PlannedStage]


def load(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
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
    return build(raw, overrides)


def build(raw: dict[str, Any], overrides: Sequence[str] = ()) -> Recipe:
    variables = {"root": "work", **{str(k): str(v) for k, v in (raw.get("vars") or {}).items()}}
    raw = _interpolate(raw, variables)
    _apply_overrides(raw, overrides)
    try:
        model = RecipeModel.model_validate(raw)
    except ValidationError as exc:
        raise DataprepError(describe_validation(exc, "recipe")) from None
    root = StoragePath(variables["root"])  # a local directory or a URI such as s3://b/run
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
            raise DataprepError(describe_validation(exc, f"{where} ({spec.op}) params")) from None
        outputs[spec.id] = root / spec.id
        planned.append(PlannedStage(spec, config, root / spec.id, input_path, inputs))
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


def check_inputs(recipe: Recipe) -> None:
    """Fail fast on a missing input, before the first stage starts."""
    recipe.model.output.write_options()  # a missing key file fails now, not mid-pipeline
    first = recipe.stages[0]
    where = f"stage {first.spec.id!r}"
    try:
        if first.inputs:
            resolve(first.inputs, getattr(first.config, "format", "auto"))
        elif first.input_path is not None:
            read_manifest(first.input_path)
    except DataprepError as exc:
        raise DataprepError(f"{where}: input: {exc}") from None


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

    `executor_options` (kind, address, cpus_per_task, max_retries) override the recipe's.
    """
    ids = [p.spec.id for p in recipe.stages]
    if force_from is not None and force_from not in ids:
        raise DataprepError(f"--from {force_from!r} is not a stage id (ids: {', '.join(ids)})")
    check_inputs(recipe)
    spec = recipe.model.executor.overridden(workers=workers, **(executor_options or {}))
    executor = make_executor(
        spec.kind,
        workers=spec.workers,
        address=spec.address,
        cpus_per_task=spec.cpus_per_task,
        max_retries=spec.max_retries,
    )
    write_options = recipe.model.output.write_options()
    force = False
    runs = []
    try:
        for planned in recipe.stages:
            force = force or planned.spec.id == force_from
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
            )
            runs.append(result)
            if on_stage is not None:
                on_stage(result)
    finally:
        executor.close()  # one warm worker pool served every stage
    return runs


def _interpolate(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    if isinstance(value, str):
        return _VAR.sub(lambda m: _lookup(m.group(1), variables), value)
    return value


def _lookup(name: str, variables: dict[str, str]) -> str:
    if name.startswith("env:"):
        env = name[4:]
        if env not in os.environ:
            raise DataprepError(f"recipe uses ${{env:{env}}} but {env} is not set")
        return os.environ[env]
    if name not in variables:
        raise DataprepError(f"recipe uses ${{{name}}} but vars: has no {name!r}")
    return variables[name]


def _apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """`--set stage.param=value`: the value is parsed as YAML (numbers, bools, lists)."""
    stages = {s.get("id"): s for s in raw.get("stages") or [] if isinstance(s, dict)}
    for item in overrides:
        key, sep, value = item.partition("=")
        stage_id, dot, param = key.rpartition(".")
        if not sep or not dot:
            raise DataprepError(f"--set {item!r}: write it as STAGE.PARAM=VALUE")
        if stage_id not in stages:
            raise DataprepError(f"--set {item!r}: no stage with id {stage_id!r}")
        stages[stage_id].setdefault("params", {})[param] = safe_yaml(value, f"--set {key}")


def safe_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load` with bounds: the document's size and its size once aliases expand.

    Aliases are shared when parsed, but everything after (interpolation, validation) walks the
    expanded tree, so a few hundred bytes of nested aliases could take minutes and gigabytes.
    """
    if len(text) > MAX_RECIPE_BYTES:
        raise DataprepError(f"{where} is larger than {MAX_RECIPE_BYTES >> 20} MiB")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise DataprepError(
                f"{where} expands to more than {MAX_YAML_NODES:,} values through YAML aliases "
                "(&anchor / *alias); write the values out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DataprepError(f"{where} is not valid YAML: {exc}") from None
    except RecursionError:
        raise DataprepError(f"{where} is nested too deeply to be a recipe") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Nodes in the tree once every alias is replaced by a copy (memoised: linear time)."""
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = MAX_YAML_NODES + 1  # a cycle (a recursive alias) expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, seen) + _expanded_size(v, seen)
    seen[key] = total
    return total
