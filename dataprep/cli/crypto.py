"""`dataprep keygen`: a key file for Parquet Modular Encryption (`encrypt` and `decrypt` are
stage commands, generated from their config models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app, output


@app.command(rich_help_panel="Keys")
def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create (mode 0600).")],
) -> None:
    """Create a key file with new master keys. Never overwrites: losing keys loses data."""
    from dataprep.crypto import generate_key_file

    ring = generate_key_file(out)
    output.console.print(
        f"[green]wrote[/] {out} (key set {ring.key_set}: footer key {ring.footer_key}, "
        f"column key {ring.column_key}); keep it secret and back it up"
    )
