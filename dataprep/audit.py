"""The key-use audit log: one JSON line per use of a key, hash-chained and append-only.

Each record carries `prev`, the sha256 of the previous line's exact bytes (64 zeros for the
first), and `digest`, the sha256 of its own canonical JSON without `digest`. An edited record
fails its own digest; a removed, inserted or reordered record breaks the next record's `prev`;
a cut last line is not JSON. The chain proves order and integrity against edits made without
rewriting everything after them: whoever can rewrite the whole file can recompute it, which is
why `head()` gives a digest to keep elsewhere (`verify(..., head=)` checks it is still there).

Appends are serialised with an exclusive `flock` on the log itself (read the last line,
write one line with one `write` on an O_APPEND descriptor, fsync, unlock), so DataLoader
workers, DDP ranks and Ray tasks on one machine never interleave or lose records. Records are
rare (one per process, dataset, key ids, columns and outcome; see `audit_use`), so every one is
fsynced before the key is used. Who and what goes in a record is `dataprep.audit_use`'s job.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dataprep.errors import DataprepError, VerifyError

ENV = "DATAPREP_AUDIT_LOG"
SUFFIX = ".audit.jsonl"
FORMAT = 1
GENESIS = "0" * 64
FIELDS = ("v", "seq", "time", "outcome", "action", "dataset", "key_ids", "prev", "digest")
_TAIL = 4096


def log_path(key_file: str | os.PathLike[str]) -> Path:
    """Where uses of `key_file` are recorded: $DATAPREP_AUDIT_LOG, else beside the key file
    (the local key file is the KMS, where access is decided)."""
    chosen = os.environ.get(ENV)
    return Path(chosen).absolute() if chosen else Path(str(key_file) + SUFFIX).absolute()


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "digest"})).hexdigest()


def refused(path: Path, why: str) -> DataprepError:
    return DataprepError(
        f"cannot write the audit log {path} ({why}); every use of a key is recorded, so this "
        f"one is refused: point the log at a writable file with --audit-log PATH or {ENV}=PATH"
    )


def append(path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append one record (fields plus v, seq, prev, digest) under an exclusive lock; fsynced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise refused(path, exc.strerror or str(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last, ends_clean = _last_line(fd)
        record = {"v": FORMAT, "seq": _next_seq(path, fd, last), **fields}
        record["prev"] = hashlib.sha256(last).hexdigest() if last else GENESIS
        record["digest"] = record_digest(record)
        line = canonical(record) + b"\n"
        # a cut last line stays cut (verify names it); the new record starts on its own line
        os.write(fd, line if ends_clean else b"\n" + line)
        os.fsync(fd)
        return record
    except OSError as exc:
        raise refused(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)  # releases the lock


def _last_line(fd: int) -> tuple[bytes, bool]:
    """The last line's bytes (no newline) and whether the file ends with a newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b"", True
    step = _TAIL
    while True:
        start = max(0, size - step)
        tail = os.pread(fd, size - start, start)
        ends_clean = tail.endswith(b"\n")
        body = tail[:-1] if ends_clean else tail
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            return body[cut + 1 :], ends_clean
        step *= 4


def _next_seq(path: Path, fd: int, last: bytes) -> int:
    if not last:
        return 1
    try:
        return int(json.loads(last)["seq"]) + 1
    except (ValueError, KeyError, TypeError):  # a damaged last line: count lines instead
        with open(path, "rb") as f:
            return sum(1 for _ in f) + 1


# --- reading and verifying -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    why: str

    def __str__(self) -> str:
        return f"record {self.line} (line {self.line}): {self.why}"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataprepError(f"audit log {path} does not exist") from None
    except OSError as exc:
        raise DataprepError(f"cannot read audit log {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last record
    yield from enumerate(lines, 1)


def check(path: Path, head: str | None = None) -> tuple[int, str, Problem | None]:
    """Walk the chain: (records, last digest, first problem or None)."""
    prev_raw, count, last_digest = None, 0, GENESIS
    heads_seen = head is None
    for number, raw in _lines(path):
        problem = _check_line(number, raw, prev_raw)
        if problem is not None:
            return count, last_digest, problem
        record = json.loads(raw)
        count, last_digest, prev_raw = number, record["digest"], raw
        heads_seen = heads_seen or record["digest"] == head
    if not heads_seen:
        why = f"the anchored head {head} is not in the log: records were removed or rewritten"
        return count, last_digest, Problem(count + 1, why)
    return count, last_digest, None


def _check_line(number: int, raw: bytes, prev_raw: bytes | None) -> Problem | None:
    if not raw.strip():
        return Problem(number, "an empty line (a record was removed or the file was edited)")
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Problem(number, "not a complete JSON record (cut short or edited)")
    if not isinstance(record, dict) or any(f not in record for f in FIELDS):
        return Problem(number, "not an audit record (fields missing)")
    if record["digest"] != record_digest(record):
        return Problem(number, "its digest does not match its content: the record was edited")
    expected = hashlib.sha256(prev_raw).hexdigest() if prev_raw is not None else GENESIS
    if record["prev"] != expected:
        where = "the previous line" if prev_raw is not None else "the start of the log"
        return Problem(
            number,
            f"its prev digest does not match {where}: a record before it was removed, "
            "inserted, reordered or edited",
        )
    if record["seq"] != number:
        return Problem(number, f"it is record {record['seq']} but sits on line {number}")
    return None


def verify(path: Path, head: str | None = None) -> tuple[int, str]:
    """(records, head digest) of a sound log; `VerifyError` (exit 1) naming the first bad one."""
    count, last, problem = check(path, head)
    if problem is not None:
        raise VerifyError(f"audit log {path}: {problem}")
    return count, last


def records(path: Path) -> list[dict[str, Any]]:
    """Every record that parses (for `show`; `verify` is the integrity check)."""
    found = []
    for _, raw in _lines(path):
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_time(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO time (UTC if no zone) or a duration back from now (`90m`, `2h`, `7d`)."""
    found = _DURATION.match(text.strip())
    if found:
        span = timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
        return (now or datetime.now(UTC)) - span
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataprepError(
            f"--since {text!r} is neither an ISO time (2026-01-31T12:00) nor a duration "
            "(30m, 2h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def select(
    found: list[dict[str, Any]], since: datetime | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    """Records at or after `since` whose dataset is `dataset` (or under it)."""
    wanted = _norm(dataset) if dataset else None
    chosen = []
    for record in found:
        if since is not None:
            try:
                if datetime.fromisoformat(str(record.get("time"))) < since:
                    continue
            except ValueError:
                continue
        if wanted is not None:
            there = _norm(str(record.get("dataset") or ""))
            if there != wanted and not there.startswith(wanted.rstrip("/") + "/"):
                continue
        chosen.append(record)
    return chosen


def _norm(location: str) -> str:
    return location if "://" in location else os.path.abspath(location)
