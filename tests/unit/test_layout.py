"""The layout's size rules (README: Layout): a module over 400 lines or a function over 60 is
split by responsibility, in the broker and in its tests and benchmarks alike (the end-to-end
tests excepted: they are kept as written, the proof that the broker's behaviour holds). The
import rules are checked by `lint-imports` (pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import broker

PACKAGE = Path(broker.__file__).parent
REPO = PACKAGE.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    """The broker's modules, and the tests' and benchmarks' (not the end-to-end tests)."""
    found = [
        *PACKAGE.rglob("*.py"),
        *(REPO / "tests").rglob("*.py"),
        *(REPO / "bench").rglob("*.py"),
    ]
    return sorted(p for p in found if "e2e" not in p.relative_to(REPO).parts)


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _long_functions(path: Path) -> list[str]:
    """``name:line`` of each function of ``path`` longer than the rule allows."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{node.name}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_rules_see_the_whole_package() -> None:
    names = {str(p.relative_to(REPO)) for p in _modules()}
    assert {
        "broker/app.py",
        "broker/store/worklist.py",
        "broker/cli/main.py",
        "tests/unit/test_layout.py",
        "bench/cfind.py",
    } <= names
    assert not any(name.startswith("tests/e2e/") for name in names)


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): _lines(p) for p in _modules()}
    assert {name: n for name, n in long.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_over_60_lines() -> None:
    long = {str(p.relative_to(REPO)): _long_functions(p) for p in _modules()}
    assert {name: found for name, found in long.items() if found} == {}


def test_a_long_function_is_seen(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "long.py"
    module.write_text(f"def f() -> None:\n{body}\n", encoding="utf-8")
    assert _long_functions(module) == ["f:1"]
