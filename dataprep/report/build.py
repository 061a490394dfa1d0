"""Tie the report together: classify each path, collect, lay out, write one file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.storage import as_path

from . import page
from .chain import Step, chain
from .collect import SAMPLE_ROWS, collect_dataset, count_values
from .run import collect_run, is_run
from .run_sections import run_sections
from .sections import dataset_sections

CATEGORICAL = ("source", "label")  # plotted as counts when present


@dataclass
class ReportSummary:
    """What `--json` prints: where the page went and what it holds."""

    path: str
    bytes: int
    sections: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sections": self.sections}


def build_report(
    paths: list[str],
    out: str,
    key_file: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
) -> ReportSummary:
    """Write the page for `paths` (dataset directories and/or training run directories)."""
    if not paths:
        raise DataprepError("give at least one dataset or training run directory")
    kinds = [_kind(p) for p in paths]
    sections: list[page.Section] = []
    described: list[dict[str, Any]] = []
    for path, kind in zip(paths, kinds, strict=True):
        if kind == "run":
            facts = collect_run(path)
            parts = run_sections(facts)
            info: dict[str, Any] = {"records": facts.records, "not_recorded": facts.missing()}
        else:
            manifest = dataset.read_manifest(path)
            wanted = CATEGORICAL + _configured(manifest.lineage, ("label", "source_column"))
            texts = _configured(manifest.lineage, ("text_column",)) + ("text",)
            data = collect_dataset(path, key_file, sample_rows, seed, wanted, texts)
            others = tuple(
                p for p, k in zip(paths, kinds, strict=True) if k == "dataset" and p != path
            )
            steps = chain(path, data.manifest, others)
            _resample_sources(steps, wanted, key_file, sample_rows * 10, seed)
            parts = dataset_sections(data, steps, seed)
            info = {
                "rows": data.manifest.rows,
                "sampled_rows": data.sampled_rows,
                "sampled": data.sampled,
                "stages": [s.label for s in steps],
                "notes": data.notes,
            }
        sections += parts
        figs = sum(len(s.figures()) for s in parts)
        described.append({"kind": kind, "path": path, "figures": figs, **info})
    title = "dataprep report: " + ", ".join(paths)
    stamp = f"generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by dataprep"
    text = page.render(title, sections, stamp)
    target = as_path(out)
    try:
        target.write_atomic(text)
    except OSError as exc:
        raise DataprepError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ReportSummary(str(out), len(text.encode()), described)


def _kind(path: str) -> str:
    if dataset.is_dataset(path):
        return "dataset"
    if not as_path(path).remote and is_run(path):
        return "run"
    if not as_path(path).exists():
        raise DataprepError(f"{path} does not exist")
    if as_path(path).is_file():
        raise DataprepError(
            f"{path} is a file: give a dataset directory or a training run directory"
        )
    raise DataprepError(
        f"{path} is neither a dataset directory (no {dataset.MANIFEST}) nor a training run "
        "directory (no metrics.jsonl)"
    )


def _resample_sources(
    steps: list[Step], columns: tuple[str, ...], key_file: str | None, budget: int, seed: int
) -> None:
    """Per-source counts before and after each resample whose input and output are found
    (the label's counts are in its report; other columns shift with it)."""
    for before, step in zip(steps, steps[1:], strict=False):
        if step.entry.stage != "resample" or not (before.path and step.path):
            continue
        label = step.entry.config.get("label")
        for column in dict.fromkeys(c for c in columns if c != label):
            pair = [
                count_values(p, column, key_file, budget, seed) for p in (before.path, step.path)
            ]
            if pair[0] is not None and pair[1] is not None:
                step.before_after[column] = (pair[0], pair[1])


def _configured(lineage: list[Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """Columns the stages were told to use (resample --label, --source-column, the text
    column shard read), newest first."""
    found = []
    for entry in reversed(lineage):
        for key in keys:
            value = entry.config.get(key)
            if isinstance(value, str):
                found.append(value)
    return tuple(found)
