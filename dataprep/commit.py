"""Where a stage writes, and how its result replaces a finished dataset without losing it.

A fresh output is written in place, as always. When OUT already holds a finished dataset, the
new run writes a whole dataset into `OUT/.dataprep/next/` (a normal stage output with its own
work folder, so a killed run resumes there), while readers of OUT keep the old one. Once that
staged manifest is written the new dataset has committed, and `swap` moves it into OUT: old
manifest out first, new files in, old files gone, new manifest last. A swap cut short by a kill
is finished by the next run (`roll_forward`): the staged manifest is the proof.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.lock import is_lock_file
from dataprep.storage import StoragePath, move, remove

STAGING = "next"  # under OUT's work folder
SWAP_RECORD = "swap.json"  # the names being moved, so a resumed swap knows what is new


def prepare(out: StoragePath, state: dict[str, Any]) -> StoragePath:
    """The directory this run writes into, ready to resume a killed run of the same state."""
    roll_forward(out)
    if not dataset.is_dataset(out):
        _prepare_dir(out, state, fresh_check=True)
        return out
    work = out / dataset.WORK_DIR
    for child in work.iterdir():  # leftovers of an earlier run; only `next/` may resume
        if child.name != STAGING:
            remove(child)
    target = work / STAGING
    _prepare_dir(target, state, fresh_check=False)
    return target


def publish(out: StoragePath, target: StoragePath, manifest: dataset.Manifest) -> None:
    """Commit the run's manifest; when it was staged, swap it into OUT."""
    dataset.write_manifest(target, manifest)  # last in target: its presence means finished
    (target / dataset.WORK_DIR).rmtree()
    if target != out:
        swap(out)


def roll_forward(out: StoragePath) -> None:
    """Finish a swap that a kill interrupted (a no-op when there is none)."""
    if dataset.is_dataset(out / dataset.WORK_DIR / STAGING):
        swap(out)


def swap(out: StoragePath) -> None:
    work = out / dataset.WORK_DIR
    staged = work / STAGING
    record = work / SWAP_RECORD
    try:
        names = json.loads(record.read_text())["names"]
    except (OSError, ValueError, KeyError, TypeError):
        skip = {*dataset.MANIFEST_NAMES, dataset.WORK_DIR}
        names = [c.name for c in staged.iterdir() if c.name not in skip]
        dataset.write_json_atomic(record, {"names": names})
    dataset.remove_manifest(out)  # first: from here on nobody trusts OUT until the end
    for name in names:
        source = staged / name
        if source.exists():
            move(source, out / name)
    keep = {*names, dataset.WORK_DIR}
    for child in out.iterdir():
        if child.name not in keep and not is_lock_file(child.name):
            remove(child)
    (out / dataset.MANIFEST).write_atomic(dataset.manifest_file(staged).read_bytes())
    work.rmtree()


def _prepare_dir(target: StoragePath, state: dict[str, Any], fresh_check: bool) -> None:
    """Resume a killed run with the same input+config; otherwise start from an empty dir."""
    state_path = target / dataset.WORK_DIR / "state.json"
    try:
        if json.loads(state_path.read_text()) == state:
            remove_temp_files(target)
            return
    except (OSError, ValueError):
        pass
    children = [c for c in target.iterdir() if not is_lock_file(c.name)]
    if children:
        names = {c.name for c in children}
        if fresh_check and not names & {*dataset.MANIFEST_NAMES, dataset.WORK_DIR}:
            raise DataprepError(
                f"output directory {target} is not empty and is not a dataprep dataset; "
                "choose a new output path"
            )
        dataset.remove_manifest(target)  # first: never trust what follows
        for child in children:
            remove(child)
    (target / dataset.WORK_DIR).mkdir()
    dataset.write_json_atomic(state_path, state)


def remove_temp_files(folder: StoragePath) -> None:
    for tmp in folder.glob(".*.tmp-*"):
        tmp.unlink()


def missing_folders(out: StoragePath) -> list[Path]:
    """The local folders a run on `out` will create, deepest first, from its work folder up
    (none on object stores, which have no folders to leave behind)."""
    if out.remote:
        return []
    missing = []
    path = Path(os.path.abspath(str(out))) / dataset.WORK_DIR
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def discard_unfinished(out: StoragePath, created: list[Path]) -> bool:
    """After a failed run: when this run created OUT's work folder and no task committed
    anything (only the run's state and scratch are there), remove the work folder and say so.
    A task record or shard a resume could use is kept; what existed before is never touched.
    """
    root = Path(os.path.abspath(str(out)))
    if not created or created[0] != root / dataset.WORK_DIR:
        return False
    for path in root.rglob("*"):
        if path.is_dir() or is_lock_file(path.name):
            continue
        inside = path.relative_to(root).parts
        if inside[0] != dataset.WORK_DIR or inside[1:2] == ("tasks",):
            return False
    shutil.rmtree(created[0], ignore_errors=True)
    return True


def remove_folders(folders: list[Path]) -> None:
    """Remove the folders a failed run created, deepest first, each only while empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return
