"""The dedup stage's options: one pydantic model for CLI flags and recipe params alike."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from dataprep.errors import DataprepError
from dataprep.stage import StageConfig

NORMALISE_STEPS = ("nfkc", "lowercase", "whitespace", "punctuation")


class DedupConfig(StageConfig):
    method: Literal["exact", "minhash", "both"] = Field(
        "minhash", description="exact fingerprints, MinHash-LSH near-duplicates, or both"
    )
    text_column: str = Field("text", description="column holding the document text")
    columns: list[str] | None = Field(
        None, description="exact: columns fingerprinted together (default: the text column)"
    )
    normalize: list[str] = Field(
        ["nfkc", "lowercase", "whitespace"],
        description="steps applied before hashing: nfkc, lowercase, whitespace, punctuation; "
        "[] or ['raw'] hashes the raw bytes",
    )
    ngram: int = Field(5, ge=1, le=64, description="words per shingle")
    char_ngram: int | None = Field(
        None, ge=1, le=64, description="characters per shingle (CJK, code) instead of words"
    )
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash signature length")
    threshold: float = Field(0.8, gt=0.0, lt=1.0, description="Jaccard similarity threshold")
    recall: float = Field(0.95, gt=0.0, lt=1.0, description="catch probability at threshold")
    bands: int | None = Field(None, ge=1, description="LSH bands (with rows)")
    rows: int | None = Field(None, ge=1, description="rows per band (with bands)")
    verify: bool = Field(
        True,
        description="check candidates' estimated Jaccard before union (drops LSH false positives)",
    )
    signature: Literal["fast", "datasketch"] = Field(
        "fast", description="fast vectorised hashing, or signatures equal to datasketch.MinHash"
    )
    seed: int = Field(1, ge=0, lt=2**32, description="hash seed (datasketch's MinHash seed)")
    keep: str = Field("first", description="first | longest | max:COLUMN | min:COLUMN")
    mark_only: bool = Field(False, description="keep all rows, add dup_cluster and dup_keep")
    index_out: str | None = Field(None, description="save a band index of the kept rows here")
    against: str | None = Field(None, description="also drop rows duplicating this index")
    examples: int = Field(5, ge=0, le=100, description="example pairs in the report")
    merge_rows: int = Field(2_000_000, ge=1000, description="rows per merge chunk (memory cap)")
    band_part_rows: int = Field(
        50_000_000, ge=100, description="keys per bucket task: bigger bands split by key range"
    )

    @field_validator("normalize", mode="before")
    @classmethod
    def _split_normalize(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("normalize")
    @classmethod
    def _check_normalize(cls, value: list[str]) -> list[str]:
        if value == ["raw"]:
            return []
        bad = [v for v in value if v not in NORMALISE_STEPS]
        if bad:
            raise ValueError(
                f"unknown step(s) {', '.join(bad)}; use raw or {', '.join(NORMALISE_STEPS)}"
            )
        return value

    @field_validator("keep")
    @classmethod
    def _check_keep(cls, value: str) -> str:
        kind, _, column = value.partition(":")
        if kind in ("first", "longest") and not column:
            return value
        if kind in ("max", "min") and column:
            return value
        raise ValueError("use first, longest, max:COLUMN or min:COLUMN")

    @model_validator(mode="after")
    def _check_bands(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give --bands and --rows together (or neither)")
        if self.bands is not None and self.rows is not None:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands x rows must be <= num_perm ({self.num_perm})")
        return self

    @property
    def keep_kind(self) -> str:
        return self.keep.partition(":")[0]

    @property
    def keep_column(self) -> str | None:
        return self.keep.partition(":")[2] or None

    @property
    def fingerprint_columns(self) -> list[str]:
        return self.columns or [self.text_column]

    @property
    def uses_minhash(self) -> bool:
        return self.method in ("minhash", "both")

    @property
    def uses_exact(self) -> bool:
        return self.method in ("exact", "both")


def check_schema(config: DedupConfig, schema: pa.Schema) -> None:
    """Stop before any task runs if a named column is missing or of the wrong kind."""
    needed = {config.text_column}
    if config.uses_exact:
        needed.update(config.fingerprint_columns)
    if config.keep_column:
        needed.add(config.keep_column)
    missing = sorted(n for n in needed if n not in schema.names)
    if missing:
        raise DataprepError(
            f"input has no column {', '.join(map(repr, missing))} (columns: "
            f"{', '.join(schema.names)}); check --text-column / --columns / --keep"
        )
    text_type = schema.field(config.text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise DataprepError(
            f"column {config.text_column!r} holds {text_type}, not text; "
            "pick a string column with --text-column"
        )
    for name in config.fingerprint_columns if config.uses_exact else []:
        kind = schema.field(name).type
        if pa.types.is_nested(kind):  # fingerprints hash each cell as text (a cast)
            raise DataprepError(
                f"--columns {name} holds {kind}: exact dedup hashes text, number, date and "
                "byte columns, not lists or structs; name flat columns"
            )
    if config.keep_column:
        kind = schema.field(config.keep_column).type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if not (numeric or pa.types.is_temporal(kind) or pa.types.is_boolean(kind)):
            raise DataprepError(
                f"--keep {config.keep} needs a numeric or date column; "
                f"{config.keep_column!r} holds {kind}"
            )
    if config.mark_only and {"dup_cluster", "dup_keep"} & set(schema.names):
        raise DataprepError("input already has dup_cluster/dup_keep columns; drop them first")


def output_schema(schema: pa.Schema, mark_only: bool) -> pa.Schema:
    if not mark_only:
        return schema
    return schema.append(pa.field("dup_cluster", pa.int64())).append(
        pa.field("dup_keep", pa.bool_())
    )
