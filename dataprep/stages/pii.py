"""pii: find e-mail addresses, phone numbers, IP addresses, card numbers, IBANs and secrets in a
text column, and redact them with a typed placeholder, replace them with a keyed hash, or only
count them (per kind).

One task per shard, row group by row group. A vectorised RE2 pre-check per kind picks the
documents that may hold it; only those are scanned in Python (`dataprep.quality.pii`). The
report counts findings per kind and per source and never holds a value found. No count columns
are added unless `count_columns` is set: the report has the totals, and a stable schema keeps
the stage a drop-in step before `dedup`/`tokenize`. A shard `partition` tagged keeps its tag
and its `pNNNNN-` name.

The hash key (a key file, or DATAPREP_PII_KEY) is read when the config is validated and
travels to workers inside the config object, never in what the config writes out: lineage
and the cache key hold only its fingerprint, so another key reruns the stage.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, PrivateAttr, field_validator, model_serializer, model_validator

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.quality import pii, pii_redact
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    brief,
    recordable,
)
from dataprep.stages.added_columns import History, check_added, written_before
from dataprep.stages.clean import require_text, source_values, text_and_source_columns

KEY_ENV = "DATAPREP_PII_KEY"
MIN_KEY_BYTES = 16


def parse_modes(value: Any) -> str:
    """`email=hash,ip=redact` (the command line's spelling) or a dict (a recipe's) -> the
    canonical string naming every kind; kinds left out are redacted, `all=MODE` sets every
    kind first. A string keeps CLIs generated from this model simple."""
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            kind, sep, mode = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not KIND=MODE (e.g. email=hash,ip=redact)")
            pairs[kind.strip()] = mode.strip()
    elif isinstance(value, dict):
        pairs = dict(value)
    else:
        raise ValueError("give KIND=MODE pairs, e.g. email=hash,ip=redact")
    modes = dict.fromkeys(pii.KINDS, pairs.pop("all", "redact"))
    for kind, mode in pairs.items():
        if kind not in pii.KINDS:
            raise ValueError(f"unknown kind {kind!r} (kinds: all, {', '.join(pii.KINDS)})")
        modes[kind] = mode
    for kind, mode in modes.items():
        if mode not in MODES:
            raise ValueError(f"{kind}={mode}: the mode is one of {', '.join(MODES)}")
    return ",".join(f"{k}={m}" for k, m in modes.items())


MODES = ("redact", "hash", "count", "off")


class PiiConfig(StageConfig):
    text_column: str = Field("text", description="the column scanned and rewritten")
    source_column: str | None = Field(
        None, description="a column whose values the report counts findings by (e.g. source)"
    )
    mode: str = Field(
        "all=redact",
        validate_default=True,
        description="per kind (secret, email, iban, credit_card, ip, phone): redact "
        "(<EMAIL>), hash (<EMAIL:hmac>), count or off; e.g. email=hash,ip=count or all=count",
    )
    hash_key_file: str | None = Field(
        None,
        description=f"file whose bytes key the hash mode's HMAC (else ${KEY_ENV}); never "
        "written to outputs",
    )
    count_columns: bool = Field(False, description="add pii_<kind> count columns")
    replace_columns: bool = Field(
        False,
        description="with count_columns: overwrite input columns named pii_<kind> that no "
        "earlier pii wrote (their values are lost); without it such a column stops the stage",
    )
    _key: bytes | None = PrivateAttr(None)

    @field_validator("mode", mode="before")
    @classmethod
    def _parse_mode(cls, value: Any) -> str:
        return parse_modes(value)

    @property
    def modes(self) -> dict[str, str]:
        return dict(pair.split("=") for pair in self.mode.split(","))

    @model_validator(mode="after")
    def _source_is_not_the_text(self) -> PiiConfig:
        if self.source_column is not None and self.source_column == self.text_column:
            raise ValueError(
                "source_column is the text column: the report's per-source counts would be "
                "keyed by the texts, values found included; name a column such as source"
            )
        return self

    @model_validator(mode="after")
    def _read_key(self) -> PiiConfig:
        """The key is read when the config is checked, so a missing key stops the run
        before any task; it is kept out of every dump of the config."""
        if "hash" in self.modes.values():
            self._key = load_key(self.hash_key_file)
        return self

    @model_serializer(mode="wrap")
    def _with_key_fingerprint(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self._key is not None:
            data["hash_key_fingerprint"] = pii_redact.key_fingerprint(self._key)
        return data

    @property
    def active(self) -> list[str]:
        return [k for k in pii.KINDS if self.modes[k] != "off"]


def load_key(path: str | None) -> bytes:
    if path is not None:
        try:
            key = Path(path).expanduser().read_bytes().strip()
        except OSError as exc:
            raise DataprepError(f"cannot read hash key file {path}: {exc.strerror}") from None
        where = f"hash key file {path}"
    else:
        key = os.environ.get(KEY_ENV, "").encode()
        where = f"${KEY_ENV}"
        if not key:
            raise DataprepError(
                f"mode hash needs a key: pass hash_key_file (--hash-key-file) or set ${KEY_ENV}"
            )
    if len(key) < MIN_KEY_BYTES:
        raise DataprepError(f"{where} holds {len(key)} bytes; a hash key needs at least 16")
    return key


@recordable
@dataclass(frozen=True)
class PiiStats:
    """A task's findings per source value and kind (counts only), seconds and text bytes."""

    by_source: dict[str, dict[str, int]]
    seconds: float
    text_bytes: int


class PiiStage(Stage[PiiConfig]):
    name = "pii"
    Config = PiiConfig
    help = "Redact, hash or count e-mails, phones, IPs, card numbers, IBANs and secrets."

    def details(self, report: dict[str, Any]) -> list[str]:
        found = report.get("findings") or {}
        docs = report.get("documents_with") or {}
        each = {k: f"{n:,} in {docs.get(k, 0):,} docs" for k, n in found.items() if n}
        return [f"findings: {brief(each) or 'none'} ({report.get('mb_per_s', 0)} MB/s)"]

    def column_params(self, config: PiiConfig) -> dict[str, list[str]]:
        return text_and_source_columns(config)

    def check_plan(self, config: PiiConfig, schema: pa.Schema, history: History) -> None:
        """Recipe validation: a clashing column stops the recipe before anything runs."""
        check_clash(config, schema, history)

    def output_schema(self, config: PiiConfig, schema, inputs=()) -> pa.Schema | None:
        """With count columns: an earlier pass's pii_<kind> columns give way to this pass's
        (a second column of one name makes a dataset pyarrow cannot read)."""
        if schema is None or not config.count_columns:
            return schema
        names = count_column_names(config)
        schema = pa.schema([f for f in schema if f.name not in names])
        for name in names:
            schema = schema.append(pa.field(name, pa.int32()))
        return schema

    def run(self, ctx: StageContext[PiiConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        require_text(source.schema, config.text_column)
        check_clash(config, source.schema, [(e.stage, e.config) for e in source.lineage])
        tasks = ctx.shard_tasks("pii", lambda s: s.partition)  # the output keeps the tag
        t0 = time.perf_counter()
        results = ctx.map(pii_task, tasks)
        wall = time.perf_counter() - t0
        shards = [s for r in results for s in r.shards]
        schema = self.output_schema(config, source.schema)
        assert schema is not None
        report = summarise(results, config, ctx.write_options.encryption is not None, wall)
        report["rows_in"] = source.rows
        return StageResult(shards, schema, report)


def count_column_names(config: PiiConfig) -> list[str]:
    return [f"pii_{kind}" for kind in config.active]


def counted_before(history: History) -> set[str]:
    """Count columns an earlier `pii --count-columns` wrote (its config, as lineage keeps it)."""

    def written(config: dict[str, Any]) -> list[str]:
        if not config.get("count_columns"):
            return []
        modes = dict(pair.split("=") for pair in parse_modes(config.get("mode", "")).split(","))
        return [f"pii_{kind}" for kind, mode in modes.items() if mode != "off"]

    return written_before(history, "pii", written)


def check_clash(config: PiiConfig, schema: pa.Schema, history: History) -> None:
    """A user's column named like a count column is data no one asked to delete: one sentence
    naming it, unless `replace_columns` asks for it or an earlier pii wrote it."""
    if config.count_columns and not config.replace_columns:
        check_added(
            count_column_names(config),
            schema,
            counted_before(history),
            stage="pii",
            named=("a count column", "count columns"),
            leave_out=(
                "turn its kind off (--mode KIND=off)",
                "turn their kinds off (--mode KIND=off)",
            ),
        )


def pii_task(task: Task[PiiConfig, int | None]) -> TaskResult[PiiStats]:
    """Scan one shard (the payload: its partition tag, kept with its pNNNNN- name)."""
    config: PiiConfig = task.config
    out = task.out / shard_name(task.index, task.payload)
    found: dict[str, int] = {}
    by_source: dict[str, dict[str, int]] = {}
    seconds = 0.0
    text_bytes = 0
    writer: ShardWriter | None = None
    try:
        for table in task.read_options.row_groups(task.inputs[0]):
            t0 = time.perf_counter()
            texts = table.column(config.text_column).combine_chunks()
            text_bytes += int(pc.sum(pc.binary_length(texts)).as_py() or 0)
            new_texts, counts = scan(texts, config)
            table = table.set_column(
                table.schema.get_field_index(config.text_column),
                table.schema.field(config.text_column),
                new_texts,
            )
            if config.count_columns:
                stale = [n for n in count_column_names(config) if n in table.column_names]
                table = table.drop_columns(stale)
            for kind, per_doc in counts.items():
                found[kind] = found.get(kind, 0) + int(per_doc.sum())
                found[f"docs.{kind}"] = found.get(f"docs.{kind}", 0) + int((per_doc > 0).sum())
                if config.count_columns:
                    table = table.append_column(f"pii_{kind}", pa.array(per_doc, pa.int32()))
            if config.source_column:
                tally_sources(by_source, source_values(table, config.source_column), counts)
            seconds += time.perf_counter() - t0
            if writer is None:
                writer = ShardWriter(out, table.schema, task.write_options, task.payload)
            writer.write(table)
            tick(rows=table.num_rows)
        if writer is None:  # a shard without row groups: still one (empty) output shard
            schema = PiiStage().output_schema(config, task.read_options.schema(task.inputs[0]))
            writer = ShardWriter(out, schema, task.write_options, task.payload)
        entry = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return TaskResult([entry], found, None, PiiStats(by_source, seconds, text_bytes))


def scan(texts: pa.Array, config: PiiConfig) -> tuple[pa.Array, dict[str, np.ndarray]]:
    """Rewritten texts and per-document counts per active kind. Each detector's RE2
    pre-check runs over the whole column; Python only sees documents some pre-check matched,
    runs only those detectors on them, and windowed ones only around the matches (RE2 marks
    them with NULs, which `prefilter_hits` turns into spans)."""
    n = len(texts)
    counts = {kind: np.zeros(n, np.int32) for kind in config.active}
    chosen = pii.detectors_for(config.active)
    if not chosen or n == 0:
        return texts, counts
    hits = np.stack([_matches(texts, pii.DETECTORS[i].prefilter) for i in chosen])
    rows = np.flatnonzero(hits.any(axis=0))
    if not len(rows):
        return texts, counts
    subset = texts.take(pa.array(rows))
    has_nul = _matches(subset, "\x00")
    marked: dict[int, dict[int, str]] = {}  # detector -> candidate -> its marked text
    for j, index in enumerate(chosen):
        detector = pii.DETECTORS[index]
        mine = np.flatnonzero(hits[j, rows])
        if detector.windowed and len(mine):
            pattern = "(?:" + detector.prefilter + ")"
            texts_j = subset.take(pa.array(mine))
            done = pc.replace_substring_regex(texts_j, pattern, "\x00\\0\x00").to_pylist()
            marked[j] = dict(zip(mine.tolist(), done, strict=True))
    rewritten = []
    modes = config.modes
    for k, (row, text) in enumerate(zip(rows.tolist(), subset.to_pylist(), strict=True)):
        mine = [j for j in range(len(chosen)) if hits[j, row]]
        windows = None
        if not has_nul[k]:
            windows = {chosen[j]: pii.prefilter_hits(marked[j][k]) for j in mine if j in marked}
            # (every j in `mine` with a marked dict holds k: `mine` comes from the same hits)
        spans = pii.find(text, [chosen[j] for j in mine], windows)
        for span in spans:
            counts[span.kind][row] += 1
        rewritten.append(pii_redact.rewrite(text, spans, modes, config._key))
    mask = np.zeros(n, bool)
    mask[rows] = True
    new = pc.replace_with_mask(texts, pa.array(mask), pa.array(rewritten, texts.type))
    return new, counts


def _matches(texts: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.match_substring_regex(texts, pattern), False))


def tally_sources(
    by_source: dict[str, dict[str, int]], sources: list[str], counts: dict[str, np.ndarray]
) -> None:
    for kind, per_doc in counts.items():
        for row in np.flatnonzero(per_doc).tolist():
            acc = by_source.setdefault(sources[row], {})
            acc[kind] = acc.get(kind, 0) + int(per_doc[row])


def summarise(
    results: list[TaskResult[PiiStats]], config: PiiConfig, encrypted: bool, wall: float
) -> dict[str, Any]:
    """Counts only: never a value found (nor, for an encrypted input, source names)."""
    totals: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            totals[key] = totals.get(key, 0) + value
    by_source: dict[str, dict[str, int]] = {}
    for result in results:
        for source, kinds in result.payload.by_source.items():
            acc = by_source.setdefault(source, {})
            for kind, value in kinds.items():
                acc[kind] = acc.get(kind, 0) + value
    seconds = sum(r.payload.seconds for r in results)
    text_bytes = sum(r.payload.text_bytes for r in results)
    report: dict[str, Any] = {
        "modes": config.modes,
        "findings": {k: totals.get(k, 0) for k in config.active},
        "documents_with": {k: totals.get(f"docs.{k}", 0) for k in config.active},
        "text_bytes": text_bytes,
        "mb_per_s_per_task": round(text_bytes / 1e6 / seconds, 2) if seconds else 0.0,
        "mb_per_s": round(text_bytes / 1e6 / wall, 2) if wall else 0.0,
    }
    if config.source_column:
        if encrypted:
            report["by_source"] = "not reported: the input is encrypted"
        else:
            report["by_source"] = dict(sorted(by_source.items()))
    return report
