"""`dataprep report`: one self-contained HTML page about datasets and training runs.

collect (a dataset's manifest, footers and a seeded sample) and run (a run's metrics.jsonl,
alerts and newest checkpoint) read; chain finds the stages a dataset went through; sections
(datasets) and run_sections (runs) lay them out with figures (plotly); page writes the HTML.
build_report ties them together.
"""

from __future__ import annotations

from .build import ReportSummary as ReportSummary
from .build import build_report as build_report
