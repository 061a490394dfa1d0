"""What a stage command prints after the summary table, for the stages that say more: the
per-stage CLI sugar on top of the generated commands (name -> printer of the run's report)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataprep.cli.output import console


def compress(r: dict[str, Any]) -> None:
    console.print(
        f"{r.get('bytes_before', 0):,} -> {r.get('bytes_after', 0):,} bytes "
        f"(x{r.get('ratio_vs_input', 0)} vs input, x{r.get('ratio', 0)} vs uncompressed), "
        f"{r.get('mb_per_s', 0)} MB/s"
    )


def encrypt(r: dict[str, Any]) -> None:
    if r.get("plaintext_columns"):
        console.print(f"[yellow]left in the clear[/]: {', '.join(r['plaintext_columns'])}")


def dedup(rep: dict[str, Any]) -> None:
    """S-curve, clusters, examples, phases."""
    say = console.print
    if rep.get("message"):
        say(f"[green]{rep['message']}[/]")
    say(
        f"removed {rep.get('duplicates_removed', 0):,} rows "
        f"(exact duplicates {rep.get('exact_duplicates', 0):,}; "
        f"clusters {rep.get('clusters', 0):,}; sizes {rep.get('cluster_sizes', {})})"
    )
    lsh = rep.get("lsh")
    if lsh:
        curve = "  ".join(f"J={j}: {p:.3f}" for j, p in lsh["s_curve"].items())
        say(
            f"LSH {lsh['bands']} bands x {lsh['rows']} rows; catch probability {curve}",
            highlight=False,
        )
    for name, info in rep.get("by_source", {}).items():
        say(
            f"  source {name}: {info['removed']:,}/{info['rows']:,} "
            f"({info['dup_rate']:.1%}) removed",
            highlight=False,
        )
    for ex in rep.get("examples", [])[:3]:
        est = ex.get("estimated_jaccard")
        kind = "id" if "kept_id" in ex else "row"
        removed, kept = (repr(ex[f"{k}_{kind}"]) for k in ("removed", "kept"))
        say(
            f"  e.g. {kind} {removed} ~ {kind} {kept}: true J "
            f"{ex['true_jaccard']:.2f}" + (f", estimated {est:.2f}" if est is not None else ""),
            highlight=False,
        )
    phases = ", ".join(
        f"{k} {v['seconds']:.2f}s/{v['peak_rss_mb']:.0f}MB"
        for k, v in rep.get("phases", {}).items()
    )
    say(f"phases: {phases}", highlight=False)


SUMMARIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "compress": compress,
    "encrypt": encrypt,
    "dedup": dedup,
}
