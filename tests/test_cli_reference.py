"""docs/cli.md is the `arqgraph` command's --help, as scripts/cli-reference renders it."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cli-reference"


def test_the_cli_reference_is_current() -> None:
    loader = importlib.machinery.SourceFileLoader("cli_reference", str(SCRIPT))
    spec = importlib.util.spec_from_loader("cli_reference", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    assert module.DOC.read_text() == module.render(), (
        "docs/cli.md is not current: run python scripts/cli-reference")
