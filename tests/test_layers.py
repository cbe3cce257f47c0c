"""Imports flow one way, down the layers of the package:

    public API      arqgraph.graph, .func, .checkpoint, .nodes, .pocketflow, .loader, .cli, ...
    producers       arqgraph.client (the producer Client) and .run_handle (a run it holds),
                    arqgraph.embedded (the default runner),
                    arqgraph.run_report (a run reported to the caller's LangChain callbacks)
    processes       arqgraph.orchestrator, arqgraph.workers (siblings: neither imports the other)
    wire, storage   arqgraph.protocol (every Redis key, script, message), arqgraph.storage
    core            arqgraph.core: the pure superstep (no Redis, no I/O)
    vocabulary      arqgraph.errors, .types, .interrupts, .runtime, .config, .constants, .managed,
                    .typing, .stream_parts, .store (the long-term memory API), .callbacks,
                    .trace_policy, .observe (the hooks metrics, traces and logs hear)

A module may import its own layer and those below it. Imports made only for annotations
(`if TYPE_CHECKING:`) do not count: they never run. The static check reads every module's
imports, those inside functions too; the fresh-interpreter checks make sure that importing a
layer really loads nothing above it, package `__init__` files included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"shared": "arqgraph", "orchestrator": "arqgraph.orchestrator", "workers": "arqgraph.workers"}

LAYERS: list[tuple[str, tuple[str, ...]]] = [  # bottom first
    ("vocabulary", ("arqgraph.errors", "arqgraph.types", "arqgraph.interrupts",
                    "arqgraph.runtime", "arqgraph.config",
                    "arqgraph.constants", "arqgraph.managed", "arqgraph.typing",
                    "arqgraph.stream_parts", "arqgraph.store", "arqgraph.callbacks",
                    "arqgraph.trace_policy", "arqgraph.observe")),
    ("core", ("arqgraph.core",)),
    ("wire and storage", ("arqgraph.protocol", "arqgraph.storage")),
    ("processes", ("arqgraph.orchestrator", "arqgraph.workers")),
    ("producers", ("arqgraph.client", "arqgraph.run_handle", "arqgraph.embedded",
                   "arqgraph.run_report")),
    ("public API", ("arqgraph",)),  # everything else, the package itself included
]
SIBLINGS = ("arqgraph.orchestrator", "arqgraph.workers")


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int:
    """The index in LAYERS of the most specific package holding `module`."""
    best, length = len(LAYERS) - 1, 0
    for index, (_, packages) in enumerate(LAYERS):
        for package in packages:
            if within(module, package) and len(package) > length:
                best, length = index, len(package)
    return best


def module_files() -> dict[str, Path]:
    """Every module of the package by its import name, as the package-dir mapping installs it."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def runtime_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The arqgraph modules `path` imports when it runs (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:  # `from arqgraph import protocol` names a module
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in names if within(name, "arqgraph")}


def test_every_module_imports_only_its_layer_and_below() -> None:
    files = module_files()
    assert "arqgraph.core.pregel" in files and "arqgraph.workers.worker" in files
    wrong = []
    for module, path in files.items():
        for target in runtime_imports(path, module, set(files)):
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]})")
            for mine, other in (SIBLINGS, SIBLINGS[::-1]):
                if within(module, mine) and within(target, other):
                    wrong.append(f"{module} imports its sibling {target}")
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The static check is not vacuous: an upward import, even inside a function, is seen;
    one under `if TYPE_CHECKING:` is not."""
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from arqgraph.graph import StateGraph\n"
                      "def f():\n    from arqgraph import protocol\n")
    found = runtime_imports(source, "arqgraph.core.m", {"arqgraph.protocol"})
    assert found == {"arqgraph.protocol"}
    assert layer_of("arqgraph.protocol") > layer_of("arqgraph.core.m")
    assert layer_of("arqgraph.graph.state") == len(LAYERS) - 1


def loaded_modules(module: str) -> set[str]:
    """Every module in sys.modules once `module` is imported in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(("module", "forbidden"), [
    ("arqgraph.core.pregel", ("redis", "arq", "fakeredis", "arqgraph.protocol", "arqgraph.storage",
                              "arqgraph.orchestrator", "arqgraph.workers", "arqgraph.graph")),
    ("arqgraph.storage.moves", ("arqgraph.orchestrator", "arqgraph.workers", "arqgraph.graph")),
    ("arqgraph.workers.worker", ("arqgraph.orchestrator", "arqgraph.graph", "arqgraph.func",
                                 "arqgraph.client", "arqgraph.embedded")),
    ("arqgraph.orchestrator.service", ("arqgraph.workers", "arqgraph.graph", "arqgraph.func",
                                       "arqgraph.client", "arqgraph.embedded")),
    ("arqgraph.graph", ("arqgraph.orchestrator", "arqgraph.workers", "arqgraph.embedded")),
])
def test_importing_a_layer_loads_nothing_above_it(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = loaded_modules(module)
    assert module in loaded
    assert sorted(m for m in loaded if any(within(m, f) for f in forbidden)) == []
