"""The README's tables that code also knows must say what the code says."""

from __future__ import annotations

from pathlib import Path

from dataprep.quality import catalog

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_signals_table_is_the_catalogue() -> None:
    """`score`'s columns are documented once in the README: the table is the catalogue's."""
    assert catalog.markdown_table().rstrip("\n") in README
