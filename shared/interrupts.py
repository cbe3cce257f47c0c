"""What `interrupt()` keeps while a task runs (`InterruptScratch`: the answers given so far, and
the ids of its questions), and how a task's outcome records the questions it asked. The public
names, `Interrupt` and `interrupt()`, are in `arqgraph.types`, as in LangGraph."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pydantic

from arqgraph.types import Interrupt

NO_ANSWER: Any = object()
"""`InterruptScratch.take()` when no resume value is left."""


class InterruptScratch:
    """What `interrupt()` needs while a task runs: the resume values it got so far, in order,
    and how to name its interrupts (stable across re-runs of the same task). `refused`: the
    interrupt whose resume value did not fit its response schema, which stays unanswered."""

    def __init__(self, resume: Sequence[Any], id_base: str) -> None:
        self.resume = list(resume)
        self.id_base = id_base
        self.calls = 0
        self.refused: tuple[Any, ...] | None = None
        # the ids of the interrupts the resume values answer, in order, when known (an
        # entrypoint's: its calls ask at once, so answers go by id, not by who asks first)
        self.answered: list[str] | None = None

    def take(self, asked: Sequence[str] = ()) -> Any:
        """The resume value for an interrupt asked elsewhere (a task call of this entrypoint),
        or NO_ANSWER when none was given yet: the one given for interrupt `asked` when the
        ids the answers were given for are known (`answered`), else the next in order."""
        if self.answered is not None:
            index = next((self.answered.index(i) for i in asked if i in self.answered), None)
            if index is None or index >= len(self.resume):
                return NO_ANSWER
            self.calls += 1  # (the entrypoint's own interrupts count after it)
            return self.resume[index]
        if self.calls < len(self.resume):
            self.calls += 1
            return self.resume[self.calls - 1]
        return NO_ANSWER

    def next(self, value: Any, response_schema: Any = None) -> Any:
        index = self.calls
        self.calls += 1
        adapter = None if response_schema is None or isinstance(response_schema, dict) else (
            pydantic.TypeAdapter(response_schema))
        schema = adapter.json_schema() if adapter is not None else response_schema
        if index < len(self.resume):
            if adapter is None:
                return self.resume[index]
            try:
                return adapter.validate_python(self.resume[index])
            except pydantic.ValidationError as exc:
                from arqgraph.errors import INVALID_RESUME

                setattr(exc, INVALID_RESUME, True)
                self.refused = interrupt_entry(
                    Interrupt(value, interrupt_id(self.id_base, index), schema))
                raise
        from arqgraph.errors import GraphInterrupt

        raise GraphInterrupt((Interrupt(value, interrupt_id(self.id_base, index), schema),))


def interrupt_id(id_base: str, index: int) -> str:
    """The id of a task's `index`-th interrupt (the same each time the task runs again)."""
    return hashlib.sha256(f"{id_base}:{index}".encode()).hexdigest()[:32]


def interrupt_entry(asked: Interrupt) -> tuple[Any, ...]:
    """An interrupt as a task's outcome keeps it: (id, value), and its response schema if any."""
    if asked.response_schema is None:
        return (asked.id, asked.value)
    return (asked.id, asked.value, asked.response_schema)


def interrupt_of(entry: Sequence[Any]) -> Interrupt:
    """The Interrupt an outcome's entry (see `interrupt_entry`) stands for."""
    return Interrupt(entry[1], entry[0], entry[2] if len(entry) > 2 else None)


BREAKPOINT: tuple[Any, ...] = ("", None)
"""The entry of a task stopped by a breakpoint inside the subgraph it runs: it waits, but asks
nothing (no interrupt to answer, none to show)."""


def asked_of(entries: Sequence[Sequence[Any]]) -> tuple[Interrupt, ...]:
    """The interrupts an outcome's entries ask, its breakpoint entry left out."""
    return tuple(interrupt_of(entry) for entry in entries if entry[0] != BREAKPOINT[0])
