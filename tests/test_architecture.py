"""The layout's habits, checked: no import cycle, no module over 600 lines, thin handlers.

The layers themselves (who may import whom) are the import-linter contract in
pyproject.toml, run by ``make lint``; these are what it does not check.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "m7etl"
MAX_MODULE_LINES = 600
MAX_HANDLER_CODE_LINES = 45  # "about 40": parse, call one function, metrics, return


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
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
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    graph = grimp.build_graph("m7etl")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_no_module_over_600_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def _code_lines(path: Path) -> int:
    """Lines of code: no docstrings, comments or blank lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for i, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc_lines)


@pytest.mark.parametrize("handler", sorted((ROOT / "lambda_src").glob("*.py")), ids=lambda p: p.name)
def test_handlers_are_thin(handler):
    assert _code_lines(handler) <= MAX_HANDLER_CODE_LINES


def test_the_layer_contract_is_kept_and_has_teeth(tmp_path):
    """lint-imports passes on the tree, and fails on a copy whose core imports click."""
    lint = Path(sys.executable).with_name("lint-imports")
    ok = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout[-2000:]
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    layout = copy / "src" / "m7etl" / "core" / "layout.py"
    layout.write_text(layout.read_text() + "\nimport click  # noqa\n")
    broken = subprocess.run([str(lint), "--no-cache"], cwd=copy, capture_output=True, text=True,
                            check=False, env={"PYTHONPATH": str(copy / "src"), "PATH": "/usr/bin:/bin"})
    assert broken.returncode == 1
    assert "m7etl.core.layout -> click" in broken.stdout
