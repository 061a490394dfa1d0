"""`dataprep lineage` as text: the chain from `dataprep.lineage` as indented lines, newest
first (a checkpoint, its data, each dataset and the stage that wrote it, back to the raw files).
At most `RAW_PATHS_SHOWN` raw paths are printed; --json has every recorded one."""

from __future__ import annotations

from typing import Any

RAW_PATHS_SHOWN = 5


def lines(node: dict[str, Any]) -> list[str]:
    """The chain as indented lines, newest first: what `dataprep lineage` prints."""
    if node["kind"] != "checkpoint":
        return _dataset_lines(node, 0)
    cfg = node["config"]
    reader = node.get("reader") or {}
    out = [
        f"checkpoint {node['path']}",
        f"  step {node['step']} of run {node['run']}, dataprep {node['dataprep_version'] or '?'}, "
        f"world size {node['world_size']}",
        f"  model {cfg.get('model')}, steps {cfg.get('steps')}, batch size "
        f"{cfg.get('batch_size')}, lr {cfg.get('lr')}, seed {cfg.get('seed')}",
        "  reader position: " + ", ".join(f"{k} {v}" for k, v in reader.items()),
    ]
    if node.get("privacy"):
        out.append("  " + _privacy_line(node["privacy"]))
    if node.get("kept_checkpoints"):
        out.append("  kept checkpoints: " + ", ".join(node["kept_checkpoints"]))
    for change in node.get("data_changes") or []:
        out.append(
            f"  data changed at step {change.get('step')}: {change.get('from')} -> "
            f"{change.get('to')} (--allow-data-change)"
        )
    for role in ("train", "eval"):
        data = node["data"].get(role)
        if data is None:
            out.append(f"  {role} data: none")
            continue
        out.append(f"  {role} data:")
        out += _dataset_lines(data, 2)
    return out


def _privacy_line(dp: dict[str, Any]) -> str:
    """The line a model card needs next to the data digests."""

    def num(key: str, form: str) -> str:
        value = dp.get(key)
        return format(value, form) if isinstance(value, int | float) else "?"

    return (
        f"differential privacy: epsilon {num('epsilon_spent', '.3g')} of "
        f"{num('epsilon_target', 'g')} spent (delta {num('delta', 'g')}, clip "
        f"{num('max_grad_norm', 'g')}, noise {num('noise_multiplier', '.3g')})"
    )


def _dataset_lines(node: dict[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    if node["kind"] == "raw":
        given = node.get("paths") or []
        paths = ", ".join(given[:RAW_PATHS_SHOWN]) or "paths not recorded"
        if len(given) > RAW_PATHS_SHOWN:
            paths += f" and {len(given) - RAW_PATHS_SHOWN} more"
        size = _count(node.get("files"), "file") + ", " + _count(node.get("bytes"), "byte")
        return [
            f"{pad}raw input: {paths} ({size}), digest {node.get('digest')}",
            f"{pad}  {node['note']}",
        ]
    head = f"{pad}dataset {node.get('path') or '(location not recorded)'}"
    facts = [f"digest {node.get('digest')}", _count(node.get("rows"), "row")]
    if node.get("shards") is not None:
        facts.append(_count(node["shards"], "shard"))
    out = [f"{head}: " + ", ".join(facts)]
    if node.get("note"):
        out.append(f"{pad}  {node['note']}")
    stage = node.get("stage")
    if stage:
        name = stage["op"] + (f" ({stage['id']})" if stage["id"] not in (None, stage["op"]) else "")
        out.append(
            f"{pad}  written by {name}, dataprep {stage['version']}, {stage['finished']}: "
            f"{_count(stage['rows_in'], 'row')} in -> {_count(stage['rows_out'], 'row')} out"
        )
    for parent in node.get("inputs") or []:
        out += _dataset_lines(parent, depth + 1)
    return out


def _count(value: Any, unit: str) -> str:
    if value is None:
        return f"{unit}s not recorded"
    return f"{value:,} {unit}" + ("" if value == 1 else "s")
