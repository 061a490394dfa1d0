"""`dataprep tokenize`: text to packed blocks of token ids."""

from __future__ import annotations

from typing import Annotated

import typer

from dataprep.cli import app, output
from dataprep.stages.tokenize import TokenizeConfig


@app.command(rich_help_panel="Stages")
@output.stage_options
def tokenize(
    input: Annotated[str, typer.Argument(help="Input dataset directory.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output dataset directory.")],
    seq_len: Annotated[int, typer.Option(help="Tokens of context per block.")] = 1024,
    tokenizer: Annotated[
        str,
        typer.Option(
            help="byte (no download), bpe (trained here), or PATH/tokenizer.json: an existing "
            "Hugging Face tokenizer (copied into OUT; its digest, vocab size and EOS/BOS are "
            "recorded in the manifest)."
        ),
    ] = "byte",
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 8192,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    mode: Annotated[
        str, typer.Option(help="pack (LM blocks) or truncate (one row per document).")
    ] = "pack",
    key_file: output.KeyFile = None,
    *,
    options: output.RunOptions,
) -> None:
    """Turn text into fixed-length blocks of token ids (a `tokens` column) for `dataprep train`.

    Documents are joined with an end-of-text id and cut into blocks of seq_len + 1 ids, so no
    padding is wasted.
    """
    config = TokenizeConfig.parse(
        {
            "seq_len": seq_len,
            "tokenizer": tokenizer,
            "vocab_size": vocab_size,
            "text_column": text_column,
            "mode": mode,
        }
    )
    output.run_and_print(
        "tokenize",
        config,
        out,
        input_path=input,
        options=options,
        key_file=key_file,
    )
