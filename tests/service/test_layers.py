"""The layers: the modules that say "no Flask" import none, and no module imports itself round a cycle.

The layers themselves (interfaces > app glue > domain > storage and errors,
and ``verifiers`` importing nothing of ``codeservice``) are an import-linter
contract in ``pyproject.toml``, which ``./dev lint`` checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

# The modules whose docstrings promise no Flask (and the offline library): importing each loads none.
FLASK_FREE = (
    "codeservice.usage",
    "codeservice.scanners",
    "codeservice.scan_store",
    "codeservice.residents",
    "codeservice.revocation",
    "codeservice.issuance",
    "codeservice.identity",
    "codeservice.qr",
    "verifiers",
)


@pytest.mark.parametrize("module", FLASK_FREE)
def test_a_flask_free_module_imports_no_flask(module: str) -> None:
    program = (
        "import json, sys\n"
        f"import {module}\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] == 'flask')))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("package", ["codeservice", "verifiers"])
def test_no_module_imports_itself_round_a_cycle(package: str) -> None:
    """Every import anywhere in a file counts: in a function, under ``TYPE_CHECKING``, a package's of its child."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph(package, cache_dir=None)  # TYPE_CHECKING imports included
    cycles = [sorted(component) for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def _strongly_connected(graph: Any) -> list[set[str]]:
    """The import graph's strongly connected components (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    imports = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in modules}
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            module, next_child = work.pop()
            if next_child == 0:
                index[module] = lowlink[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            children = imports[module]
            for position in range(next_child, len(children)):
                child = children[position]
                if child not in index:
                    work.append((module, position + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    lowlink[module] = min(lowlink[module], index[child])
            else:
                if lowlink[module] == index[module]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == module:
                            break
                    components.append(component)
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[module])
    return components
