"""Transcripts of thread scenarios: what a library did, in a form comparable across libraries.

A thread scenario (tests/test_differential_threads.py) drives one graph through invokes,
streams, resumes, `get_state`, `get_state_history` and `update_state`, and records every
outcome in a `Transcript`. The same scenario runs on LangGraph and on arqgraph; the two
transcripts must be equal.

Normalisation, per recorded value:
- `Interrupt` -> ("Interrupt", value, "i<n>"): ids differ between libraries, so each id is
  replaced by the order of its first appearance in the transcript (the same id always gets
  the same label, so an id that changes where LangGraph keeps it shows as a difference).
- checkpoint configs -> ("config", thread_id, "cp<n>"), labelled the same way: snapshot
  `config` and `parent_config`, and the configs `update_state` returns, compare as structure
  (which checkpoint points to which), never as ids.
- `StateSnapshot` -> {values, next, source, step, config, parent, tasks, interrupts}; a task
  -> (name, error as a string, interrupts, result); checkpoint ids, task ids, created_at and
  the rest of the metadata are left out.
- exceptions -> (type name, first line of the message); callers may cut the message shorter
  where it carries ids.
- Send and Command -> tuples of their fields; strings lose random UUIDs and node timings
  ("elapsed: 0.051s").

Every entry belongs to a section, so that a test can compare one section of a scenario at a
time and a known gap in one does not hide the others: "run" (outputs, stream events, errors,
call counts), "state" (`get_state`), "history" (`get_state_history`), and "input": the
results that snapshots show for their input task (`__start__`), taken out of the snapshot
(where a placeholder stands for them) and recorded right after it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX_ID = re.compile(r"\b[0-9a-f]{16,}\b")
ID_ASIDE = re.compile(r"\s*\([^()]*<id>[^()]*\)")
ELAPSED = re.compile(r"elapsed: \d+(\.\d+)?s")

RUN, STATE, HISTORY, INPUT = "run", "state", "history", "input"
SECTIONS = (RUN, STATE, HISTORY, INPUT)
INPUT_RESULT = "<the input task's result: see section 'input'>"


def mask(text: str) -> str:
    """Random ids and timings out of a string."""
    return ELAPSED.sub("elapsed: <t>s", UUID.sub("<uuid>", text))


def first_line(message: str) -> str:
    lines = message.splitlines()
    return mask(lines[0] if lines else "")


def first_sentence(message: str) -> str:
    """The first sentence, without a parenthesised aside that lists ids (a stable prefix)."""
    line = ID_ASIDE.sub("", HEX_ID.sub("<id>", first_line(message).replace("<uuid>", "<id>")))
    cut = line.find(". ")
    return line if cut < 0 else line[: cut + 1]


def error_info(exc: BaseException) -> tuple[str, str]:
    return (type(exc).__name__, first_line(str(exc)))


class Transcript:
    """The recorded outcomes of one scenario on one library."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Any]] = []
        self._labels: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._inputs: list[Any] = []

    # -- labels ------------------------------------------------------------------------------

    def label(self, kind: str, raw: str) -> str:
        """A stable name for an id: `kind` + order of first appearance in this transcript."""
        key = (kind, raw)
        if key not in self._labels:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._labels[key] = f"{kind}{self._counts[kind] - 1}"
        return self._labels[key]

    # -- normalisation -----------------------------------------------------------------------

    def norm(self, value: Any) -> Any:
        cls = type(value).__name__
        if isinstance(value, BaseException):
            return error_info(value)
        if cls == "StateSnapshot":
            return self.snapshot(value)
        if cls == "PregelTask":
            return self.task(value)
        if cls == "Interrupt":
            return ("Interrupt", self.norm(value.value), self.label("i", str(value.id)))
        if cls in ("Send", "Command"):
            fields = ("node", "arg") if cls == "Send" else ("graph", "update", "resume", "goto")
            return (f"<{cls}>", *(self.norm(getattr(value, f, None)) for f in fields))
        if isinstance(value, str):
            return mask(value)
        if isinstance(value, dict):
            if self.is_config(value):
                return self.config(value)
            if isinstance(value.get("__interrupt__"), list):  # (raised at once by parallel
                # nodes, they come in the order their nodes happened to stop, in LangGraph too)
                value = {**value, "__interrupt__": sorted(
                    value["__interrupt__"], key=lambda i: repr(getattr(i, "value", i)))}
            return {self.norm(k): self.norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.norm(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.norm(v) for v in value)
        return value

    @staticmethod
    def is_config(value: dict[str, Any]) -> bool:
        configurable = value.get("configurable")
        return isinstance(configurable, dict) and "checkpoint_id" in configurable

    def config(self, config: dict[str, Any] | None) -> Any:
        if config is None:
            return None
        configurable = config.get("configurable") or {}
        checkpoint = configurable.get("checkpoint_id")
        return ("config", configurable.get("thread_id"),
                None if checkpoint is None else self.label("cp", str(checkpoint)))

    def task(self, task: Any) -> tuple[Any, ...]:
        error = task.error
        if isinstance(error, BaseException):
            error = repr(error)
        result = self.norm(task.result)
        if task.name == "__start__":
            self._inputs.append(result)
            result = INPUT_RESULT
        return (task.name, None if error is None else self.norm(str(error)),
                self.norm(tuple(task.interrupts)), result)

    def snapshot(self, snap: Any) -> dict[str, Any]:
        metadata = snap.metadata or {}
        return {
            "values": self.norm(snap.values),
            "next": tuple(snap.next),
            "source": metadata.get("source"),
            "step": metadata.get("step"),
            "config": self.config(snap.config),
            "parent": self.config(snap.parent_config),
            "tasks": tuple(self.task(t) for t in snap.tasks),
            "interrupts": self.norm(tuple(snap.interrupts)),
        }

    # -- recording ---------------------------------------------------------------------------

    def add(self, what: str, value: Any, section: str = RUN) -> None:
        """Record a value (normalised now, so labels follow the order of the transcript)."""
        assert section in SECTIONS, section
        self.entries.append((section, what, self.norm(value)))
        if self._inputs:
            self.entries.append((INPUT, what, self._inputs))
            self._inputs = []

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Record `fn(*args, **kwargs)`'s result or its error; return the result (or None)."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.add(what, {"error": exc})
            return None
        self.add(what, result)
        return result

    def attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """Record only whether `fn()` succeeded ("ok") or its error; return its result."""
        try:
            result = fn()
        except Exception as exc:
            self.add(what, {"error": exc})
            return None
        self.add(what, "ok")
        return result

    def stream(self, what: str, events: Iterable[Any]) -> list[Any]:
        """Record a stream's events and its error, if any; return the raw events."""
        seen: list[Any] = []
        error: BaseException | None = None
        try:
            for event in events:
                seen.append(event)
        except Exception as exc:
            error = exc
        self.add(what, {"events": seen, "error": error})
        return seen

    async def astream(self, what: str, events: AsyncIterator[Any]) -> list[Any]:
        seen: list[Any] = []
        error: BaseException | None = None
        try:
            async for event in events:
                seen.append(event)
        except Exception as exc:
            error = exc
        self.add(what, {"events": seen, "error": error})
        return seen

    def state(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Record a `get_state` snapshot (or its error); return it (or None)."""
        try:
            snap = fn(*args, **kwargs)
        except Exception as exc:
            self.add(what, {"error": exc}, STATE)
            return None
        self.add(what, snap, STATE)
        return snap

    def history(self, what: str, fn: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any
                ) -> list[Any]:
        """Record a whole `get_state_history` (or its error); return the snapshots."""
        try:
            shots = list(fn(*args, **kwargs))
        except Exception as exc:
            self.add(what, {"error": exc}, HISTORY)
            return []
        self.add(what, shots, HISTORY)
        return shots

    def record_state(self, what: str, snap: Any) -> None:
        """Record a snapshot obtained elsewhere (e.g. by `aget_state`)."""
        self.add(what, snap, STATE)

    def record_history(self, what: str, snaps: Iterable[Any]) -> None:
        self.add(what, list(snaps), HISTORY)

    def section(self, section: str) -> list[tuple[str, Any]]:
        return [(what, value) for sec, what, value in self.entries if sec == section]
