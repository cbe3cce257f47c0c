"""The node runtime against LangGraph: `RunControl` drains (asked before the run, by a node
through its closure or through `runtime.control`, right before a breakpoint), what a resumed
drained run does, `runtime.execution_info` (attempts, namespaces, thread) and `server_info`,
and `Runtime.merge` / `override`. Each scenario runs on LangGraph and on arqgraph (embedded)
and their transcripts must be equal; ids are compared by shape only.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypedDict

import pytest

from tests.differential.api import REFERENCE, Api

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")


class State(TypedDict, total=False):
    first: str
    second: str


def module(api: Api, name: str) -> Any:
    import importlib

    return importlib.import_module(f"{api.prefix}.{name}")


def two_steps(api: Api, first: Any, **compile_kwargs: Any) -> Any:
    g = api.StateGraph(State)
    g.add_node("first", first)
    g.add_node("second", lambda state: {"second": "ran"})
    g.add_edge(api.START, "first")
    g.add_edge("first", "second")
    return g.compile(checkpointer=api.InMemorySaver(), **compile_kwargs)


def outcome(call: Any) -> Any:
    try:
        return ("returned", call())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def both(scenario: Any) -> tuple[Any, Any]:
    return scenario(Api(REFERENCE)), scenario(Api("arqgraph"))


def drained_then_resumed(api: Api, graph: Any, control: Any) -> list[Any]:
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    first = outcome(lambda: graph.invoke({}, config, control=control))
    state = graph.get_state(config)
    return [first, state.values, state.next, graph.invoke(None, config)]


def test_drain_asked_before_the_run_starts_runs_no_node() -> None:
    def scenario(api: Api) -> Any:
        control = module(api, "runtime").RunControl()
        control.request_drain("before")
        return drained_then_resumed(api, two_steps(api, lambda s: {"first": "done"}), control)

    expected, actual = both(scenario)
    assert actual == expected


def test_drain_asked_by_a_node_ends_the_run_after_its_step() -> None:
    def scenario(api: Api) -> Any:
        control = module(api, "runtime").RunControl()

        def first(state: State) -> dict[str, str]:
            control.request_drain("rollout")
            return {"first": "done"}

        return drained_then_resumed(api, two_steps(api, first), control)

    expected, actual = both(scenario)
    assert actual == expected
    assert expected[0][1] == "GraphDrained"


def test_drain_through_runtime_control() -> None:
    def scenario(api: Api) -> Any:
        runtime_type = module(api, "runtime").Runtime

        def first(state: State, runtime: runtime_type) -> dict[str, str]:  # type: ignore[valid-type]
            runtime.control.request_drain("from the node")  # type: ignore[attr-defined]
            return {"first": str(runtime.drain_requested)}  # type: ignore[attr-defined]

        return drained_then_resumed(api, two_steps(api, first), None)

    expected, actual = both(scenario)
    assert actual == expected


def test_drain_right_before_a_breakpoint_stops_at_the_breakpoint() -> None:
    def scenario(api: Api) -> Any:
        control = module(api, "runtime").RunControl()

        def first(state: State) -> dict[str, str]:
            control.request_drain("rollout")
            return {"first": "done"}

        graph = two_steps(api, first, interrupt_before=["second"])
        return drained_then_resumed(api, graph, control)

    expected, actual = both(scenario)
    assert actual == expected


def test_execution_info_and_server_info() -> None:
    def scenario(api: Api) -> Any:
        rt = module(api, "runtime")
        seen: list[Any] = []
        attempts = {"n": 0}

        def first(state: State, runtime: rt.Runtime) -> dict[str, str]:  # type: ignore[name-defined]
            info = runtime.execution_info
            server = runtime.server_info
            seen.append((info.node_attempt, info.thread_id, shape(info.checkpoint_ns),
                         shape(info.task_id), bool(info.checkpoint_id),
                         isinstance(info.node_first_attempt_time, float),
                         server and (server.assistant_id, server.graph_id, server.user)))
            attempts["n"] += 1
            if attempts["n"] < 2:
                raise ConnectionError("once more")
            return {"first": "done"}

        g = api.StateGraph(State)
        g.add_node("first", first, retry_policy=api.RetryPolicy(initial_interval=0.01,
                                                                 jitter=False))
        g.add_edge(api.START, "first")
        graph = g.compile(checkpointer=api.InMemorySaver())
        config = {"configurable": {"thread_id": "t-info", "assistant_id": "a1",
                                   "graph_id": "g1"}}
        return [graph.invoke({}, config), seen]

    expected, actual = both(scenario)
    assert actual == expected


def test_runtime_merge_and_override() -> None:
    def scenario(api: Api) -> Any:
        rt = module(api, "runtime")
        base = rt.Runtime(context={"user": "a"}, previous=1)
        merged = base.merge(rt.Runtime(context={"user": "b"}))
        info = rt.ExecutionInfo(checkpoint_id="c", checkpoint_ns="", task_id="t")
        patched = base.override(execution_info=info).patch_execution_info(node_attempt=3)
        return [merged.context, merged.previous, patched.execution_info.node_attempt,
                rt.Runtime().drain_requested, outcome(lambda: base.patch_execution_info(x=1))]

    expected, actual = both(scenario)
    assert actual == expected


def shape(value: Any) -> str:
    """Ids as their shape: a UUID, `node:<uuid>`, or the value itself."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>",
                  str(value))


def test_breakpoints_given_to_one_run() -> None:
    """`invoke(interrupt_before=..., interrupt_after=...)`: this run's breakpoints, in place
    of the graph's; a resume passes the one it stopped at."""
    def scenario(api: Api) -> Any:
        graph = two_steps(api, lambda state: {"first": "done"})
        out = []
        for kwargs in ({"interrupt_before": ["second"]}, {"interrupt_after": "*"},
                       {"interrupt_before": ["ghost"]}):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            out.append(outcome(lambda: graph.invoke({}, config, **kwargs)))  # noqa: B023
            out.append(graph.get_state(config).next)
            out.append(outcome(lambda: graph.invoke(None, config, **kwargs)))  # noqa: B023
        return out

    expected, actual = both(scenario)
    assert actual == expected


def test_entrypoint_previous_and_final() -> None:
    """An entrypoint gets its thread's previous return value (or what `entrypoint.final`
    saved) as `previous`."""
    def scenario(api: Api) -> Any:
        func = module(api, "func")

        @func.entrypoint(checkpointer=api.InMemorySaver())
        def counter(n: int, *, previous: Any) -> Any:
            total = (previous or 0) + n
            return func.entrypoint.final(value=f"total {total}", save=total)

        config = {"configurable": {"thread_id": "counting"}}
        return [counter.invoke(2, config), counter.invoke(3, config),
                list(counter.stream(4, config)), counter.get_state(config).values]

    expected, actual = both(scenario)
    assert actual == expected


def test_interrupt_inside_a_task() -> None:
    """A `@task` that asks a human stops its entrypoint; each answer runs the task again with
    the answers so far, and finished tasks do not run again."""
    def scenario(api: Api) -> Any:
        func, types = module(api, "func"), module(api, "types")
        calls: list[str] = []

        @func.task
        def prepare(q: str) -> str:
            calls.append("prepare")
            return f"{q}!"

        @func.task
        def ask(q: str) -> str:
            calls.append("ask")
            return f"{q} {types.interrupt('first?')} {types.interrupt('second?')}"

        @func.entrypoint(checkpointer=api.InMemorySaver())
        def flow(q: str) -> str:
            return ask(prepare(q).result()).result()

        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        asked = [flow.invoke("go", config)]
        for answer in ("a", "b"):
            asked.append(flow.invoke(types.Command(resume=answer), config))
        return [[{k: [i.value for i in v] if k == "__interrupt__" else v
                  for k, v in a.items()} if isinstance(a, dict) else a for a in asked], calls]

    expected, actual = both(scenario)
    assert actual == expected
