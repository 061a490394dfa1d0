"""Recording a use of a key: who (user, host, pid, command), what (dataset, manifest digest,
key ids, columns) and how it ended (ok / denied / failed), at the few places keys are used.

"One use" is one (process, action, log, dataset, key ids, columns, outcome): the first time a
process opens a dataset's shards with a key it writes a record, later shards and row groups
add none. A DataLoader worker, a DDP rank or a Ray worker is its own process and so its own
record; a run that fails after an ok record adds one `failed`/`denied` record. Per file or per
row group would be thousands of records an auditor cannot read and an fsync per shard.

Nothing here reads key material: records are built from the manifest's `encryption` entry
(key *ids*) and the key-file path; the command line keeps option *values* only for options
whose names do not suggest a secret (`--key`, `--token`, `--password`, `--set x.api_key=...`
are redacted), and dataprep takes keys only from key files and the environment.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dataprep import audit
from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, as_path

_SEEN: set[tuple[Any, ...]] = set()
_LOCK = threading.Lock()
_SECRET_WORDS = {"key", "secret", "token", "password", "passwd", "credential", "credentials"}
_PATH_WORDS = {"file", "log", "path", "dir"}
REDACTED = "<redacted>"
# messages of the key checks that refuse a key (crypto_keys / crypto): the KMS said no
_DENIED = ("has no key", "does not unwrap", "does not decrypt with key", "does not hold")


def set_log(path: str | os.PathLike[str] | None) -> None:
    """`--audit-log PATH`: every process this one starts (workers, ranks) inherits it."""
    if path is not None:
        os.environ[audit.ENV] = os.path.abspath(path)


def _secret_name(name: str) -> bool:
    parts = [p for p in re.split(r"[-_.]", name.lower()) if p]
    return bool(parts) and any(p in _SECRET_WORDS for p in parts) and parts[-1] not in _PATH_WORDS


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """argv with the value of every secret-sounding option (and `--set` entry) redacted."""
    args = list(sys.argv if argv is None else argv)
    first = args[0] if args else ""
    program = (
        "dataprep" if first.endswith(f"dataprep{os.sep}__main__.py") else os.path.basename(first)
    )
    out: list[str] = [program] if args else []
    redact_next = False
    for arg in args[1:]:
        if redact_next:
            out.append(REDACTED)
            redact_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            name, value = arg.split("=", 1)
            out.append(f"{name}={REDACTED}" if _secret_name(name.lstrip("-")) else arg)
        elif arg.startswith("-"):
            out.append(arg)
            redact_next = _secret_name(arg.lstrip("-"))
        elif "=" in arg and _secret_name(arg.split("=", 1)[0]):
            out.append(arg.split("=", 1)[0] + "=" + REDACTED)  # --set vars.api_key=VALUE
        else:
            out.append(arg)
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid {os.getuid()}"


def _location(where: str | os.PathLike[str] | StoragePath) -> str:
    path = as_path(where)
    local = path.local()
    return os.path.abspath(local) if local is not None else str(path)


def _manifest_digest(dataset: str) -> str | None:
    from dataprep.layout import MANIFEST

    try:
        return hashlib.sha256((as_path(dataset) / MANIFEST).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def key_ids(encryption: dict[str, Any], columns: Sequence[str] | None = None) -> list[str]:
    """The footer key and the keys of `columns` (None: every column key) that a use needs."""
    keyed = encryption.get("column_keys") or {}
    wanted = None if columns is None else set(columns)
    ids = [k for k, cs in keyed.items() if wanted is None or wanted & set(cs)]
    return sorted({str(k) for k in [encryption.get("footer_key_id"), *ids] if k})


def encrypted_columns(encryption: dict[str, Any], read: Sequence[str] | None = None) -> list[str]:
    cols = [c for cs in (encryption.get("column_keys") or {}).values() for c in cs]
    return sorted(set(cols) & set(read)) if read is not None else sorted(set(cols))


def _readable(key_file: str | os.PathLike[str], encryption: dict[str, Any]) -> list[str] | None:
    """Columns a key file opens (a partial key file opens some): what a use that names no
    columns could read. None when the key file cannot say (the use then fails on its own)."""
    try:
        from dataprep.crypto_access import readable_columns

        names = [c for cs in (encryption.get("column_keys") or {}).values() for c in cs]
        names += list(encryption.get("plaintext_columns") or [])
        return readable_columns(encryption, key_file, names).readable
    except (DataprepError, ImportError, KeyError, TypeError):
        return None


def outcome_of(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, DataprepError) and any(d in text for d in _DENIED):
        return "denied"
    return "failed"


def record(
    action: str,
    key_file: str | os.PathLike[str],
    dataset: str | os.PathLike[str] | StoragePath | None,
    encryption: dict[str, Any] | None,
    outcome: str = "ok",
    reason: str | None = None,
    columns: Sequence[str] | None = None,
    manifest: bool = True,
) -> None:
    """Append one record unless this process already recorded the same use. Raises
    `DataprepError` (the use is refused) when the log cannot be written."""
    info = encryption or {}
    where = _location(dataset) if dataset is not None else None
    log = audit.log_path(key_file)
    named = tuple(columns) if columns is not None else None
    seen = (os.getpid(), action, str(log), str(key_file), where, named, outcome)
    with _LOCK:
        if seen in _SEEN:
            return
        if columns is None and action == "decrypt" and outcome == "ok":
            columns = _readable(key_file, info)
        ids, cols = key_ids(info, columns), encrypted_columns(info, columns)
        fields = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": _user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": command_line(),
            "action": action,
            "dataset": where,
            "manifest_sha256": _manifest_digest(where) if (where and manifest) else None,
            "key_file": os.path.abspath(key_file),
            "key_set": info.get("key_set"),
            "key_ids": ids,
            "columns": cols,
            "outcome": outcome,
            "reason": reason,
        }
        audit.append(log, fields)
        _SEEN.add(seen)


@contextmanager
def use(
    action: str,
    key_file: str | os.PathLike[str] | None,
    dataset: str | os.PathLike[str] | StoragePath | None,
    encryption: dict[str, Any] | None,
    columns: Sequence[str] | None = None,
    ok: bool = True,
) -> Iterator[None]:
    """Record how the block that uses the key ends: ok, or denied/failed with the reason.
    `ok=False`: a check before the use (the readers record the use itself), failures only."""
    if key_file is None:  # nothing to audit: the caller reports the missing key file
        yield
        return
    try:
        yield
    except Exception as exc:
        reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        record(action, key_file, dataset, encryption, outcome_of(exc), reason, columns)
        raise
    if ok:
        record(action, key_file, dataset, encryption, "ok", None, columns)


_WRITES: dict[tuple[Any, ...], dict[str, Any] | None] = {}


@contextmanager
def encrypting(
    spec: Any, shard: str | os.PathLike[str] | StoragePath, schema: Any
) -> Iterator[None]:
    """`use("encrypt", ...)` for a shard writer: the output has no manifest yet, so the record
    has none; the key ids and columns come from the spec (`EncryptionSpec.manifest`), worked
    out once per process, spec and schema."""
    dataset = as_path(shard).parent
    memo = (os.getpid(), repr(spec), tuple(schema.names))
    if memo not in _WRITES:
        try:
            _WRITES[memo] = spec.manifest(schema)
        except DataprepError:
            _WRITES[memo] = None  # the properties call below fails the same way
    info = _WRITES[memo]
    try:
        yield
    except Exception as exc:
        reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        record("encrypt", spec.key_file, dataset, info, outcome_of(exc), reason, manifest=False)
        raise
    record("encrypt", spec.key_file, dataset, info, "ok", None, manifest=False)
