"""A dataset's sections of the page, from collected facts: what it holds and how it got there.
Each says where its numbers come from (the whole dataset, a sample, a stage's report) so a
reader never mistakes a sample for a census."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import figures
from .chain import Step
from .collect import DatasetFacts
from .page import Block, Grid, Note, Section, Table


def dataset_sections(facts: DatasetFacts, steps: list[Step], seed: int) -> list[Section]:
    m = facts.manifest
    top = Section(f"dataset {facts.path}")
    enc = m.encryption
    summary = [
        ("rows", m.rows),
        ("bytes on disk", m.bytes),
        ("shards", len(m.shards)),
        ("row groups", facts.total_row_groups),
        ("columns", len(m.schema)),
        ("written by", f"{steps[-1].entry.stage} ({steps[-1].label})" if steps else "—"),
        ("encrypted", f"yes (key set {enc.get('key_set')})" if enc else "no"),
    ]
    top.add(Table(["", ""], summary))
    top.add(*(Note(n, "warn") for n in facts.notes))
    if facts.sampled_rows:
        if facts.sampled:
            top.add(
                Note(
                    f"Values below come from a seeded sample (seed {seed}): {facts.sampled_rows:,} "
                    f"of {m.rows:,} rows, from {facts.sampled_row_groups} of "
                    f"{facts.total_row_groups} row groups; counts and histograms are of the "
                    "sample, not the whole dataset.",
                    "warn",
                )
            )
        else:
            top.add(Note(f"Every row was read ({facts.sampled_rows:,} rows)."))
    top.add(_schema_table(facts))
    if facts.partition_rows:  # exact: the manifest records each shard's partition
        top.add(*_balance(facts.partition_rows))
    sizes = {n: (s.compressed, s.uncompressed) for n, s in facts.column_sizes.items()}
    if sizes:
        top.add(figures.compression(sizes))
    out = [top, _values(facts), _lineage(steps)]
    out += [s for step in steps for s in _from_report(step, facts)]
    return [s for s in out if s.blocks]


def _schema_table(facts: DatasetFacts) -> Table:
    rows = []
    for f in facts.manifest.schema:
        s = facts.column_sizes.get(f.name)
        ratio = round(s.ratio, 3) if s and s.ratio else None
        rows.append([f.name, str(f.type), s and s.compressed, s and s.uncompressed, ratio])
    head = ["column", "type", "compressed bytes", "uncompressed bytes", "ratio"]
    if not facts.column_sizes:
        return Table(head[:2], [r[:2] for r in rows])
    return Table(head, rows)


def _values(facts: DatasetFacts) -> Section:
    sec = Section("values", level=3)
    if facts.text_lengths is not None and len(facts.text_lengths):
        lengths = facts.text_lengths
        sec.add(
            figures.histogram(lengths, f"length of {facts.text_column} (characters)", "characters"),
            Table(
                ["", "min", "median", "mean", "p99", "max"],
                [
                    [
                        "characters",
                        int(lengths.min()),
                        float(np.median(lengths)),
                        float(lengths.mean()),
                        float(np.percentile(lengths, 99)),
                        int(lengths.max()),
                    ]
                ],
            ),
        )
    flags = []
    for name, counts in facts.categories.items():
        if set(counts) <= {"true", "false", "(null)"}:  # a boolean column: small, beside others
            flags.append(figures.category_counts(counts, name, name, height=280))
        elif counts:
            sec.add(figures.category_counts(counts, f"rows per {name}", name))
    empty, small = [], []
    for name, values in facts.numeric.items():
        if len(values) == 0:
            empty.append(name)
            continue
        integer = bool(np.all(values == np.round(values)))
        title = name if values.min() < values.max() else f"{name} (every value {values[0]:g})"
        small.append(figures.histogram(values, title, name, integer=integer, height=280))
    if small or flags:
        sec.add(Grid(small + flags))
    if empty:
        sec.add(Note(f"no finite values in the sample for: {', '.join(empty)}"))
    return sec


def _lineage(steps: list[Step]) -> Section:
    sec = Section("lineage (raw input to this dataset)", level=3)
    if not steps:
        return sec.add(Note("The manifest records no lineage."))
    sec.add(_raw_input(steps[0]))
    rows = []
    for n, step in enumerate(steps):
        quarantined = step.report.get("quarantined") if step.report else None
        rows.append(
            [
                n,
                step.entry.stage,
                step.label,
                step.entry.finished,
                step.rows_in,
                step.rows_out,
                quarantined,
                step.path or "not found",
            ]
        )
    head = ["#", "stage", "id", "finished", "rows in", "rows out", "quarantined", "output"]
    sec.add(Table(head, rows))
    missing = [s.label for s in steps if s.path is None]
    if missing:
        sec.add(
            Note(
                f"Outputs not found for {', '.join(missing)} (looked beside the dataset and in "
                "the other paths given, by manifest digest): their rows follow from the "
                "stages next to them where known."
            )
        )
    labels = [f"{n}:{s.label}" for n, s in enumerate(steps)]
    sec.add(figures.rows_per_stage(labels, [s.rows_in for s in steps], [s.rows_out for s in steps]))
    return sec


def _raw_input(first: Step) -> Note | None:
    """What the first stage read, as its lineage entry (or else its report) recorded it."""
    paths = first.entry.get("raw_inputs") or []
    files = first.entry.get("input_files") or first.report.get("inputs")
    size = first.entry.get("input_bytes") or first.report.get("input_bytes")
    if not paths and not files:
        return None
    count = files or len(paths)
    text = f"raw input: {count:,} file{'s' if count != 1 else ''}" if files else "raw input"
    text += f", {size:,} bytes" if isinstance(size, int) else ""
    if paths:
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        text += f", read from {', '.join(str(p) for p in paths[:5])}{more}"
        cwd = first.entry.get("cwd")
        text += f" (relative to {cwd})" if isinstance(cwd, str) else ""
    return Note(text)


def _from_report(step: Step, facts: DatasetFacts) -> list[Section]:
    """Figures a stage's .report.json makes possible, titled with the stage."""
    rep, where = step.report, f"{step.entry.stage} {step.label}"
    sec = Section(f"{where}: from its report ({step.path})", level=3)
    stage = step.entry.stage
    if stage == "dedup" and rep:
        _dedup(sec, rep)
    elif stage == "resample" and rep.get("classes_in"):
        sec.add(
            figures.before_after(
                rep["classes_in"],
                rep.get("classes_out", {}),
                f"{rep.get('label', 'label')} before / after resample",
            )
        )
        for column, (before, after) in step.before_after.items():
            sec.add(*_shift(column, before, after))
    elif stage == "partition" and not (step.path == facts.path and facts.partition_rows):
        rows = dict(enumerate(rep.get("partition_rows", [])))
        if rows:
            sec.add(*_balance(rows))
    elif stage == "filter" and rep.get("dropped_by_rule"):
        dropped = {k: v for k, v in rep["dropped_by_rule"].items() if v}
        if dropped:
            sec.add(figures.horizontal_counts(dropped, "rows dropped per rule", "rows"))
    if step.quarantine:
        sec.add(figures.horizontal_counts(step.quarantine, "quarantined rows by reason", "rows"))
    if step.quarantine_note:
        sec.add(Note(step.quarantine_note, "warn"))
    return [sec] if sec.blocks else []


def _shift(column: str, before: DatasetFacts, after: DatasetFacts) -> list[Block]:
    """Rows per value before and after, as counts when both sides were read whole, else as
    shares of the sample (samples of two sizes are not comparable as counts)."""
    a, b = before.categories.get(column, {}), after.categories.get(column, {})
    if not before.sampled and not after.sampled:
        return [figures.before_after(a, b, f"{column} before / after resample", column)]
    share = (
        {k: v / before.sampled_rows for k, v in a.items()},
        {k: v / after.sampled_rows for k, v in b.items()},
    )
    note = Note(
        f"{column}: shares of seeded samples ({before.sampled_rows:,} rows before, "
        f"{after.sampled_rows:,} after), not counts",
        "warn",
    )
    title = f"{column} before / after resample (share)"
    return [figures.before_after(*share, title, column, "share of rows"), note]


def _balance(rows: dict[int, int]) -> tuple[Block, Block]:
    mean = sum(rows.values()) / len(rows)
    high, low = max(rows.values()) / mean, min(rows.values()) / mean
    return figures.partition_balance(rows), Note(f"max/mean {high:.4f}, min/mean {low:.4f}")


def _dedup(sec: Section, rep: dict[str, Any]) -> None:
    removed = rep.get("duplicates_removed", 0) or rep.get("duplicates_marked", 0)
    sec.add(
        Table(
            ["method", "rows in", "duplicates", "dup rate", "clusters", "keep"],
            [
                [
                    rep.get("method"),
                    rep.get("rows_in"),
                    removed,
                    rep.get("dup_rate"),
                    rep.get("clusters"),
                    rep.get("keep"),
                ]
            ],
        )
    )
    if rep.get("cluster_sizes"):
        sec.add(figures.cluster_sizes(rep["cluster_sizes"]))
    by_source = rep.get("by_source")
    if isinstance(by_source, dict) and by_source:
        rates = {
            str(k): v.get("dup_rate", 0.0) for k, v in by_source.items() if isinstance(v, dict)
        }
        sec.add(figures.category_counts(rates, "duplicate rate per source", "source", y="dup rate"))
    lsh = rep.get("lsh")
    if isinstance(lsh, dict) and lsh.get("bands") and lsh.get("rows"):
        sec.add(figures.s_curve(int(lsh["bands"]), int(lsh["rows"]), lsh.get("threshold")))
        sec.add(
            Note(
                f"{lsh.get('candidate_pairs', 0):,} candidate pairs, "
                f"{lsh.get('rejected_by_verify', 0):,} rejected by verification "
                f"(floor {lsh.get('verify_floor')})"
            )
        )
    examples = rep.get("examples") or []
    if examples:
        rows = [
            [
                e.get("kept_id", e.get("kept_row")),
                e.get("removed_id", e.get("removed_row")),
                e.get("true_jaccard"),
                e.get("estimated_jaccard"),
                e.get("removed_text", "")[:120],
            ]
            for e in examples
        ]
        head = ["kept", "removed", "true Jaccard", "estimated Jaccard", "removed text (start)"]
        sec.add(Table(head, rows))
