"""`dataprep report`: one self-contained HTML page about datasets and training runs.

collect (a dataset's manifest, footers and a seeded sample) and run (a run's metrics.jsonl)
read; chain finds the stages a dataset went through; sections and figures turn that into
plotly figures and tables; page writes the HTML. build_report ties them together.
"""

from __future__ import annotations

from .build import ReportSummary as ReportSummary
from .build import build_report as build_report
