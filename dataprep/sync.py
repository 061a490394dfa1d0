"""`sync`: copy a dataset to another store (local or any URI), incrementally and verified.

What is copied: every shard the source manifest lists, every side file beside them (report,
quarantine, tokenizer, anything else not under the work folder), then the manifest, last, so
a reader at DST never sees a manifest that points at a shard not yet there. Before any file
already at DST is replaced (a shard or key material its current manifest may rely on), that
manifest is removed (as a stage's swap does): DST is then "not a dataset" until the new
manifest lands, never a wrong one.

Every copied file is hashed while it streams (a source shard that does not match its own
manifest is refused) and re-read at DST afterwards; only a copy whose xxh3-128 matches is kept.

Incremental without downloading: DST keeps `.sync.json`, a record of each file sync verified
there (xxh3-128, size, and the modification time DST reported just after the check). A file
whose listed size and mtime still equal its record, and whose recorded checksum is the one
wanted, is skipped; the listing is one request however many shards there are. A file DST holds
without a record (a killed sync, a copy made by other tools) is re-read and hashed, and skipped
when it matches; `checksum=True` re-reads every file (rsync's -c). The record is rewritten every
few seconds while copying, so a killed sync resumes with only its last files re-read.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import xxhash

from dataprep.errors import DataprepError, VerifyError, short_error
from dataprep.layout import MANIFEST, MANIFEST_NAMES, manifest_file
from dataprep.lock import OutputLock
from dataprep.manifest import Manifest
from dataprep.storage import BLOCK, StoragePath, as_path, canonical, file_checksum, spool_file
from dataprep.storage import within as within_place
from dataprep.sync_record import Record, Wanted, is_dataset_file, is_side_file, listing


class Progress(Protocol):
    """Who watches a sync (the CLI's bar): the bytes to bring, then each step."""

    def start(self, files: int, total_bytes: int) -> None: ...

    def advance(self, copied: int, skipped: int) -> None: ...


@dataclass
class SyncResult:
    src: str
    dst: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # files at DST that are not SRC's, left alone
    bytes_copied: int = 0
    seconds: float = 0.0
    manifest_written: bool = False

    @property
    def mb_per_s(self) -> float:
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "copied": len(self.copied),
            "skipped": len(self.skipped),
            "deleted": len(self.deleted),
            "bytes": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 1),
            "manifest_written": self.manifest_written,
            "copied_files": self.copied,
            "deleted_files": self.deleted,
            "kept_files": self.kept,
        }


class CopyMismatch(VerifyError):
    """A copy whose bytes are not the ones a manifest promises (source or target side)."""


# -- one file ---------------------------------------------------------------------------------


def copy_checked(
    source: StoragePath,
    target: StoragePath,
    want: Wanted,
    on_bytes: Callable[[int], None] | None = None,
    stage_remote: bool = False,
    before_publish: Callable[[], None] | None = None,
) -> None:
    """Copy `source` to `target`, keeping the copy only if its bytes hash to `want`.

    The source is hashed as it streams. A local target is written under a temp name, re-read,
    and only then renamed into place. A remote target appears whole when its upload closes and
    is then re-read (and deleted if it does not match); `stage_remote` first builds it in a
    local spool file and uploads only a checked copy, so a bad source never replaces what is
    there (repair, and sync replacing a file). `before_publish` runs once the source checked
    out, just before the target changes.
    """
    local = target.local()
    publish = before_publish or (lambda: None)
    if local is not None:
        tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            if source.local() is not None:  # the kernel copies (sendfile): ~7x a read/write loop
                local.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(str(source), tmp)
                _check(StoragePath(tmp), want, f"{source} does not match its manifest entry")
                if on_bytes is not None:
                    on_bytes(want.bytes)
            else:
                _stream(source, StoragePath(tmp), want, on_bytes)
                _check(StoragePath(tmp), want, f"the copy at {target} did not read back as written")
            publish()
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return
    if stage_remote:
        spool = spool_file(want.name)
        try:
            _stream(source, StoragePath(spool), want, on_bytes)
            publish()
            target.upload_from(spool)
        finally:
            spool.unlink(missing_ok=True)
    else:
        publish()
        try:
            _stream(source, target, want, on_bytes)
        except CopyMismatch:
            target.unlink()
            raise
    try:
        _check(target, want, f"the copy at {target} did not read back as written")
    except CopyMismatch:
        target.unlink()
        raise


def _stream(
    source: StoragePath, target: StoragePath, want: Wanted, on_bytes: Callable[[int], None] | None
) -> None:
    hasher = xxhash.xxh3_128()
    size = 0
    with source.open_stream() as src, target.open_output() as dst:
        while block := src.read(BLOCK):
            hasher.update(block)
            dst.write(block)
            size += len(block)
            if on_bytes is not None:
                on_bytes(len(block))
    if size != want.bytes or hasher.hexdigest() != want.xxh3_128:
        raise CopyMismatch(
            f"{source} does not match the manifest's checksum and size for {want.name} "
            f"({size} bytes, xxh3 {hasher.hexdigest()}; want {want.bytes}, {want.xxh3_128}); "
            "not copied"
        )


def _check(path: StoragePath, want: Wanted, problem: str) -> None:
    """Raise `CopyMismatch` saying `problem` unless `path` holds `want`'s bytes."""
    size = path.size()
    digest = file_checksum(path) if size == want.bytes else ""
    if size != want.bytes or digest != want.xxh3_128:
        raise CopyMismatch(f"{problem} (size {size}, want {want.bytes}); not kept")


# -- the whole dataset ------------------------------------------------------------------------


def plan(src: StoragePath, manifest: Manifest) -> list[Wanted]:
    """The files DST must hold: the shards (as the manifest records them), then side files
    (hashed here, at the source)."""
    wanted = [Wanted(s.path, s.bytes, s.xxh3_128) for s in manifest.shards]
    shards = {s.path for s in manifest.shards}
    for name, (size, _) in sorted(listing(src).items()):
        if name not in shards and is_side_file(name):
            wanted.append(Wanted(name, size, file_checksum(src / name), shard=False))
    return wanted


def sync_dataset(
    src: str | Path | StoragePath,
    dst: str | Path | StoragePath,
    *,
    workers: int = 8,
    delete: bool = False,
    checksum: bool = False,
    progress: Progress | None = None,
) -> SyncResult:
    """Make DST hold SRC's dataset, copying only what is missing or different (see module doc).

    Raises `VerifyError` naming every file that could not be copied; DST's manifest is then
    not written, and rerunning resumes.
    """
    source, target = as_path(src), as_path(dst)
    _check_places(source, target, workers)
    target.mkdir()
    with OutputLock(target) as lock:  # one writer per DST: not a stage and a sync at once
        return _sync(source, target, workers, delete, checksum, progress, lock)


def _sync(
    source: StoragePath,
    target: StoragePath,
    workers: int,
    delete: bool,
    checksum: bool,
    progress: Progress | None,
    lock: OutputLock,
) -> SyncResult:
    started = time.perf_counter()
    raw = manifest_file(source)
    if not raw.is_file():
        from dataprep.layout import read_manifest

        read_manifest(source)  # says why: no directory, or no manifest
    manifest_bytes = raw.read_bytes()
    try:
        manifest = Manifest.from_json(json.loads(manifest_bytes), str(raw))
    except ValueError as exc:
        raise DataprepError(f"{raw} is not valid JSON ({short_error(exc)})") from None
    wanted = plan(source, manifest)
    if progress is not None:
        progress.start(len(wanted), sum(w.bytes for w in wanted))
    at_dst = listing(target)
    for name in at_dst:
        if "/" not in name and name.startswith(".") and ".tmp-" in name:
            (target / name).unlink()  # a killed sync's partial file
    record = Record(target)
    unmarked = threading.Event()
    unmark_lock = threading.Lock()
    result = SyncResult(str(source), str(target))

    def unmark() -> None:
        """Before a file at DST changes: its manifest is no longer to be trusted."""
        with unmark_lock:
            if not unmarked.is_set():
                for name in MANIFEST_NAMES:
                    (target / name).unlink()
                unmarked.set()

    def bring(want: Wanted) -> int:
        """Make DST hold `want`; returns the bytes copied (0 when it was already there)."""
        stat = at_dst.get(want.name)
        if stat is not None and stat[0] == want.bytes:
            if not checksum and record.matches(want, stat):
                return 0
            if file_checksum(target / want.name) == want.xxh3_128:
                record.note(want, stat)
                return 0
        on_bytes = (lambda n: progress.advance(n, 0)) if progress else None
        replacing = stat is not None  # DST's manifest may rely on that file (or its keys)
        copy_checked(
            source / want.name,
            target / want.name,
            want,
            on_bytes,
            stage_remote=replacing,  # a bad source must not replace a good backup copy
            before_publish=unmark if replacing else None,
        )
        record.note(want)
        return want.bytes

    failures: list[str] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync")
    try:
        futures = {pool.submit(bring, w): w for w in wanted}
        for future in as_completed(futures):
            want = futures[future]
            try:
                copied = future.result()
            except (DataprepError, OSError) as exc:
                failures.append(f"{want.name}: {short_error(exc)}")
                continue
            if copied:
                result.copied.append(want.name)
                result.bytes_copied += copied
            else:
                result.skipped.append(want.name)
                if progress is not None:
                    progress.advance(0, want.bytes)
            record.save()
    finally:  # Ctrl-C: finish the copies in flight, start no more, keep what they did
        pool.shutdown(wait=True, cancel_futures=True)
        record.save(force=True)
    if failures:
        raise VerifyError(
            f"sync to {target} left {len(failures)} file(s) uncopied, so its manifest was not "
            f"written ({'; '.join(sorted(failures)[:5])}); fix the source and rerun"
        )
    if target.local() is not None and result.copied:  # durable before the manifest says so
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_fsync, [target / name for name in result.copied]))
    lock.check()
    current = target / MANIFEST
    if unmarked.is_set() or not current.is_file() or current.read_bytes() != manifest_bytes:
        current.write_atomic(manifest_bytes)  # last: everything it lists is in place
        result.manifest_written = True
    _tidy(target, {w.name for w in wanted}, at_dst, delete, result)
    result.copied.sort()
    result.skipped.sort()
    result.seconds = time.perf_counter() - started
    return result


def _fsync(path: StoragePath) -> None:
    """Flush one copied local file to disk (once per sync, not per write: the copies are
    written back by the kernel meanwhile, so this mostly waits for what is left)."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tidy(
    target: StoragePath,
    names: set[str],
    at_dst: dict[str, tuple[int, int]],
    delete: bool,
    result: SyncResult,
) -> None:
    """Files at DST that SRC does not have: removed with `delete` when they are dataset files
    (after the new manifest, which does not list them), otherwise listed as kept."""
    for name in sorted(at_dst):
        if name in names or not is_side_file(name):
            continue
        if delete and is_dataset_file(name):
            (target / name).unlink()
            result.deleted.append(name)
        else:
            result.kept.append(name)


def _check_places(source: StoragePath, target: StoragePath, workers: int) -> None:
    if workers < 1:
        raise DataprepError(f"--workers must be 1 or more, not {workers}")
    a, b = canonical(str(source)), canonical(str(target))
    if within_place(a, b) or within_place(b, a):
        raise DataprepError(
            f"sync source {source} and destination {target} are the same place or one holds "
            "the other; choose a destination outside the source"
        )
