"""Recipe pre-flight checks: input, key files and columns, known before any data is read.

Split from `dataprep.recipe` (which re-exports these names): it walks the planned stages and
carries the schema through each stage's `output_schema`, so a bad column stops the run early.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dataprep.dataset import read_manifest
from dataprep.errors import DataprepError
from dataprep.sources import resolve
from dataprep.stage import check_columns, output_schema, recipe_wording
from dataprep.stages import get_stage

if TYPE_CHECKING:
    from dataprep.recipe import PlannedStage, Recipe


def check_inputs(recipe: Recipe) -> list[str]:
    """Everything that can be known before any data is read: the input exists, every key file
    a stage needs is given and loads, and every column a stage names is in the schema it will
    see (the input's, carried through each stage's `output_schema`). Returns notes on what
    could not be checked."""
    recipe.model.output.write_options()  # a missing key file fails now, not mid-pipeline
    first = recipe.stages[0]
    schema: pa.Schema | None = None
    encrypted = False
    history: list[tuple[str, dict]] = []  # (op, config) of the stages before, oldest first
    try:
        if first.inputs:
            resolve(first.inputs, getattr(first.config, "format", "auto"))
        elif first.input_path is not None:
            manifest = read_manifest(first.input_path)
            schema, encrypted = manifest.schema, manifest.encryption is not None
            history = [(e.stage, e.config) for e in manifest.lineage]
    except DataprepError as exc:
        raise DataprepError(f"{first.where}: input: {exc}") from None
    out_encrypted = recipe.model.output.encryption is not None
    seen: dict[str, tuple[pa.Schema | None, bool, list[tuple[str, dict]]]] = {}
    notes: list[str] = []
    for n, planned in enumerate(recipe.stages):
        if planned.spec.input is not None:
            schema, encrypted, history = seen[planned.spec.input]
        elif n > 0:
            schema, encrypted, history = seen[recipe.stages[n - 1].spec.id]
        _check_key_file(planned, encrypted)
        stage = get_stage(planned.spec.op)
        try:
            if schema is not None:
                check_columns(stage, planned.config, schema, planned.param)
                if hasattr(stage, "check_plan"):  # a stage's own check of what it will read
                    stage.check_plan(planned.config, schema, history)
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
        done = (planned.spec.op, planned.config.model_dump(mode="json"))
        seen[planned.spec.id] = (schema, encrypted, [*history, done])
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
