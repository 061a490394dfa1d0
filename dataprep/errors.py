"""Errors a user can act on.

Anything raised as `DataprepError` is printed as one sentence (no traceback) and exits with
code 2; so is an optional package that is not installed (`missing_extra`); everything else
is a bug and keeps its traceback.
"""


class DataprepError(Exception):
    """A bad input, config or path: the message says what to fix."""


class VerifyError(DataprepError):
    """A dataset failed verification (exit code 1)."""


# Packages only some commands need, installed by an extra: (what it is, the extra).
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "torch"),
    "tokenizers": ("the Hugging Face tokenizers package", "torch"),
    "ray": ("Ray", "ray"),
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
