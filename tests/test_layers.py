"""The layers stay apart: the superstep algorithm knows nothing of Redis, arq or the processes
around it, and a worker runs without the orchestrator package (both plan moves with
`shared.moves`). Each check imports in a fresh interpreter, so other tests' imports do not hide
a dependency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(module: str) -> set[str]:
    """The top-level packages in sys.modules once `module` is imported."""
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(("module", "forbidden"), [
    ("shared.pregel", {"redis", "arq", "fakeredis", "orchestrator", "workers"}),
    ("workers.worker", {"orchestrator"}),
    ("shared.moves", {"orchestrator", "workers"}),
])
def test_a_layer_does_not_import_the_ones_above_it(module: str, forbidden: set[str]) -> None:
    assert imported_packages(module) & forbidden == set()
