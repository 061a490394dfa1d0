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

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dataprep.dataset import WriteOptions, read_manifest
from dataprep.errors import DataprepError
from dataprep.executors import DEFAULT_MAX_RETRIES, make_executor
from dataprep.overlap import check_output
from dataprep.progress import Reporter
from dataprep.runner import StageRun, run_stage
from dataprep.sources import resolve
from dataprep.stage import (
    StageConfig,
    check_columns,
    describe_validation,
    output_schema,
    recipe_wording,
)
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

    kind: Literal["local", "ray"] = Field("local", description="local processes or a Ray cluster")
    workers: int | None = Field(None, gt=0, description="tasks at once (default: cores)")
    address: str | None = Field(None, description="Ray: auto, HOST:6379 (default: a local Ray)")
    cpus_per_task: float = Field(1.0, gt=0, description="Ray: CPUs reserved per task")
    max_retries: int = Field(
        DEFAULT_MAX_RETRIES, ge=0, description="reruns of a task that raised or whose worker died"
    )

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


def check_inputs(recipe: Recipe) -> list[str]:
    """Everything that can be known before any data is read: the input exists, every key file
    a stage needs is given and loads, and every column a stage names is in the schema it will
    see (the input's, carried through each stage's `output_schema`). Returns notes on what
    could not be checked."""
    recipe.model.output.write_options()  # a missing key file fails now, not mid-pipeline
    first = recipe.stages[0]
    schema: pa.Schema | None = None
    encrypted = False
    try:
        if first.inputs:
            resolve(first.inputs, getattr(first.config, "format", "auto"))
        elif first.input_path is not None:
            manifest = read_manifest(first.input_path)
            schema, encrypted = manifest.schema, manifest.encryption is not None
    except DataprepError as exc:
        raise DataprepError(f"{first.where}: input: {exc}") from None
    out_encrypted = recipe.model.output.encryption is not None
    seen: dict[str, tuple[pa.Schema | None, bool]] = {}
    notes: list[str] = []
    for n, planned in enumerate(recipe.stages):
        if planned.spec.input is not None:
            schema, encrypted = seen[planned.spec.input]
        elif n > 0:
            schema, encrypted = seen[recipe.stages[n - 1].spec.id]
        _check_key_file(planned, encrypted)
        stage = get_stage(planned.spec.op)
        try:
            if schema is not None:
                check_columns(stage, planned.config, schema, planned.param)
            if schema is not None or not getattr(stage, "reads_dataset", True):
                schema = output_schema(stage, planned.config, schema, planned.inputs)
        except DataprepError as exc:
            raise _in_stage(exc, planned) from None
        if schema is None and (n + 1 < len(recipe.stages)) and not notes:
            notes.append(
                f"columns named after {planned.where} are not checked: its output schema is "
                "known only once it runs"
            )
        if planned.spec.op == "encrypt":
            encrypted = True
        elif planned.spec.op == "decrypt":
            encrypted = False
        else:
            encrypted = encrypted or out_encrypted
        seen[planned.spec.id] = (schema, encrypted)
    return notes


def _check_key_file(planned: PlannedStage, encrypted_input: bool) -> None:
    """A stage that reads encrypted data needs a key file, and a named key file must load."""
    if planned.key_file is None:
        if encrypted_input:
            raise DataprepError(
                f"{planned.where} reads encrypted data but has no key file: set key_file: at "
                "the top of the recipe or on this stage, or pass --key-file"
            )
        return
    from dataprep.crypto import load_key_file

    try:
        load_key_file(planned.key_file)
    except DataprepError as exc:
        raise DataprepError(f"{planned.where}: {exc}") from None


def _in_stage(exc: DataprepError, planned: PlannedStage) -> DataprepError:
    """A stage's error, worded for the recipe: it names the stage and the recipe key
    (`stages[3].params.key`) where stage code named the CLI flag (`--key`)."""
    stage = get_stage(planned.spec.op)
    message = recipe_wording(str(exc), stage.Config, f"stages[{planned.index}]")
    if not message.startswith(f"{planned.where}"):
        message = f"{planned.where}: {message}"
    return type(exc)(message)


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
    check_inputs(recipe)  # bad columns or key files stop here, before any output exists
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
        return _env(name[4:])
    if name not in variables:
        raise DataprepError(f"recipe uses ${{{name}}} but vars: has no {name!r}")
    return variables[name]


def _env(name: str, where: str = "recipe") -> str:
    if name not in os.environ:
        raise DataprepError(f"{where} uses ${{env:{name}}} but {name} is not set")
    return os.environ[name]


def expand_vars(raw: Any, overrides: Sequence[str] = ()) -> dict[str, str]:
    """`vars:` with `--set vars.NAME=VALUE` applied, each `${...}` in them expanded (vars may
    use env vars and each other; a cycle is an error naming it), before anything else."""
    if raw is not None and not isinstance(raw, dict):
        raise DataprepError("recipe vars: must be a mapping of names to values")
    values = {"root": "work", **{str(k): _scalar(v, f"vars.{k}") for k, v in (raw or {}).items()}}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key == "vars.":
            raise DataprepError(f"--set {item!r}: write it as vars.NAME=VALUE")
        values[key[len("vars.") :]] = _scalar(safe_yaml(value, f"--set {key}"), key)
    done: dict[str, str] = {}

    def expand(name: str, chain: list[str]) -> str:
        if name in done:
            return done[name]
        if name in chain:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise DataprepError(f"recipe vars: {cycle} is a cycle; a variable cannot use itself")

        def ref(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("env:"):
                return _env(inner[4:], f"recipe vars.{name}")
            if inner not in values:
                raise DataprepError(
                    f"recipe vars.{name} uses ${{{inner}}} but vars: has no {inner!r}"
                )
            return expand(inner, [*chain, name])

        done[name] = _VAR.sub(ref, values[name])
        return done[name]

    return {name: expand(name, []) for name in values}


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)):
        raise DataprepError(f"recipe {where} must be a single value, not a {type(value).__name__}")
    return "" if value is None else str(value)


def _apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """`--set stage.param=value`: the value is parsed as YAML (numbers, bools, lists)."""
    stages = {s.get("id"): s for s in raw.get("stages") or [] if isinstance(s, dict)}
    for item in overrides:
        key, sep, value = item.partition("=")
        stage_id, dot, param = key.rpartition(".")
        if not sep or not dot:
            raise DataprepError(f"--set {item!r}: write it as STAGE.PARAM=VALUE or vars.NAME=VALUE")
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
