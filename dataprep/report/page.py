"""One self-contained HTML page: text, tables and plotly figures, nothing fetched.

plotly.js is inlined once (the first figure carries it, `include_plotlyjs=True`); every
other figure is a div and a call into it, so the file opens offline and from e-mail. All
text from datasets (ids, values, reasons) is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import plotly.graph_objects as go


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass
class Note:
    text: str
    kind: str = "note"  # "note" (grey) or "warn" (sampling, unreadable parts: said plainly)


@dataclass
class Grid:
    """Small figures side by side (two per row): a dataset's many numeric columns."""

    figures: list[go.Figure]


Block: TypeAlias = go.Figure | Table | Note | Grid


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2

    def add(self, *blocks: Block | None) -> Section:
        self.blocks.extend(b for b in blocks if b is not None)
        return self

    def figures(self) -> list[go.Figure]:
        found: list[go.Figure] = []
        for block in self.blocks:
            if isinstance(block, go.Figure):
                found.append(block)
            elif isinstance(block, Grid):
                found += block.figures
        return found


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f5f5}
p.note{color:#555}p.warn{background:#fff6d6;padding:.4em .6em;border-left:3px solid #e0b000}
nav a{margin-right:1em}
div.grid{display:grid;grid-template-columns:1fr 1fr;gap:.5em}
"""


def render(title: str, sections: Sequence[Section], generated: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">{_e(generated)}</p>',
    ]
    tops = [s for s in sections if s.level == 2]
    if len(tops) > 1:
        links = "".join(
            f'<a href="#s{i}">{_e(s.title)}</a>' for i, s in enumerate(sections) if s.level == 2
        )
        parts.append(f"<nav>{links}</nav>")
    figures = _Figures()
    for i, section in enumerate(sections):
        level = section.level
        parts.append(f'<h{level} id="s{i}">{_e(section.title)}</h{level}>')
        for block in section.blocks:
            if isinstance(block, go.Figure):
                parts.append(figures.html(block))
            elif isinstance(block, Grid):
                cells = "".join(f"<div>{figures.html(f)}</div>" for f in block.figures)
                parts.append(f'<div class="grid">{cells}</div>')
            elif isinstance(block, Table):
                parts.append(_table(block))
            else:
                parts.append(f'<p class="{block.kind}">{_e(block.text)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


class _Figures:
    """Numbers the figures and inlines plotly.js into the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure) -> str:
        text: str = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 0,
            include_mathjax=False,
            div_id=f"fig{self.count}",
            config={"displaylogo": False, "responsive": True},
        )
        self.count += 1
        return text


def _table(table: Table) -> str:
    """A table; a header of blanks (a key/value list) is left out."""
    head = "".join(f"<th>{_e(h)}</th>" for h in table.header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(table.header) else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{'—' if value is None else _e(str(value))}</td>"
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:,.4g}</td>'
    return f"<td>{_e(str(value))}</td>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
