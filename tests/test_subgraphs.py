"""Subgraphs against LangGraph: the same program on LangGraph, on the embedded default and, where
a test names it, on a real cluster, compared after masking task and checkpoint ids.

Covered: `stream(subgraphs=True)` in one and several modes, interrupts at two depths answered
from the parent, `get_state(subgraphs=True)` and a subgraph's own history addressed by its
`checkpoint_ns`, `Command(graph=Command.PARENT)` routing to a parent node and to a Send, a
subgraph compiled with `checkpointer=True` keeping its state from call to call, and deleting a
thread deleting its subgraphs' threads.
"""

from __future__ import annotations

import importlib
import operator
import re
import uuid
from typing import Annotated, Any, TypedDict

import pytest

from tests.differential.api import REFERENCE, Api
from tests.graphs.durability_graphs import build_breakpoint_subgraph, build_subgraph_then_question

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


class S(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    text: str


def masked(value: Any) -> Any:
    """`value` with ids masked, library objects as plain tuples: comparable across libraries."""
    if isinstance(value, str):
        return IDS.sub("<id>", value)
    if isinstance(value, dict):
        return {masked(k): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(masked(v) for v in value)
    if type(value).__name__ == "Interrupt":
        return ("Interrupt", masked(value.value))
    if type(value).__name__ == "StateSnapshot":
        return ("StateSnapshot", masked(value.values), value.next,
                masked(value.config["configurable"].get("checkpoint_ns")),
                tuple(("task", t.name, masked(t.interrupts), masked(_state(t.state)))
                      for t in value.tasks))
    return value


def _state(state: Any) -> Any:
    """A task's subgraph as a snapshot shows it: a config (its namespace) or a snapshot."""
    if isinstance(state, dict):
        return {"checkpoint_ns": state["configurable"]["checkpoint_ns"]}
    return state


def both(build: Any, scenario: Any) -> tuple[Any, Any]:
    """The scenario's transcript on LangGraph and on arqgraph (embedded)."""
    return (masked(scenario(Api(REFERENCE), build(Api(REFERENCE)))),
            masked(scenario(Api("arqgraph"), build(Api("arqgraph")))))


def _three_levels(api: Api, checkpointer: bool = False) -> Any:
    """top -> mid (subgraph) -> leaf (subgraph): leaf asks a question; each level logs."""
    def ask(state: S) -> dict[str, Any]:
        return {"log": [f"leaf got {api.interrupt('leaf?')}"]}

    leaf = api.StateGraph(S)
    leaf.add_node("ask", ask)
    leaf.add_edge(api.START, "ask")
    mid = api.StateGraph(S)
    mid.add_node("leaf", leaf.compile())
    mid.add_node("after_leaf", lambda state: {"log": ["mid done"]})
    mid.add_edge(api.START, "leaf")
    mid.add_edge("leaf", "after_leaf")
    top = api.StateGraph(S)
    top.add_node("first", lambda state: {"log": ["first"]})
    top.add_node("mid", mid.compile())
    top.add_edge(api.START, "first")
    top.add_edge("first", "mid")
    return top.compile(checkpointer=api.InMemorySaver() if checkpointer else None)


def test_stream_subgraphs_in_one_and_several_modes() -> None:
    def build(api: Api) -> Any:
        inner = api.StateGraph(S)
        inner.add_node("one", lambda state: {"log": ["one"]})
        inner.add_node("two", lambda state: {"log": ["two"]})
        inner.add_edge(api.START, "one")
        inner.add_edge("one", "two")
        g = api.StateGraph(S)
        g.add_node("sub", inner.compile())
        g.add_node("last", lambda state: {"log": [f"last saw {len(state['log'])}"]})
        g.add_edge(api.START, "sub")
        g.add_edge("sub", "last")
        return g.compile()

    def scenario(api: Api, graph: Any) -> Any:
        return [list(graph.stream({"log": []}, subgraphs=True)),
                list(graph.stream({"log": []}, subgraphs=True, stream_mode="values")),
                list(graph.stream({"log": []}, subgraphs=True,
                                  stream_mode=["updates", "values"]))]

    expected, actual = both(build, scenario)
    assert actual == expected


def test_interrupt_two_levels_down_resumes_from_the_top() -> None:
    def scenario(api: Api, graph: Any) -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        asked = graph.invoke({"log": []}, config)
        state = graph.get_state(config, subgraphs=True)
        flat = graph.get_state(config)
        nested = flat.tasks[0].state
        inner_history = [s.values for s in graph.get_state_history(nested)]
        done = graph.invoke(api.Command(resume="yes"), config)
        return [asked, state, flat, inner_history, done, graph.get_state(config)]

    expected, actual = both(lambda api: _three_levels(api, checkpointer=True), scenario)
    assert actual == expected


def test_stream_of_an_interrupted_subgraph_and_its_resume() -> None:
    def scenario(api: Api, graph: Any) -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        first = list(graph.stream({"log": []}, config, subgraphs=True))
        second = list(graph.stream(api.Command(resume="ok"), config, subgraphs=True))
        return [first, second]

    expected, actual = both(lambda api: _three_levels(api, checkpointer=True), scenario)
    assert actual == expected


def test_parent_command_routes_in_the_parent() -> None:
    def build(api: Api) -> Any:
        def hand_off(state: S) -> Any:
            target = "writer" if state["text"] == "write" else "fan"
            return api.Command(graph=api.Command.PARENT, goto=target,
                               update={"log": [f"handed to {target}"]})

        inner = api.StateGraph(S)
        inner.add_node("hand_off", hand_off)
        inner.add_node("unreached", lambda state: {"log": ["unreached"]})
        inner.add_edge(api.START, "hand_off")
        inner.add_edge("hand_off", "unreached")

        def fan(state: S) -> Any:
            return api.Command(goto=[api.Send("worker", {"text": c}) for c in "ab"])

        g = api.StateGraph(S)
        g.add_node("agent", inner.compile())
        g.add_node("writer", lambda state: {"log": ["writer"]})
        g.add_node("fan", fan)
        g.add_node("worker", lambda state: {"log": [f"worker {state['text']}"]})
        g.add_edge(api.START, "agent")
        return g.compile()

    def scenario(api: Api, graph: Any) -> Any:
        return [graph.invoke({"text": "write", "log": []}),
                list(graph.stream({"text": "fan", "log": []}))]

    expected, actual = both(build, scenario)
    assert actual == expected


def test_stateful_subgraph_keeps_its_state_between_calls() -> None:
    def build(api: Api) -> Any:
        inner = api.StateGraph(S)
        inner.add_node("count", lambda state: {"log": [f"inner call {len(state['log']) + 1}"]})
        inner.add_edge(api.START, "count")
        sub = inner.compile(checkpointer=True)

        def call(state: S) -> dict[str, Any]:
            out = sub.invoke({"log": []})
            return {"log": [out["log"][-1]]}

        g = api.StateGraph(S)
        g.add_node("call", call)
        g.add_edge(api.START, "call")
        return g.compile(checkpointer=api.InMemorySaver())

    def scenario(api: Api, graph: Any) -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        return [graph.invoke({"log": []}, config), graph.invoke({"log": []}, config)]

    expected, actual = both(build, scenario)
    assert actual == expected


def test_deleting_a_thread_deletes_its_subgraphs_threads() -> None:
    api = Api("arqgraph")
    graph = _three_levels(api, checkpointer=True)
    config = {"configurable": {"thread_id": "to-delete"}}
    graph.invoke({"log": []}, config)
    nested = graph.get_state(config).tasks[0].state
    assert graph.get_state(nested).values  # the subgraph's thread exists
    graph.checkpointer.delete_thread("to-delete")
    assert graph.get_state(config).values == {}
    assert graph.get_state(nested).values == {}


def test_update_state_on_a_subgraph_namespace() -> None:
    """`update_state` with a subgraph's config writes through the subgraph's nodes; resuming
    the parent then goes on from the edited state; a namespace of no subgraph is refused."""
    def build(api: Api) -> Any:
        def ask(state: S) -> dict[str, Any]:
            return {"log": [f"asked {api.interrupt('q')}"]}

        inner = api.StateGraph(S)
        inner.add_node("first", lambda state: {"log": ["first"]})
        inner.add_node("ask", ask)
        inner.add_edge(api.START, "first")
        inner.add_edge("first", "ask")
        g = api.StateGraph(S)
        g.add_node("sub", inner.compile())
        g.add_edge(api.START, "sub")
        return g.compile(checkpointer=api.InMemorySaver())

    def scenario(api: Api, graph: Any) -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        graph.invoke({"log": []}, config)
        inner = graph.get_state(config).tasks[0].state
        graph.update_state(inner, {"log": ["edited"]}, as_node="first")
        edited = graph.get_state(inner)
        try:
            graph.update_state({"configurable": {**config["configurable"],
                                                 "checkpoint_ns": "nowhere:1"}}, {"log": []})
            refused = "no error"
        except ValueError as exc:
            refused = str(exc)
        return [edited, graph.invoke(api.Command(resume="x"), config), refused]

    expected, actual = both(build, scenario)
    assert actual == expected


def debug_task_states(api: Api) -> list[Any]:
    """The `state` of each task of each checkpoint a "debug" stream shows, masked, each
    checked against the task's `state` in the thread's history."""
    child = api.StateGraph(S)
    child.add_node("c_one", lambda state: {"log": ["c_one"]})
    child.add_node("c_two", lambda state: {"log": ["c_two"]})
    child.add_edge(api.START, "c_one")
    child.add_edge("c_one", "c_two")
    parent = api.StateGraph(S)
    parent.add_node("p_one", lambda state: {"log": ["p_one"]})
    parent.add_node("p_two", child.compile())
    parent.add_edge(api.START, "p_one")
    parent.add_edge("p_one", "p_two")
    graph = parent.compile(checkpointer=api.InMemorySaver())
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    shown = [c["payload"] for c in graph.stream({"log": []}, config, stream_mode="debug")
             if c["type"] == "checkpoint"]
    history = list(graph.get_state_history(config))[::-1]
    assert len(shown) == len(history)
    for payload, snapshot in zip(shown, history, strict=True):
        assert [t["state"] for t in payload["tasks"]] == [t.state for t in snapshot.tasks]
    return masked([[t["state"] for t in p["tasks"]] for p in shown])


def test_a_debug_checkpoint_shows_where_a_subgraph_task_keeps_its_state() -> None:
    """A task whose node is a subgraph shows its subgraph's config as its `state` in the
    "debug" checkpoints, as in the thread's history: as LangGraph."""
    expected = debug_task_states(Api(REFERENCE))
    assert any(state for states in expected for state in states)
    assert debug_task_states(Api("arqgraph")) == expected


def nested_debug_configs(api: Api) -> list[Any]:
    """A three-level graph streamed in "debug" mode with subgraphs: each namespace's
    checkpoint events, their configs and tasks' states, checked against that namespace's
    history, then masked."""
    graph = _three_levels(api, checkpointer=True)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    by_namespace: dict[tuple[str, ...], list[Any]] = {}
    for ns, event in graph.stream({"log": []}, config, stream_mode="debug", subgraphs=True):
        if event["type"] == "checkpoint":
            by_namespace.setdefault(ns, []).append(event["payload"])
    for ns, shown in by_namespace.items():
        history = list(graph.get_state_history({"configurable": {
            **config["configurable"], "checkpoint_ns": "|".join(ns)}}))[::-1]
        assert len(shown) == len(history)
        for payload, snapshot in zip(shown, history, strict=True):
            assert payload["config"] == snapshot.config
            assert payload["parent_config"] == snapshot.parent_config
            assert [t["state"] for t in payload["tasks"]] == [t.state for t in snapshot.tasks]
    return masked([(ns, [(p["config"], [t["state"] for t in p["tasks"]]) for p in shown])
                   for ns, shown in by_namespace.items()])


def test_nested_debug_checkpoints_carry_their_checkpoint_map() -> None:
    """A subgraph's "debug" checkpoints name their configs as its history does, with the
    checkpoint map of the graphs above it: as LangGraph."""
    expected = nested_debug_configs(Api(REFERENCE))
    assert len(expected) == 3
    assert nested_debug_configs(Api("arqgraph")) == expected


def own_thread_child(api: Api) -> list[Any]:
    """A graph invoked inside a node with a config naming a thread of its own: its state on
    that thread after two runs of the parent, the namespace its checkpoints show, and what a
    caller streaming subgraphs sees of its messages."""
    saver = api.InMemorySaver()
    child_builder = api.StateGraph(Counted)
    def n(state: Counted) -> dict[str, Any]:
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

        GenericFakeChatModel(messages=iter(["one two"])).invoke("hi")  # (its tokens stream)
        return {"count": (state.get("count") or 0) + 1}

    child_builder.add_node("n", n)
    child_builder.add_edge(api.START, "n")
    child = child_builder.compile(checkpointer=saver)
    child_config = {"configurable": {"thread_id": str(uuid.uuid4())}}

    def parent_node(state: S) -> dict[str, Any]:
        child.invoke({}, config=child_config)
        return {"log": ["p"]}

    parent_builder = api.StateGraph(S)
    parent_builder.add_node("p", parent_node)
    parent_builder.add_edge(api.START, "p")
    parent = parent_builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    streamed = parent.stream({"log": []}, config, subgraphs=True,
                             stream_mode=["updates", "messages"])
    shown: list[Any] = [[(ns, mode, data[0].content if mode == "messages" else data)
                         for ns, mode, data in streamed]]
    first = child.get_state(child_config)
    shown += [first.values, first.config["configurable"]["checkpoint_ns"]]
    parent.invoke({"log": []}, config)
    return [*shown, child.get_state(child_config).values]


class Counted(TypedDict, total=False):
    count: int


def test_a_child_given_its_own_thread_runs_as_a_root_graph_there() -> None:
    """LangGraph: a config with a thread_id of its own given to a graph invoked in a node
    addresses that thread's root namespace; its state carries over from call to call, and a
    caller streaming subgraphs sees its events at the root namespace."""
    expected = own_thread_child(Api(REFERENCE))
    assert expected[1:] == [{"count": 1}, "", {"count": 2}]
    assert own_thread_child(Api("arqgraph")) == expected


def two_subgraph_calls(api: Api) -> list[Any]:
    """A node calling two subgraphs, the first compiled with `checkpointer=True`: outputs of
    two runs on one thread, and the namespaces of their streamed updates, masked."""
    def first(state: Counted) -> dict[str, Any]:
        return {"count": 2}

    def second(state: S) -> dict[str, Any]:
        return {"log": ["second"]}

    kept_builder = api.StateGraph(Counted)
    kept_builder.add_node("first", first)
    kept_builder.add_edge(api.START, "first")
    kept = kept_builder.compile(checkpointer=True)
    other_builder = api.StateGraph(S)
    other_builder.add_node("second", second)
    other_builder.add_edge(api.START, "second")
    other = other_builder.compile()

    def node(state: S) -> dict[str, Any]:
        counted = kept.invoke({"count": len(state["log"])})
        return {"log": [str(counted["count"]), *other.invoke({"log": []})["log"]]}

    builder = api.StateGraph(S)
    builder.add_node("node", node)
    builder.add_edge(api.START, "node")
    graph = builder.compile(checkpointer=api.InMemorySaver())
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    return [masked(list(graph.stream({"log": []}, config, subgraphs=True))) for _ in range(2)]


def test_a_nodes_second_subgraph_call_is_namespaced_as_langgraphs() -> None:
    """The n-th subgraph a node invokes after the first is namespaced `node:<task>|n`."""
    expected = two_subgraph_calls(Api(REFERENCE))
    assert [ns for ns, _ in expected[0]] == [("node",), ("node:<id>", "1"), ()]
    assert two_subgraph_calls(Api("arqgraph")) == expected



def edited_subgraph_resumes(prefix: str, cluster: str | None = None) -> Any:
    """A subgraph stopped at a breakpoint, edited through its namespace (finished by an update
    as its last node, or given a value with a node left), then its parent resumed; per
    durability mode: the streams and the parent's values."""
    graph = build_breakpoint_subgraph(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    seen = []
    for durability in ("async", "exit"):
        for as_node in ("b", None):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            first = list(graph.stream({"log": []}, config, stream_mode="updates",
                                      subgraphs=True, durability=durability))
            inner = graph.get_state(config, subgraphs=True).tasks[0].state.config
            if as_node:
                graph.update_state(inner, {"log": ["edited"]}, as_node=as_node)
            else:
                graph.update_state(inner, {"text": "la"})
            resumed = list(graph.stream(None, config, stream_mode="updates", subgraphs=True))
            seen.append([first, resumed, graph.get_state(config).values])
    return masked(seen)


def subgraph_then_question(prefix: str, cluster: str | None = None) -> Any:
    """A node runs a subgraph, then asks a question, then is resumed: both streams."""
    graph = build_subgraph_then_question(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    return masked([list(graph.stream(given, config, stream_mode="updates", subgraphs=True))
                   for given in ({"log": []}, command(resume="x"))])


def test_a_subgraph_an_update_finished_ends_at_once_when_its_parent_resumes() -> None:
    """A subgraph finished by `update_state(as_node=...)` at its breakpoint is not run again
    when its parent resumes: it returns its edited state, in both durability modes. An update
    that leaves it a node to run resumes it there."""
    assert edited_subgraph_resumes("arqgraph") == edited_subgraph_resumes(REFERENCE)


def test_a_subgraph_a_node_ran_before_its_interrupt_is_not_run_again_on_resume() -> None:
    """A node that runs a subgraph and then asks a question gets, when resumed, the result
    the subgraph saved, as in LangGraph: the subgraph does not run again with its input."""
    assert subgraph_then_question("arqgraph") == subgraph_then_question(REFERENCE)
