"""The layers hold: import-linter's contracts pass, and no use case imports another in a cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Return the strongly connected groups (Tarjan) of more than one module inside ``package``."""
    modules = sorted(m for m in graph.find_children(package))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return groups


def test_use_cases_import_each_other_without_cycles():
    graph = grimp.build_graph("referflow")
    assert _cycles(graph, "referflow.actions") == []
    assert _cycles(graph, "referflow.domain") == []


def test_import_linter_contracts_are_kept():
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:]
