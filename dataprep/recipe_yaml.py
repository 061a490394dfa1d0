"""Bounded YAML loading for recipes and `--set` values: a size cap and an alias-expansion budget.

Kept apart from `dataprep.recipe` (which re-exports these names) because it guards every
untrusted YAML text the recipe code parses, and depends on nothing else in dataprep but errors.
"""

from __future__ import annotations

from typing import Any

import yaml

from dataprep.errors import DataprepError

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of YAML; anything near this is a mistake
MAX_YAML_NODES = 100_000  # nodes after alias expansion (a "billion laughs" has 10**9)


def safe_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load` with bounds: the document's size and its size once aliases expand.

    Aliases are shared when parsed, but everything after (interpolation, validation) walks the
    expanded tree, so a few hundred bytes of nested aliases could take minutes and gigabytes.
    """
    if len(text) > MAX_RECIPE_BYTES:
        raise DataprepError(f"{where} is larger than {MAX_RECIPE_BYTES >> 20} MiB")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise DataprepError(
                f"{where} expands to more than {MAX_YAML_NODES:,} values through YAML aliases "
                "(&anchor / *alias); write the values out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DataprepError(f"{where} is not valid YAML: {exc}") from None
    except RecursionError:
        raise DataprepError(f"{where} is nested too deeply to be a recipe") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Nodes in the tree once every alias is replaced by a copy (memoised: linear time)."""
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = MAX_YAML_NODES + 1  # a cycle (a recursive alias) expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, seen) + _expanded_size(v, seen)
    seen[key] = total
    return total
