"""Lineage from a model to its data: the chain from a checkpoint (or a run, or a dataset) back
to the raw files, with each dataset's manifest digest and each stage's rows in and out.

A manifest's lineage lists every stage that led to it (oldest first), each entry with the
digest of the input it read and, since `dataprep lineage`, where that input was and how many
rows went in and out (`flow` records them). The walk reads an input dataset's own manifest
when it still exists with the digest its consumer recorded, and otherwise goes on from the
entries alone, saying the input is "not available" (deleted, changed, or raw files, which are
identified by the digest of their paths, sizes and mtimes the first stage recorded).
Checkpoints record their data's digest and lineage (`dataprep.train.provenance`), so a model
still has a chain after its datasets are gone. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.manifest import LineageEntry, Manifest
from dataprep.storage import StoragePath, as_path
from dataprep.uri import split_query

CHECKPOINT_STATE = "train_state.json"  # what dataprep.train.checkpoint writes (no torch here)
CHECKPOINT_PREFIX = "step-"
RAW_PATHS_KEPT = 32  # a first stage's raw paths recorded in the lineage (all are counted)


# -- recording (the runner, when a stage finishes) --------------------------------------------


def flow(
    input_root: StoragePath | None,
    inputs: Sequence[str],
    input_manifest: Manifest | None,
    report: dict[str, Any],
) -> dict[str, Any]:
    """The lineage entry's `input`, `raw_inputs`, `input_files`, `input_bytes`, `rows_in` and
    `rows_out` for a stage run: what lets `dataprep lineage` find the input again."""
    rows_out = report.get("rows_out")
    if input_root is not None and input_manifest is not None:
        return {"input": location(input_root), "rows_in": input_manifest.rows, "rows_out": rows_out}
    given = [redacted(str(p)) for p in inputs[:RAW_PATHS_KEPT]]
    relative = any(as_path(p).local() is not None and not os.path.isabs(p) for p in given)
    return {
        "raw_inputs": given,  # as given: the stage's digest was taken over these paths
        "cwd": os.getcwd() if relative else None,
        "input_files": report.get("inputs"),
        "input_bytes": report.get("input_bytes"),
        "rows_in": report.get("rows_in"),
        "rows_out": rows_out,
    }


def location(path: str | Path | StoragePath) -> str:
    """An absolute local path, or the URI without secrets: valid from any working directory,
    and safe in a manifest that is shared."""
    where = as_path(path)
    local = where.local()
    return os.path.abspath(local) if local is not None else redacted(str(where))


def redacted(uri: str) -> str:
    """`uri` without query parameters that carry credentials (pyarrow takes `access_key`,
    `secret_key`, `session_token` in an S3 URI); `endpoint_override`, `region`... stay."""
    base, query = split_query(uri)
    if not query or as_path(uri).local() is not None:
        return uri
    secret = ("key", "secret", "token", "password", "credential", "sig")
    kept = [
        (k, v)
        for k, v in parse_qsl(query[1:], keep_blank_values=True)
        if not any(word in k.lower() for word in secret)
    ]
    return base + (f"?{urlencode(kept)}" if kept else "")


# -- walking ----------------------------------------------------------------------------------


def of(path: str | Path) -> dict[str, Any]:
    """The lineage of a checkpoint, a run directory (its newest checkpoint) or a dataset."""
    where = as_path(path)
    local = where.local()
    if local is not None and (local / CHECKPOINT_STATE).is_file():
        return checkpoint_node(local)
    if local is not None and (local / "checkpoints").is_dir():
        found = _checkpoints(local)
        if not found:
            raise DataprepError(f"run directory {local} has no complete checkpoint yet")
        node = checkpoint_node(found[-1])
        node["kept_checkpoints"] = [p.name for p in found]
        return node
    if dataset.is_dataset(where):
        return dataset_node(where)
    if local is not None and not local.exists():
        raise DataprepError(f"{local} does not exist")
    raise DataprepError(
        f"{where} is not a checkpoint ({CHECKPOINT_STATE}), a run directory (checkpoints/) or a "
        f"dataset directory ({dataset.MANIFEST})"
    )


def dataset_node(path: str | Path | StoragePath) -> dict[str, Any]:
    """A dataset that exists, and the chain behind it."""
    return _present(location(path), dataset.read_manifest(path))


def checkpoint_node(path: Path) -> dict[str, Any]:
    """A checkpoint: its step, run, dataprep version, config, reader position and data."""
    try:
        state = json.loads((path / CHECKPOINT_STATE).read_text())
    except (OSError, ValueError) as exc:
        raise DataprepError(f"cannot read {path / CHECKPOINT_STATE}: {exc}") from None
    if not isinstance(state, dict):
        raise DataprepError(f"{path / CHECKPOINT_STATE} is not a checkpoint's train state")
    config = state.get("config") or {}
    recorded = state.get("data") or {}
    data: dict[str, Any] = {}
    run = os.path.abspath(path.parent.parent)
    out = config.get("out")  # where the run was: its data is looked for relative to it
    was = out if isinstance(out, str) and os.path.isabs(out) else None
    for role, key in (("train", "data"), ("eval", "eval_dir")):
        if role in recorded:
            data[role] = _recorded_data(recorded[role], run, was) if recorded[role] else None
        elif config.get(key):  # a checkpoint from before the data was recorded
            data[role] = _unrecorded_data(config[key])
        else:
            data[role] = None
    return {
        "kind": "checkpoint",
        "path": os.path.abspath(path),
        "run": run,
        "step": state.get("step"),
        "dataprep_version": state.get("dataprep_version"),
        "world_size": state.get("world_size"),
        "reader": state.get("reader"),
        "config": config,
        "data": data,
        "data_changes": state.get("data_changes") or [],
        "privacy": state.get("privacy"),  # DP-SGD's budget and noise (None: not a DP run)
    }


def _checkpoints(run: Path) -> list[Path]:
    folder = run / "checkpoints"
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / CHECKPOINT_STATE).is_file()]
    return sorted(p for p in found if p.name[len(CHECKPOINT_PREFIX) :].isdigit())


def _recorded_data(record: dict[str, Any], run: str, was: str | None) -> dict[str, Any]:
    """The data a checkpoint recorded: as it is now if unchanged (also where it would be had
    it moved with the run, `was` the run's recorded place), else from the record."""
    where, digest = record.get("path"), record.get("digest")
    manifest, reason = _load(where, digest)
    if manifest is not None:
        return _present(where, manifest)
    for moved in _moved_candidates(where, run, was) if where and digest else []:
        found, _ = _load(moved, digest)
        if found is not None:
            return _present(moved, found, recorded=where)
    entries = [LineageEntry.model_validate(e) for e in record.get("lineage") or []]
    node = _absent(entries, where, digest, record.get("rows"), reason)
    node.update({k: record[k] for k in ("shards", "bytes") if k in record})
    return node


def _unrecorded_data(where: str) -> dict[str, Any]:
    try:
        node = dataset_node(where)
    except DataprepError as exc:
        return {"kind": "dataset", "path": where, "available": False, "note": str(exc)}
    node["note"] = (
        "the checkpoint does not record its data's digest (written before dataprep recorded "
        "it): this is the dataset at that path now"
    )
    return node


def _present(where: str, manifest: Manifest, recorded: str | None = None) -> dict[str, Any]:
    """A dataset found at `where`; `recorded`: where its consumer recorded it, when that was
    elsewhere (the tree was moved or copied): its own inputs are then looked for where they
    sit relative to it."""
    node = {
        "kind": "dataset",
        "path": where,
        "available": True,
        "digest": manifest.digest(),
        "rows": manifest.rows,
        "shards": len(manifest.shards),
        "bytes": manifest.bytes,
    }
    if recorded is not None and recorded != where:
        node["recorded_path"] = recorded
        node["note"] = f"moved: recorded at {recorded}, found here with the same digest"
    return node | _history(list(manifest.lineage), where, recorded)


def _absent(
    entries: list[LineageEntry], where: str | None, digest: str | None, rows: Any, reason: str
) -> dict[str, Any]:
    """A dataset that is gone (or changed): what its consumer and its own lineage recorded."""
    if rows is None and entries:
        rows = entries[-1].rows_out
    node = {
        "kind": "dataset",
        "path": where,
        "available": False,
        "note": f"not available: {reason}",
        "digest": digest,
        "rows": rows,
    }
    return node | _history(entries)


def _history(
    entries: list[LineageEntry], here: str | None = None, recorded: str | None = None
) -> dict[str, Any]:
    """The stage that wrote a dataset (the last entry) and the input it read; `here` is where
    the dataset is now (None: gone), `recorded` where its consumer recorded it."""
    if not entries:
        return {"stage": None, "inputs": []}
    last, before = entries[-1], entries[:-1]
    return {"stage": _stage(last), "inputs": [_input_of(last, before, here, recorded)]}


def _stage(entry: LineageEntry) -> dict[str, Any]:
    return {
        "op": entry.stage,
        "id": entry.id,
        "version": entry.version,
        "finished": entry.finished,
        "config_digest": entry.config_digest,
        "config": entry.config,
        "rows_in": entry.rows_in,
        "rows_out": entry.rows_out,
    }


def _input_of(
    entry: LineageEntry, before: list[LineageEntry], here: str | None, recorded: str | None
) -> dict[str, Any]:
    if _reads_raw(entry, first=not before):
        check, note = _recheck(entry)
        moved_cwd = _moved_cwd(entry.cwd, here, recorded) if check != "unchanged" else None
        if moved_cwd is not None and _recheck(entry, moved_cwd)[0] == "unchanged":
            check, note = _recheck(entry, moved_cwd)
            note += f" (moved with the datasets: read from {moved_cwd}, recorded {entry.cwd})"
            entry = entry.model_copy(update={"cwd": moved_cwd})
        return {
            "kind": "raw",
            "available": False,  # raw files, not a dataset: the chain ends here
            "check": check,
            "note": note,
            "digest": entry.input_digest,
            "paths": [_joined(entry.cwd, p) for p in entry.raw_inputs or []] or None,
            "files": entry.input_files,
            "bytes": entry.input_bytes,
            "rows": entry.rows_in,
        }
    where = entry.input
    if where is None:
        reason = f"its location was not recorded (written by dataprep {entry.version})"
    else:
        manifest, reason = _load(where, entry.input_digest)
        if manifest is not None:
            return _present(where, manifest)
        for moved in _moved_candidates(where, here, recorded):
            found, _ = _load(moved, entry.input_digest)
            if found is not None and entry.input_digest is not None:
                return _present(moved, found, recorded=where)
    return _absent(before, where, entry.input_digest, entry.rows_in, reason)


def _moved_candidates(where: str, here: str | None, recorded: str | None) -> list[str]:
    """Where an input recorded at `where` would be if its consumer, now at `here`, was moved
    or copied with it: at the same relative place when the consumer's own old location is
    known (`recorded`), else beside it or beside its folder (a recipe's `${root}/<id>/`).
    Only a dataset with the recorded digest is taken, so a guess never forges a chain."""
    if here is None or here == recorded:
        return []
    here_path, old = as_path(here), as_path(where)
    out = []
    if recorded is not None:
        rel = posixpath.relpath(_plain(old), posixpath.dirname(_plain(as_path(recorded))))
        out.append(_join(here_path.parent, rel))
    parts = _plain(old).rstrip("/").split("/")
    out.append(_join(here_path.parent, parts[-1]))
    if len(parts) > 1:
        out.append(_join(here_path.parent.parent, "/".join(parts[-2:])))
    return [c for c in dict.fromkeys(out) if c != where]


def _plain(path: StoragePath) -> str:
    """The path part of a location (no scheme, no query), for relative arithmetic."""
    local = path.local()
    return (
        os.path.abspath(local)
        if local is not None
        else split_query(str(path))[0].split("://", 1)[-1]
    )


def _join(folder: StoragePath, rel: str) -> str:
    """`folder/rel` with `..` resolved, as a location string (local path or URI)."""
    local = folder.local()
    if local is not None:
        return os.path.normpath(os.path.join(local, rel))
    base, query = split_query(str(folder))
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, rel))}{query}"


def _moved_cwd(cwd: str | None, here: str | None, recorded: str | None) -> str | None:
    """The first stage's working directory shifted as its output was (relative raw paths
    given there then resolve where a moved project keeps them)."""
    if cwd is None or here is None or recorded is None or as_path(here).local() is None:
        return None
    rel = os.path.relpath(cwd, os.path.dirname(os.path.abspath(recorded)))
    return os.path.normpath(os.path.join(os.path.dirname(here), rel))


def _recheck(entry: LineageEntry, cwd: str | None = None) -> tuple[str, str]:
    """Whether the raw files still have the paths, sizes and mtimes the stage's digest was
    taken over (a stat each, no read): `unchanged`, `changed`, `missing` or `unchecked`;
    `cwd`: where relative paths are resolved, if not the recorded one."""
    paths = entry.raw_inputs
    what = "raw files, not a dataset (identified by the digest of their paths, sizes, mtimes)"
    if not paths or len(paths) >= RAW_PATHS_KEPT or entry.input_digest is None:
        return "unchecked", f"{what}; not re-checked: the paths given were not all recorded"
    from dataprep.stages import get_stage

    try:
        stage = get_stage(entry.stage)
        config = stage.Config.parse(entry.config, where=f"{entry.stage} options")
        with contextlib.chdir(cwd or entry.cwd or "."):
            now = stage.input_digest(config, paths)
    except (DataprepError, OSError, NotImplementedError) as exc:
        missing = "does not exist" in str(exc) or isinstance(exc, FileNotFoundError)
        if missing:
            return "missing", f"not available: {what}; some are gone ({exc})"
        return "unchecked", f"{what}; not re-checked ({exc})"
    if now == entry.input_digest:
        return "unchanged", f"{what}; unchanged since the stage read them"
    return "changed", f"not available: {what}; changed since the stage read them"


def _joined(cwd: str | None, path: str) -> str:
    if cwd is None or as_path(path).local() is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(cwd, path))


def _reads_raw(entry: LineageEntry, first: bool) -> bool:
    if entry.raw_inputs is not None or entry.input_files is not None:
        return True
    if entry.input is not None or not first:
        return False
    from dataprep.stages import get_stage

    try:
        return not get_stage(entry.stage).reads_dataset
    except DataprepError:  # a stage this version does not know (a plugin not installed)
        return True


def _load(where: str | None, digest: str | None) -> tuple[Manifest | None, str]:
    """The manifest at `where` if it still has `digest`, else (None, why not)."""
    if where is None:
        return None, "its location was not recorded"
    path = as_path(where)
    try:
        if not path.exists():
            return None, f"{where} was deleted"
        if not dataset.is_dataset(path):
            return None, f"{where} is no longer a finished dataset"
        manifest = dataset.read_manifest(path)
    except (DataprepError, OSError) as exc:
        return None, f"{where} cannot be read ({exc})"
    now = manifest.digest()
    if digest is not None and now != digest:
        return None, f"{where} has changed since (its digest is now {now})"
    return manifest, ""
