"""The chain of stages from raw input to a dataset, with rows in and out per stage.

Each lineage entry records the digest of its input and, since `dataprep lineage`, where that
input was and its rows in and out; an ancestor is the dataset at that recorded place, beside
this one (a recipe writes `root/<stage id>/`) or named on the command line, whose manifest
digest and history match. Found ancestors also give their `.report.json` (dedup clusters,
resample classes...) and their quarantine; a stage whose output is gone still shows, with the
rows its entry recorded or its neighbours imply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.manifest import LineageEntry, Manifest
from dataprep.storage import StoragePath, as_path

from .collect import read_report

QUARANTINE_LINES = 1_000_000  # lines of one quarantine file counted (the rest: "not counted")


@dataclass
class Step:
    """One stage run of the chain; `path` is None when its output was not found."""

    entry: LineageEntry
    path: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    rows_in: int | None = None
    rows_out: int | None = None
    quarantine: dict[str, int] = field(default_factory=dict)  # reason -> rows
    quarantine_note: str = ""
    before_after: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # column -> facts

    @property
    def label(self) -> str:
        return self.entry.id or self.entry.stage


def chain(path: str, manifest: Manifest, candidates: tuple[str, ...] = ()) -> list[Step]:
    """Steps oldest first; the last one wrote `path`."""
    lineage = list(manifest.lineage)
    steps = [Step(e) for e in lineage]
    if not steps:
        return steps
    steps[-1].path = path
    recorded = tuple(e.get("input") for e in lineage if isinstance(e.get("input"), str))
    found = _by_digest(path, recorded + candidates, len(lineage))
    for k in range(len(steps) - 1):  # output of step k = input of step k+1
        digest = lineage[k + 1].input_digest
        for where, other in found.get(digest or "", []):
            if _same_history(other, lineage[: k + 1]):  # pass-through stages share a digest
                steps[k].path = where
                steps[k].rows_out = other.rows
                break
    for step in steps:
        for key in ("rows_in", "rows_out"):  # what the entry itself recorded, if it did
            value = step.entry.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(step, key, value)
        if step.path is None:
            continue
        root = as_path(step.path)
        step.report = read_report(root)
        if step.path == path:
            step.rows_out = manifest.rows
        rows_in = step.report.get("rows_in")
        if isinstance(rows_in, int):
            step.rows_in = rows_in
        step.quarantine, step.quarantine_note = quarantine_reasons(root)
    for k in range(1, len(steps)):  # a missing neighbour's rows follow from the known one
        if steps[k].rows_in is None and steps[k - 1].rows_out is not None:
            steps[k].rows_in = steps[k - 1].rows_out
        if steps[k - 1].rows_out is None and steps[k].rows_in is not None:
            steps[k - 1].rows_out = steps[k].rows_in
    return steps


def _by_digest(
    path: str, candidates: tuple[str, ...], depth: int
) -> dict[str, list[tuple[str, Manifest]]]:
    """digest -> [(directory, manifest)] for the datasets beside `path` and the `candidates`."""
    places: list[str] = list(candidates)
    root = as_path(path)
    try:
        places += [str(p) for p in root.parent.iterdir() if p != root]
    except (OSError, DataprepError):
        pass
    found: dict[str, list[tuple[str, Manifest]]] = {}
    for place in dict.fromkeys(places):
        try:
            if not dataset.is_dataset(place):
                continue
            other = dataset.read_manifest(place)
        except (OSError, DataprepError):
            continue  # a broken neighbour is not this report's business
        if len(other.lineage) < depth:
            found.setdefault(other.digest(), []).append((place, other))
    return found


def _same_history(manifest: Manifest, lineage: list[LineageEntry]) -> bool:
    """The candidate's own lineage is the chain's prefix (same stages, same configs)."""
    mine = manifest.lineage
    return len(mine) == len(lineage) and all(
        a.stage == b.stage and a.config == b.config for a, b in zip(mine, lineage, strict=True)
    )


def quarantine_reasons(root: StoragePath) -> tuple[dict[str, int], str]:
    """Quarantined rows by reason (the text before the first ': ', so a reason that quotes
    the bad value groups with its kind), and a note when the file was too long to count."""
    target = dataset.existing_file(root, dataset.QUARANTINE)
    counts: dict[str, int] = {}
    if not target.is_file():
        return counts, ""
    note = ""
    with target.open_stream() as stream:
        for n, raw in enumerate(stream):
            if n >= QUARANTINE_LINES:
                note = f"only the first {QUARANTINE_LINES:,} quarantine lines were counted"
                break
            try:
                reason = str(json.loads(raw).get("reason", "(no reason)"))
            except (ValueError, AttributeError):
                reason = "(unreadable line)"
            key = reason.split(": ", 1)[0]
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])), note
