"""The shape bar for ``bridge/`` (issue 12, "Done means"): no function above cyclomatic complexity 15
(radon, as ``radon cc -s -n C bridge`` counts it), no class over 250 lines, no module over 450 lines.
Every file under ``bridge/`` is measured; none is excused. ruff's PLR0912/PLR0915 hold the same line
for branches and statements (pyproject.toml)."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radon.complexity import cc_visit

from tests.helpers import REPO

MAX_COMPLEXITY = 15
MAX_CLASS_LINES = 250
MAX_MODULE_LINES = 450
BRIDGE = REPO / "bridge"


def _blocks(blocks: list[Any]) -> Iterator[Any]:
    """Every block radon found: functions, classes, and inside them methods, closures and nested
    classes (a method can come twice: radon lists it on its own and in its class)."""
    for block in blocks:
        yield block
        for inner in ("methods", "closures", "inner_classes"):
            yield from _blocks(list(getattr(block, inner, ())))


def too_complex(source: str) -> list[tuple[str, int, int]]:
    """(name, line, complexity) of every function or method above ``MAX_COMPLEXITY``."""
    seen: set[tuple[str, int]] = set()
    out = []
    for block in _blocks(cc_visit(source)):
        if not hasattr(block, "is_method"):
            continue  # a class: its complexity is its methods', checked one by one
        key = (block.fullname, block.lineno)
        if key not in seen and block.complexity > MAX_COMPLEXITY:
            seen.add(key)
            out.append((block.fullname, block.lineno, block.complexity))
    return out


def too_long_classes(source: str) -> list[tuple[str, int, int]]:
    """(name, line, length in lines) of every class, nested ones too, longer than ``MAX_CLASS_LINES``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_CLASS_LINES:
                out.append((node.name, node.lineno, length))
    return out


def _modules() -> list[Path]:
    paths = sorted(BRIDGE.rglob("*.py"))
    assert len(paths) > 50, f"bridge/ not found under {REPO}"
    return paths


def _where(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_no_function_in_bridge_above_complexity_15() -> None:
    found = [
        f"{_where(path)}:{line} {name} has complexity {cc} (at most {MAX_COMPLEXITY})"
        for path in _modules()
        for name, line, cc in too_complex(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_no_class_in_bridge_over_250_lines() -> None:
    found = [
        f"{_where(path)}:{line} class {name} is {length} lines (at most {MAX_CLASS_LINES})"
        for path in _modules()
        for name, line, length in too_long_classes(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_no_module_in_bridge_over_450_lines() -> None:
    found = [
        f"{_where(path)} is {n} lines (at most {MAX_MODULE_LINES})"
        for path in _modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not found, "\n".join(found)


def _branches(name: str, n: int, indent: str = "    ") -> str:
    """A function of complexity ``n + 1`` (``n`` ifs)."""
    body = "".join(f"{indent}if x == {i}:\n{indent}    return {i}\n" for i in range(n))
    return f"def {name}(x):\n{body}{indent}return -1\n"


def test_the_measures_see_functions_methods_closures_and_nested_classes() -> None:
    """The guard itself: what it must catch, it catches; what is within the bar, it lets through."""
    assert too_complex(_branches("ok", MAX_COMPLEXITY - 1)) == []
    assert too_complex(_branches("top", MAX_COMPLEXITY)) == [("top", 1, MAX_COMPLEXITY + 1)]
    method = "class K:\n" + textwrap.indent(_branches("m", MAX_COMPLEXITY), "    ")
    assert too_complex(method) == [("K.m", 2, MAX_COMPLEXITY + 1)]
    closure = "def outer():\n" + textwrap.indent(_branches("inner", MAX_COMPLEXITY), "    ") + "    return inner\n"
    assert too_complex(closure) == [("inner", 2, MAX_COMPLEXITY + 1)]
    inner_class = "class O:\n    class I:\n" + textwrap.indent(_branches("m", MAX_COMPLEXITY), "        ")
    assert too_complex(inner_class) == [("I.m", 3, MAX_COMPLEXITY + 1)]
    lines = [f"    a{i} = {i}\n" for i in range(MAX_CLASS_LINES)]
    filler = "".join(lines)
    assert too_long_classes("class Short:\n" + "".join(lines[:-1])) == []  # exactly MAX_CLASS_LINES lines
    assert too_long_classes(f"class Long:\n{filler}") == [("Long", 1, MAX_CLASS_LINES + 1)]
    nested = "class Outer:\n" + textwrap.indent(f"class Inner:\n{filler}", "    ")
    assert [name for name, _, _ in too_long_classes(nested)] == ["Outer", "Inner"]
