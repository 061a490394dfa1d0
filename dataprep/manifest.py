"""The manifest document: what a finished stage promises, and every check that needs no shard.

Loading refuses what no stage could have written: wrong types, a shard listed twice, a shard
path that leaves the directory, totals or row groups that disagree with the shard list, two
spellings of the schema that disagree. Every consumer (stages, verify, export, the reader)
parses through `Manifest.from_json`, so one check covers them all. Comparing the manifest with
the shard files themselves is `dataprep.verify`'s job; finding and writing the file is
`dataprep.layout`'s.

Writing goes through the same document models (`to_json`), so what is written and what is read
are one declared shape; a field only ever gains siblings, never a new name, so the previous
version reads what this one writes.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired

import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from dataprep import __version__
from dataprep.errors import DataprepError, short_error

FORMAT = "dataprep.dataset"
FORMAT_VERSION = 1


class ManifestError(DataprepError):
    """A manifest that no stage could have written (edited, damaged or forged)."""


@dataclass
class ShardEntry:
    """One Parquet file of a dataset, as the manifest records it."""

    path: str
    rows: int
    bytes: int
    xxh3_128: str
    row_groups: list[int] = field(default_factory=list)
    partition: int | None = None

    def to_json(self) -> dict[str, Any]:  # by hand: 5x faster than asdict, shards are many
        data = {
            "path": self.path,
            "rows": self.rows,
            "bytes": self.bytes,
            "xxh3_128": self.xxh3_128,
            "row_groups": list(self.row_groups),
        }
        if self.partition is not None:
            data["partition"] = self.partition
        return data


class LineageEntry(BaseModel):
    """One stage run in a dataset's history (oldest first; the last one wrote the directory).

    The runner's cache compares the last entry's digests, `inspect` shows the entries, and a
    stage may read an ancestor's `config` (partition --previous, encrypt's compression level).
    Fields are declared in the order they are written. Entries older than the digests and
    timestamps still load (those are then None and never written back), and keys a newer
    version adds are kept as read, so a lineage passes through this version unchanged.
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    stage: str  # the stage's op: shard, dedup, ...
    id: str | None = None  # the recipe's stage id (the op when run from the CLI)
    config: dict[str, Any]  # the stage's validated config, as JSON
    input_digest: str | None = None  # `Manifest.digest()` of the input, or of the raw inputs
    config_digest: str | None = None  # the config and write options
    version: str  # dataprep's version
    started: str | None = None  # UTC, ISO 8601 to the second
    finished: str
    # Where the data came from and how many rows went through (absent before `dataprep
    # lineage`): `input` is the input dataset's location, `raw_inputs` the paths a first stage
    # was given (the first 32, as given; `cwd` when one is relative; `input_files` and
    # `input_bytes` count all it read).
    input: str | None = None
    raw_inputs: list[str] | None = None
    cwd: str | None = None
    input_files: int | None = None
    input_bytes: int | None = None
    rows_in: int | None = None
    rows_out: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Exactly the keys it was made or read with."""
        return self.model_dump(exclude_unset=True)

    # The dict a lineage entry used to be, read-only, for code written against it.
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)


def lineage_entry(
    op: str,
    stage_id: str,
    config: dict[str, Any],
    input_digest: str,
    config_digest: str,
    started: float,
    **flow: Any,
) -> LineageEntry:
    """The entry for a run of `op` that started at `started` and finishes now; `flow`: the
    optional `input`, `raw_inputs`, `cwd`, `input_files`, `input_bytes`, `rows_in`, `rows_out`."""
    return LineageEntry(
        stage=op,
        id=stage_id,
        config=config,
        input_digest=input_digest,
        config_digest=config_digest,
        version=__version__,
        started=_iso(started),
        finished=_iso(time.time()),
        **{key: value for key, value in flow.items() if value is not None},
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Manifest:
    """What a finished stage promises about its output directory."""

    schema: pa.Schema
    shards: list[ShardEntry]
    lineage: list[LineageEntry] = field(default_factory=list)
    encryption: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a lineage given as dicts (the Python API) is checked
        if not all(isinstance(e, LineageEntry) for e in self.lineage):
            self.lineage = [LineageEntry.model_validate(e) for e in self.lineage]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def digest(self) -> str:
        """Content digest: changes exactly when the shards' bytes or the schema change."""
        h = xxhash.xxh3_128()
        h.update(self.schema.serialize().to_pybytes())
        for shard in self.shards:
            h.update(f"{shard.path}\0{shard.xxh3_128}\0".encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The document `from_json` reads, built from its models (not validated again: a
        manifest built in code is written as it is, and `from_json` judges it when read)."""
        doc = _ManifestDoc.model_construct(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            schema_=_SchemaDoc.model_construct(
                fields=[_FieldDoc.model_construct(**f) for f in _fields(self.schema)],
                arrow=base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            ),
            shards=[s.to_json() for s in self.shards],
            totals=_TotalsDoc.model_construct(
                shards=len(self.shards), rows=self.rows, bytes=self.bytes
            ),
            lineage=self.lineage,
            encryption=self.encryption,
            metadata=self.metadata,
        )
        return doc.model_dump(by_alias=True, exclude_unset=True, warnings=False)

    @classmethod
    def from_json(cls, data: Any, where: str = ".manifest.json") -> Manifest:
        """Parse and check a manifest; `ManifestError` names `where` and the bad entry."""
        try:
            return _parse(data)
        except _Problem as exc:
            raise ManifestError(f"{where}: {exc}; rerun the stage that wrote it") from None


# -- the document's shape (strict: "rows": "5" or true is not a row count) -------------------

_STRICT = ConfigDict(strict=True, extra="forbid")
Count = Annotated[int, Field(ge=0)]


class _ShardDoc(TypedDict):  # a TypedDict validates twice as fast as a model: shards are many
    __pydantic_config__ = _STRICT
    path: str
    rows: Count
    bytes: Count
    xxh3_128: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    row_groups: NotRequired[list[Count]]  # absent or empty in manifests older than them
    partition: NotRequired[Count | None]


class _FieldDoc(BaseModel):
    model_config = _STRICT
    name: str
    type: str


class _SchemaDoc(BaseModel):
    model_config = _STRICT
    fields: list[_FieldDoc]
    arrow: str


class _TotalsDoc(BaseModel):
    model_config = _STRICT
    shards: Count
    rows: Count
    bytes: Count


class _ManifestDoc(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")  # newer keys: format_version says
    format: str
    format_version: int
    schema_: _SchemaDoc = Field(alias="schema")
    shards: list[_ShardDoc]
    totals: _TotalsDoc | None = None
    lineage: list[LineageEntry] = []
    encryption: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}


class _Problem(Exception):
    """One sentence about what is wrong, without the file name."""


def _parse(data: Any) -> Manifest:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _Problem("not a dataprep manifest (wrong format tag)")
    version = data.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ManifestError(
            f"manifest format {version} is newer than this dataprep understands "
            f"({FORMAT_VERSION}); upgrade dataprep"
        )
    try:
        doc = _ManifestDoc.model_validate(data)
    except ValidationError as exc:
        raise _Problem(_describe(exc, data)) from None
    schema = _schema(doc.schema_)
    shards = [ShardEntry(**s) for s in doc.shards]
    _check_shards(shards)
    _check_totals(doc.totals, shards)
    _check_key_material(doc.encryption)
    return Manifest(schema, shards, doc.lineage, doc.encryption, doc.metadata)


def _schema(doc: _SchemaDoc) -> pa.Schema:
    try:
        raw = base64.b64decode(doc.arrow, validate=True)
        schema = pa.ipc.read_schema(pa.py_buffer(raw))
    except (binascii.Error, ValueError, pa.ArrowException) as exc:
        raise _Problem(f"schema.arrow is not a base64 Arrow schema ({short_error(exc)})") from None
    listed = [(f.name, f.type) for f in doc.fields]
    actual = [(f["name"], f["type"]) for f in _fields(schema)]
    if listed != actual:
        diff = next(((a, b) for a, b in zip(listed, actual, strict=False) if a != b), None)
        detail = (
            f"{spell_column(*diff[0])} where the Arrow schema has {spell_column(*diff[1])}"
            if diff
            else f"{len(listed)} columns where the Arrow schema has {len(actual)}"
        )
        raise _Problem(f"schema.fields disagree with schema.arrow: {detail}")
    return schema


def _check_shards(shards: list[ShardEntry]) -> None:
    seen: dict[str, int] = {}
    for i, shard in enumerate(shards):
        if not is_plain_name(shard.path):
            raise _Problem(
                f"shards[{i}] path {shard.path!r} is not a plain file name inside the dataset "
                "directory"
            )
        if shard.path in seen:
            raise _Problem(
                f"shard {shard.path} is listed twice (shards[{seen[shard.path]}] and shards[{i}])"
            )
        seen[shard.path] = i
        if shard.row_groups and sum(shard.row_groups) != shard.rows:
            raise _Problem(
                f"shards[{i}] ({shard.path}) row_groups add up to {sum(shard.row_groups)} rows, "
                f"not its {shard.rows}"
            )


def _check_totals(totals: _TotalsDoc | None, shards: list[ShardEntry]) -> None:
    if totals is None:
        return
    actual = {
        "shards": len(shards),
        "rows": sum(s.rows for s in shards),
        "bytes": sum(s.bytes for s in shards),
    }
    for key, value in actual.items():
        recorded = getattr(totals, key)
        if recorded != value:
            raise _Problem(f"totals say {recorded} {key} but the shard list holds {value}")


def _check_key_material(encryption: dict[str, Any] | None) -> None:
    """External key material lives in the dataset's own `.keys/N/`: a dir elsewhere would open
    shards with another dataset's wrapped keys, and tie a copied dataset to files outside it."""
    info = (encryption or {}).get("key_material")
    where = info.get("dir") if isinstance(info, dict) else info
    if info is not None and not (isinstance(info, dict) and info.get("storage") != "external"):
        if not (isinstance(where, str) and re.fullmatch(r"\.keys/[0-9]{1,9}", where)):
            raise _Problem(f"encryption.key_material.dir {_clip_value(where)} is not .keys/N")


def is_plain_name(path: str) -> bool:
    """A file name with no directory part: it cannot point outside the dataset or at a URI.

    Every writer records `ShardWriter.path.name`, so no stage writes shards in subfolders.
    """
    return (
        bool(path)
        and path not in (".", "..")
        and not any(c in path for c in "/\\\0")
        and "://" not in path
    )


def _fields(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def spell_column(name: str, kind: str, nullable: bool = True) -> str:
    """`name: type`, and ` not null` when it is: how messages name a column."""
    return f"{name}: {kind}" + ("" if nullable else " not null")


# -- messages ---------------------------------------------------------------------------------

_WORDS = {
    "missing": "is missing",
    "extra_forbidden": "is not a manifest field",
    "model_type": "should be a JSON object",
    "model_attributes_type": "should be a JSON object",
    "dict_type": "should be a JSON object",
    "list_type": "should be a list",
    "int_type": "should be an integer",
    "string_type": "should be a string",
    "string_pattern_mismatch": "should be 32 lowercase hex digits",
    "greater_than_equal": "should be 0 or more",
}


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error as `shards[2] (part-….parquet): rows should be an integer, not 'lots'`."""
    err = exc.errors(include_url=False)[0]
    loc = ["schema" if p == "schema_" else p for p in err["loc"]]
    label = _dotted(loc)
    if len(loc) > 2 and loc[0] == "shards" and isinstance(loc[1], int):
        label = f"shards[{loc[1]}]{_shard_name(data, loc[1])}: {_dotted(loc[2:])}"
    words = _WORDS.get(err["type"]) or err["msg"].removeprefix("Input ")
    if err["type"] not in ("missing", "extra_forbidden"):
        words += f", not {_clip_value(err.get('input'))}"
    return f"{label} {words}"


def _dotted(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


def _shard_name(data: dict[str, Any], index: int) -> str:
    try:
        path = data["shards"][index]["path"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" ({path})" if isinstance(path, str) and is_plain_name(path) else ""


def _clip_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
