"""A graph of class-based nodes in the seed documents' act-operator style, built the same way on
LangGraph with act-operator's own base classes (the reference) and on arqgraph with
`arqgraph.nodes` (tests/test_class_nodes_faithful.py compares them). Each node records what the
style's helpers and LangGraph's metadata show it.

`GRAPHS`: arqgraph's, without and with a checkpointer, for a cluster's workers.
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypedDict


class State(TypedDict, total=False):
    query: str
    item: int
    runs: Annotated[int, operator.add]
    seen: Annotated[list[Any], operator.add]
    inner: Annotated[list[Any], operator.add]


class InnerState(TypedDict, total=False):
    inner: Annotated[list[Any], operator.add]


def act_operator_base() -> ModuleType:
    """act-operator's `casts/base_node.py`, from its installed project template."""
    spec = importlib.util.find_spec("act_operator")
    assert spec is not None and spec.origin is not None, "act-operator is a test dependency"
    path = (Path(spec.origin).parent / "scaffold" / "{{ cookiecutter.act_slug }}" / "casts"
            / "base_node.py")
    module_spec = importlib.util.spec_from_file_location("act_operator_base_node", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def bases(prefix: str) -> tuple[Any, Any]:
    """(BaseNode, AsyncBaseNode): act-operator's for "langgraph", arqgraph's for "arqgraph"."""
    module = act_operator_base() if prefix == "langgraph" else importlib.import_module(
        "arqgraph.nodes")
    return module.BaseNode, module.AsyncBaseNode


def seen_by(node: Any, config: Any) -> dict[str, Any]:
    """What a node sees: its own attributes, the helpers' answers, LangGraph's metadata (the
    namespace's task id is random: its node part and shape only)."""
    metadata = dict((config or {}).get("metadata") or {})
    ns = str(metadata.pop("langgraph_checkpoint_ns", ""))
    if "checkpoint_ns" in metadata:  # (a subgraph's node: its parent task's namespace)
        metadata["checkpoint_ns"] = metadata["checkpoint_ns"].split(":")[0]
    return {
        "name": node.name, "verbose": node.verbose, "thread": node.get_thread_id(config),
        "tags": node.get_tags(config),
        "ns": [[part.split(":")[0], part.count(":")] for part in ns.split("|")],
        "metadata": {k: list(v) if isinstance(v, tuple) else v for k, v in metadata.items()},
    }


def node_classes(base: Any, async_base: Any) -> dict[str, type]:
    class Start(base):  # type: ignore[misc, valid-type]
        def execute(self, state, config):  # type: ignore[no-untyped-def]
            self.log("starting", query=state["query"])
            return {"runs": 1, "seen": [seen_by(self, config)]}

    class Fetch(async_base):  # type: ignore[misc, valid-type]
        def __init__(self, limit: int = 1, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.limit = limit

        async def execute(self, state, config, runtime):  # type: ignore[no-untyped-def]
            return {"seen": [{**seen_by(self, config), "limit": self.limit,
                              "context": runtime.context}]}

    class Rank(base):  # type: ignore[misc, valid-type]
        def execute(self, state, runtime):  # type: ignore[no-untyped-def]
            return {"seen": [{"name": self.name, "context": runtime.context}]}

    class Each(base):  # type: ignore[misc, valid-type]
        def execute(self, state, config):  # type: ignore[no-untyped-def]
            return {"seen": [{**seen_by(self, config), "item": state["item"]}]}

    class Inner(base):  # type: ignore[misc, valid-type]
        def execute(self, state, config):  # type: ignore[no-untyped-def]
            return {"inner": [seen_by(self, config)]}

    class Finish(async_base):  # type: ignore[misc, valid-type]
        async def execute(self, state, config=None):  # type: ignore[no-untyped-def]
            return {"seen": [seen_by(self, config)]}

    return {"Start": Start, "Fetch": Fetch, "Rank": Rank, "Each": Each, "Inner": Inner,
            "Finish": Finish}


def build(prefix: str, checkpointer: Any = None) -> Any:
    """start -> fetch and rank in parallel (and `each` twice, by Send; a subgraph with a class
    node) -> finish after both."""
    graph = importlib.import_module(f"{prefix}.graph")
    send = importlib.import_module(f"{prefix}.types").Send
    classes = node_classes(*bases(prefix))
    builder = graph.StateGraph(State)
    builder.add_node("start", classes["Start"](verbose=True))
    builder.add_node("fetch", classes["Fetch"](limit=3, extra="ignored"))
    builder.add_node("rank", classes["Rank"]())
    builder.add_node("each", classes["Each"]())
    builder.add_node("finish", classes["Finish"](verbose=True))
    builder.add_edge(graph.START, "start")
    builder.add_edge("start", "fetch")
    builder.add_edge("start", "rank")
    builder.add_conditional_edges(
        "start", lambda state: [send("each", {"item": i}) for i in range(2)], ["each"])
    inner = graph.StateGraph(InnerState)
    inner.add_node("inner", classes["Inner"]())
    inner.add_edge(graph.START, "inner")
    builder.add_node("sub", inner.compile())
    builder.add_edge("start", "sub")
    builder.add_edge(["fetch", "rank"], "finish")
    builder.add_edge("each", graph.END)
    builder.add_edge("sub", graph.END)
    builder.add_edge("finish", graph.END)
    name = "seed_class_nodes" if checkpointer is None else "seed_class_nodes_saved"
    return builder.compile(checkpointer=checkpointer, name=name)


def _served() -> list[Any]:
    from arqgraph.checkpoint.memory import InMemorySaver

    return [build("arqgraph"), build("arqgraph", InMemorySaver())]


GRAPHS = _served()
