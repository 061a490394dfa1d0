"""Every registered stage's params in machine-readable form (a spec: name, help, fields with
kind, choices, default and help), read from its class and config model; the command line is
made from it (`cli/stages.py`), as docs/recipe-reference.md is made from the same models.

The built-in stages' specs are saved in catalog.json, so `dataprep --help` and `dataprep STAGE
--help` start without importing pyarrow and every stage module (half a second of CPU). Each
entry records the digests of the files its stage and config are written in; an entry whose
files changed is not used (the stage is described from its model instead), so a stale file
costs start-up time, never a wrong flag. Plugins are always described from their models.
Regenerate with `python -m dataprep.catalog` (a test fails when it is stale).
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("catalog.json")
PACKAGE = Path(__file__).resolve().parent
EXECUTOR = "(executor)"  # the entry of the run options, not a stage


@functools.cache
def registry() -> dict[str, str]:
    """Registered stage (built-ins first, then plugins) -> its target; entry points are
    listed once per process (~30 ms)."""
    from dataprep.stages import available

    return available()


def target(name: str) -> str | None:
    """A stage's target: a built-in's without listing entry points (a plugin cannot override
    a built-in name), so `dataprep shard` does not pay the scan."""
    from dataprep.stages import BUILTIN

    return BUILTIN.get(name) or registry().get(name)


def spec(name: str) -> dict[str, Any]:
    """The spec of a registered stage: from catalog.json when it is current."""
    entry = _saved().get(name)
    if entry and entry["target"] == target(name) and _current(entry["sources"]):
        return entry["spec"]
    from dataprep.stages import get_stage

    return describe(get_stage(name))


def executor_fields() -> list[dict[str, Any]]:
    """The fields of ExecutorSpec (the run options), from catalog.json when it is current."""
    entry = _saved().get(EXECUTOR)
    if entry and _current(entry["sources"]):
        return entry["fields"]
    from dataprep.executors.spec import ExecutorSpec

    return fields(ExecutorSpec)


def describe(stage: Any) -> dict[str, Any]:
    doc = inspect.getdoc(stage) if stage.__doc__ else ""
    return {
        "name": stage.name,
        "help": "\n\n".join(p for p in (getattr(stage, "help", ""), doc) if p) or stage.name,
        "reads_dataset": bool(getattr(stage, "reads_dataset", True)),
        "fields": fields(stage.Config),
    }


def fields(model: Any) -> list[dict[str, Any]]:
    """A model's fields (`reference.params`) with the default as a flag writes it, and help
    as a sentence with the bounds."""
    from dataprep.reference import params

    found = []
    for p in params(model):
        about = p.description[:1].upper() + p.description[1:]
        about += f" ({p.bounds})" if p.bounds else ""
        entry = {"name": p.name, "kind": p.kind, "choices": p.choices and list(p.choices)}
        found.append(entry | {"required": p.required, "default": _shown(p), "help": about})
    return found


def _shown(p: Any) -> Any:
    """`128MiB` for a size, `a,b` for a list: text that parses back to the same value."""
    if p.default is None or p.kind in ("bool", "int", "float"):
        return p.default
    if p.kind == "list":
        return ",".join(map(str, p.default))
    if p.kind == "size":
        for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("GB", 10**9), ("MB", 10**6)):
            if p.default >= scale and p.default % scale == 0:
                return f"{p.default // scale}{unit}"
    return str(p.default)


def render() -> str:
    """catalog.json for today's built-in stages."""
    from dataprep.stages import BUILTIN, get_stage

    entries = {}
    for name, target in BUILTIN.items():
        stage = get_stage(name)
        files = {
            Path(inspect.getsourcefile(c) or "").resolve().relative_to(PACKAGE).as_posix()
            for c in (type(stage), stage.Config)
        }
        sources = {f: _digest(f) for f in sorted(files)}
        entries[name] = {"target": target, "sources": sources, "spec": describe(stage)}
    from dataprep.executors.spec import ExecutorSpec

    spec_file = "executors/spec.py"
    entries[EXECUTOR] = {"sources": {spec_file: _digest(spec_file)}, "fields": fields(ExecutorSpec)}
    return json.dumps(entries, indent=1) + "\n"


@functools.cache
def _saved() -> dict[str, Any]:
    try:
        return json.loads(CATALOG.read_text())
    except (OSError, ValueError):
        return {}


def _current(sources: dict[str, str]) -> bool:
    return all(_digest(path) == digest for path, digest in sources.items())


@functools.cache
def _digest(path: str) -> str:
    try:
        return _blake2b((PACKAGE / path).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return ""


def _blake2b(data: bytes, digest_size: int) -> Any:
    """hashlib's blake2b from CPython's own module: `import hashlib` loads OpenSSL's
    (`_hashlib`, ~3 ms of CPU) to offer its other algorithms, which a stage command's
    start-up never uses; hashlib is the fallback where a build lacks `_blake2`."""
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover (every CPython build has it)
        from hashlib import blake2b
    return blake2b(data, digest_size=digest_size)


if __name__ == "__main__":
    CATALOG.write_text(render())
