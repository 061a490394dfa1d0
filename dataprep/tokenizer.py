"""Tokenizers for training blocks: byte-level (nothing to download), BPE trained on the data,
or an existing Hugging Face `tokenizer.json` given by path.

The byte tokenizer works on Arrow's UTF-8 buffer directly (a string column already *is* the
byte stream), so it costs a copy, not a Python loop per document. A tokenizer file is copied
beside the shards (`.tokenizer.json`) and identified by its content digest, so the output
records exactly which ids it holds and a changed file reruns the stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, as_path

BYTE_VOCAB = 256
BUILTIN = ("byte", "bpe")
FILE_NAME = ".tokenizer.json"  # beside the shards: a dot keeps other tools from reading it as data
# special tokens by role, when no tokenizer_config.json beside the file names them
_KNOWN = {
    "eos": ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "[SEP]", "<|im_end|>"),
    "bos": ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[CLS]"),
    "pad": ("<pad>", "<|pad|>", "[PAD]", "<|padding|>"),
}


@dataclass(frozen=True)
class TokenizerSpec:
    """What the trainer needs to know about the ids: recorded in the output manifest."""

    kind: str  # "byte" | "bpe" | "file" (a Hugging Face tokenizer.json given by path)
    vocab_size: int
    eot_id: int
    pad_id: int
    file: str | None = None  # the tokenizer.json beside the shards, for "bpe" and "file"
    bos_id: int | None = None  # added by the tokenizer's own post-processor, if at all
    digest: str | None = None  # xxh3-128 of the tokenizer file's bytes
    source: str | None = None  # the path it was given as
    special_tokens: dict[str, str] | None = None  # role (eos, bos, pad) -> token

    def to_json(self) -> dict[str, Any]:
        """The first five fields always (as before); the file's identity when there is one."""
        data = asdict(self)
        return {k: v for i, (k, v) in enumerate(data.items()) if i < 5 or v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizerSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_tokenizer_file(path: str) -> tuple[bytes, TokenizerSpec]:
    """Read and check a Hugging Face tokenizer.json: its bytes and the facts to record, or one
    sentence saying why it cannot be used."""
    source = as_path(path)
    if not source.is_file():
        what = "is a folder" if source.is_dir() else "does not exist"  # a model folder?
        raise DataprepError(
            f"tokenizer file {path} {what} (give byte, bpe or the path of a Hugging Face "
            "tokenizer.json)"
        )
    data = source.read_bytes()
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise DataprepError(
            "--tokenizer PATH needs the tokenizers package: pip install 'dataprep[torch]'"
        ) from None
    try:
        tokenizer = Tokenizer.from_str(data.decode())
    except Exception as exc:  # the Rust parser raises plain Exception with serde's message
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataprepError(f"{path} is not a Hugging Face tokenizer.json ({reason})") from None
    special = _special_tokens(tokenizer, source)
    if "eos" not in special:
        raise DataprepError(
            f"tokenizer {path} has no end-of-text token to put between documents (none of "
            f"{', '.join(_KNOWN['eos'])}); name it as eos_token in a tokenizer_config.json "
            "beside the file"
        )
    special.setdefault("pad", special["eos"])
    ids = {role: tokenizer.token_to_id(token) for role, token in special.items()}
    top = max([tokenizer.get_vocab_size(with_added_tokens=True) - 1, *ids.values()])
    spec = TokenizerSpec(
        "file",
        top + 1,
        eot_id=ids["eos"],
        pad_id=ids["pad"],
        file=FILE_NAME,
        bos_id=ids.get("bos"),
        digest=xxhash.xxh3_128(data).hexdigest(),
        source=str(path),
        special_tokens=special,
    )
    return data, spec


def _special_tokens(tokenizer: Any, source: StoragePath) -> dict[str, str]:
    """Role -> token: from tokenizer_config.json beside the file (as Hugging Face reads it),
    else the first well-known name the vocabulary holds."""
    found: dict[str, str] = {}
    config = source.parent / "tokenizer_config.json"
    if config.is_file():
        try:
            settings = json.loads(config.read_text())
        except ValueError:
            raise DataprepError(f"{config} is not valid JSON") from None
        for role in _KNOWN:
            value = settings.get(f"{role}_token") if isinstance(settings, dict) else None
            if isinstance(value, dict):  # {"content": "</s>", ...} in older files
                value = value.get("content")
            if isinstance(value, str) and tokenizer.token_to_id(value) is not None:
                found[role] = value
    for role, names in _KNOWN.items():
        if role not in found:
            hit = next((t for t in names if tokenizer.token_to_id(t) is not None), None)
            if hit is not None:
                found[role] = hit
    return found


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
    """Train a byte-level BPE on the data itself and save it as `path` (a tokenizer.json)."""
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
    """Loads a tokenizer.json once per task; `encode_batch` runs in Rust threads (with the
    tokenizer's own special tokens, e.g. a BOS its post-processor adds)."""

    def __init__(self, path: StoragePath):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(path.read_text())

    def documents(self, texts: pa.Array) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts.drop_null().to_pylist())
        return [np.asarray(e.ids, np.int32) for e in encodings]


def encode_documents(spec: TokenizerSpec, texts: pa.Array, root: StoragePath) -> list[np.ndarray]:
    if spec.kind == "byte":
        return byte_documents(texts)
    return BpeEncoder(root / str(spec.file)).documents(texts)  # "bpe" and "file" alike


def encode_stream(spec: TokenizerSpec, texts: pa.Array, root: StoragePath) -> np.ndarray:
    """One flat id stream with an end-of-text id after every document."""
    if spec.kind == "byte":
        return byte_stream(texts, spec.eot_id)
    docs = encode_documents(spec, texts, root)
    if not docs:
        return np.empty(0, np.int32)
    eot = np.array([spec.eot_id], np.int32)
    if spec.kind == "file":  # one end-of-text per document, also when its template adds one
        docs = [d[:-1] if len(d) and d[-1] == spec.eot_id else d for d in docs]
    return np.concatenate([part for doc in docs for part in (doc, eot)])
