"""The report's plots, as plotly figures built from plain lists.

Histograms are binned here (numpy) and drawn as bars, so the page carries 40 counts per
column instead of every sampled value; each figure keeps the numbers it draws in
`layout.meta`, which the tests compare with an independent count of the same column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

BINS = 40
# plotly_white's look, spelled out: naming a built-in template deep-copies all of it into
# every figure (3 s for 40 figures); this one is a few keys
_GRID = {"gridcolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "linecolor": "#ebf0f8"}
_TEMPLATE = {
    "layout": {
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#2a3f5f"},
        "colorway": ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3"],
        "xaxis": {**_GRID, "automargin": True},
        "yaxis": {**_GRID, "automargin": True},
        "hovermode": "closest",
    }
}
_BIN_HOVER = "[%{customdata[0]:.4g}, %{customdata[1]:.4g}]: %{y:,} rows<extra></extra>"
HEIGHT = 340


def _layout(
    fig: go.Figure,
    title: str,
    x: str,
    y: str,
    height: int = HEIGHT,
    category: bool = False,
    **extra: object,
) -> go.Figure:
    """Title, axes and look in one nested update (plotly validates `a_b` spellings and
    repeated updates slowly: 40 figures went from 3 s to a fraction of that)."""
    xaxis: dict[str, object] = {"title": {"text": x}}
    if category:
        xaxis["type"] = "category"
    fig.update_layout(
        {
            "title": {"text": title, "x": 0.01},
            "xaxis": xaxis,
            "yaxis": {"title": {"text": y}},
            "height": height,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "template": _TEMPLATE,
            **extra,
        }
    )
    return fig


def bin_edges(values: np.ndarray, bins: int = BINS, integer: bool = False) -> np.ndarray:
    """`bins` equal bins over [min, max]; whole-number bins when the values are integers and
    span fewer than `bins` (a bin per value, none straddling two)."""
    lo, hi = float(values.min()), float(values.max())
    if integer and hi - lo + 1 <= bins:
        return np.arange(lo, hi + 2) - 0.5
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    return np.linspace(lo, hi, bins + 1)


def histogram(
    values: np.ndarray, title: str, x: str, integer: bool = False, height: int = HEIGHT
) -> go.Figure:
    """Counts of `values` in equal bins (the last bin includes its right edge)."""
    edges = bin_edges(values, integer=integer)
    counts, _ = np.histogram(values, bins=edges)
    left, right = edges[:-1], edges[1:]
    fig = go.Figure(
        go.Bar(
            x=((left + right) / 2).tolist(),
            y=counts.tolist(),
            width=(right - left).tolist(),
            customdata=np.stack([left, right], axis=1).tolist(),
            hovertemplate=_BIN_HOVER,
            marker_line_width=0,
        )
    )
    meta = {"edges": edges.tolist(), "counts": counts.tolist()}
    return _layout(fig, title, x, "rows", height, meta=meta, bargap=0.02)


def category_counts(
    counts: Mapping[str, float], title: str, x: str, height: int = HEIGHT, y: str = "rows"
) -> go.Figure:
    names, values = list(counts), list(counts.values())
    fig = go.Figure(go.Bar(x=names, y=values, hovertemplate="%{x}: %{y:,}<extra></extra>"))
    meta = {"counts": dict(counts)}
    return _layout(fig, title, x, y, height, category=True, meta=meta)


def before_after(
    before: Mapping[str, float],
    after: Mapping[str, float],
    title: str,
    x: str = "class",
    y: str = "rows",
) -> go.Figure:
    names = list(dict.fromkeys([*before, *after]))
    fig = go.Figure(
        [
            go.Bar(name="before", x=names, y=[before.get(n, 0) for n in names]),
            go.Bar(name="after", x=names, y=[after.get(n, 0) for n in names]),
        ]
    )
    meta = {"before": dict(before), "after": dict(after)}
    return _layout(fig, title, x, y, barmode="group", meta=meta)


def s_curve(bands: int, rows: int, threshold: float | None, points: int = 101) -> go.Figure:
    """P(candidate) = 1 - (1 - s^rows)^bands, the chance two documents of Jaccard s share a
    band, for the run's bands x rows."""
    s = np.linspace(0.0, 1.0, points)
    p = 1.0 - (1.0 - s**rows) ** bands
    fig = go.Figure(
        go.Scatter(
            x=s.tolist(),
            y=p.tolist(),
            mode="lines",
            name=f"{bands} bands x {rows} rows",
            hovertemplate="Jaccard %{x:.2f}: P(candidate) %{y:.4f}<extra></extra>",
        )
    )
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", annotation_text=f"threshold {threshold}")
    title = f"LSH S-curve ({bands} bands x {rows} rows)"
    meta = {"bands": bands, "rows": rows}
    return _layout(fig, title, "Jaccard similarity", "P(candidate pair)", meta=meta)


def cluster_sizes(sizes: Mapping[str, int]) -> go.Figure:
    ordered = sorted(sizes.items(), key=lambda kv: int(kv[0].rstrip("+")))
    fig = go.Figure(
        go.Bar(
            x=[k for k, _ in ordered],
            y=[v for _, v in ordered],
            hovertemplate="size %{x}: %{y:,} clusters<extra></extra>",
        )
    )
    return _layout(fig, "duplicate clusters by size", "rows in cluster", "clusters", category=True)


def partition_balance(rows: Mapping[int, int]) -> go.Figure:
    names, values = [str(k) for k in rows], list(rows.values())
    fig = go.Figure(
        go.Bar(x=names, y=values, hovertemplate="partition %{x}: %{y:,}<extra></extra>")
    )
    if values:
        fig.add_hline(y=sum(values) / len(values), line_dash="dash", annotation_text="mean")
    meta = {"rows": values}
    return _layout(fig, "rows per partition", "partition", "rows", category=True, meta=meta)


def compression(sizes: Mapping[str, tuple[int, int]]) -> go.Figure:
    """Compression ratio (uncompressed / compressed) per column, from the Parquet footers."""
    names = list(sizes)
    ratios = [u / c if c else 0.0 for c, u in sizes.values()]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=ratios,
            customdata=[[c, u] for c, u in sizes.values()],
            hovertemplate=(
                "%{x}: x%{y:.2f} (%{customdata[1]:,} -> %{customdata[0]:,} bytes)<extra></extra>"
            ),
        )
    )
    title, y = "compression ratio per column", "uncompressed / compressed"
    return _layout(fig, title, "column", y, meta={"ratios": ratios})


def horizontal_counts(counts: Mapping[str, int], title: str, x: str) -> go.Figure:
    names = list(counts)[::-1]
    fig = go.Figure(
        go.Bar(
            y=names,
            x=[counts[n] for n in names],
            orientation="h",
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    return _layout(fig, title, x, "", meta={"counts": dict(counts)})


def rows_per_stage(
    labels: Sequence[str], rows_in: Sequence[int | None], rows_out: Sequence[int | None]
) -> go.Figure:
    fig = go.Figure(
        [
            go.Bar(name="rows in", x=list(labels), y=list(rows_in)),
            go.Bar(name="rows out", x=list(labels), y=list(rows_out)),
        ]
    )
    title = "rows in / out per stage"
    return _layout(fig, title, "stage", "rows", category=True, barmode="group")


def lines(
    series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    title: str,
    y: str,
    height: int = HEIGHT,
) -> go.Figure:
    """One line per named series against the training step."""
    fig = go.Figure(
        [
            go.Scatter(x=list(steps), y=list(values), mode="lines", name=name)
            for name, (steps, values) in series.items()
        ]
    )
    return _layout(fig, title, "step", y, height, hovermode="x unified")
