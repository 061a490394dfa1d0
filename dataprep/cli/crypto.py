"""`dataprep keygen`, `encrypt` and `decrypt`: Parquet Modular Encryption of datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.encrypt import DecryptConfig, EncryptConfig

KeyFile = Annotated[Path, typer.Option("--key-file", "-k", help="Key file (dataprep keygen).")]
CodecOpt = Annotated[str | None, typer.Option(help="Codec for the output (default: input's).")]
LevelOpt = Annotated[int | None, typer.Option(help="Codec level (default: input's).")]


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


@app.command(rich_help_panel="Stages")
@output.stage_options
def encrypt(
    input: Annotated[str, typer.Argument(metavar="IN", help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    key_file: KeyFile,
    columns: Annotated[
        str | None,
        typer.Option(help="Comma-separated columns to encrypt; the rest stay in the clear."),
    ] = None,
    codec: CodecOpt = None,
    level: LevelOpt = None,
    *,
    options: output.RunOptions,
) -> None:
    """Encrypt every column (AES-GCM, encrypted footer); the manifest records key ids only."""
    config = EncryptConfig.parse(
        {
            "key_file": str(key_file),
            "columns": columns.split(",") if columns else None,
            "codec": codec,
            "level": level,
        }
    )
    result = output.run_and_print(
        "encrypt",
        config,
        out,
        input_path=input,
        options=options,
    )
    clear = result.report.get("plaintext_columns")
    if clear and options.chatty:
        output.console.print(f"[yellow]left in the clear[/]: {', '.join(clear)}")


@app.command(rich_help_panel="Stages")
@output.stage_options
def decrypt(
    input: Annotated[str, typer.Argument(metavar="IN", help="Encrypted dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    key_file: KeyFile,
    codec: CodecOpt = None,
    level: LevelOpt = None,
    *,
    options: output.RunOptions,
) -> None:
    """Decrypt a dataset written by `dataprep encrypt` (or a recipe with output encryption)."""
    config = DecryptConfig.parse({"key_file": str(key_file), "codec": codec, "level": level})
    output.run_and_print(
        "decrypt",
        config,
        out,
        input_path=input,
        options=options,
    )
