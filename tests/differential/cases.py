"""Graphs that must behave identically on LangGraph and on arqgraph.

Every case has a factory `build(api)` that builds and compiles its graph using only the names
of an `Api` (so the same code builds the LangGraph reference and the arqgraph candidate), and a
list of runs `(input, config)`.

Rules that keep the comparison meaningful:
- Factories are pure: build a fresh graph for each run; any closure state (a retry counter)
  lives inside the factory so every build starts from scratch.
- Deterministic: where concurrent tasks must finish in a given order, async nodes sleep for
  clearly different times (asyncio.sleep) and the case is `async_only`. Cases whose
  concurrent tasks finish in no controlled order set `unordered=True`: their "updates" and
  "custom" events are then compared as sorted lists (values and outputs still compare exactly).
- No `from __future__ import annotations` here: `Command[Literal[...]]` return annotations and
  `Annotated[..., reducer]` state keys must be real objects that both libraries can inspect.
"""

import asyncio
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, TypedDict

import pydantic

from tests.differential.api import Api

END_NAME = "__end__"


class Run(NamedTuple):
    input: Any
    config: dict[str, Any] | None = None
    context: Any = None

    @property
    def extra(self) -> dict[str, Any]:
        """The keyword arguments of the call besides input and config."""
        return {} if self.context is None else {"context": self.context}


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Api], Any]
    runs: list[Run]
    # Nodes include coroutines: LangGraph refuses the sync API then, so only ainvoke/astream.
    async_only: bool = False
    # Concurrent tasks without a controlled completion order: updates/custom compared sorted.
    unordered: bool = False
    note: str = ""
    # Runs on a cluster too (tests/test_differential_cluster.py), unless the graph keeps state
    # of its own between calls (a counter in its closure), which separate worker processes
    # cannot share; `cluster` then says why not.
    cluster: bool | str = True


CASES: list[Case] = []


def case(
    runs: list[Any], *, async_only: bool = False, unordered: bool = False, note: str = "",
    cluster: bool | str = True,
) -> Callable[[Callable[[Api], Any]], Callable[[Api], Any]]:
    """Register `build_<name>` as case `<name>`; runs are inputs or `Run(input, config)`."""

    def register(build: Callable[[Api], Any]) -> Callable[[Api], Any]:
        name = build.__name__.removeprefix("build_")
        assert all(c.name != name for c in CASES), f"duplicate case {name}"
        normalized = [r if isinstance(r, Run) else Run(r) for r in runs]
        CASES.append(Case(name, build, normalized, async_only, unordered, note, cluster))
        return build

    return register


def _compile(graph: Any, name: str) -> Any:
    return graph.compile(name=f"diff_{name}")


def _content(message: Any) -> Any:
    """A message's content whether it is a langchain message or a plain dict."""
    return message["content"] if isinstance(message, dict) else message.content


# ---------------------------------------------------------------------------------------------
# Shared schemas (library independent: only operator/custom reducers)


def keep_max(old: int, new: int) -> int:
    return max(old, new)


def merge_dicts(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {**old, **new}


def append_sorted(old: list[Any], new: Any) -> list[Any]:
    items = new if isinstance(new, list) else [new]
    return sorted([*old, *items])


class LogState(TypedDict, total=False):
    text: str
    log: Annotated[list[str], operator.add]
    count: int
    route: Any
    flag: bool
    sib: str


class DiffError(Exception):
    """A user-defined exception type raised by a node."""


@dataclass
class DataState:
    text: str = ""
    items: Annotated[list[str], operator.add] = field(default_factory=list)
    count: int = 0


class PydState(pydantic.BaseModel):
    text: str
    count: int = 0
    items: Annotated[list[str], operator.add] = []


# ---------------------------------------------------------------------------------------------
# Sequences


@case([{"text": "x", "log": []}, {"text": "", "log": ["pre"]}, {"text": "y"}])
def build_linear(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        return {"text": state["text"] + "a", "log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"text": state["text"] + "b", "log": ["b"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"text": state["text"] + "c", "log": [f"c saw {state['log']}"]}

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", api.END)
    return _compile(g, "linear")


@case([{}, None, {"unknown_key": 1}, {"text": "only"}], note="empty / None / unknown-only input")
def build_empty_input(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        return {"log": [f"a saw {sorted(state)}"]}

    def b(state: LogState) -> None:
        return None

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, "empty_input")


@case([{"text": "s", "log": []}])
def build_builder_helpers(api: Api) -> Any:
    def first(state: LogState) -> dict[str, Any]:
        return {"log": ["first"]}

    def second(state: LogState) -> dict[str, Any]:
        return {"log": ["second"]}

    def third_fn(state: LogState) -> dict[str, Any]:
        return {"log": ["third"], "text": state["text"] + "3"}

    def last(state: LogState) -> dict[str, Any]:
        return {"log": ["last"]}

    g = api.StateGraph(LogState)
    g.add_node(first)  # name taken from __name__
    g.add_sequence([second, ("third", third_fn), last])
    g.set_entry_point("first")
    g.add_edge("first", "second")
    g.set_finish_point("last")
    return _compile(g, "builder_helpers")


@case([{"route": "go_left", "log": []}, {"route": "go_right", "log": []},
       {"route": "stop", "log": []}, {"route": "both", "log": []}], unordered=True)
def build_conditional_entry(api: Api) -> Any:
    def left(state: LogState) -> dict[str, Any]:
        return {"log": ["left"]}

    def right(state: LogState) -> dict[str, Any]:
        return {"log": ["right"]}

    def entry(state: LogState) -> Any:
        route = state["route"]
        return ["go_left", "go_right"] if route == "both" else route

    g = api.StateGraph(LogState)
    g.add_node("left", left)
    g.add_node("right", right)
    g.set_conditional_entry_point(
        entry, {"go_left": "left", "go_right": "right", "stop": api.END}
    )
    return _compile(g, "conditional_entry")


# ---------------------------------------------------------------------------------------------
# Fan-out, fan-in, joins


@case([{"log": []}, {"log": ["in"]}], unordered=True)
def build_fanout_fanin(api: Api) -> Any:
    """start -> zeta, start -> alpha (added in that order); both -> join (runs once)."""

    def start(state: LogState) -> dict[str, Any]:
        return {"log": ["start"]}

    def zeta(state: LogState) -> dict[str, Any]:
        return {"log": ["zeta"]}

    def alpha(state: LogState) -> dict[str, Any]:
        return {"log": ["alpha"]}

    def join(state: LogState) -> dict[str, Any]:
        return {"log": [f"join saw {state['log']}"]}

    g = api.StateGraph(LogState)
    g.add_node("start", start)
    g.add_node("zeta", zeta)
    g.add_node("alpha", alpha)
    g.add_node("join", join)
    g.add_edge(api.START, "start")
    g.add_edge("start", "zeta")
    g.add_edge("start", "alpha")
    g.add_edge("zeta", "join")
    g.add_edge("alpha", "join")
    g.add_edge("join", api.END)
    return _compile(g, "fanout_fanin")


@case([{"log": []}, {"log": ["x"]}], async_only=True,
      note="completion order (zeta first) differs from write order (alpha first)",
      cluster="its nodes order themselves with threading events of one process")
def build_fanout_fanin_ordered(api: Api) -> Any:
    # The three parallel nodes finish in a fixed order, zeta, mid, alpha, whatever the load:
    # each waits for the one before it (plain threading events: any loop, any thread).
    zeta_done, mid_done = threading.Event(), threading.Event()

    async def after(event: threading.Event) -> None:
        while not event.is_set():
            await asyncio.sleep(0.002)

    async def start(state: LogState) -> dict[str, Any]:
        return {"log": ["start"]}

    async def zeta(state: LogState) -> dict[str, Any]:
        api.get_stream_writer()({"zeta": "begin"})
        await asyncio.sleep(0.01)
        api.get_stream_writer()({"zeta": "end"})
        zeta_done.set()
        return {"log": ["zeta"]}

    async def alpha(state: LogState) -> dict[str, Any]:
        await after(mid_done)
        await asyncio.sleep(0.05)  # time for mid's update to be out before alpha's
        api.get_stream_writer()({"alpha": "end"})
        return {"log": ["alpha"]}

    async def mid(state: LogState) -> dict[str, Any]:
        await after(zeta_done)
        await asyncio.sleep(0.01)
        mid_done.set()
        return {"log": ["mid"]}

    async def join(state: LogState) -> dict[str, Any]:
        return {"log": [f"join saw {state['log']}"]}

    g = api.StateGraph(LogState)
    for name, fn in [("start", start), ("zeta", zeta), ("alpha", alpha), ("mid", mid),
                     ("join", join)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "start")
    g.add_edge("start", "zeta")
    g.add_edge("start", "alpha")
    g.add_edge("start", "mid")
    g.add_edge("zeta", "join")
    g.add_edge("alpha", "join")
    g.add_edge("mid", "join")
    return _compile(g, "fanout_fanin_ordered")


@case([{"log": [], "count": 0}], unordered=True)
def build_join_barrier(api: Api) -> Any:
    """add_edge(["a", "b2"], "c"): a finishes in step 1, b2 in step 2; c runs once, in step 3.

    c loops back through `fork` once, so the barrier must have reset for the second round.
    """

    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def b1(state: LogState) -> dict[str, Any]:
        return {"log": ["b1"]}

    def b2(state: LogState) -> dict[str, Any]:
        return {"log": ["b2"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"log": [f"c#{state['count']}"], "count": state["count"] + 1}

    def fork(state: LogState) -> dict[str, Any]:
        return {"log": ["fork"]}

    def again(state: LogState) -> str:
        return "fork" if state["count"] < 2 else api.END

    g = api.StateGraph(LogState)
    for name, fn in [("a", a), ("b1", b1), ("b2", b2), ("c", c), ("fork", fork)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b1")
    g.add_edge("b1", "b2")
    g.add_edge(["a", "b2"], "c")
    g.add_conditional_edges("c", again, ["fork", api.END])
    g.add_edge("fork", "a")
    g.add_edge("fork", "b1")
    return _compile(g, "join_barrier")


@case([{"log": []}], async_only=True,
      note="join sources finishing in different steps, with controlled completion order")
def build_join_barrier_async(api: Api) -> Any:
    async def a(state: LogState) -> dict[str, Any]:
        await asyncio.sleep(0.04)
        return {"log": ["a"]}

    async def b1(state: LogState) -> dict[str, Any]:
        return {"log": ["b1"]}

    async def b2(state: LogState) -> dict[str, Any]:
        return {"log": ["b2"]}

    async def b3(state: LogState) -> dict[str, Any]:
        return {"log": ["b3"]}

    async def c(state: LogState) -> dict[str, Any]:
        return {"log": [f"c saw {state['log']}"]}

    g = api.StateGraph(LogState)
    for name, fn in [("a", a), ("b1", b1), ("b2", b2), ("b3", b3), ("c", c)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b1")
    g.add_edge("b1", "b2")
    g.add_edge("b2", "b3")
    g.add_edge(["a", "b3"], "c")
    return _compile(g, "join_barrier_async")


@case([{"log": []}], unordered=True)
def build_multi_edge_same_step(api: Api) -> Any:
    """a -> c, b -> c with a and b in the same step: c runs once."""

    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"log": ["b"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"log": [f"c saw {state['log']}"]}

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b")
    g.add_edge("a", "c")
    g.add_edge("b", "c")
    return _compile(g, "multi_edge_same_step")


@case([{"log": []}], unordered=True)
def build_multi_edge_different_steps(api: Api) -> Any:
    """a -> c (step 1) and b2 -> c (step 2): plain edges, so c runs once per step (twice)."""

    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def b1(state: LogState) -> dict[str, Any]:
        return {"log": ["b1"]}

    def b2(state: LogState) -> dict[str, Any]:
        return {"log": ["b2"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"log": [f"c saw {state['log']}"]}

    g = api.StateGraph(LogState)
    for name, fn in [("a", a), ("b1", b1), ("b2", b2), ("c", c)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b1")
    g.add_edge("b1", "b2")
    g.add_edge("a", "c")
    g.add_edge("b2", "c")
    return _compile(g, "multi_edge_different_steps")


# ---------------------------------------------------------------------------------------------
# Reducers


class ReducerState(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    total: Annotated[int, operator.add]
    best: Annotated[int, keep_max]
    merged: Annotated[dict[str, Any], merge_dicts]
    ranked: Annotated[list[int], append_sorted]
    plain: str


@case([{"items": ["in"], "plain": "p"}, {"total": 5, "best": 7, "merged": {"k": 0}},
       {"plain": "only plain"}, {"ranked": [9, 1]}], unordered=True)
def build_reducers(api: Api) -> Any:
    def a(state: ReducerState) -> dict[str, Any]:
        return {"items": ["a"], "total": 1, "best": 3, "merged": {"a": 1, "k": "a"},
                "ranked": [5]}

    def b(state: ReducerState) -> dict[str, Any]:
        return {"items": ["b1", "b2"], "total": 10, "best": 4, "merged": {"b": 2, "k": "b"},
                "ranked": 2}

    def c(state: ReducerState) -> dict[str, Any]:
        return {"plain": f"c saw {sorted(state.items())}", "items": []}

    g = api.StateGraph(ReducerState)
    g.add_node("b", b)
    g.add_node("a", a)
    g.add_node("c", c)
    g.add_edge(api.START, "b")
    g.add_edge(api.START, "a")
    g.add_edge(["a", "b"], "c")
    return _compile(g, "reducers")


@case([{"messages": [("user", "hi")]},
       {"messages": [{"role": "user", "content": "hello", "id": "m1"}]},
       {"messages": {"role": "user", "content": "single dict", "id": "m1"}},
       {"messages": [("user", "one"), ("assistant", "two"), ("user", "three")]}])
def build_add_messages(api: Api) -> Any:
    class ChatState(TypedDict):
        messages: Annotated[list, api.add_messages]
        turns: int

    def bot(state: ChatState) -> dict[str, Any]:
        last = state["messages"][-1]
        return {"messages": [("assistant", f"echo: {_content(last)}")], "turns": 1}

    def tool(state: ChatState) -> dict[str, Any]:
        # a single dict message (not a list) with an explicit id
        return {"messages": {"role": "tool", "content": "result", "tool_call_id": "t1",
                             "id": "tool-1"}}

    def editor(state: ChatState) -> dict[str, Any]:
        # replace the message with id m1 when present, else append a fixed-id message
        return {"messages": [{"role": "assistant", "content": "edited", "id": "m1"}]}

    g = api.StateGraph(ChatState)
    g.add_node("bot", bot)
    g.add_node("tool", tool)
    g.add_node("editor", editor)
    g.add_edge(api.START, "bot")
    g.add_edge("bot", "tool")
    g.add_edge("tool", "editor")
    return _compile(g, "add_messages")


@case([{"messages": [{"role": "user", "content": "q", "id": "u1"}]}], unordered=True)
def build_messages_state(api: Api) -> Any:
    """The exported MessagesState, with two parallel writers (ordered by node name)."""

    def zed(state: Any) -> dict[str, Any]:
        return {"messages": [{"role": "assistant", "content": "from zed", "id": "z"}]}

    def abe(state: Any) -> dict[str, Any]:
        return {"messages": [{"role": "assistant", "content": "from abe", "id": "a"}]}

    def count(state: Any) -> dict[str, Any]:
        return {"messages": [{"role": "assistant",
                              "content": f"{len(state['messages'])} messages", "id": "n"}]}

    g = api.StateGraph(api.MessagesState)
    g.add_node("zed", zed)
    g.add_node("abe", abe)
    g.add_node("count", count)
    g.add_edge(api.START, "zed")
    g.add_edge(api.START, "abe")
    g.add_edge("zed", "count")
    g.add_edge("abe", "count")
    return _compile(g, "messages_state")


# ---------------------------------------------------------------------------------------------
# Conditional edges


@case([{"route": "b", "log": []}, {"route": ["b", "c"], "log": []},
       {"route": END_NAME, "log": []}, {"route": [], "log": []},
       {"route": ["c", END_NAME], "log": []}], unordered=True)
def build_conditional_routes(api: Api) -> Any:
    """path returns a name, a list of names, END, an empty list; no path_map."""

    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"log": ["b"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"log": ["c"]}

    def route(state: LogState) -> Any:
        return state["route"]

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_edge(api.START, "a")
    g.add_conditional_edges("a", route)
    return _compile(g, "conditional_routes")


@case([{"route": "left", "log": []}, {"route": "right", "log": []},
       {"route": "stop", "log": []}, {"route": ["left", "right"], "log": []}], unordered=True)
def build_conditional_path_map_dict(api: Api) -> Any:
    def decide(state: LogState) -> dict[str, Any]:
        return {"log": ["decide"]}

    def l_node(state: LogState) -> dict[str, Any]:
        return {"log": ["L"]}

    def r_node(state: LogState) -> dict[str, Any]:
        return {"log": ["R"]}

    def pick(state: LogState) -> Any:
        return state["route"]

    g = api.StateGraph(LogState)
    g.add_node("decide", decide)
    g.add_node("L", l_node)
    g.add_node("R", r_node)
    g.add_edge(api.START, "decide")
    g.add_conditional_edges("decide", pick, {"left": "L", "right": "R", "stop": api.END})
    g.add_edge("L", api.END)
    return _compile(g, "conditional_path_map_dict")


@case([{"route": "x", "log": []}, {"route": "y", "log": []}])
def build_conditional_path_map_list(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def x(state: LogState) -> dict[str, Any]:
        return {"log": ["x"]}

    def y(state: LogState) -> dict[str, Any]:
        return {"log": ["y"]}

    def pick(state: LogState) -> Literal["x", "y"]:
        return state["route"]

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("x", x)
    g.add_node("y", y)
    g.add_edge(api.START, "a")
    g.add_conditional_edges("a", pick, ["x", "y"])
    g.add_edge("x", "y")
    return _compile(g, "conditional_path_map_list")


@case([{"flag": False, "sib": "old", "log": []}], unordered=True,
      note="the path sees its own node's writes but not its sibling's")
def build_conditional_sees_own_writes(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        time.sleep(0.03)  # b has finished by now; its write must still be invisible to a's path
        return {"flag": True, "log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"sib": "new", "log": ["b"]}

    def yes(state: LogState) -> dict[str, Any]:
        return {"log": ["yes"]}

    def no(state: LogState) -> dict[str, Any]:
        return {"log": ["no"]}

    def sib_new(state: LogState) -> dict[str, Any]:
        return {"log": ["sib_new"]}

    def sib_old(state: LogState) -> dict[str, Any]:
        return {"log": ["sib_old"]}

    def route(state: LogState) -> list[str]:
        own = "yes" if state["flag"] else "no"
        sibling = "sib_new" if state["sib"] == "new" else "sib_old"
        return [own, sibling]

    g = api.StateGraph(LogState)
    for name, fn in [("a", a), ("b", b), ("yes", yes), ("no", no), ("sib_new", sib_new),
                     ("sib_old", sib_old)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b")
    g.add_conditional_edges("a", route)
    return _compile(g, "conditional_sees_own_writes")


@case([{"count": 0, "route": 1, "log": []}, {"count": 0, "route": 3, "log": []},
       {"count": 5, "route": 3, "log": []}])
def build_loop_counter(api: Api) -> Any:
    """`route` holds the loop bound; the loop ends through a conditional edge to END."""

    def step(state: LogState) -> dict[str, Any]:
        return {"count": state["count"] + 1, "log": [f"step{state['count']}"]}

    def more(state: LogState) -> str:
        return "step" if state["count"] < state["route"] else api.END

    g = api.StateGraph(LogState)
    g.add_node("step", step)
    g.add_edge(api.START, "step")
    g.add_conditional_edges("step", more)
    return _compile(g, "loop_counter")


# ---------------------------------------------------------------------------------------------
# Recursion limit (exact boundary)


def _limit(n: int) -> dict[str, Any]:
    return {"recursion_limit": n}


@case([Run({"count": 0, "route": 4, "log": []}, _limit(k)) for k in (2, 3, 4, 5, 6)]
      + [Run({"count": 0, "route": 30, "log": []}, None),
         Run({"count": 0, "route": 30, "log": []}, _limit(25))])
def build_recursion_limit(api: Api) -> Any:
    """A loop of `route` supersteps run under limits just below, at and above the need."""

    def step(state: LogState) -> dict[str, Any]:
        return {"count": state["count"] + 1}

    def more(state: LogState) -> str:
        return "step" if state["count"] < state["route"] else api.END

    g = api.StateGraph(LogState)
    g.add_node("step", step)
    g.add_edge(api.START, "step")
    g.add_conditional_edges("step", more)
    return _compile(g, "recursion_limit")


@case([Run({"log": []}, _limit(k)) for k in (1, 2, 3, 4)])
def build_recursion_limit_sequence(api: Api) -> Any:
    """Three nodes in a row: the limit boundary for a static chain."""

    def a(state: LogState) -> dict[str, Any]:
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"log": ["b"]}

    def c(state: LogState) -> dict[str, Any]:
        return {"log": ["c"]}

    g = api.StateGraph(LogState)
    g.add_sequence([a, b, c])
    g.add_edge(api.START, "a")
    return _compile(g, "recursion_limit_sequence")


@case([Run({"log": []}, _limit(k)) for k in (3, 4, 5, 25)] + [Run({"log": []}, None)])
def build_managed_steps(api: Api) -> Any:
    """RemainingSteps and IsLastStep: a loop that stops itself on its last allowed step; the
    managed keys are seen by nodes and conditional edges, never stored or returned."""

    class Managed(TypedDict, total=False):
        log: Annotated[list[str], operator.add]
        remaining: api.RemainingSteps  # type: ignore[name-defined]
        last: api.IsLastStep  # type: ignore[name-defined]

    def work(state: Managed) -> dict[str, Any]:
        return {"log": [f"{state['remaining']}:{state['last']}"], "remaining": 99}

    def route(state: Managed) -> str:
        return api.CONST_END if state["last"] or len(state["log"]) >= 6 else "work"

    g = api.StateGraph(Managed)
    g.add_node("work", work)
    g.add_edge(api.CONST_START, "work")
    g.add_conditional_edges("work", route)
    return _compile(g, "managed_steps")


@case([{"items": ["in"]}, {"items": []}], unordered=True)
def build_overwrite(api: Api) -> Any:
    """Overwrite bypasses a reducer; its dict form too; values after it in the step drop."""

    class Items(TypedDict):
        items: Annotated[list[str], operator.add]

    def add(state: Items) -> dict[str, Any]:
        return {"items": ["a"]}

    def replace(state: Items) -> dict[str, Any]:
        return {"items": api.Overwrite(["b"])}

    def plain_dict(state: Items) -> dict[str, Any]:
        return {"items": {"__overwrite__": state["items"] + ["c"]}}

    def later(state: Items) -> dict[str, Any]:
        return {"items": ["d"]}

    g = api.StateGraph(Items)
    g.add_node("add", add)
    g.add_node("replace", replace)
    g.add_node("plain_dict", plain_dict)
    g.add_node("later", later)
    g.add_edge(api.START, "add")
    g.add_edge("add", "replace")
    g.add_edge("add", "later")  # same step as replace: sorted after it, dropped
    g.add_edge("replace", "plain_dict")
    g.add_edge("plain_dict", api.END)
    return _compile(g, "overwrite")


@case([{"items": []}], unordered=True)
def build_overwrite_twice(api: Api) -> Any:
    """Two overwrites of one key in one step fail the run."""

    class Items(TypedDict):
        items: Annotated[list[str], operator.add]

    def one(state: Items) -> dict[str, Any]:
        return {"items": api.Overwrite(["1"])}

    def two(state: Items) -> dict[str, Any]:
        return {"items": api.Overwrite(["2"])}

    g = api.StateGraph(Items)
    g.add_node("one", one)
    g.add_node("two", two)
    g.add_edge(api.START, "one")
    g.add_edge(api.START, "two")
    return _compile(g, "overwrite_twice")


class SchemaIn(TypedDict):
    q: str


class SchemaOut(TypedDict):
    a: str


class SchemaState(TypedDict):
    q: str
    a: str
    mid: str


class SchemaPrivate(TypedDict):
    secret: str


class SchemaPick(pydantic.BaseModel):
    mid: str


@case([{"q": "hi", "a": "ignored", "zzz": 1}, {"q": "x"}])
def build_input_output_schemas(api: Api) -> Any:
    """Input and output schemas filter a run's input and result; a node reads only the keys
    of its input schema (inferred from its annotation, or given), and may write keys of no
    other schema (private state), which other nodes read and `values` events show."""

    def first(state: SchemaIn) -> dict[str, Any]:
        return {"mid": f"{state['q']}!", "secret": f"<{sorted(state)}>"}

    def private(state: SchemaPrivate) -> dict[str, Any]:
        return {"a": state["secret"]}

    def picked(state: Any) -> dict[str, Any]:
        return {"a": f"{state['a']} {type(state).__name__}"}

    def model(state: SchemaPick) -> dict[str, Any]:
        return {"mid": f"{type(state).__name__}:{state.mid}"}

    def whole(state: SchemaState) -> dict[str, Any]:
        return {"a": state["a"] + "|" + ",".join(sorted(state))}

    def route(state: SchemaPrivate) -> str:
        return "model" if state["secret"] else api.END

    g = api.StateGraph(SchemaState, input_schema=SchemaIn, output_schema=SchemaOut)
    g.add_node("first", first)
    g.add_node("private", private)
    g.add_node("picked", picked, input_schema=SchemaOut)
    g.add_node("model", model)
    g.add_node("whole", whole)
    g.add_edge(api.START, "first")
    g.add_edge("first", "private")
    g.add_edge("private", "picked")
    g.add_conditional_edges("picked", route, ["model", api.END])
    g.add_edge("model", "whole")
    return _compile(g, "input_output_schemas")


@case([["x"], []])
def build_root_state_reducer(api: Api) -> Any:
    """A state that is one value with a reducer: nodes get and return the value itself, a
    Command's update is the value, None writes nothing."""

    def a(state: list[str]) -> list[str]:
        return [f"a{len(state)}"]

    def b(state: list[str]) -> Any:
        return api.Command(update=["b"])

    def c(state: list[str]) -> None:
        return None

    g = api.StateGraph(Annotated[list, operator.add])
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    return _compile(g, "root_state_reducer")


@case([1, 41])
def build_root_state_plain(api: Api) -> Any:
    """A state that is one plain value (the last write wins), routed on."""

    def inc(state: int) -> int:
        return state + 1

    def route(state: int) -> str:
        return "inc" if state < 3 else api.END

    g = api.StateGraph(int)
    g.add_node("inc", inc)
    g.add_edge(api.START, "inc")
    g.add_conditional_edges("inc", route)
    return _compile(g, "root_state_plain")


class ReturnModel(pydantic.BaseModel):
    text: str = ""
    count: int | None = None
    log: Annotated[list[str], operator.add] = []


@case([{"text": "t", "log": []}])
def build_node_return_shapes(api: Api) -> Any:
    """A node may return a list of Commands (and dicts), or an instance of the state class
    (its fields that are set, not None, or whose default is not None)."""

    def commands(state: ReturnModel) -> Any:
        return [api.Command(update={"log": ["c1"]}), {"count": 1},
                api.Command(update={"text": "c2"}, goto="model")]

    def model(state: ReturnModel) -> Any:
        return ReturnModel(log=[f"model saw {state.text}/{state.count}"])

    g = api.StateGraph(ReturnModel)
    g.add_node("commands", commands)
    g.add_node("model", model)
    g.add_edge(api.START, "commands")
    return _compile(g, "node_return_shapes")


@case([{"log": []}], unordered=True)
def build_defer(api: Api) -> Any:
    """A deferred node triggered from branches of different lengths runs once, after
    everything else; what follows it runs after it."""

    def node(name: str) -> Any:
        return lambda state: {"log": [name]}

    g = api.StateGraph(LogState)
    for name in ("a", "b", "c", "c2", "e"):
        g.add_node(name, node(name))
    g.add_node("d", node("d"), defer=True)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "c")
    g.add_edge("b", "d")
    g.add_edge("c", "c2")
    g.add_edge("c2", "d")
    g.add_edge("d", "e")
    return _compile(g, "defer")


@case([{"log": []}], async_only=True,
      cluster="its nodes wait for each other with a threading event of one process")
def build_failure_cancels_siblings(api: Api) -> Any:
    """A node that fails fails the run at once: a sibling still running is cancelled (it
    never reaches its end, which is a minute away)."""
    started = threading.Event()

    async def slow(state: LogState) -> dict[str, Any]:
        api.get_stream_writer()("slow started")
        started.set()
        await asyncio.sleep(60)
        api.get_stream_writer()("slow ended")
        return {"log": ["slow"]}

    async def failing(state: LogState) -> dict[str, Any]:
        while not started.is_set():
            await asyncio.sleep(0.002)
        raise ValueError("failing failed")

    g = api.StateGraph(LogState)
    g.add_node("slow", slow)
    g.add_node("failing", failing)
    g.add_edge(api.START, "slow")
    g.add_edge(api.START, "failing")
    return _compile(g, "failure_cancels_siblings")


@dataclass
class DataContext:
    user: str
    limit: int = 3


class ModelContext(pydantic.BaseModel):
    user: str
    limit: int = 3


@case([Run({"log": []}, None, {"user": "ada"}), Run({"log": []}, None, {"user": "bo", "limit": 1}),
       Run({"log": []}, None, {"limit": 2})])
def build_context_dataclass(api: Api) -> Any:
    """A dict given as `context` reaches nodes as the graph's dataclass context schema."""

    def node(state: LogState, runtime: api.Runtime) -> dict[str, Any]:  # type: ignore[name-defined]
        ctx = runtime.context
        return {"log": [f"{type(ctx).__name__}:{ctx.user}:{ctx.limit}"]}

    g = api.StateGraph(LogState, context_schema=DataContext)
    g.add_node("node", node)
    g.add_edge(api.START, "node")
    return _compile(g, "context_dataclass")


@case([Run({"log": []}, None, {"user": "ada"}), Run({"log": []}, None, {"limit": "many"})])
def build_context_pydantic(api: Api) -> Any:
    """A dict given as `context` is validated against a pydantic context schema: a bad one
    raises pydantic's ValidationError where the graph is invoked."""

    def node(state: LogState, runtime: api.Runtime) -> dict[str, Any]:  # type: ignore[name-defined]
        ctx = runtime.context
        return {"log": [f"{type(ctx).__name__}:{ctx.user}:{ctx.limit}"]}

    g = api.StateGraph(LogState, context_schema=ModelContext)
    g.add_node("node", node)
    g.add_edge(api.START, "node")
    return _compile(g, "context_pydantic")


class CacheState(TypedDict, total=False):
    n: int
    rounds: int
    log: Annotated[list[str], operator.add]


@case([{"n": 2, "rounds": 0, "log": []}, {"n": 3, "rounds": 0, "log": []}],
      cluster="a cluster's cache outlives a run (tests/test_cluster.py covers it)")
def build_node_cache(api: Api) -> Any:
    """A node with a cache policy runs once per key: later steps with the same input get the
    cached result (the updates event says so); a node without one runs each time."""
    calls: list[int] = []

    def square(state: CacheState) -> dict[str, Any]:
        calls.append(state["n"])
        return {"log": [f"square {state['n']} = {state['n'] ** 2} (call {len(calls)})"]}

    def again(state: CacheState) -> dict[str, Any]:
        return {"rounds": state["rounds"] + 1, "log": ["again"]}

    def route(state: CacheState) -> str:
        return "square" if state["rounds"] < 3 else api.END

    g = api.StateGraph(CacheState)
    g.add_node("square", square, cache_policy=api.CachePolicy(key_func=lambda s: str(s["n"])))
    g.add_node("again", again)
    g.add_edge(api.START, "square")
    g.add_edge("square", "again")
    g.add_conditional_edges("again", route)
    return g.compile(name="diff_node_cache", cache=api.InMemoryCache())


@case([{"count": 0, "route": 30, "log": []}, Run({"count": 0, "route": 30, "log": []}, _limit(8))])
def build_with_config(api: Api) -> Any:
    """A graph's own config (`with_config`) under each call's: its recursion limit applies
    unless the call sets one, its configurable values reach the nodes."""

    def step(state: LogState, config) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"count": state["count"] + 1, "log": [str(config["configurable"].get("who"))]}

    def more(state: LogState) -> str:
        return "step" if state["count"] < state["route"] else api.END

    g = api.StateGraph(LogState)
    g.add_node("step", step)
    g.add_edge(api.START, "step")
    g.add_conditional_edges("step", more)
    return _compile(g, "with_config").with_config(recursion_limit=4, configurable={"who": "me"})


class FooState(TypedDict):
    foo: Annotated[str, operator.add]


@case([{"foo": ""}, {"foo": "x"}])
def build_commands_writing_one_key(api: Api) -> Any:
    """A node returning several Commands that write one key: each write goes through the
    reducer, in order; the update event lists each Command's update."""

    def node_a(state: FooState) -> Any:
        return [api.Command(update={"foo": "a1"}), api.Command(update={"foo": "a2"}),
                {"foo": "a3"}]

    def node_b(state: FooState) -> dict[str, Any]:
        return {"foo": "b"}

    g = api.StateGraph(FooState)
    g.add_sequence([node_a, node_b])
    g.add_edge(api.START, "node_a")
    return _compile(g, "commands_writing_one_key")


@case([{"foo": ""}])
def build_command_update_pairs_writing_one_key(api: Api) -> Any:
    """A Command whose update is (key, value) pairs naming one key twice, beside another key:
    both writes go through the reducer, in order; the update event lists each pair."""

    def node_a(state: FooState) -> Any:
        return api.Command(update=[("foo", "a1"), ("log", ["a"]), ("foo", "a2")])

    g = api.StateGraph(FooLogState)
    g.add_node("node_a", node_a)
    g.add_edge(api.START, "node_a")
    return _compile(g, "command_update_pairs_writing_one_key")


class FooLogState(TypedDict, total=False):
    foo: Annotated[str, operator.add]
    log: Annotated[list[str], operator.add]


@case([[], ["x"]])
def build_commands_writing_the_root(api: Api) -> Any:
    """The same for a one-value state."""

    def node_a(state: list[str]) -> Any:
        return [api.Command(update=["a1"]), api.Command(update=["a2"])]

    g = api.StateGraph(Annotated[list, operator.add])
    g.add_node("node_a", node_a)
    g.add_edge(api.START, "node_a")
    return _compile(g, "commands_writing_the_root")


@case([{"route": "beats", "log": []}, {"route": "writes", "log": []},
       {"route": "silent", "log": []}, {"route": "long", "log": []}], async_only=True,
      note="idle timeout 0.3 s: 12 gaps of 0.03 s outlast it only if each refreshes it")
def build_timeout_policy(api: Api) -> Any:
    """TimeoutPolicy: a heartbeat, or a stream write under refresh_on="auto", keeps an idle
    timeout from firing; a silent node times out (kind="idle"); a run timeout bounds all."""

    async def work(state: LogState, runtime: api.Runtime) -> dict[str, Any]:  # type: ignore[name-defined]
        for _ in range(12):
            await asyncio.sleep(0.03)
            if state["route"] in ("beats", "long"):
                runtime.heartbeat()
            elif state["route"] == "writes":
                runtime.stream_writer("tick")
            elif state["route"] == "silent":
                await asyncio.sleep(5)
        if state["route"] == "long":
            await asyncio.sleep(5)
        return {"log": [state["route"]]}

    g = api.StateGraph(LogState)
    g.add_node("work", work, timeout=api.TimeoutPolicy(run_timeout=0.8, idle_timeout=0.3))
    g.add_edge(api.START, "work")
    return _compile(g, "timeout_policy")


# ---------------------------------------------------------------------------------------------
# Send


@case([{"text": "abc", "log": []}, {"text": "", "log": []}, {"text": "zz", "log": ["pre"]}],
      async_only=True, note="sends finish in reverse order; writes fold in send order")
def build_send_map_reduce(api: Api) -> Any:
    async def split(state: LogState) -> dict[str, Any]:
        return {"log": ["split"]}

    def fan(state: LogState) -> list[Any]:
        n = len(state["text"])
        return [api.Send("work", {"item": ch, "delay": 0.03 * (n - i)})
                for i, ch in enumerate(state["text"])]

    async def work(arg: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(arg["delay"])
        return {"log": [f"work:{arg['item']}"]}

    async def reduce(state: LogState) -> dict[str, Any]:
        return {"log": [f"reduce saw {state['log']}"]}

    g = api.StateGraph(LogState)
    g.add_node("split", split)
    g.add_node("work", work)
    g.add_node("reduce", reduce)
    g.add_edge(api.START, "split")
    g.add_conditional_edges("split", fan, ["work"])
    g.add_edge("work", "reduce")
    return _compile(g, "send_map_reduce")


@case([{"route": "list", "log": []}, {"route": "single", "log": []},
       {"route": "none", "log": []}], unordered=True,
      note="Sends from START; edge-triggered tasks fold before Sends, by name")
def build_send_mixed(api: Api) -> Any:
    def entry(state: LogState) -> Any:
        if state["route"] == "single":
            return api.Send("w", {"log": ["single"]})
        if state["route"] == "none":
            return []
        return [api.Send("w", {"log": ["s0"]}), api.Send("w", {"log": ["s1"]}),
                api.Send("a_static", {"log": ["sent-to-a"]})]

    def kick(state: LogState) -> dict[str, Any]:
        return {"log": ["kick"]}

    def w(arg: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"w<{arg['log'][0]}>"]}

    def a_static(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"a_static<{state['log'][-1]}>"]}

    def z_static(state: LogState) -> dict[str, Any]:
        return {"log": ["z_static"]}

    g = api.StateGraph(LogState)
    for name, fn in [("kick", kick), ("w", w), ("a_static", a_static), ("z_static", z_static)]:
        g.add_node(name, fn)
    g.add_conditional_edges(api.START, entry)
    g.add_edge(api.START, "kick")
    g.add_edge("kick", "z_static")
    g.add_edge("kick", "a_static")
    return _compile(g, "send_mixed")


# ---------------------------------------------------------------------------------------------
# Command


@case([{"log": []}, {"log": ["x"]}], unordered=True)
def build_command_goto(api: Api) -> Any:
    """Command update+goto name (Literal-annotated), goto a Send on top of a static edge."""

    def a(state: LogState) -> api.Command[Literal["b", "c"]]:
        return api.Command(update={"log": ["a"]}, goto="b")

    def b(state: LogState) -> api.Command[Literal["c"]]:
        return api.Command(update={"log": ["b"]}, goto=[api.Send("c", {"log": ["via-send"]})])

    def c(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"c got {state['log']}"]}

    def d(state: LogState) -> dict[str, Any]:
        return {"log": ["d"]}

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_node("d", d)
    g.add_edge(api.START, "a")
    g.add_edge("b", "d")
    return _compile(g, "command_goto")


@case([{"route": "name", "log": []}, {"route": "list", "log": []},
       {"route": "end", "log": []}, {"route": "update_only", "log": []},
       {"route": "goto_only", "log": []}, {"route": "send", "log": []}], unordered=True)
def build_command_variants(api: Api) -> Any:
    def router(state: LogState) -> api.Command[Literal["x", "y", "__end__"]]:
        route = state["route"]
        if route == "name":
            return api.Command(update={"log": ["router"]}, goto="x")
        if route == "list":
            return api.Command(update={"log": ["router"]}, goto=["x", "y"])
        if route == "end":
            return api.Command(update={"log": ["router"]}, goto=api.END)
        if route == "update_only":
            return api.Command(update={"log": ["router"], "text": "t"})
        if route == "goto_only":
            return api.Command(goto="y")
        return api.Command(update={"count": 1},
                           goto=[api.Send("y", {"log": ["p0"]}), api.Send("x", {"log": ["p1"]})])

    def x(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"x<{len(state['log'])}>"]}

    def y(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"y<{len(state['log'])}>"]}

    g = api.StateGraph(LogState)
    g.add_node("router", router)
    g.add_node("x", x)
    g.add_node("y", y)
    g.add_edge(api.START, "router")
    return _compile(g, "command_variants")


# ---------------------------------------------------------------------------------------------
# What a node returns


@case([{"text": "t", "log": []}])
def build_node_returns_none(api: Api) -> Any:
    def nothing(state: LogState) -> None:
        return None

    def empty(state: LogState) -> dict[str, Any]:
        return {}

    def after(state: LogState) -> dict[str, Any]:
        return {"log": [f"after saw {state['text']}"]}

    g = api.StateGraph(LogState)
    g.add_sequence([nothing, empty, after])
    g.add_edge(api.START, "nothing")
    return _compile(g, "node_returns_none")


@case([{"text": "t", "junk": 1}, {"junk": 2, "log": ["l"]}])
def build_extra_keys_dropped(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        return {"text": "a", "not_in_schema": 42}

    def b(state: LogState) -> dict[str, Any]:
        return {"log": [f"b saw {sorted(state)}"]}

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, "extra_keys_dropped")


# ---------------------------------------------------------------------------------------------
# Errors at run time


@case([{"log": []}], unordered=True)
def build_invalid_update_two_writes(api: Api) -> Any:
    def a(state: LogState) -> dict[str, Any]:
        return {"text": "from a", "log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        return {"text": "from b", "log": ["b"]}

    def after(state: LogState) -> dict[str, Any]:
        return {"log": ["after"]}

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("after", after)
    g.add_edge(api.START, "a")
    g.add_edge(api.START, "b")
    g.add_edge("a", "after")
    return _compile(g, "invalid_update_two_writes")


@case([{"route": "int", "log": []}, {"route": "str", "log": []},
       {"route": "list", "log": []}])
def build_invalid_update_non_dict(api: Api) -> Any:
    def first(state: LogState) -> dict[str, Any]:
        return {"log": ["first"]}

    def bad(state: LogState) -> Any:
        return {"int": 42, "str": "text", "list": ["log", "x"]}[state["route"]]

    g = api.StateGraph(LogState)
    g.add_node("first", first)
    g.add_node("bad", bad)
    g.add_edge(api.START, "first")
    g.add_edge("first", "bad")
    return _compile(g, "invalid_update_non_dict")


@case([{"route": "value", "text": "x", "log": []}, {"route": "key", "text": "x", "log": []},
       {"route": "custom", "text": "x", "log": []},
       {"route": "multiline", "text": "x", "log": []}])
def build_node_raises(api: Api) -> Any:
    def ok(state: LogState) -> dict[str, Any]:
        return {"log": ["ok"]}

    def boom(state: LogState) -> dict[str, Any]:
        route = state["route"]
        if route == "value":
            raise ValueError(f"bad value {state['text']!r} in boom")
        if route == "key":
            raise KeyError("missing")
        if route == "custom":
            raise DiffError("custom failure 7")
        raise ValueError("first line\nsecond line")

    def never(state: LogState) -> dict[str, Any]:
        return {"log": ["never"]}

    g = api.StateGraph(LogState)
    g.add_sequence([ok, boom, never])
    g.add_edge(api.START, "ok")
    return _compile(g, "node_raises")


# ---------------------------------------------------------------------------------------------
# Custom stream, injected parameters


@case([{"text": "hi", "log": []}])
def build_custom_stream(api: Api) -> Any:
    def via_get(state: LogState) -> dict[str, Any]:
        write = api.get_stream_writer()
        write({"node": "via_get", "n": 1})
        write("plain string event")
        return {"log": ["via_get"]}

    def via_param(state: LogState, writer: api.StreamWriter) -> dict[str, Any]:
        writer({"node": "via_param", "text": state["text"]})
        writer(["a", "list", 3])
        return {"log": ["via_param"]}

    def via_runtime(state: LogState, runtime: api.Runtime) -> dict[str, Any]:
        runtime.stream_writer({"node": "via_runtime"})
        return {"log": ["via_runtime"]}

    def silent(state: LogState) -> dict[str, Any]:
        return {"log": ["silent"]}

    g = api.StateGraph(LogState)
    g.add_sequence([via_get, via_param, via_runtime, silent])
    g.add_edge(api.START, "via_get")
    return _compile(g, "custom_stream")


@case([{"text": "hi", "log": []}], async_only=True,
      note="fast writes between slow's two writes: 0.01 s against 0.2 s, room for a busy machine")
def build_custom_stream_async(api: Api) -> Any:
    async def slow(state: LogState) -> dict[str, Any]:
        api.get_stream_writer()("slow:start")
        await asyncio.sleep(0.2)
        api.get_stream_writer()("slow:end")
        return {"log": ["slow"]}

    async def fast(state: LogState, writer: api.StreamWriter) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        writer("fast:mid")
        return {"log": ["fast"]}

    def sync_node(state: LogState) -> dict[str, Any]:
        api.get_stream_writer()({"sync": state["log"]})
        return {"log": ["sync"]}

    g = api.StateGraph(LogState)
    g.add_node("slow", slow)
    g.add_node("fast", fast)
    g.add_node("sync_node", sync_node)
    g.add_edge(api.START, "slow")
    g.add_edge(api.START, "fast")
    g.add_edge(["slow", "fast"], "sync_node")
    return _compile(g, "custom_stream_async")


@case([Run({"log": []}, {"configurable": {"user": "bob", "level": 3}}),
       Run({"log": []}, {"configurable": {"user": "alice"}}),
       Run({"log": []}, None)])
def build_config_injection(api: Api) -> Any:
    def who(state: LogState, config) -> dict[str, Any]:
        conf = config.get("configurable", {})
        return {"text": str(conf.get("user")), "log": [f"level={conf.get('level')}"]}

    same_fn = who  # the same function registered twice under different names

    g = api.StateGraph(LogState)
    g.add_node("who", who)
    g.add_node("again", same_fn)
    g.add_edge(api.START, "who")
    g.add_edge("who", "again")
    return _compile(g, "config_injection")


@case([Run({"log": []}, {"configurable": {"user": "carol"}})], async_only=True)
def build_mixed_sync_async(api: Api) -> Any:
    def sync_a(state: LogState) -> dict[str, Any]:
        return {"log": ["sync_a"]}

    async def async_b(state: LogState, config) -> dict[str, Any]:
        await asyncio.sleep(0.04)
        return {"log": [f"async_b:{config['configurable']['user']}"]}

    def sync_c(state: LogState) -> dict[str, Any]:
        return {"log": ["sync_c"]}

    async def async_d(state: LogState) -> dict[str, Any]:
        return {"log": [f"async_d saw {state['log']}"]}

    g = api.StateGraph(LogState)
    for name, fn in [("sync_a", sync_a), ("async_b", async_b), ("sync_c", sync_c),
                     ("async_d", async_d)]:
        g.add_node(name, fn)
    g.add_edge(api.START, "sync_a")
    g.add_edge("sync_a", "async_b")
    g.add_edge("sync_a", "sync_c")
    g.add_edge(["async_b", "sync_c"], "async_d")
    return _compile(g, "mixed_sync_async")


# ---------------------------------------------------------------------------------------------
# State schema kinds


@case([{"text": "hi"}, {"text": "hi", "count": 5, "items": ["x"]}, {"items": ["only"]}])
def build_dataclass_state(api: Api) -> Any:
    def a(state: DataState) -> dict[str, Any]:
        return {"text": state.text + "!", "items": [f"a:{type(state).__name__}"],
                "count": state.count + 1}

    def b(state: DataState) -> dict[str, Any]:
        return {"items": [f"b saw {state.items} count={state.count}"]}

    g = api.StateGraph(DataState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, "dataclass_state")


@case([{"text": "hi"}, {"text": "hi", "count": "3"}, {"text": "hi", "count": "abc"},
       {"count": 1}, PydState(text="model", count=2, items=["m"]), {"text": 5}])
def build_pydantic_state(api: Api) -> Any:
    def a(state: PydState) -> dict[str, Any]:
        return {"count": state.count + 1, "items": [f"a:{type(state).__name__}"]}

    def b(state: PydState) -> dict[str, Any]:
        return {"text": f"{state.text} count={state.count!r}", "items": [str(state.items)]}

    g = api.StateGraph(PydState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, "pydantic_state")


class ReducedModel(pydantic.BaseModel):
    info: Annotated[list[str], operator.add]  # (required, but a reducer's: [] when not given)
    note: str = "default note"


@case([{"other": 1}, ReducedModel(info=["a"]), {"info": ["x"]}])
def build_pydantic_reducer_key_not_given(api: Api) -> Any:
    """A pydantic state whose required key has a reducer: input without it reads it as its
    reducer's start, and a model given as input writes its defaults too, as LangGraph."""
    def seen(state: ReducedModel) -> dict[str, Any]:
        return {"info": [f"seen {len(state.info)}, {state.note}"]}

    g = api.StateGraph(ReducedModel)
    g.add_node("seen", seen)
    g.add_edge(api.START, "seen")
    return _compile(g, "pydantic_reducer_key_not_given")


class OptionalModel(pydantic.BaseModel):
    foo: str | None = None
    bar: str | None = None


@case([{"foo": "start"}, OptionalModel()])
def build_command_state_objects(api: Api) -> Any:
    """Commands whose update is a state object: only the fields it set (or that are not
    None) are written, as LangGraph reads them."""
    def a(state: OptionalModel) -> Any:
        return api.Command(update=OptionalModel(foo=None))

    def b(state: OptionalModel) -> Any:
        return api.Command(update=OptionalModel(bar=f"after {state.foo}"))

    g = api.StateGraph(OptionalModel)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, "command_state_objects")


@case([{"text": "hi"}])
def build_command_dataclass_update(api: Api) -> Any:
    def a(state: DataState) -> Any:
        return api.Command(update=DataState(text=state.text + "!", count=3))

    g = api.StateGraph(DataState)
    g.add_node("a", a)
    g.add_edge(api.START, "a")
    return _compile(g, "command_dataclass_update")


class InState(TypedDict):
    question: str


class OutState(TypedDict):
    answer: str


class FullState(TypedDict, total=False):
    question: str
    answer: str
    scratch: Annotated[list[str], operator.add]


@case([{"question": "why?"}, {"question": "q", "answer": "preset", "scratch": ["s"]}])
def build_io_schemas(api: Api) -> Any:
    def think(state: FullState) -> dict[str, Any]:
        return {"scratch": [f"thinking about {state['question']}"]}

    def answer(state: FullState) -> dict[str, Any]:
        return {"answer": f"because ({len(state['scratch'])})"}

    g = api.StateGraph(FullState, input_schema=InState, output_schema=OutState)
    g.add_node("think", think)
    g.add_node("answer", answer)
    g.add_edge(api.START, "think")
    g.add_edge("think", "answer")
    return _compile(g, "io_schemas")


# ---------------------------------------------------------------------------------------------
# Retry


@case([{"route": "flaky", "log": []}, {"route": "value_error", "log": []}],
      cluster="it counts attempts in its closure, which each worker process has its own of")
def build_retry_policy(api: Api) -> Any:
    attempts: dict[str, int] = {}

    def work(state: LogState) -> dict[str, Any]:
        attempts["n"] = attempts.get("n", 0) + 1
        if state["route"] == "value_error":
            raise ValueError(f"not retried (attempt {attempts['n']})")
        if attempts["n"] < 3:
            raise ConnectionError(f"transient failure {attempts['n']}")
        return {"log": [f"work ok after {attempts['n']} attempts"]}

    policy = api.RetryPolicy(initial_interval=0.01, backoff_factor=1.0, max_interval=0.01,
                             max_attempts=3, jitter=False)
    g = api.StateGraph(LogState)
    g.add_node("work", work, retry_policy=policy)
    g.add_edge(api.START, "work")
    return _compile(g, "retry_policy")


# ---------------------------------------------------------------------------------------------
# Compile-time errors: (name, factory) pairs; the factory must raise while building/compiling.


def _noop(state: Any) -> dict[str, Any]:
    return {}


def _graph(api: Api, *names: str) -> Any:
    g = api.StateGraph(LogState)
    for name in names:
        g.add_node(name, _noop)
    return g


def _route(state: Any) -> str:
    return "a"


COMPILE_ERRORS: dict[str, Callable[[Api], Any]] = {}


def compile_error(build: Callable[[Api], Any]) -> Callable[[Api], Any]:
    COMPILE_ERRORS[build.__name__.removeprefix("err_")] = build
    return build


@compile_error
def err_edge_to_unknown_node(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_edge("a", "ghost")
    return g.compile(name="diff_err")


@compile_error
def err_edge_from_unknown_node(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_edge("ghost", "a")
    return g.compile(name="diff_err")


@compile_error
def err_missing_entry_point(api: Api) -> Any:
    g = _graph(api, "a", "b")
    g.add_edge("a", "b")
    return g.compile(name="diff_err")


@compile_error
def err_no_edges_at_all(api: Api) -> Any:
    return _graph(api, "a").compile(name="diff_err")


@compile_error
def err_duplicate_node(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_node("a", _noop)
    return g.compile(name="diff_err")


@compile_error
def err_reserved_name_start(api: Api) -> Any:
    return _graph(api, api.START)


@compile_error
def err_reserved_name_end(api: Api) -> Any:
    return _graph(api, api.END)


@compile_error
def err_reserved_char_pipe(api: Api) -> Any:
    return _graph(api, "a|b")


@compile_error
def err_reserved_char_colon(api: Api) -> Any:
    return _graph(api, "a:b")


@compile_error
def err_edge_from_end(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.END, "a")


@compile_error
def err_edge_to_start(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge("a", api.START)


@compile_error
def err_join_from_unknown_node(api: Api) -> Any:
    g = _graph(api, "a", "c")
    g.add_edge(api.START, "a")
    g.add_edge(["a", "ghost"], "c")
    return g.compile(name="diff_err")


@compile_error
def err_join_to_unknown_node(api: Api) -> Any:
    g = _graph(api, "a", "b")
    g.add_edge(api.START, "a")
    g.add_edge(["a", "b"], "ghost")
    return g.compile(name="diff_err")


@compile_error
def err_join_from_end(api: Api) -> Any:
    g = _graph(api, "a", "b")
    g.add_edge([api.END, "a"], "b")


@compile_error
def err_path_map_unknown_target(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_conditional_edges("a", _route, {"x": "ghost"})
    return g.compile(name="diff_err")


@compile_error
def err_path_map_list_unknown_target(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_conditional_edges("a", _route, ["ghost"])
    return g.compile(name="diff_err")


@compile_error
def err_conditional_from_unknown_node(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_conditional_edges("ghost", _route, ["a"])
    return g.compile(name="diff_err")


@compile_error
def err_duplicate_branch(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    g.add_conditional_edges("a", _route, ["a"])
    g.add_conditional_edges("a", _route, ["a"])
    return g.compile(name="diff_err")


@compile_error
def err_empty_sequence(api: Api) -> Any:
    g = _graph(api)
    g.add_sequence([])


@compile_error
def err_sequence_duplicate_node(api: Api) -> Any:
    g = _graph(api, "_noop")
    g.add_sequence([_noop])


@compile_error
def err_command_literal_unknown_target(api: Api) -> Any:
    def a(state: LogState) -> api.Command[Literal["ghost"]]:
        return api.Command(goto="ghost")

    g = api.StateGraph(LogState)
    g.add_node("a", a)
    g.add_edge(api.START, "a")
    return g.compile(name="diff_err")


@compile_error
def err_interrupt_unknown_node(api: Api) -> Any:
    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    return g.compile(name="diff_err", interrupt_before=["ghost"])


def _one_arg(a: Any) -> Any:
    return a


class BadReducerState(TypedDict):
    hello: Annotated[str, _one_arg]


@compile_error
def err_reducer_of_one_argument(api: Api) -> Any:
    return api.StateGraph(BadReducerState)


@compile_error
def err_not_a_checkpointer(api: Api) -> Any:
    class NotACheckpointer:
        pass

    g = _graph(api, "a")
    g.add_edge(api.START, "a")
    return g.compile(name="diff_err", checkpointer=NotACheckpointer())


@compile_error
def err_default_error_handler_name_taken(api: Api) -> Any:
    g = _graph(api, "a")
    g.set_node_defaults(error_handler=lambda state, error: {})
    g.add_node("__default_error_handler__", lambda state: {})
    g.add_edge(api.START, "a")
    return g.compile(name="diff_err")


# Composition and chat-model cases live in modules of their own; importing them registers them.
from tests.differential import (  # noqa: E402,F401,I001
    message_cases,
    prebuilt_cases,
    runnable_cases,
    store_cases,
    stream_event_cases,
    subgraph_cases,
)
