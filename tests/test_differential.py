"""Differential tests: every graph in tests/differential/cases.py runs on LangGraph (the
reference) and on arqgraph (the candidate), and both must produce the same results.

Compared, per case and run: the `invoke` output; `stream` events for "updates" alone and the
multi-mode list ["updates", "values", "custom"] (which holds every event of the single modes,
so one single mode is enough to check their shape); `ainvoke`/`astream`; and for
failing runs the exception class name and the first line of its message (plus the events
streamed before it). Cases with async nodes use only the async API (LangGraph's sync API
refuses coroutine nodes). Cases flagged `unordered` have concurrent tasks with no controlled
completion order: their "updates" and "custom" events compare as sorted lists of repr().

`DIFF_SELF_CHECK=1` runs LangGraph on both sides, to validate the harness itself.
Every call runs in a daemon thread with its own event loop and a timeout (`DIFF_TIMEOUT`,
seconds), so a hanging runtime fails one test instead of the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.differential.api import REFERENCE, Api, candidate_prefix, self_check
from tests.differential.cases import CASES, COMPILE_ERRORS, Case

TIMEOUT = float(os.environ.get("DIFF_TIMEOUT", "15"))
MODES: dict[str, str | list[str]] = {
    "updates": "updates",
    "multi": ["updates", "values", "custom"],
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ---------------------------------------------------------------------------------------------
# Normalisation: make results of both libraries comparable


def normalize(value: Any) -> Any:
    """A comparable form: random message ids masked, library objects turned into tuples."""
    if isinstance(value, str):
        return UUID.sub("<uuid>", value)
    if isinstance(value, dict):
        return {normalize(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(normalize(v) for v in value)
    cls = type(value).__name__
    if cls in ("Send", "Command"):
        fields = ("node", "arg") if cls == "Send" else ("graph", "update", "resume", "goto")
        return (f"<{cls}>", *(normalize(getattr(value, f, None)) for f in fields))
    if hasattr(value, "model_dump") and callable(value.model_dump):
        # langchain messages and pydantic models: class name + their fields
        fields = value.model_dump()
        if isinstance(fields, dict) and "tool_call_id" in fields and fields.get("id") is None:
            # a ToolMessage's id is add_messages' uuid4, set on the very object the node
            # returned: whether an "updates" event shows it depends on when it is read
            fields["id"] = "<uuid>"
        return ("<model>", cls, normalize(fields))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ("<dataclass>", cls,
                {f.name: normalize(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


ELAPSED = re.compile(r"elapsed: [0-9.]+s")  # (a timeout's message says how long it ran)


def error_info(exc: BaseException) -> tuple[str, str]:
    lines = str(exc).splitlines()
    first = UUID.sub("<uuid>", lines[0] if lines else "")
    return (type(exc).__name__, ELAPSED.sub("elapsed: <time>", first))


# ---------------------------------------------------------------------------------------------
# Running one side


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a fresh daemon thread; a hang becomes a ("Timeout", ...) error outcome."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported, not swallowed
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        return {"error": ("Timeout", f"no result after {TIMEOUT}s")}
    if "error" in box:
        raise box["error"]
    return box["result"]


def _build(api: Api, case: Case, cluster: str | None) -> Any:
    graph = case.build(api)
    return graph.with_cluster(cluster) if cluster else graph


def _invoke(api: Api, case: Case, run_index: int, use_async: bool, cluster: str | None = None
            ) -> dict[str, Any]:
    run = case.runs[run_index]

    def call() -> dict[str, Any]:
        graph = _build(api, case, cluster)
        try:
            if use_async:
                output = asyncio.run(graph.ainvoke(run.input, run.config, **run.extra))
            else:
                output = graph.invoke(run.input, run.config, **run.extra)
        except Exception as exc:
            return {"error": error_info(exc)}
        return {"output": normalize(output)}

    return _in_thread(call)


def _stream(api: Api, case: Case, run_index: int, mode: str, use_async: bool,
            cluster: str | None = None, subgraphs: bool = False) -> dict[str, Any]:
    run = case.runs[run_index]
    stream_mode = MODES[mode]

    def call() -> dict[str, Any]:
        graph = _build(api, case, cluster)
        events: list[Any] = []
        error = None
        try:
            if use_async:
                async def consume() -> None:
                    async for event in graph.astream(run.input, run.config, **run.extra,
                                                     stream_mode=stream_mode,
                                                     subgraphs=subgraphs):
                        events.append(normalize(event))

                asyncio.run(consume())
            else:
                for event in graph.stream(run.input, run.config, **run.extra,
                                         stream_mode=stream_mode, subgraphs=subgraphs):
                    events.append(normalize(event))
        except Exception as exc:
            error = error_info(exc)
        return {"events": events, "error": error}

    result = _in_thread(call)
    if "events" in result:
        result["events"] = canonical(result["events"], mode, case.unordered)
    return result


def canonical(events: list[Any], mode: str, unordered: bool) -> Any:
    """The events in comparable form: exact, or order-insensitive where order is not fixed."""
    if not unordered or mode == "values":
        return events
    if mode in ("updates", "custom"):
        return sorted(repr(e) for e in events)
    # multi-mode: values in order, updates and custom as sorted lists
    split: dict[str, list[Any]] = {"values": [], "updates": [], "custom": [], "other": []}
    for event in events:
        if isinstance(event, tuple) and len(event) == 2 and event[0] in split:
            split[event[0]].append(event[1])
        elif isinstance(event, tuple) and len(event) == 3 and event[1] in split:  # subgraphs
            split[event[1]].append((event[0], event[2]))
        else:
            split["other"].append(event)
    if any(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], tuple)
           for v in split["values"]):  # concurrent subgraphs (their masked namespaces alike)
        split["values"] = sorted(split["values"], key=repr)
    return {
        "values": split["values"],
        "updates": sorted(repr(e) for e in split["updates"]),
        "custom": sorted(repr(e) for e in split["custom"]),
        "other": split["other"],
    }


# ---------------------------------------------------------------------------------------------
# Sides


@pytest.fixture(scope="module")
def reference() -> Api:
    return Api(REFERENCE)


@pytest.fixture(scope="module")
def candidate() -> Api:
    api = Api(candidate_prefix())
    if not self_check():
        assert api.StateGraph.__module__.startswith("arqgraph."), api.StateGraph.__module__
    return api


def _case_runs() -> list[Any]:
    return [
        pytest.param(case, i, id=f"{case.name}-{i}")
        for case in CASES
        for i in range(len(case.runs))
    ]


def _explain(case: Case, run_index: int) -> str:
    run = case.runs[run_index]
    flags = [f for f in ("async_only", "unordered") if getattr(case, f)]
    return (f"case {case.name!r} run {run_index}: input={run.input!r} config={run.config!r}"
            f" context={run.context!r}"
            f" flags={flags} {case.note}")


# ---------------------------------------------------------------------------------------------
# Tests


def test_case_names_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 30


@pytest.mark.parametrize(("case", "run_index"), _case_runs())
def test_invoke(case: Case, run_index: int, reference: Api, candidate: Api) -> None:
    """`invoke` (or `ainvoke` for async-only cases): same output, or same error."""
    expected = _invoke(reference, case, run_index, use_async=case.async_only)
    actual = _invoke(candidate, case, run_index, use_async=case.async_only)
    assert actual == expected, _explain(case, run_index)


@pytest.mark.parametrize("mode", ["updates", "multi"])
@pytest.mark.parametrize(("case", "run_index"), _case_runs())
def test_stream(case: Case, run_index: int, mode: str, reference: Api, candidate: Api) -> None:
    """`stream` (or `astream` for async-only cases) per mode: same events, same error."""
    expected = _stream(reference, case, run_index, mode, use_async=case.async_only)
    actual = _stream(candidate, case, run_index, mode, use_async=case.async_only)
    assert actual == expected, f"mode={mode} " + _explain(case, run_index)


@pytest.mark.parametrize(("case", "run_index"), _case_runs())
def test_stream_subgraphs(case: Case, run_index: int, reference: Api, candidate: Api) -> None:
    """Multi-mode `stream(subgraphs=True)`: every event with its namespace, the subgraphs'
    events included."""
    expected = _stream(reference, case, run_index, "multi", case.async_only, subgraphs=True)
    actual = _stream(candidate, case, run_index, "multi", case.async_only, subgraphs=True)
    assert actual == expected, "subgraphs=True " + _explain(case, run_index)


@pytest.mark.parametrize(
    ("case", "run_index"),
    [p for p in _case_runs() if not p.values[0].async_only],
)
def test_async_api(case: Case, run_index: int, reference: Api, candidate: Api) -> None:
    """`ainvoke` and multi-mode `astream` on graphs of sync nodes (async-only cases already
    go through the async API in the other tests)."""
    expected_invoke = _invoke(reference, case, run_index, use_async=True)
    actual_invoke = _invoke(candidate, case, run_index, use_async=True)
    assert actual_invoke == expected_invoke, "ainvoke " + _explain(case, run_index)
    expected = _stream(reference, case, run_index, "multi", use_async=True)
    actual = _stream(candidate, case, run_index, "multi", use_async=True)
    assert actual == expected, "astream multi " + _explain(case, run_index)


def _build_outcome(api: Api, build: Callable[[Api], Any]) -> tuple[str, str]:
    try:
        build(api)
    except Exception as exc:
        return error_info(exc)
    return ("no error", "")


@pytest.mark.parametrize("name", list(COMPILE_ERRORS))
def test_compile_errors(name: str, reference: Api, candidate: Api) -> None:
    """Building/compiling an invalid graph: same exception class and message."""
    build = COMPILE_ERRORS[name]
    expected = _build_outcome(reference, build)
    actual = _build_outcome(candidate, build)
    assert actual == expected, name


RECORDED = {"tasks": "tasks", "checkpoints": "checkpoints", "debug": "debug",
            "v2": ["values", "updates", "tasks", "checkpoints"]}
VOLATILE = ("id", "checkpoint_id", "timestamp")


def masked(value: Any) -> Any:
    """`normalize`, and the values that differ from run to run (ids, times) masked."""
    if isinstance(value, dict):
        return {k: "<masked>" if k in VOLATILE else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(masked(v) for v in value)
    return normalize(value)


def recorded_modes_cases() -> list[Any]:
    """Cases whose steps finish in a fixed order (a "tasks" stream lists them as they end)."""
    return [p for p in _case_runs() if not p.values[0].unordered][::3]


def _recorded(api: Api, case: Case, run_index: int, mode: str, cluster: str | None = None
              ) -> Any:
    version = "v2" if mode == "v2" else "v1"
    run = case.runs[run_index]

    def call() -> Any:
        graph = _build(api, case, cluster)

        async def consume() -> list[Any]:
            return [masked(e) async for e in graph.astream(
                run.input, run.config, **run.extra, stream_mode=RECORDED[mode],
                version=version)]

        try:
            return asyncio.run(consume())
        except Exception as exc:
            return error_info(exc)

    return _in_thread(call)


@pytest.mark.parametrize("mode", list(RECORDED))
@pytest.mark.parametrize(("case", "run_index"), recorded_modes_cases())
def test_recorded_stream_modes(case: Case, run_index: int, mode: str, reference: Api,
                               candidate: Api) -> None:
    """The "tasks", "checkpoints" and "debug" modes, and v2 stream parts: the same events as
    LangGraph's, ids and times aside."""
    expected = _recorded(reference, case, run_index, mode)
    actual = _recorded(candidate, case, run_index, mode)
    if isinstance(expected, list) and isinstance(actual, list):  # the same events, and the
        # same sequence of checkpoints and values (the tasks of one step start in any order)
        assert sorted(map(_keyed, actual)) == sorted(map(_keyed, expected)), _explain(
            case, run_index)
        expected, actual = _in_order(expected), _in_order(actual)
    assert actual == expected, f"mode={mode} " + _explain(case, run_index)


def _keyed(value: Any) -> str:
    """A repr that does not depend on the order of dict keys."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_keyed(v)}" for k, v in sorted(
            value.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return repr(type(value)(_keyed(v) for v in value))
    return repr(value)


def _in_order(events: list[Any]) -> list[Any]:
    """The events whose order is fixed: checkpoints and values (those of v2 and of debug)."""
    def fixed(event: Any) -> bool:
        data = event.get("data", event) if isinstance(event, dict) else event
        kinds = {event.get("type") if isinstance(event, dict) else None,
                 data.get("type") if isinstance(data, dict) else None}
        return bool(kinds & {"values", "checkpoints", "checkpoint"}) or (
            isinstance(data, dict) and "parent_config" in data)
    return [e for e in events if fixed(e)]
