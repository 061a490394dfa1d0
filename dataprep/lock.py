"""One writer per output directory, on local disk and on object stores.

Two runs writing the same output corrupt it (rows lost or doubled, orphan shards), so a run
owns its output while it writes. Locally that is an `flock` on `OUT/.dataprep.lock`, which the
kernel drops when the process dies, so a killed run never leaves a stale lock. Object stores
have neither locks nor conditional writes through `pyarrow.fs`, so a run there writes a claim
object `OUT/.dataprep.lock-<time>-<host>-<pid>-<id>.json` (beside the shards, not in a folder
of its own: pyarrow leaves an empty folder marker behind when a folder's last object goes),
lists the claims, and owns the output only if its claim is alone. The owner rewrites its claim
every few seconds (a heartbeat); a claim not rewritten for `DATAPREP_LOCK_TIMEOUT` seconds
(default 300) belongs to a dead run and is removed, and so is, at once, a claim made on this
machine whose process is gone (same host, boot and pid namespace; no process with that pid and
start time), so a rerun after a kill does not wait. Ages use the store's own clock (object
modification times), so clock skew between machines does not matter. Every name starts with a
dot, so other tools still read OUT as Parquet.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, as_path, resolve

LOCK_NAME = ".dataprep.lock"


def is_lock_file(name: str) -> bool:
    """The local lock file or an object-store claim: not part of the dataset."""
    return name == LOCK_NAME or name.startswith(LOCK_NAME + "-")


DEFAULT_TIMEOUT_S = 300.0
_ATTEMPTS = 20  # claim rounds when several runs start at the same moment
_READ_RETRIES = 4  # reads of another run's claim before an unreadable one counts as held


def lock_timeout() -> float:
    """Seconds after which a claim that stopped heart-beating is stale (env override)."""
    try:
        return float(os.environ.get("DATAPREP_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise DataprepError("DATAPREP_LOCK_TIMEOUT must be a number of seconds") from None


class OutputLock:
    """Exclusive ownership of an output directory; `with OutputLock(out): ...`.

    The second run stops with one sentence naming the holder (host, pid, since when) and what
    to do if that run is gone.
    """

    def __init__(self, out: str | os.PathLike[str] | StoragePath):
        self.out = as_path(out)
        self.path = self.out / LOCK_NAME
        self._fd: int | None = None
        self._claim: StoragePath | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._lost = False

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        if self.out.remote:
            self._acquire_claim()
        else:
            self._acquire_flock()

    def check(self) -> None:
        """Before committing: stop if a long stall let another run take this output over."""
        if self._claim is not None and (self._lost or not self._claim.is_file()):
            raise DataprepError(
                f"output {self.out} was taken over by another run after this run's lock "
                f"heartbeat stalled for over {lock_timeout():.0f} s; nothing was committed, rerun"
            )

    def release(self) -> None:
        if self._fd is not None:
            _unlink_quietly(Path(str(self.path)))  # while still held: the next run makes a new one
            os.close(self._fd)
            self._fd = None
        if self._claim is not None:
            self._stop.set()
            if self._beat is not None:
                self._beat.join()
            self._claim.unlink()
            self._claim = None

    # -- local: flock ---------------------------------------------------------------------------
    def _acquire_flock(self) -> None:
        import fcntl

        path = Path(str(self.path))
        if path.parent.is_file():
            raise DataprepError(f"output {self.out} is a file; give a directory for the dataset")
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DataprepError(self._held_message(_current_holder(path))) from None
            # a releasing holder unlinks the file: lock the file that is there now, not that one
            try:
                current = os.stat(path)
            except FileNotFoundError:
                os.close(fd)
                continue
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
                break
            os.close(fd)
        info = json.dumps(_holder_info()).encode()
        os.pwrite(fd, info, 0)  # then cut: a reader never sees an empty file between the two
        os.ftruncate(fd, len(info))
        self._fd = fd

    # -- object stores: claims with a heartbeat -------------------------------------------------
    def _acquire_claim(self) -> None:
        timeout = lock_timeout()
        info = _holder_info()
        host = re.sub(r"[^A-Za-z0-9.-]", "_", info["host"])[:60]
        name = f"{time.time_ns():020d}-{host}-{info['pid']}-{uuid.uuid4().hex[:8]}"
        mine = self.out / f"{LOCK_NAME}-{name}.json"
        for _ in range(_ATTEMPTS):
            mine.write_atomic(json.dumps({**info, "state": "claiming"}))
            others = self._live_claims(mine, timeout)
            if not others:
                mine.write_atomic(json.dumps({**info, "state": "held"}))
                self._claim = mine
                self._start_heartbeat(info, max(0.2, timeout / 10))
                return
            mine.unlink()
            holder = next((o for o in others if o.get("state") == "held"), None)
            if holder is not None:
                raise DataprepError(self._held_message(holder))
            time.sleep(random.uniform(0.05, 0.5))  # others are claiming right now: back off
        raise DataprepError(self._held_message(others[0]))

    def _live_claims(self, mine: StoragePath, timeout: float) -> list[dict[str, Any]]:
        """The other claims whose last heartbeat is recent; stale ones are removed."""
        filesystem, folder = resolve(str(self.out))
        infos = filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        times = {
            i.base_name: i.mtime
            for i in infos
            if i.type == pafs.FileType.File and i.base_name.startswith(LOCK_NAME + "-")
        }
        now = times.get(mine.name) or datetime.now(UTC)  # the store's clock
        live = []
        for claim_name, mtime in sorted(times.items()):
            if claim_name == mine.name:
                continue
            claim = self.out / claim_name
            holder = _read_claim(claim)
            if holder is None:
                continue  # deleted since the listing
            beat = holder.get("heartbeat", 0)
            age = (now - mtime).total_seconds() if mtime else time.time() - beat
            if age > timeout or _holder_is_dead(holder):
                claim.unlink()  # its run stopped heart-beating, or its process is gone: dead
                continue
            live.append({**holder, "claim": str(claim)})
        return live

    def _start_heartbeat(self, info: dict[str, Any], every: float) -> None:
        claim = self._claim
        assert claim is not None

        def beat() -> None:
            while not self._stop.wait(every):
                try:
                    if not claim.is_file():  # judged stale by another run: never recreate it
                        self._lost = True
                        return
                    claim.write_atomic(
                        json.dumps({**info, "state": "held", "heartbeat": time.time()})
                    )
                except OSError:
                    pass  # a blip; the next beat retries long before the claim goes stale

        self._beat = threading.Thread(target=beat, name="dataprep-lock-heartbeat", daemon=True)
        self._beat.start()

    # -- messages -------------------------------------------------------------------------------
    def _held_message(self, holder: dict[str, Any] | None) -> str:
        if not holder:
            who = "another dataprep run (it is just starting)"
        elif "pid" not in holder:
            who = "another dataprep run (its claim could not be read)"
        else:
            who = (
                f"another dataprep run (host {holder.get('host')}, pid {holder.get('pid')}, "
                f"since {holder.get('since')})"
            )
        if self.out.remote:
            clear = (
                f"wait for it to finish; if that process is gone (on another machine), its "
                f"claim expires {lock_timeout():.0f} s after its last heartbeat, or delete "
                f"{holder.get('claim') if holder else self.out / (LOCK_NAME + '-*')}"
            )
        else:
            clear = (
                "wait for it to finish (the lock is freed when that process exits; if it sits on "
                f"a network filesystem and the process is gone, delete {self.path})"
            )
        return f"output {self.out} is in use by {who}: {clear}"


def _holder_info() -> dict[str, Any]:
    now = time.time()
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "heartbeat": now,
        "command": " ".join(sys.argv)[:300],
        **_process_identity(os.getpid()),
    }


def _process_identity(pid: int) -> dict[str, Any]:
    """What tells one process apart on this machine, beyond its pid: the boot, the pid
    namespace (containers that share a host name) and the process's start time (a reused
    pid). Empty where /proc does not say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.stat("/proc/self/ns/pid").st_ino
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return {}
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    started = int(fields[19])  # field 22: start time in clock ticks since boot
    if fields[0] == "Z":
        started = -1  # killed, not yet reaped by its parent: gone all the same
    return {"boot": boot, "pidns": pidns, "started": started}


def _holder_is_dead(holder: dict[str, Any]) -> bool:
    """True only when this machine can tell the claim's process is gone: same host, boot and
    pid namespace, and no process with its pid and start time. A claim from elsewhere (or from
    an older version, which records none of these) is judged by its heartbeat alone."""
    me = _process_identity(os.getpid())
    if not me or holder.get("host") != socket.gethostname():
        return False
    if holder.get("boot") != me["boot"] or holder.get("pidns") != me["pidns"]:
        return False
    if "started" not in holder or not isinstance(holder.get("pid"), int):
        return False
    return _process_identity(holder["pid"]).get("started") != holder["started"]


_HOLDER_WAIT_S = 2.0  # how long a refused run waits for a just-started holder to say who it is


def _current_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the local lock. A holder that won the lock a moment ago has not written its
    facts yet, and the file may still name a killed earlier holder (a kill leaves it behind):
    read again, briefly, until it names a live process, so the refusal names the real one."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holder = _read_json(path)
        if holder is not None and "pid" in holder and not _holder_is_dead(holder):
            return holder
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def _read_json(path: Path | StoragePath) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_claim(claim: StoragePath) -> dict[str, Any] | None:
    """Another run's claim; None only if it is gone.

    A claim that cannot be read or parsed is still a claim: some stores (moto's server, for
    one) serve a torn body while its owner rewrites it for a heartbeat, and treating that as
    "gone" let two runs own one output. After a few retries it counts as held by an unknown run.
    """
    for attempt in range(_READ_RETRIES):
        try:
            data = json.loads(claim.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            time.sleep(0.05 * (attempt + 1))
            continue
        if isinstance(data, dict):
            return data
    return {"state": "held"}


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
