"""A training run's section of the page: its setup (from the newest checkpoint), its curves
(from metrics.jsonl), what it did not record, and the alerts it fired."""

from __future__ import annotations

from . import figures
from .page import Block, Grid, Note, Section, Table
from .run import SERIES, RunFacts

CONFIG_SHOWN = (
    *("model", "task", "steps", "batch_size", "grad_accum", "seq_len", "lr"),
    *("world_size", "device", "seed", "data", "eval_dir"),
)


def _run_setup(facts: RunFacts) -> list[Block]:
    """The run's config and the datasets it trained on, from its newest checkpoint."""
    if facts.checkpoint is None:
        return [Note("no checkpoint yet: config and training data not recorded")]
    blocks: list[Block] = [Note(f"from checkpoint {facts.checkpoint}:")]
    shown = [(k, facts.config[k]) for k in CONFIG_SHOWN if facts.config.get(k) is not None]
    if shown:
        blocks.append(
            Table(["", ""], [(k, v if isinstance(v, int | float) else str(v)) for k, v in shown])
        )
    rows = []
    for role, record in facts.data.items():
        stages = [
            str(e.get("id") or e.get("stage"))
            for e in record.get("lineage", [])
            if isinstance(e, dict)
        ]
        rows.append(
            [role, record.get("path"), record.get("rows"), record.get("digest"), " > ".join(stages)]
        )
    if rows:
        blocks.append(Table(["data", "path", "rows", "manifest digest", "lineage"], rows))
    return blocks


def run_sections(facts: RunFacts) -> list[Section]:
    sec = Section(f"training run {facts.path}")
    steps = sorted({s for xs, _ in facts.series.values() for s in xs})
    sec.add(
        Table(
            ["", ""],
            [
                ("records in metrics.jsonl", facts.records),
                ("steps", f"{steps[0]}..{steps[-1]}" if steps else "—"),
                ("unreadable lines", facts.bad_lines),
                ("files", ", ".join(facts.files)),
            ],
        )
    )
    sec.add(*_run_setup(facts))
    names = dict(SERIES)
    loss = {names[k]: facts.series[k] for k in ("loss", "eval_loss") if k in facts.series}
    if loss:
        sec.add(figures.lines(loss, "loss", "loss"))
    wait = {
        names[k]: facts.series[k]
        for k in ("data_wait_frac", "data_stall_frac")
        if k in facts.series
    }
    if wait:
        sec.add(figures.lines(wait, "data wait / stall", "fraction of step time"))
    for key in ("lr", "tokens_per_s", "step_time_s", "gpu_mem_gb", "mfu"):
        if key in facts.series:
            sec.add(figures.lines({names[key]: facts.series[key]}, names[key], names[key]))
    extra = [figures.lines({key: facts.series[key]}, key, key, height=280) for key in facts.extra()]
    if extra:
        sec.add(Note("also recorded:"), Grid(extra))
    if facts.alerts:
        head = ["step", "rule", "value", "threshold", "message", "time"]
        rows = [
            [a.get(k) for k in ("step", "rule", "value", "threshold", "message", "time")]
            for a in facts.alerts
        ]
        sec.add(Note(f"alerts fired: {facts.alerts_total:,}"), Table(head, rows))
        if facts.alerts_total > len(facts.alerts):
            sec.add(Note(f"first {len(facts.alerts)} alerts shown", "warn"))
    missing = facts.missing()
    if missing:
        sec.add(Note("not recorded: " + ", ".join(names[k] for k in missing)))
    if facts.thinned:
        thinned = ", ".join(f"{k} ({n:,} points)" for k, n in facts.thinned.items())
        sec.add(Note(f"long series drawn with every n-th point: {thinned}", "warn"))
    return [sec]
