"""Recipe variables: `${name}` / `${env:NAME}` expansion, cycle detection, and `--set` overrides.

Split from `dataprep.recipe` (which re-exports these names): everything that rewrites the raw
recipe mapping before it is validated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from dataprep.errors import DataprepError
from dataprep.recipe_yaml import safe_yaml

_VAR = re.compile(r"\$\{([^}]+)\}")


def _interpolate(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    if isinstance(value, str):
        return _VAR.sub(lambda m: _lookup(m.group(1), variables), value)
    return value


def _lookup(name: str, variables: dict[str, str]) -> str:
    if name.startswith("env:"):
        return _env(name[4:])
    if name not in variables:
        raise DataprepError(f"recipe uses ${{{name}}} but vars: has no {name!r}")
    return variables[name]


def _env(name: str, where: str = "recipe") -> str:
    if name not in os.environ:
        raise DataprepError(f"{where} uses ${{env:{name}}} but {name} is not set")
    return os.environ[name]


def expand_vars(raw: Any, overrides: Sequence[str] = ()) -> dict[str, str]:
    """`vars:` with `--set vars.NAME=VALUE` applied, each `${...}` in them expanded (vars may
    use env vars and each other; a cycle is an error naming it), before anything else."""
    if raw is not None and not isinstance(raw, dict):
        raise DataprepError("recipe vars: must be a mapping of names to values")
    values = {"root": "work", **{str(k): _scalar(v, f"vars.{k}") for k, v in (raw or {}).items()}}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key == "vars.":
            raise DataprepError(f"--set {item!r}: write it as vars.NAME=VALUE")
        values[key[len("vars.") :]] = _scalar(safe_yaml(value, f"--set {key}"), key)
    done: dict[str, str] = {}

    def expand(name: str, chain: list[str]) -> str:
        if name in done:
            return done[name]
        if name in chain:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise DataprepError(f"recipe vars: {cycle} is a cycle; a variable cannot use itself")

        def ref(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("env:"):
                return _env(inner[4:], f"recipe vars.{name}")
            if inner not in values:
                raise DataprepError(
                    f"recipe vars.{name} uses ${{{inner}}} but vars: has no {inner!r}"
                )
            return expand(inner, [*chain, name])

        done[name] = _VAR.sub(ref, values[name])
        return done[name]

    return {name: expand(name, []) for name in values}


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)):
        raise DataprepError(f"recipe {where} must be a single value, not a {type(value).__name__}")
    return "" if value is None else str(value)


def _apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """`--set stage.param=value`: the value is parsed as YAML (numbers, bools, lists)."""
    stages = {s.get("id"): s for s in raw.get("stages") or [] if isinstance(s, dict)}
    for item in overrides:
        key, sep, value = item.partition("=")
        stage_id, dot, param = key.rpartition(".")
        if not sep or not dot:
            raise DataprepError(f"--set {item!r}: write it as STAGE.PARAM=VALUE or vars.NAME=VALUE")
        if stage_id not in stages:
            raise DataprepError(f"--set {item!r}: no stage with id {stage_id!r}")
        stages[stage_id].setdefault("params", {})[param] = safe_yaml(value, f"--set {key}")
