"""How a location is spelled: local path or URI, its `?query`, its canonical form, where a glob
starts. Pure string work (no I/O, nothing of ours imported), so `storage` and the checks that
compare locations before anything is opened agree on every rule.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath

GLOB_CHARS = "*?["
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gs": "gcs"}


def is_remote(location: str | os.PathLike[str]) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def strip_file_scheme(text: str) -> str:
    """`file:///x` is the local path `/x`."""
    return text[len("file://") :] if text.startswith("file://") else text


def split_query(uri: str) -> tuple[str, str]:
    """`s3://b/p?endpoint_override=...` -> ("s3://b/p", "?endpoint_override=...")."""
    base, sep, query = uri.partition("?")
    return base, sep + query


def _path_part(location: str) -> str:
    """A URI without its `?query` (a local path may hold a "?" wildcard)."""
    return split_query(location)[0] if is_remote(location) else location


def is_glob(location: str) -> bool:
    """Whether a location holds a wildcard (in a URI, `?` starts the query instead)."""
    return any(c in _path_part(location) for c in GLOB_CHARS)


def glob_base(pattern: str) -> str:
    """The folder before a glob's first wildcard: `raw/*/x.jsonl` -> `raw` (no `?query`)."""
    text = _path_part(pattern)
    cut = min((text.find(c) for c in GLOB_CHARS if c in text), default=len(text))
    slash = text.rfind("/", 0, cut)
    return "." if slash < 0 else text[:slash] or "/"


def glob_match(pattern: str, path: str) -> bool:
    """Whether `path` matches `pattern` name by name, by `glob.glob`'s rules: `*`, `?` and
    `[...]` stay within one name, `**` spans folders, and a hidden name (".x") only matches a
    part that starts with "." too. A URI's glob then picks the files a local one would."""
    return _match_parts(pattern.split("/"), path.split("/"))


def _match_parts(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        visible = next((i for i, name in enumerate(path) if _hidden(name)), len(path))
        return any(_match_parts(rest, path[i:]) for i in range(visible + 1))
    if not path or (_hidden(path[0]) and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(path[0], head) and _match_parts(rest, path[1:])


def _hidden(name: str) -> bool:
    return name.startswith(".")


def canonical(location: str | os.PathLike[str]) -> str:
    """One spelling per place, to tell whether two locations are the same or nested.

    Local: `~`, `file://`, relative parts and symlinks resolved. Remote: scheme aliases
    (s3a -> s3), repeated or trailing slashes, `.`/`..` and the `?query` dropped.
    """
    text = strip_file_scheme(str(location))
    if not is_remote(text):
        return os.path.realpath(os.path.expanduser(text))
    scheme, rest = split_query(text)[0].split("://", 1)
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    bucket, _, key = rest.partition("/")
    key = posixpath.normpath("/" + key).lstrip("/")
    return f"{scheme}://{bucket}/{key}".rstrip("/")


def within(inner: str, outer: str) -> bool:
    """Whether canonical location `inner` is `outer` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")
