"""datatrove's side of bench_quality.py: its own pipeline, as FineWeb runs it.

`ParquetReader` on the Parquet shards that our `score` reads -> `GopherRepetitionFilter` ->
`GopherQualityFilter` -> `ParquetWriter`, its steps chained and drained in this process as
`LocalPipelineExecutor(tasks=1, workers=1)` does (`_run_for_rank` less its log and stats
files). Two CPU figures from the same run, so neither side is charged I/O the other skips:

- end to end: from the reader's first file to the writer's close (Parquet in and out);
- filter calls only: the CPU inside the two filters' `filter()` (what the benchmark timed
  before 2026-11-30, over texts already in Python memory).

The word tokenizer is loaded before the clock starts (spaCy's model load is a fixed cost).
Runs under the datatrove interpreter (`--datatrove-python`): imports nothing of dataprep.

    python benchmarks/bench_quality_datatrove.py SHARDS OUT {whitespace,spacy} RESULT.json
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds


def parquet_files(folder: str | Path) -> list[str]:
    """The Parquet files of a dataset directory (its manifest and report are not data)."""
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


def docs_and_bytes(folder: str | Path, ids: set[str] | None = None) -> tuple[int, int]:
    """Documents and UTF-8 bytes of text in a folder's Parquet files (only `ids`, if given):
    how much text each side was handed, counted the same way for both."""
    table = ds.dataset(parquet_files(folder)).to_table(columns=["id", "text"])
    if ids is not None:
        table = table.filter(pc.is_in(table.column("id"), value_set=_ids_array(ids)))
    lengths = pc.binary_length(table.column("text").cast("binary"))
    return table.num_rows, int(pc.sum(lengths).as_py() or 0)


def _ids_array(ids: set[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(ids), pa.string())


def kept_ids(folder: str | Path) -> set[str]:
    """The ids a run wrote as kept."""
    files = parquet_files(folder)
    if not files:
        return set()
    return set(ds.dataset(files).to_table(columns=["id"]).column("id").to_pylist())


def _timed(cls: type) -> type:
    """`cls` whose `filter()` adds its CPU seconds to `cpu_s` and records each document's
    verdict (None = kept, else datatrove's reason): the agreement check's input."""

    class Timed(cls):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.reset()

        def reset(self) -> None:
            self.cpu_s, self.verdicts = 0.0, {}

        def filter(self, doc: Any) -> Any:
            t0 = time.process_time()
            verdict = super().filter(doc)
            self.cpu_s += time.process_time() - t0
            keep = verdict is True
            self.verdicts[doc.id] = None if keep else _reason(verdict)
            return verdict

    Timed.__name__ = Timed.__qualname__ = cls.__name__
    return Timed


def _reason(verdict: Any) -> str:
    return verdict[1] if isinstance(verdict, tuple) and len(verdict) > 1 else "dropped"


def word_tokenizer(name: str) -> Any:
    """datatrove's default English tokenizer (spaCy) for "spacy", else str.split()."""
    if name == "spacy":
        return "en"
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    return Whitespace()


def run_pipeline(shards: str | Path, out: str | Path, tokenizer: str) -> dict:
    """Read `shards`, filter, write the kept documents to `out`; CPU seconds and verdicts."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    language = word_tokenizer(tokenizer)
    repetition = _timed(GopherRepetitionFilter)(language=language)
    quality = _timed(GopherQualityFilter)(language=language)
    for step in (repetition, quality):  # load the tokenizer (spaCy) outside the clock
        step.filter(Document(text="warm up the tokenizer", id="warm-up"))
        step.reset()
    pipeline = [
        ParquetReader(str(shards), glob_pattern="*.parquet"),
        repetition,
        quality,
        ParquetWriter(str(out)),
    ]
    t0 = time.process_time()
    data = None
    for step in pipeline:  # as PipelineExecutor._run_for_rank(rank=0) with world_size 1
        data = step(data, 0, 1)
    deque(data, maxlen=0)  # the writer closes its files when the stream ends
    cpu = time.process_time() - t0
    verdicts = {**repetition.verdicts, **quality.verdicts}
    docs, size = docs_and_bytes(shards, set(verdicts))
    return {
        "cpu_s": cpu,
        "filter_cpu_s": repetition.cpu_s + quality.cpu_s,
        "docs": docs,
        "bytes": size,
        "reasons": verdicts,
        "kept": sorted(kept_ids(out)),
    }


def main() -> None:
    shards, out, tokenizer, result = sys.argv[1:5]
    Path(result).write_text(json.dumps(run_pipeline(shards, out, tokenizer)))


if __name__ == "__main__":
    main()
