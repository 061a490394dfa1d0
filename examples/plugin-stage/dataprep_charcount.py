"""charcount: add each document's length in characters; optionally drop the short ones.

The example plugin of the README's "How to add a stage": a config model (its fields are the
recipe keys and the command's flags), a Stage subclass that plans one task per shard, and a
module-level task function (workers in a process pool or on Ray import it by name). It is here
to be copied: the built-in way to the same count is `score`'s `char_count` signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.progress import tick
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    map_shards,
)


class CharCountConfig(StageConfig):
    text_column: str = Field("text", description="the column whose characters are counted")
    column: str = Field("chars", description="the int64 column written with each count")
    min_chars: int = Field(0, ge=0, description="drop documents with fewer characters than this")


def counted_schema(schema: pa.Schema, column: str) -> pa.Schema:
    """The input's columns (an old `column` dropped) and the count last."""
    kept = [f for f in schema if f.name != column]
    return pa.schema([*kept, pa.field(column, pa.int64())])


class CharCountStage(Stage[CharCountConfig]):
    name = "charcount"
    Config = CharCountConfig
    help = "Add each document's length in characters; optionally drop short documents."

    def column_params(self, config: CharCountConfig) -> dict[str, list[str]]:
        # checked against the input schema before anything runs (and by `dataprep validate`)
        return {"text_column": [config.text_column]}

    def output_schema(
        self, config: CharCountConfig, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        # lets `dataprep validate` check the columns later stages name (e.g. filter --where)
        return None if schema is None else counted_schema(schema, config.column)

    def run(self, ctx: StageContext[CharCountConfig]) -> StageResult:
        source = ctx.require_input()
        kind = source.schema.field(ctx.config.text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataprepError(f"--text-column {ctx.config.text_column!r} holds {kind}, not text")
        result = map_shards(ctx, count_task, phase="count")  # one task per input shard
        report = result.report  # the tasks' counts summed, plus rows_in and rows_out
        report["dropped_short"] = report["rows_in"] - report["rows_out"]
        return StageResult(result.shards, counted_schema(source.schema, ctx.config.column), report)


def count_task(task: Task[CharCountConfig, None]) -> TaskResult[None]:
    """Count, filter and write one shard, row group by row group."""
    config, path = task.config, task.inputs[0]
    schema = counted_schema(task.read_options.schema(path), config.column)
    chars = 0
    out = task.out / f"part-{task.index:05d}.parquet"
    with ShardWriter(out, schema, task.write_options) as writer:  # aborts on any error
        for table in task.read_options.row_groups(path):  # decrypts if the input is encrypted
            counts = pc.fill_null(pc.utf8_length(table.column(config.text_column)), 0)
            table = table.drop_columns([c for c in table.column_names if c == config.column])
            table = table.append_column(schema.field(config.column), counts.cast(pa.int64()))
            if config.min_chars:
                table = table.filter(pc.greater_equal(counts, config.min_chars))
            writer.write(table)
            chars += int(pc.sum(table.column(config.column)).as_py() or 0)
            tick(rows=table.num_rows)
    return TaskResult([writer.entry], {"chars_out": chars}, schema)
