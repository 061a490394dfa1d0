"""The built-in stages' command specs, saved in stages.json so that `dataprep --help` and
`dataprep STAGE --help` start without importing pyarrow and every stage module (a second).

Each entry records the digest of the files its stage and config model are written in; an
entry whose files changed is not used (the stage is described from its model instead), so a
stale file only costs start-up time, never a wrong flag. Plugins are always described live.
Regenerate with `python -m dataprep.cli.catalog` (a test fails when it is stale).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("stages.json")
PACKAGE = Path(__file__).resolve().parents[1]  # dataprep/


@functools.cache
def registry() -> dict[str, str]:
    """Every registered stage (built-ins first, then plugins) -> its target; read once, as
    listing entry points costs ~30 ms."""
    from dataprep.stages import available

    return available()


def names() -> list[str]:
    return list(registry())


def spec(name: str) -> dict[str, Any]:
    """The command spec of a registered stage: from the catalog when it is current."""
    entry = _saved().get(name)
    if entry and entry["target"] == registry().get(name) and _current(entry["sources"]):
        return entry["spec"]
    from dataprep.cli.stages import describe
    from dataprep.stages import get_stage

    return describe(get_stage(name))


def render() -> str:
    """The catalog of today's built-in stages, as stages.json holds it."""
    from dataprep.cli.stages import describe
    from dataprep.stages import BUILTIN, get_stage

    entries = {}
    for name, target in BUILTIN.items():
        stage = get_stage(name)
        files = {
            str(Path(inspect.getsourcefile(cls) or "").resolve().relative_to(PACKAGE))
            for cls in (type(stage), stage.Config)
        }
        entries[name] = {
            "target": target,
            "sources": {f: _digest(f) for f in sorted(files)},
            "spec": describe(stage),
        }
    return json.dumps(entries, indent=1) + "\n"


_cache: dict[str, Any] | None = None


def _saved() -> dict[str, Any]:
    global _cache
    if _cache is None:
        try:
            _cache = json.loads(CATALOG.read_text())
        except (OSError, ValueError):
            _cache = {}
    return _cache


def _current(sources: dict[str, str]) -> bool:
    return all(_digest(path) == digest for path, digest in sources.items())


@functools.cache
def _digest(path: str) -> str:
    try:
        return hashlib.blake2b((PACKAGE / path).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return ""


if __name__ == "__main__":
    CATALOG.write_text(render())
