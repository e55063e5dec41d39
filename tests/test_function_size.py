"""No function in product code (``detectors/``, ``streams/``) is longer than 100 lines.

Ruff's C901 (complexity) and PLR0915 (statements), configured in ``pyproject.toml``, catch a
function that does several things; they do not count lines, so this test does. A file that
``pyproject.toml`` exempts from PLR0915 (``[tool.ruff.lint.per-file-ignores]``, temporarily,
while another branch rewrites it) is exempt here too: the exemptions are listed once.
"""
from __future__ import annotations

import ast
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("detectors", "streams")
#: the longest a function may be, from its ``def`` line to its last line (docstring included)
MAX_LINES = 100


def exempt_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ignores = config["tool"]["ruff"]["lint"].get("per-file-ignores", {})
    return [pattern for pattern, rules in ignores.items() if "PLR0915" in rules]


def long_functions(path: Path, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, lines) of every function or method in ``path`` longer than ``limit``."""
    tree = ast.parse(path.read_text(), str(path))
    return [(node.name, node.lineno, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_the_counter_counts_lines_from_def_to_the_end(tmp_path):
    path = tmp_path / "probe.py"
    lines = [f"x{i} = {i}" for i in range(99)]
    short = ["def short():"] + [f"    {line}" for line in lines]  # 100 lines: allowed
    long = ["class A:", "    def long(self):"] + [f"        {line}" for line in lines] + ["        return 1"]
    path.write_text("\n".join(short + ["", ""] + long) + "\n")
    assert long_functions(path) == [("long", 104, 101)]


def test_no_function_in_product_code_is_over_100_lines():
    exempt = exempt_patterns()
    found = []
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(fnmatch(rel, pattern) for pattern in exempt):
                continue
            found += [f"{rel}:{line} {name}() is {n} lines" for name, line, n in long_functions(path)]
    assert not found, f"functions over {MAX_LINES} lines (split them):\n" + "\n".join(found)
