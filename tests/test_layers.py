"""The packages import each other in one direction only, and no product modules import each other in a loop.

Every import of the project's own modules is read from the source -- at the top of a module,
inside functions and under ``TYPE_CHECKING`` alike -- and resolved to the module it names.
:data:`ALLOWED` is the layering the package docstrings describe (``streams/*/__init__.py``): a
module may import its own package and the packages listed for it, nothing else. A new package
under ``streams/`` has to be given its place here before anything may import from it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("detectors", "streams")

_BASE = {"detectors", "streams.settings"}
#: package -> the packages it may import besides itself (as its docstring says)
ALLOWED: dict[str, set[str]] = {
    "detectors": set(),
    "streams": set(),  # the package's own __init__: a docstring
    "streams.settings": {"detectors"},
    "streams.kafka": _BASE,
    "streams.pipeline": _BASE,
    "streams.state": _BASE | {"streams.kafka"},
    "streams.sinks": _BASE | {"streams.kafka", "streams.pipeline"},
    "streams.steering": _BASE | {"streams.kafka", "streams.pipeline"},
    "streams.offline": _BASE | {"streams.kafka", "streams.pipeline", "streams.state", "streams.steering"},
    "streams.correlation": _BASE | {"streams.kafka", "streams.pipeline"},
    "streams.worker": _BASE | {"streams.kafka", "streams.pipeline", "streams.state", "streams.sinks",
                               "streams.steering", "streams.offline", "streams.correlation"},
    "streams.devtools": _BASE | {"streams.kafka", "streams.pipeline", "streams.sinks", "streams.offline"},
    "streams.commands": _BASE | {"streams.kafka", "streams.pipeline", "streams.state", "streams.sinks",
                                 "streams.worker", "streams.offline", "streams.devtools", "streams.steering",
                                 "streams.correlation"},
    "streams.cli": {"streams.settings", "streams.commands"},
}

#: import cycles that exist today and are being removed on another branch. Delete an entry when
#: its fix lands (test_known_cycles_still_exist says when).
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for top in PRODUCT for p in sorted((ROOT / top).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, type_only: bool = False):
    """(import node, whether it only runs for a type checker) for every import in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from _import_nodes(node, type_only)


def imports_of(name: str, path: Path, known: set[str]) -> set[tuple[str, int, bool]]:
    """(imported product module, line, type-checking only) for every import in ``path``, wherever
    it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node, type_only in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from package import submodule`` imports the submodule
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        for target in targets:
            while target and target not in known:  # ``import a.b.c``: the deepest module that exists
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PRODUCT:
                found.add((target, node.lineno, type_only))
    return found


def import_graph() -> dict[str, set[tuple[str, int, bool]]]:
    mods = product_modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def runtime_graph(graph: dict[str, set[tuple[str, int, bool]]]) -> dict[str, set[str]]:
    """The imports that run (``if TYPE_CHECKING:`` ones are how an annotation names a type
    without importing its module at run time: they count for the direction, not as a cycle)."""
    return {name: {t for t, _, type_only in found if not type_only} for name, found in graph.items()}


def layer(module: str) -> str | None:
    """The entry of :data:`ALLOWED` that ``module`` belongs to (the longest matching package)."""
    matches = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    return max(matches, key=len) if matches else None


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, int, bool]]]:
    return import_graph()


def test_the_parser_sees_every_kind_of_import(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .book import Marker\n"
        "import detectors.events.parse_event\n"
        "from streams import settings\n"
        "if TYPE_CHECKING:\n"
        "    from streams.worker.app import Lookout\n"
        "def late():\n"
        "    from ..pipeline.codecs import encode_json\n"
    )
    known = set(product_modules())
    assert imports_of("streams.state.probe", path, known) == {
        ("streams.state.book", 2, False),  # relative, at the top
        ("detectors.events", 3, False),  # ``import a.b.c``: the module part
        ("streams.settings", 4, False),  # ``from package import submodule``
        ("streams.worker.app", 6, True),  # for a type checker only
        ("streams.pipeline.codecs", 8, False),  # inside a function, two levels up
    }


def test_the_graph_covers_the_real_modules(graph):
    targets = {name: {t for t, _, _ in found} for name, found in graph.items()}
    assert "streams.settings" in targets["streams.kafka.security"]
    assert "streams.worker.run" in targets["streams.commands.worker"]  # imported inside a function


def test_every_part_of_streams_has_its_place_in_the_layering():
    children = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "streams").iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert {f"streams.{c}" for c in children} == set(ALLOWED) - {"detectors", "streams"}


def test_imports_follow_the_documented_direction(graph):
    wrong = []
    for name, found in sorted(graph.items()):
        here = layer(name)
        for target, line, _ in sorted(found):
            there = layer(target)
            if here is None or (there != here and there not in ALLOWED[here]):
                wrong.append(f"{name}:{line} imports {target} ({here} may import: "
                             f"{', '.join(sorted(ALLOWED.get(here or '', ()))) or 'nothing of the project'})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_between_product_modules(graph):
    new = [sorted(c) for c in cycles(runtime_graph(graph)) if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"


def test_known_cycles_still_exist(graph):
    gone = [sorted(c) for c in KNOWN_CYCLES - set(cycles(runtime_graph(graph)))]
    assert not gone, f"these cycles are fixed: delete them from KNOWN_CYCLES in {__file__}: {gone}"
