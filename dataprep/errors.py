"""Errors a user can act on.

Anything raised as `DataprepError` is printed as one sentence (no traceback) and exits with
code 2; everything else is a bug and keeps its traceback.
"""


class DataprepError(Exception):
    """A bad input, config or path: the message says what to fix."""


class VerifyError(DataprepError):
    """A dataset failed verification (exit code 1)."""
