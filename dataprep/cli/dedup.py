"""`dataprep dedup`: exact and near-duplicate removal."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dataprep.cli import app, output
from dataprep.stages.dedup import DedupConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def dedup(
    input: Annotated[str, typer.Argument(help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    method: Annotated[str, typer.Option(help="exact, minhash or both.")] = "minhash",
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    columns: Annotated[
        str | None, typer.Option(help="Exact: comma-separated columns fingerprinted together.")
    ] = None,
    normalize: Annotated[
        str, typer.Option(help="raw, or comma-separated: nfkc,lowercase,whitespace,punctuation.")
    ] = "nfkc,lowercase,whitespace",
    ngram: Annotated[int, typer.Option(help="Words per shingle.")] = 5,
    char_ngram: Annotated[
        int | None, typer.Option(help="Characters per shingle instead of words (CJK, code).")
    ] = None,
    num_perm: Annotated[int, typer.Option(help="MinHash signature length.")] = 128,
    threshold: Annotated[float, typer.Option(help="Jaccard threshold for near-duplicates.")] = 0.8,
    recall: Annotated[
        float, typer.Option(help="Probability of catching a pair exactly at the threshold.")
    ] = 0.95,
    bands: Annotated[int | None, typer.Option(help="LSH bands (overrides --recall).")] = None,
    rows: Annotated[int | None, typer.Option(help="Rows per LSH band (with --bands).")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check each candidate pair's estimated Jaccard before union (drops LSH "
            "false positives).",
        ),
    ] = True,
    signature: Annotated[
        str, typer.Option(help="fast, or datasketch (signatures equal to datasketch.MinHash).")
    ] = "fast",
    seed: Annotated[int, typer.Option(help="Hash seed (datasketch's MinHash seed).")] = 1,
    keep: Annotated[
        str, typer.Option(help="Row kept per cluster: first, longest, max:COLUMN, min:COLUMN.")
    ] = "first",
    mark_only: Annotated[
        bool, typer.Option(help="Keep every row; add dup_cluster and dup_keep columns.")
    ] = False,
    index_out: Annotated[
        str | None, typer.Option(help="Save a band index of the kept rows (incremental dedup).")
    ] = None,
    against: Annotated[
        str | None, typer.Option(help="Also drop rows that duplicate this saved index.")
    ] = None,
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Drop exact duplicates (xxh3-128 of normalised content) and near-duplicates
    (MinHash-LSH at a Jaccard threshold), keeping one row per cluster.

    The report (OUT/.report.json) lists rows in/out, clusters, the LSH S-curve, example pairs
    with estimated and true Jaccard, and time and memory per phase.
    """
    params: dict[str, Any] = {
        "method": method,
        "text_column": text_column,
        "columns": columns.split(",") if columns else None,
        "normalize": normalize,
        "ngram": ngram,
        "char_ngram": char_ngram,
        "num_perm": num_perm,
        "threshold": threshold,
        "recall": recall,
        "bands": bands,
        "rows": rows,
        "verify": verify,
        "signature": signature,
        "seed": seed,
        "keep": keep,
        "mark_only": mark_only,
        "index_out": index_out,
        "against": against,
    }
    config = DedupConfig.parse(params)
    result = output.run_and_print(
        "dedup",
        config,
        out,
        input_path=input,
        options=options,
        key_file=key_file,
    )
    if options.chatty:
        print_summary(result.report)


def print_summary(rep: dict[str, Any]) -> None:
    """The dedup-specific part of the report: S-curve, clusters, examples, phases."""
    console = output.console
    if rep.get("message"):
        console.print(f"[green]{rep['message']}[/]")
    console.print(
        f"removed {rep.get('duplicates_removed', 0):,} rows "
        f"(exact duplicates {rep.get('exact_duplicates', 0):,}; "
        f"clusters {rep.get('clusters', 0):,}; sizes {rep.get('cluster_sizes', {})})"
    )
    lsh = rep.get("lsh")
    if lsh:
        curve = "  ".join(f"J={j}: {p:.3f}" for j, p in lsh["s_curve"].items())
        console.print(
            f"LSH {lsh['bands']} bands x {lsh['rows']} rows; catch probability {curve}",
            highlight=False,
        )
    for name, info in rep.get("by_source", {}).items():
        console.print(
            f"  source {name}: {info['removed']:,}/{info['rows']:,} "
            f"({info['dup_rate']:.1%}) removed",
            highlight=False,
        )
    for ex in rep.get("examples", [])[:3]:
        est = ex.get("estimated_jaccard")
        kind = "id" if "kept_id" in ex else "row"
        removed, kept = (repr(ex[f"{k}_{kind}"]) for k in ("removed", "kept"))
        console.print(
            f"  e.g. {kind} {removed} ~ {kind} {kept}: true J "
            f"{ex['true_jaccard']:.2f}" + (f", estimated {est:.2f}" if est is not None else ""),
            highlight=False,
        )
    phases = ", ".join(
        f"{k} {v['seconds']:.2f}s/{v['peak_rss_mb']:.0f}MB"
        for k, v in rep.get("phases", {}).items()
    )
    console.print(f"phases: {phases}", highlight=False)
