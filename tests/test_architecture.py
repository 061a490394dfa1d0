"""Architecture rules that can be measured, checked on the source of `dataprep/`.

1. No import cycle. The rule, decided here:
   - An import that runs when its module is imported (module level, also inside `try`/`if` and
     class bodies) is a *module-level* edge. The module-level graph has no cycle, ever.
   - An import inside a function runs when the function is called (*function-level*). It may
     close a cycle only when it says so: a comment containing "cycle" on the import's lines or
     the line above (`# lazy: breaks the cycle with x`). Every other function-level edge counts,
     so the graph of module-level plus undocumented function-level edges has no cycle either.
   - `if TYPE_CHECKING:` imports never run and are left out of cycles (they count for layers).
   - `import a.b.c` and `from a.b import c` point at the module named (`a.b.c` when it is a
     module, else `a.b`), as grimp and import-linter count them; the parent packages Python
     also initialises are not edges. `importlib.import_module` calls are not seen.
2. No module over 400 lines (`wc -l`).
3. Layers: stage modules (`dataprep/stages/**`) import no executor (only the protocol module)
   and no CLI; nothing outside `dataprep.cli` imports it (but `__main__`, its entry point).
4. The `Executor` protocol's module imports nothing from `dataprep`.

The graph is built with `ast` rather than grimp (the well-kept library behind import-linter):
grimp records one edge per importer/imported pair with no notion of the import's scope, and rule
1 needs module-level and function-level imports apart; the builder is checked on a small made-up
package first (`test_the_checks_find_*`), so a rule that passes is not a builder that sees nothing.
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dataprep"
MAX_LINES = 400
PROTOCOL_MODULE = "dataprep.executors.protocol"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    scope: str  # "module" | "function" | "type-checking"
    documented: bool  # a comment on its lines or the line above mentions "cycle"


def find_modules(root: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import of a module in `known` that `name` makes, with its scope."""
    source = path.read_text()
    lines = source.splitlines()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def owner(target: str) -> str | None:  # the innermost known module `target` names
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    def add(node: ast.stmt, target: str | None, scope: str) -> None:
        if target is None or target == name:
            return
        nearby = lines[max(node.lineno - 2, 0) : node.end_lineno or node.lineno]
        documented = any("cycle" in text.partition("#")[2].lower() for text in nearby)
        found.append(Import(name, target, node.lineno, scope, documented))

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for part in child.body:
                    visit_statement(part, "type-checking")
                for part in child.orelse:
                    visit_statement(part, scope)
            else:
                visit_statement(child, scope)

    def visit_statement(node: ast.AST, scope: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(node, "type-checking" if scope == "type-checking" else "function")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(node, owner(alias.name), scope)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(node, submodule if submodule in known else owner(base), scope)
        else:
            visit(node, scope)

    visit(ast.parse(source), "module")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def all_imports(root: Path = ROOT, package: str = PACKAGE) -> list[Import]:
    known = find_modules(root, package)
    return [i for name, path in known.items() for i in imports_of(name, path, known)]


def cycles(
    imports: list[Import], counts: Callable[[Import], bool]
) -> list[tuple[frozenset[str], str]]:
    """Each strongly connected group of the graph of imports for which `counts` holds, with
    one shortest cycle through it spelled `a:LINE -> b:LINE -> a`."""
    graph: dict[str, dict[str, int]] = {}
    for i in imports:
        if counts(i):
            graph.setdefault(i.importer, {}).setdefault(i.imported, i.line)
    groups = _strongly_connected(graph)
    return [(frozenset(g), _shortest_cycle(graph, g)) for g in groups]


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; only groups of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def _shortest_cycle(graph: dict[str, dict[str, int]], group: list[str]) -> str:
    start, members = group[0], set(group)
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, {})):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path.reverse()
                hops = [f"{a}:{graph[a][b]}" for a, b in zip(path, [*path[1:], start], strict=True)]
                return " -> ".join([*hops, start])
            if child not in parent:
                parent[child] = node
                queue.append(child)
    return " ".join(group)


def module_level(i: Import) -> bool:
    return i.scope == "module"


def not_documented_lazy(i: Import) -> bool:
    return i.scope == "module" or (i.scope == "function" and not i.documented)


def _described(found: list[tuple[frozenset[str], str]]) -> list[str]:
    return [f"{path}  (modules: {', '.join(sorted(g))})" for g, path in found]


# -- the rules on dataprep ---------------------------------------------------------------------


def test_no_import_cycle_at_module_level() -> None:
    bad = _described(cycles(all_imports(), module_level))
    assert not bad, "import cycles at module level:\n" + "\n".join(bad)


def test_no_import_cycle_through_undocumented_lazy_imports() -> None:
    bad = _described(cycles(all_imports(), not_documented_lazy))
    assert not bad, (
        "import cycles (function-level imports count unless a comment on them says 'cycle'):\n"
        + "\n".join(bad)
    )


def _long_modules() -> dict[str, int]:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in find_modules(ROOT, PACKAGE).values()
    }
    return {path: n for path, n in sizes.items() if n > MAX_LINES}


def test_no_module_over_the_line_limit() -> None:
    bad = {path: n for path, n in _long_modules().items()}
    assert not bad, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{p} ({n})" for p, n in sorted(bad.items())
    )


def _is_stage_module(name: str) -> bool:
    return name == f"{PACKAGE}.stages" or name.startswith(f"{PACKAGE}.stages.")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_stage_modules_import_no_executor_and_no_cli() -> None:
    bad = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in all_imports()
        if _is_stage_module(i.importer)
        and (
            (_within(i.imported, f"{PACKAGE}.executors") and i.imported != PROTOCOL_MODULE)
            or _within(i.imported, f"{PACKAGE}.cli")
        )
    ]
    assert not bad, "stage code depends on an executor or the CLI:\n" + "\n".join(bad)


def test_only_the_cli_imports_the_cli() -> None:
    bad = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in all_imports()
        if _within(i.imported, f"{PACKAGE}.cli")
        and not _within(i.importer, f"{PACKAGE}.cli")
        and i.importer != f"{PACKAGE}.__main__"
    ]
    assert not bad, "the CLI is the top layer, but:\n" + "\n".join(bad)


def _protocol_modules(root: Path = ROOT, package: str = PACKAGE) -> list[str]:
    """Modules that define `class Executor(Protocol)`."""
    found = []
    for name, path in find_modules(root, package).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name == "Executor":
                bases = [
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                ]
                if "Protocol" in bases:
                    found.append(name)
    return found


def test_the_executor_protocol_module_imports_nothing_of_ours() -> None:
    assert _protocol_modules() == [PROTOCOL_MODULE]
    ours = [f"line {i.line}: {i.imported}" for i in all_imports() if i.importer == PROTOCOL_MODULE]
    assert not ours, f"{PROTOCOL_MODULE} imports " + ", ".join(ours)


# -- the checks themselves, on a made-up package -------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"pkg/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_checks_find_each_kind_of_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "import pkg.c as c\n",
            "pkg/c.py": "from . import a\n",  # relative, module level: a -> b -> c -> a
            "pkg/sub/__init__.py": "",
            "pkg/sub/x.py": "def f():\n    from ..sub import y\n",
            "pkg/sub/y.py": "from pkg.sub.x import f\n",  # x <-> y through a lazy import
            "pkg/sub/p.py": "def f():\n    # breaks the cycle with q\n    from pkg.sub import q\n",
            "pkg/sub/q.py": "import pkg.sub.p\n",  # documented: allowed
            "pkg/t1.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.t2\n",
            "pkg/t2.py": "import pkg.t1\n",  # types only: allowed
        },
    )
    imports = all_imports(root, "pkg")
    assert [g for g, _ in cycles(imports, module_level)] == [frozenset({"pkg.a", "pkg.b", "pkg.c"})]
    found = dict(cycles(imports, not_documented_lazy))
    assert set(found) == {
        frozenset({"pkg.a", "pkg.b", "pkg.c"}),
        frozenset({"pkg.sub.x", "pkg.sub.y"}),
    }
    assert found[frozenset({"pkg.a", "pkg.b", "pkg.c"})] == "pkg.a:1 -> pkg.b:1 -> pkg.c:1 -> pkg.a"
    assert found[frozenset({"pkg.sub.x", "pkg.sub.y"})] == "pkg.sub.x:2 -> pkg.sub.y:1 -> pkg.sub.x"
    scopes = {(i.importer, i.imported): (i.scope, i.documented) for i in imports}
    assert scopes[("pkg.sub.p", "pkg.sub.q")] == ("function", True)
    assert scopes[("pkg.t1", "pkg.t2")] == ("type-checking", False)


def test_the_checks_find_a_protocol_that_imports_ours(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/errors.py": "",
            "pkg/proto.py": (
                "from typing import Protocol\n"
                "class Executor(Protocol):\n"
                "    def map(self):\n"
                "        from pkg.errors import X\n"
            ),
        },
    )
    assert _protocol_modules(root, "pkg") == ["pkg.proto"]
    assert [(i.importer, i.imported, i.scope) for i in all_imports(root, "pkg")] == [
        ("pkg.proto", "pkg.errors", "function")
    ]
