"""The typed user program that `scripts/typecheck` checks with `mypy --strict`
(tests/typed/user_program.py) also runs, embedded: what it types is a working program."""

from __future__ import annotations

from typing import Any

import pytest

from tests.typed import user_program


def test_the_typed_program_runs_embedded(capsys: pytest.CaptureFixture[str]) -> None:
    user_program.run_embedded()
    user_program.run_functional()
    printed = capsys.readouterr().out
    assert "('custom', {'planning': 'cats'})" in printed and "'approved': True" in printed
    assert "{'loud': 'HI', 'size': 2}" in printed
    answer: dict[str, Any] = user_program.agent.invoke({"messages": []})
    assert answer["messages"][-1].content == "sunny in Paris"
