"""Errors a user can act on.

Anything raised as `DataprepError` is printed as one sentence (no traceback) and exits with
code 2; so is an optional package that is not installed (`missing_extra`); everything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class DataprepError(Exception):
    """A bad input, config or path: the message says what to fix."""


class VerifyError(DataprepError):
    """A dataset failed verification (exit code 1)."""


# Packages only some commands need, installed by an extra: (what it is, the extra).
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "torch"),
    "tokenizers": ("the Hugging Face tokenizers package", "torch"),
    "ray": ("Ray", "ray"),
    "opacus": ("Opacus (for --dp-epsilon)", "dp"),
    "pynvml": ("NVIDIA's NVML bindings (for GPU energy in train metrics)", "gpu"),
}


def missing_extra(error: ImportError, command: str | None) -> str | None:
    """The sentence for an optional package that is not installed, e.g. "dataprep train
    needs PyTorch: pip install 'dataprep[torch]'"; None for any other import error (a bug)."""
    top = (error.name or "").partition(".")[0]
    if top not in OPTIONAL_PACKAGES or not isinstance(error, ModuleNotFoundError):
        return None
    if error.name != top:  # torch is there but a part of it is not: a broken install
        from importlib.util import find_spec

        try:
            if find_spec(top) is not None:
                return None
        except (ImportError, ValueError):
            pass
    what, extra = OPTIONAL_PACKAGES[top]
    who = f"dataprep {command}" if command else "this command"
    return f"{who} needs {what}: pip install 'dataprep[{extra}]'"


def short_error(exc: BaseException, last: bool = False) -> str:
    """One line of `exc` to quote inside a one-sentence message: its first line (`last`: its
    last, where a wrapped traceback ends in the cause), clipped; else the exception's type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() not in ("", ")")]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:300]


_RESTORE = "rerun the stage that wrote it or restore it"


def shard_error(name: str, exc: BaseException, encrypted: bool = False) -> DataprepError:
    """The one sentence for shard `name` that failed to open or read: corrupt, tampered, a
    wrong key; every shard reader (stages, export, the torch loader) says it the same way."""
    if isinstance(exc, DataprepError):
        return DataprepError(f"shard {name}: {exc}")
    if "CRC checksum verification failed" in str(exc):
        return DataprepError(f"shard {name} is corrupt (page checksum mismatch); {_RESTORE}")
    if encrypted:
        return DataprepError(
            f"shard {name} failed decryption: it was changed since it was written "
            "or the key is wrong"
        )
    return DataprepError(f"shard {name} is corrupt or not Parquet ({short_error(exc)}); {_RESTORE}")


def checksum_mismatch(name: str) -> DataprepError:
    """The one sentence for shard `name` whose bytes differ from its manifest's checksum
    (stages, `verify`, the torch loader with verify=True)."""
    return DataprepError(
        f"shard {name} is corrupt (its bytes do not match the manifest's checksum); {_RESTORE}"
    )


def is_read_error(exc: BaseException) -> bool:
    """What a damaged shard or a wrong key raises: pyarrow's and the OS's read errors, and a
    key that fails to unwrap (cryptography's `InvalidTag`)."""
    import pyarrow as pa  # here, not at the top: the CLI imports this module before any command

    return isinstance(exc, (OSError, pa.ArrowException, ValueError, DataprepError)) or (
        type(exc).__name__ == "InvalidTag"
    )


class shard_errors:  # noqa: N801 - a context manager that reads like `with open(...)`
    """Turn a read error inside the block into `shard_error` (anything else passes through)."""

    def __init__(self, name: str, encrypted: bool = True):
        self.name = name
        self.encrypted = encrypted

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and is_read_error(exc):
            raise shard_error(self.name, exc, self.encrypted) from None
        return False
