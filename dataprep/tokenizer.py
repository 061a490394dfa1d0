"""Tokenizers for training blocks: byte-level (nothing to download) or BPE trained on the data.

The byte tokenizer works on Arrow's UTF-8 buffer directly (a string column already *is* the
byte stream), so it costs a copy, not a Python loop per document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dataprep.storage import StoragePath

BYTE_VOCAB = 256


@dataclass(frozen=True)
class TokenizerSpec:
    """What the trainer needs to know about the ids: recorded in the output manifest."""

    kind: str  # "byte" | "bpe"
    vocab_size: int
    eot_id: int
    pad_id: int
    file: str | None = None  # tokenizer.json beside the shards, for "bpe"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizerSpec:
        return cls(**data)


BYTE_SPEC = TokenizerSpec("byte", BYTE_VOCAB + 2, eot_id=BYTE_VOCAB, pad_id=BYTE_VOCAB + 1)


def byte_stream(texts: pa.Array, eot_id: int) -> np.ndarray:
    """All documents' UTF-8 bytes as int32 ids, each document followed by `eot_id`."""
    texts = texts.cast(pa.large_string()) if pa.types.is_string(texts.type) else texts
    texts = texts.drop_null()
    if len(texts) == 0:
        return np.empty(0, np.int32)
    offsets = np.frombuffer(texts.buffers()[1], np.int64)[
        texts.offset : texts.offset + len(texts) + 1
    ]
    data = np.frombuffer(texts.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    ends = offsets[1:] - offsets[0]
    return np.insert(data.astype(np.int32), ends, eot_id)


def byte_documents(texts: pa.Array) -> list[np.ndarray]:
    """Per-document byte ids (for truncate mode)."""
    stream = byte_stream(texts, -1)
    cuts = np.flatnonzero(stream == -1)
    return [part[:-1] for part in np.split(stream, cuts + 1)[:-1]]


def train_bpe(texts: Iterable[str], vocab_size: int, path: StoragePath) -> TokenizerSpec:
    """Train a byte-level BPE on the data itself and save it as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    path.write_atomic(tokenizer.to_str())
    return TokenizerSpec(
        "bpe",
        tokenizer.get_vocab_size(),
        eot_id=tokenizer.token_to_id("<|endoftext|>"),
        pad_id=tokenizer.token_to_id("<|pad|>"),
        file=path.name,
    )


class BpeEncoder:
    """Loads tokenizer.json once per task; `encode_batch` runs in Rust threads."""

    def __init__(self, path: StoragePath):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(path.read_text())

    def documents(self, texts: pa.Array) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts.drop_null().to_pylist())
        return [np.asarray(e.ids, np.int32) for e in encodings]


def encode_documents(spec: TokenizerSpec, texts: pa.Array, root: StoragePath) -> list[np.ndarray]:
    if spec.kind == "byte":
        return byte_documents(texts)
    return BpeEncoder(root / str(spec.file)).documents(texts)


def encode_stream(spec: TokenizerSpec, texts: pa.Array, root: StoragePath) -> np.ndarray:
    """One flat id stream with an end-of-text id after every document."""
    if spec.kind == "byte":
        return byte_stream(texts, spec.eot_id)
    docs = encode_documents(spec, texts, root)
    if not docs:
        return np.empty(0, np.int32)
    eot = np.array([spec.eot_id], np.int32)
    return np.concatenate([part for doc in docs for part in (doc, eot)])
