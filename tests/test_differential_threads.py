"""Differential tests of persistence and control: threads, interrupts, resumes, breakpoints,
`get_state` / `get_state_history` / `update_state`, replays and forks, failures and resumes,
retries, timeouts.

Each scenario is a function `(api, transcript)` that builds its graph through `api` (so the
same code drives LangGraph, the reference, and arqgraph, the candidate, embedded with
`compile(checkpointer=InMemorySaver())`) and records every outcome in the transcript (see
tests/differential/transcript.py for the normalisation: interrupt and checkpoint ids become
labels by order of first appearance, snapshots keep values, next, source, step, tasks,
interrupts and which checkpoint their parent is). A scenario runs once per side; its
transcripts are compared per section, one test each, so that a known gap in one section does
not hide a regression in another: "run" (outputs, stream events, errors, call counts),
"state" (`get_state`), "history" (`get_state_history`), "input" (the results snapshots show
for `__start__` tasks).

Scenarios (by subject):
- a thread continued by two invokes: continued_thread, history_limit, history_before_filter;
- interrupts: interrupt_parallel, two_interrupts_one_node, parallel_interrupts_by_id,
  partial_resume_by_id, resume_unknown_id, resume_fresh_thread, rerun_finished_thread,
  interrupt_order, send_interrupt;
- a failing node next to a succeeding one: failure_then_resume, task_error_type;
- static breakpoints: interrupt_before, interrupt_after, task_order;
- update_state: update_state, update_finished_thread, update_state_misuse,
  update_before_deferred; replay: replay;
- multi-mode streams through an interrupt or a failure and the resume:
  stream_interrupt_resume, stream_failure_resume;
- the async API: async_interrupt_parallel, async_update_state;
- retries and timeouts: retry_policy, node_timeout_async, node_timeout_sync;
- misuse: no_checkpointer, configurable_without_thread_id.

Where arqgraph differs from LangGraph the test stays, marked `xfail(strict=True)` with the
difference as its reason (the GAP_* texts, attached per section by `@scenario(...)`): it
fails loudly once the gap is closed. `DIFF_SELF_CHECK=1` runs LangGraph on both sides, each
side its own run: every test must then pass, xfails included (the marks only apply to
arqgraph), which shows that the scenarios are deterministic.
"""

import asyncio
import operator
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import pydantic
import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.differential.api import REFERENCE, Api, candidate_prefix, self_check
from tests.differential.transcript import RUN, SECTIONS, STATE, Transcript, first_sentence

TIMEOUT = float(os.environ.get("DIFF_TIMEOUT", "20"))
THREAD = "t1"
WAIT = 5.0  # longest wait for a sibling node (only reached if it never runs)
SETTLE = 0.02  # time for a finished sibling's write to reach the stream
MODES = ["values", "updates"]


def cfg(thread: str = THREAD) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


# ---------------------------------------------------------------------------------------------
# Schemas and helpers shared by the scenarios (library independent)


class S(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    text: str


class Item(TypedDict):
    item: str


class NodeFailure(Exception):
    """A user exception raised by a failing node."""


def _compile(graph: Any, api: Api, **kwargs: Any) -> Any:
    return graph.compile(checkpointer=api.InMemorySaver(), **kwargs)


def _askers(api: Api, calls: Counter[str], names: tuple[str, ...]) -> Any:
    """START -> each of `names` in parallel; each asks `<name>?` and logs `<name>:<answer>`."""

    def make(name: str) -> Callable[[S], dict[str, Any]]:
        def node(state: S) -> dict[str, Any]:
            calls[name] += 1
            return {"log": [f"{name}:{api.interrupt(f'{name}?')}"]}

        return node

    g = api.StateGraph(S)
    for name in names:
        g.add_node(name, make(name))
        g.add_edge(api.START, name)
    return _compile(g, api)


def _linear(api: Api, calls: Counter[str], names: tuple[str, ...] = ("a", "b", "c")) -> Any:
    """START -> a -> b -> c: each node appends its name to `log` and counts its calls."""

    def make(name: str) -> Callable[[S], dict[str, Any]]:
        def node(state: S) -> dict[str, Any]:
            calls[name] += 1
            return {"log": [name]}

        return node

    g = api.StateGraph(S)
    previous = api.START
    for name in names:
        g.add_node(name, make(name))
        g.add_edge(previous, name)
        previous = name
    return g


def _resume_error(exc: BaseException) -> tuple[str, bool, str]:
    """A failed resume, compared loosely: a RuntimeError (LangGraph raises RuntimeError or a
    subclass, arqgraph its ResumeError(RuntimeError)) and the first sentence of the message."""
    return ("resume error", isinstance(exc, RuntimeError), first_sentence(str(exc)))


def _timeout_error(exc: BaseException, api: Api) -> tuple[str, bool, str]:
    """A node timeout, compared up to "exceeded its run timeout" (the rest has timings)."""
    message = str(exc)
    cut = message.find("exceeded its run timeout")
    prefix = message if cut < 0 else message[: cut + len("exceeded its run timeout")]
    return (type(exc).__name__, isinstance(exc, api.NodeTimeoutError), prefix)


# ---------------------------------------------------------------------------------------------
# Scenario registry


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Api, Transcript], None]
    # section -> the difference that makes arqgraph's transcript differ there (an xfail)
    gaps: dict[str, str] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {}


def scenario(**gaps: str) -> Callable[[Callable[[Api, Transcript], None]],
                                      Callable[[Api, Transcript], None]]:
    """Register `scenario_<name>`; keyword arguments name known gaps per section."""

    def register(fn: Callable[[Api, Transcript], None]) -> Callable[[Api, Transcript], None]:
        name = fn.__name__.removeprefix("scenario_")
        assert name not in SCENARIOS, name
        assert set(gaps) <= set(SECTIONS), gaps
        SCENARIOS[name] = Scenario(name, fn, dict(gaps))
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# Known differences (each is the reason of an xfail)

GAP_NO_THREAD_ID = (
    "deliberate: a non-empty config['configurable'] without 'thread_id' (and get_state with an "
    "empty one): LangGraph raises KeyError('thread_id') from deep in its checkpointer; arqgraph "
    "raises the ValueError(\"Checkpointer requires one or more of the following 'configurable' "
    "keys: ...\") that LangGraph raises when 'configurable' is missing, for every such case "
    "(shared/embedded.py _check_thread, shared/client.py _require_thread)."
)


# ---------------------------------------------------------------------------------------------
# 1. A thread continued by two invokes


@scenario()
def scenario_continued_thread(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("invoke 1", graph.invoke, {"log": ["in1"], "text": "x"}, cfg())
    t.state("state 1", graph.get_state, cfg())
    t.history("history 1", graph.get_state_history, cfg())
    t.call("invoke 2", graph.invoke, {"log": ["in2"]}, cfg())
    t.state("state 2", graph.get_state, cfg())
    t.history("history 2", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_history_limit(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("invoke 1", graph.invoke, {"log": ["in1"]}, cfg())
    t.call("invoke 2", graph.invoke, {"log": ["in2"]}, cfg())
    t.history("limit=2", graph.get_state_history, cfg(), limit=2)
    t.history("limit=1", graph.get_state_history, cfg(), limit=1)


@scenario()
def scenario_history_before_filter(api: Api, t: Transcript) -> None:
    """get_state_history's before= and filter= arguments, and a config naming a checkpoint."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("invoke 1", graph.invoke, {"log": ["in1"]}, cfg())
    t.call("invoke 2", graph.invoke, {"log": ["in2"]}, cfg())
    shots = t.history("history", graph.get_state_history, cfg())
    if len(shots) > 3:
        t.history("before the 4th", graph.get_state_history, cfg(), before=shots[3].config)
        t.history("before the 4th, limit=1", graph.get_state_history, cfg(),
                  before=shots[3].config, limit=1)
        t.history("a config naming the 2nd", graph.get_state_history, shots[1].config)
    t.history("filter source=input", graph.get_state_history, cfg(), filter={"source": "input"})
    t.history("filter step=1", graph.get_state_history, cfg(), filter={"step": 1})


# ---------------------------------------------------------------------------------------------
# 2. interrupt() in one of two parallel nodes


def _parallel_interrupt(api: Api, calls: Counter[str], use_async: bool = False) -> Any:
    """START -> (ask || sib) -> after; `ask` asks a question with interrupt().

    Sync nodes run in threads: `sib` waits until `ask` is about to interrupt (and a moment
    more), so that the stream's order of the interrupt and of sib's update is fixed. Async
    nodes need no help: `ask` interrupts before its first await.
    """
    asked = threading.Event()

    def ask_body() -> dict[str, Any]:
        calls["ask"] += 1
        asked.set()
        answer = api.interrupt({"question": "go?"})
        return {"log": [f"ask:{answer}"]}

    def sib_body() -> dict[str, Any]:
        calls["sib"] += 1
        if not use_async:
            asked.wait(WAIT)
            time.sleep(SETTLE)
        return {"log": ["sib"], "text": "sib wrote"}

    def after_body() -> dict[str, Any]:
        calls["after"] += 1
        return {"log": ["after"]}

    g = api.StateGraph(S)
    if use_async:
        async def ask(state: S) -> dict[str, Any]:
            return ask_body()

        async def sib(state: S) -> dict[str, Any]:
            return sib_body()

        async def after(state: S) -> dict[str, Any]:
            return after_body()

        g.add_node("ask", ask)
        g.add_node("sib", sib)
        g.add_node("after", after)
    else:
        g.add_node("ask", lambda state: ask_body())
        g.add_node("sib", lambda state: sib_body())
        g.add_node("after", lambda state: after_body())
    g.add_edge(api.START, "ask")
    g.add_edge(api.START, "sib")
    g.add_edge("ask", "after")
    g.add_edge("sib", "after")
    return _compile(g, api)


@scenario()
def scenario_interrupt_parallel(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _parallel_interrupt(api, calls)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.state("state interrupted", graph.get_state, cfg())
    t.history("history interrupted", graph.get_state_history, cfg())
    t.call("resume", graph.invoke, api.Command(resume="yes"), cfg())
    t.state("state done", graph.get_state, cfg())
    t.history("history done", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 3. Several interrupts: two in one node, two in parallel nodes, an ambiguous resume


@scenario()
def scenario_two_interrupts_one_node(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()

    def ask(state: S) -> dict[str, Any]:
        calls["ask"] += 1
        first = api.interrupt("first?")
        second = api.interrupt(f"second after {first}?")
        return {"log": [f"{first}+{second}"]}

    g = api.StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(api.START, "ask")
    graph = _compile(g, api)
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.state("state 1", graph.get_state, cfg())
    t.call("resume 1", graph.invoke, api.Command(resume="A"), cfg())
    t.state("state 2", graph.get_state, cfg())
    t.call("resume 2", graph.invoke, api.Command(resume="B"), cfg())
    t.state("state 3", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_parallel_interrupts_by_id(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()

    def make(name: str) -> Callable[[S], dict[str, Any]]:
        def node(state: S) -> dict[str, Any]:
            calls[name] += 1
            return {"log": [f"{name}:{api.interrupt(f'{name}?')}"]}

        return node

    def after(state: S) -> dict[str, Any]:
        calls["after"] += 1
        return {"log": ["after"]}

    g = api.StateGraph(S)
    for name in ("p", "q"):
        g.add_node(name, make(name))
        g.add_edge(api.START, name)
        g.add_edge(name, "after")
    g.add_node("after", after)
    graph = _compile(g, api)
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    snap = t.state("state interrupted", graph.get_state, cfg())
    try:
        graph.invoke(api.Command(resume="plain"), cfg())
        t.add("plain resume with two pending", "no error")
    except Exception as exc:
        t.add("plain resume with two pending", _resume_error(exc))
    t.state("state after the refused resume", graph.get_state, cfg())
    ids = {i.value: i.id for i in (snap.interrupts if snap else ())}
    answers = {ids.get("p?", "p"): "P", ids.get("q?", "q"): "Q"}
    t.call("resume by id", graph.invoke, api.Command(resume=answers), cfg())
    t.state("state done", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_partial_resume_by_id(api: Api, t: Transcript) -> None:
    """Two pending interrupts, resumed one at a time by id."""
    calls: Counter[str] = Counter()
    graph = _askers(api, calls, ("p", "q"))
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    snap = t.state("state interrupted", graph.get_state, cfg())
    ids = {i.value: i.id for i in (snap.interrupts if snap else ())}
    t.call("resume p", graph.invoke, api.Command(resume={ids.get("p?", "p"): "P"}), cfg())
    pending = t.state("state with q pending", graph.get_state, cfg())
    if pending is not None:  # the same checkpoint by id: the record of its step, p's too
        t.state("that checkpoint by id", graph.get_state, pending.config)
    t.call("resume q", graph.invoke, api.Command(resume={ids.get("q?", "q"): "Q"}), cfg())
    t.state("state done", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


def _asking(api: Api, calls: Counter[str]) -> Any:
    def ask(state: S) -> dict[str, Any]:
        calls["ask"] += 1
        return {"log": [f"ask:{api.interrupt('ask?')}"]}

    g = api.StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(api.START, "ask")
    return _compile(g, api)


@scenario()
def scenario_resume_unknown_id(api: Api, t: Transcript) -> None:
    """A resume map whose (well-formed) id matches no pending interrupt."""
    calls: Counter[str] = Counter()
    graph = _asking(api, calls)
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.call("resume with an unknown id", graph.invoke,
           api.Command(resume={"0123456789abcdef0123456789abcdef": "x"}), cfg())
    t.state("state after the unknown id", graph.get_state, cfg())
    t.call("resume", graph.invoke, api.Command(resume="ok"), cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_resume_fresh_thread(api: Api, t: Transcript) -> None:
    """Resuming a thread that has no checkpoint yet."""
    calls: Counter[str] = Counter()
    graph = _asking(api, calls)
    t.call("invoke None on a new thread", graph.invoke, None, cfg("fresh1"))
    t.state("state of that thread", graph.get_state, cfg("fresh1"))
    t.call("resume a new thread", graph.invoke, api.Command(resume="x"), cfg("fresh2"))
    t.state("state of that thread", graph.get_state, cfg("fresh2"))
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_rerun_finished_thread(api: Api, t: Transcript) -> None:
    """invoke(None) and Command(resume=...) on a thread with nothing left to run."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.call("invoke None", graph.invoke, None, cfg())
    t.call("resume", graph.invoke, api.Command(resume="x"), cfg())
    t.stream("stream None", graph.stream(None, cfg(), stream_mode=MODES))
    t.state("state", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.call("update without as_node", graph.update_state, cfg(), {"log": ["u"]})
    t.state("state after the update", graph.get_state, cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 4. A node fails while its sibling succeeds; resume after fixing it


def _failing_pair(api: Api, calls: Counter[str], failing: dict[str, bool]) -> Any:
    """START -> (bad || good) -> after; `bad` raises while failing["on"], once `good` is done
    (so that good's update is streamed before the error, in LangGraph as in arqgraph)."""
    good_done = threading.Event()

    def bad(state: S) -> dict[str, Any]:
        calls["bad"] += 1
        if failing["on"]:
            good_done.wait(WAIT)
            time.sleep(SETTLE)
            raise NodeFailure("bad failed")
        return {"log": ["bad"]}

    def good(state: S) -> dict[str, Any]:
        calls["good"] += 1
        good_done.set()
        return {"log": ["good"], "text": "good wrote"}

    def after(state: S) -> dict[str, Any]:
        calls["after"] += 1
        return {"log": [f"after saw {state['log']}"]}

    g = api.StateGraph(S)
    g.add_node("bad", bad)
    g.add_node("good", good)
    g.add_node("after", after)
    g.add_edge(api.START, "bad")
    g.add_edge(api.START, "good")
    g.add_edge("bad", "after")
    g.add_edge("good", "after")
    return _compile(g, api)


@scenario()
def scenario_failure_then_resume(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    failing = {"on": True}
    graph = _failing_pair(api, calls, failing)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.state("state failed", graph.get_state, cfg())
    t.history("history failed", graph.get_state_history, cfg())
    t.add("calls after the failure", dict(sorted(calls.items())))
    failing["on"] = False
    t.call("resume", graph.invoke, None, cfg())
    t.add("calls after the resume", dict(sorted(calls.items())))
    t.state("state done", graph.get_state, cfg())
    t.history("history done", graph.get_state_history, cfg())


@scenario()
def scenario_task_error_type(api: Api, t: Transcript) -> None:
    """What `PregelTask.error` of a failed task holds in get_state: the exception itself, or
    (LangGraph 1.2, whose checkpoints keep errors as text) its repr."""
    calls: Counter[str] = Counter()
    graph = _failing_pair(api, calls, {"on": True})
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    snap = graph.get_state(cfg())
    for task in snap.tasks:
        if task.error is not None:
            t.add(f"{task.name}: type of task.error", type(task.error).__name__)
            t.add(f"{task.name}: task.error is the node's exception",
                  isinstance(task.error, NodeFailure) and task.error.args == ("bad failed",))


# ---------------------------------------------------------------------------------------------
# 5. Static breakpoints


@scenario()
def scenario_interrupt_before(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls), api, interrupt_before=["b"])
    t.stream("stream updates", graph.stream({"log": ["in"]}, cfg(), stream_mode="updates"))
    t.state("state at the breakpoint", graph.get_state, cfg())
    t.stream("resume updates", graph.stream(None, cfg(), stream_mode="updates"))
    t.state("state done", graph.get_state, cfg())
    t.call("invoke on another thread", graph.invoke, {"log": ["in2"]}, cfg("t2"))
    t.state("state t2", graph.get_state, cfg("t2"))
    t.call("resume t2", graph.invoke, None, cfg("t2"))
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_interrupt_after(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls), api, interrupt_after=["a"])
    t.stream("stream values", graph.stream({"log": ["in"]}, cfg(), stream_mode="values"))
    t.state("state at the breakpoint", graph.get_state, cfg())
    t.stream("resume values", graph.stream(None, cfg(), stream_mode="values"))
    t.state("state done", graph.get_state, cfg())
    t.call("invoke on another thread", graph.invoke, {"log": ["in2"]}, cfg("t2"))
    t.state("state t2", graph.get_state, cfg("t2"))
    t.call("resume t2", graph.invoke, None, cfg("t2"))
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 6. update_state, with and without as_node, then continue; a fork from an older checkpoint


def _updatable(api: Api, calls: Counter[str], use_async: bool = False) -> Any:
    """START -> a -> b -> c with a breakpoint before b; `text` is a plain key."""

    def body(name: str, state: S) -> dict[str, Any]:
        calls[name] += 1
        return {"log": [f"{name} saw {state.get('text')}"]}

    g = api.StateGraph(S)
    for name in ("a", "b", "c"):
        if use_async:
            async def anode(state: S, name: str = name) -> dict[str, Any]:
                return body(name, state)

            g.add_node(name, anode)
        else:
            g.add_node(name, lambda state, name=name: body(name, state))
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    return _compile(g, api, interrupt_before=["b"])


@scenario()
def scenario_update_state(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _updatable(api, calls)
    t.call("invoke", graph.invoke, {"log": ["in"], "text": "t0"}, cfg())
    t.state("state at the breakpoint", graph.get_state, cfg())
    t.call("update without as_node", graph.update_state, cfg(), {"text": "t1", "log": ["u1"]})
    t.state("state after update 1", graph.get_state, cfg())
    t.call("update as a", graph.update_state, cfg(), {"text": "t2", "log": ["u2"]}, as_node="a")
    t.state("state after update 2", graph.get_state, cfg())
    t.call("continue", graph.invoke, None, cfg())
    t.state("state done", graph.get_state, cfg())
    shots = t.history("history done", graph.get_state_history, cfg())
    # fork: update an older checkpoint (the breakpoint before b), then run from the update
    older = next((s for s in reversed(shots) if tuple(s.next) == ("b",)), None)
    if older is None:
        t.add("fork", "no checkpoint before b")
        return
    forked = t.call("update the older checkpoint", graph.update_state, older.config,
                    {"text": "forked"})
    if forked is not None:
        t.call("run from the update", graph.invoke, None, forked)
    t.state("state after the update fork", graph.get_state, cfg())
    # and a replay of that older checkpoint itself: a "fork" checkpoint, then b and c again
    t.call("replay the older checkpoint", graph.invoke, None, older.config)
    t.state("state after the replay", graph.get_state, cfg())
    t.history("history after the forks", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_update_before_deferred(api: Api, t: Transcript) -> None:
    """A breakpoint before a deferred node, an update there: the deferred node still runs,
    on the updated state."""
    calls: Counter[str] = Counter()

    def node(name: str) -> Any:
        def run(state: S) -> dict[str, Any]:
            calls[name] += 1
            return {"log": [f"{name}:{len(state.get('log', []))}"]}
        return run

    g = api.StateGraph(S)
    for name in ("a", "b", "c"):
        g.add_node(name, node(name))
    g.add_node("d", node("d"), defer=True)
    for src, dst in ((api.START, "a"), ("a", "b"), ("b", "c"), ("a", "d"), ("b", "d")):
        g.add_edge(src, dst)
    graph = _compile(g, api, interrupt_before=["d"])
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.state("state at the breakpoint", graph.get_state, cfg())
    t.call("update", graph.update_state, cfg(), {"log": ["u"]})
    t.state("state after the update", graph.get_state, cfg())
    t.call("continue", graph.invoke, None, cfg())
    t.state("state done", graph.get_state, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_root_state_thread(api: Api, t: Transcript) -> None:
    """A state that is one value: snapshots and history show the value, update_state writes
    one, and the thread continues from it."""
    calls: Counter[str] = Counter()

    def step(state: list[str]) -> list[str]:
        calls["step"] += 1
        return [f"step{len(state)}"]

    g = api.StateGraph(Annotated[list, operator.add])
    g.add_node("step", step)
    g.add_edge(api.START, "step")
    graph = _compile(g, api)
    t.call("invoke 1", graph.invoke, ["in"], cfg())
    t.state("state 1", graph.get_state, cfg())
    t.call("update", graph.update_state, cfg(), ["u"])
    t.state("state after update", graph.get_state, cfg())
    t.call("invoke 2", graph.invoke, ["in2"], cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


def _ask_then_b(api: Api, calls: Counter[str]) -> Any:
    """START -> a (asks) -> b; `text` is a plain key."""

    def a(state: S) -> dict[str, Any]:
        calls["a"] += 1
        answer = api.interrupt("q")
        return {"log": [f"a:{answer}:{state.get('text')}"]}

    def b(state: S) -> dict[str, Any]:
        calls["b"] += 1
        return {"log": [f"b:{state.get('text')}"]}

    g = api.StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    return _compile(g, api)


@scenario()
def scenario_command_input(api: Api, t: Transcript) -> None:
    """A Command given as input: its update lands on the stopped step's state before the
    step's tasks run again, with a resume value or on a finished thread (whose goto nodes then
    run); on a fresh thread its update is the input and its goto runs the named nodes besides
    START's."""
    calls: Counter[str] = Counter()
    graph = _ask_then_b(api, calls)
    modes = ["updates", "values"]
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.stream("resume with update", graph.stream(
        api.Command(resume="R", update={"text": "U", "log": ["upd"]}), cfg(), stream_mode=modes))
    t.state("state after resume", graph.get_state, cfg())
    t.history("history after resume", graph.get_state_history, cfg())
    # (a asks and b runs in one step, in no fixed order: the outcome, not the events)
    t.call("goto on a fresh thread", graph.invoke,
           api.Command(goto="b", update={"text": "fresh"}), cfg("fresh"))
    t.state("state of the fresh thread", graph.get_state, cfg("fresh"))
    t.stream("update on a finished thread", graph.stream(
        api.Command(update={"text": "again"}, goto="b"), cfg(), stream_mode=modes))
    t.stream("update alone", graph.stream(
        api.Command(update={"text": "alone"}), cfg(), stream_mode=modes))
    t.state("state after the update alone", graph.get_state, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_bulk_update_state(api: Api, t: Transcript) -> None:
    """bulk_update_state replays a run's history: values as the input (`__input__`), then as
    START, then as each node; several updates of one superstep are written together (two to a
    plain key fail); a copy (`__copy__`) forks a checkpoint; None as END drops a stopped step's
    tasks."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("run", graph.invoke, {"log": ["in"], "text": "x"}, cfg())
    t.history("history of the run", graph.get_state_history, cfg())
    update = api.StateUpdate
    t.call("bulk", graph.bulk_update_state, cfg("bulk"), [
        [update({"log": ["in"], "text": "x"}, "__input__")],
        [update({"log": ["in"], "text": "x"}, "__start__")],
        [update({"log": ["a"]}, "a")],
        [update({"log": ["b1"]}, "b"), update({"log": ["b2"]}, "b")],
    ])
    t.state("state after bulk", graph.get_state, cfg("bulk"))
    t.history("history after bulk", graph.get_state_history, cfg("bulk"))
    t.call("two plain writes in one superstep", graph.bulk_update_state, cfg("bulk"),
           [[update({"text": "1"}, "a"), update({"text": "2"}, "b")]])
    t.call("no supersteps", graph.bulk_update_state, cfg("bulk"), [])
    t.call("an empty superstep", graph.bulk_update_state, cfg("bulk"), [[]])
    shots = t.history("history before the copy", graph.get_state_history, cfg("bulk"))
    if len(shots) > 2:
        copied = t.call("copy", graph.update_state, shots[2].config, None, as_node="__copy__")
        if copied is not None:
            t.state("state of the copy", graph.get_state, copied)
    t.call("copy with values", graph.update_state, cfg("bulk"), {"text": "v"},
           as_node="__copy__")
    t.add("calls", dict(sorted(calls.items())))


class MapState(TypedDict):
    foo: str
    tasks: Annotated[list[int], operator.add]


@scenario()
def scenario_bulk_update_with_sends(api: Api, t: Transcript) -> None:
    """An update may be a Command: its goto and Sends make the next step's tasks, which the
    next superstep's updates then stand for; values come back in the schema's key order."""

    def agent(state: MapState) -> dict[str, Any]:
        return {"foo": "agent"}

    def fan(state: MapState) -> Any:
        return api.Command(goto=[api.Send("task", {"index": i}) for i in range(3)],
                           update={"foo": "map"})

    def task(state: dict[str, Any]) -> dict[str, Any]:
        return {"tasks": [state["index"]]}

    g = api.StateGraph(MapState)
    g.add_node("agent", agent)
    g.add_node("map", fan)
    g.add_node("task", task)
    g.add_edge(api.START, "agent")
    g.add_edge("agent", "map")
    graph = _compile(g, api)
    update = api.StateUpdate
    t.call("bulk", graph.bulk_update_state, cfg(), [
        [update({"foo": "input"}, "__input__")],
        [update({"foo": "input"}, "__start__")],
        [update({"tasks": [], "foo": "agent"}, "agent")],
        [update(api.Command(goto=[api.Send("task", {"index": i}) for i in range(3)],
                            update={"foo": "map"}), "map")],
        [update({"tasks": [0]}, "task"), update({"tasks": [1]}, "task"),
         update({"tasks": [2]}, "task")],
    ])
    t.add("values in order", list(graph.get_state(cfg()).values.items()))
    t.history("history", graph.get_state_history, cfg())


@scenario()
def scenario_update_clears_tasks(api: Api, t: Transcript) -> None:
    """update_state(None, as_node=END) on a thread stopped at an interrupt: its tasks are
    dropped, the thread is done."""
    calls: Counter[str] = Counter()
    graph = _ask_then_b(api, calls)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.call("clear", graph.update_state, cfg(), None, as_node=api.END)
    t.state("state after clearing", graph.get_state, cfg())
    t.call("invoke None", graph.invoke, None, cfg())
    t.add("calls", dict(sorted(calls.items())))


class Decision(pydantic.BaseModel):
    approved: bool


class DecisionDict(TypedDict):
    approved: bool


@scenario()
def scenario_interrupt_response_schema(api: Api, t: Transcript) -> None:
    """interrupt(response_schema=...): the interrupt shows the schema (JSON schema of a type, a
    dict as given); a resume value is validated and returned as the type; one that does not
    fit fails the run with pydantic's ValidationError (is_invalid_resume) and is not kept, so
    the interrupt is answered again; an earlier interrupt's answer stays."""
    calls: Counter[str] = Counter()

    def ask(state: S) -> dict[str, Any]:
        calls["ask"] += 1
        first = api.interrupt("first")
        model = api.interrupt("approve?", response_schema=Decision)
        typed = api.interrupt("again?", response_schema=DecisionDict)
        raw = api.interrupt("raw?", response_schema={"type": "object"})
        return {"log": [f"{first}|{model!r}|{typed!r}|{raw!r}"]}

    g = api.StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(api.START, "ask")
    graph = _compile(g, api)

    def invalid(exc: BaseException) -> Any:
        return (type(exc).__name__, bool(api.is_invalid_resume(exc)))

    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.call("answer the first", graph.invoke, api.Command(resume="one"), cfg())
    t.state("state at the model", graph.get_state, cfg())
    try:
        graph.invoke(api.Command(resume={"approved": "nope"}), cfg())
        t.add("a bad answer", "no error")
    except Exception as exc:
        t.add("a bad answer", invalid(exc))
    t.state("state after the bad answer", graph.get_state, cfg())
    t.call("a good answer", graph.invoke, api.Command(resume={"approved": False}), cfg())
    t.call("a typed dict", graph.invoke, api.Command(resume={"approved": "true"}), cfg())
    t.call("anything for a dict schema", graph.invoke, api.Command(resume=[1, 2]), cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_checkpointer_reads(api: Api, t: Transcript) -> None:
    """The checkpointer reads a thread back in LangGraph's shapes: get_tuple (the latest, or
    the one a config names) and list (newest first, with filter, before and limit); a thread
    it deletes is gone."""
    calls: Counter[str] = Counter()
    graph = _ask_then_b(api, calls)
    saver = graph.checkpointer
    t.call("invoke", graph.invoke, {"log": ["in"], "text": "x"}, cfg())

    def shown(found: Any) -> Any:
        if found is None:
            return None
        # (LangGraph's own channels, like `branch:to:a`, its input checkpoints' `__start__`
        # channel and interrupt ids are its own)
        values = {k: v for k, v in found.checkpoint["channel_values"].items() if ":" not in k}
        if found.metadata.get("source") == "input":
            values = "<the input>"
        writes = sorted((w[1], repr([i.value for i in w[2]] if w[1] == "__interrupt__"
                                    else w[2])) for w in found.pending_writes or ()
                        if ":" not in w[1])
        return {"thread": found.config["configurable"]["thread_id"],
                "ns": found.config["configurable"]["checkpoint_ns"], "values": values,
                "source": found.metadata.get("source"), "step": found.metadata.get("step"),
                "has_parent": found.parent_config is not None, "writes": writes}

    latest = saver.get_tuple(cfg())
    t.add("get_tuple", shown(latest))
    listed = list(saver.list(cfg()))
    t.add("list", [shown(found) for found in listed])
    t.add("list limit=1", [shown(f) for f in saver.list(cfg(), limit=1)])
    t.add("list filter", [shown(f) for f in saver.list(cfg(), filter={"source": "input"})])
    t.add("list before", [shown(f) for f in saver.list(cfg(), before=listed[0].config)])
    t.add("get_tuple of the first", shown(saver.get_tuple(listed[-1].config)))
    saver.delete_thread(THREAD)
    t.add("after delete_thread", shown(saver.get_tuple(cfg())))
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_bulk_update_start_result(api: Api, t: Transcript) -> None:
    """An update as START of a checkpoint made by an `__input__` update is its START task's
    result in the history, whatever the input was; one as a node is that node's."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a",)), api)
    update = api.StateUpdate
    t.call("bulk", graph.bulk_update_state, cfg(), [
        [update({}, "__input__")],
        [update({"log": ["in"], "text": "x"}, "__start__")],
        [update({"log": ["a"]}, "a")],
    ])
    t.history("history after bulk", graph.get_state_history, cfg())


@scenario()
def scenario_update_passes_extra_keys_to_edges(api: Api, t: Transcript) -> None:
    """An update's keys that are no channel reach the conditional edges of the node it is
    written as (a path typed with a plain dict reads them), as a node's own result does."""
    def a(state: S) -> dict[str, Any]:
        return {"log": ["a"], "route": "__end__"}

    def route(state: dict[str, Any]) -> str:
        return str(state.get("route", "__end__"))

    builder = api.StateGraph(S)
    builder.add_node("a", a)
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_edge(api.START, "a")
    builder.add_conditional_edges("a", route, ["b", api.END])
    graph = builder.compile(checkpointer=api.InMemorySaver(), interrupt_after=["a"])
    t.call("run", graph.invoke, {"log": []}, cfg())
    t.call("update as a, routed by its extra key", graph.update_state, cfg(),
           {"log": ["edited"], "route": "b"}, as_node="a")
    t.state("state after the update", graph.get_state, cfg())


@scenario()
def scenario_refused_answer_lets_answered_tasks_finish(api: Api, t: Transcript) -> None:
    """A resume whose answer one interrupt refuses fails, but lets the step's other answered
    node finish first: its side effect happens once, and the next resume does not run it."""
    calls: Counter[str] = Counter()

    def send(state: S) -> dict[str, Any]:
        api.interrupt("send?", response_schema=Decision)
        calls["email sent"] += 1
        time.sleep(0.05)  # (still running when the other node's answer is refused)
        return {"log": ["sent"]}

    def check(state: S) -> dict[str, Any]:
        api.interrupt("check?", response_schema=Decision)
        return {"log": ["checked"]}

    builder = api.StateGraph(S)
    builder.add_node("send", send)
    builder.add_node("check", check)
    builder.add_edge(api.START, "send")
    builder.add_edge(api.START, "check")
    graph = builder.compile(checkpointer=api.InMemorySaver())
    t.call("run", graph.invoke, {"log": []}, cfg())
    ids = {i.value: i.id for i in graph.get_state(cfg()).interrupts}
    t.call("one good answer, one refused", graph.invoke, api.Command(resume={
        ids["send?"]: {"approved": True}, ids["check?"]: {"approved": "nope"}}), cfg())
    t.state("state after the refusal", graph.get_state, cfg())
    t.call("the refused one answered", graph.invoke,
           api.Command(resume={ids["check?"]: {"approved": True}}), cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_error_handler_failed_then_resumed(api: Api, t: Transcript) -> None:
    """A node whose error handler fails: the run fails with the handler's error; resumed, only
    the handler runs again, with the node's first error, and recovers."""
    calls: Counter[str] = Counter()
    handler_fails = [True]

    def fails(state: S) -> dict[str, Any]:
        calls["node"] += 1
        raise RuntimeError("boom")

    def handler(state: S, error: api.NodeError) -> dict[str, Any]:  # type: ignore[name-defined]
        calls["handler"] += 1
        # (after a resume LangGraph gives the error as its repr: the text is compared)
        calls[f"handler saw {error.node}, boom: {'boom' in str(error.error)}"] += 1
        if handler_fails[0]:
            raise RuntimeError("handler crash")
        return {"log": ["recovered"]}

    builder = api.StateGraph(S)
    builder.add_node("fails", fails, error_handler=handler)
    builder.add_edge(api.START, "fails")
    graph = builder.compile(checkpointer=api.InMemorySaver())
    t.call("run: the handler fails", graph.invoke, {"log": []}, cfg())
    handler_fails[0] = False
    t.call("resumed: the handler alone runs again", graph.invoke, None, cfg())
    t.add("calls", dict(sorted(calls.items())))



@scenario()
def scenario_error_handler_stopped_by_a_sibling_then_resumed(api: Api, t: Transcript) -> None:
    """A node failed and its error handler is running when a sibling's failure ends the run:
    resumed, the handler alone runs again, not the node (LangGraph kept the node's error)."""
    calls: Counter[str] = Counter()
    first_run = [True]

    async def fails(state: S) -> dict[str, Any]:
        calls["fails"] += 1
        raise RuntimeError("boom")

    async def handler(state: S, error: api.NodeError) -> dict[str, Any]:  # type: ignore[name-defined]
        calls["handler"] += 1
        if first_run[0]:
            started.set()
            await asyncio.sleep(60)  # (until the sibling's failure stops it)
        return {"log": ["recovered"]}

    async def sibling(state: S) -> dict[str, Any]:
        calls["sibling"] += 1
        if first_run[0]:
            await started.wait()
            raise RuntimeError("sibling failed")
        return {"log": ["sibling"]}

    builder = api.StateGraph(S)
    builder.add_node("fails", fails, error_handler=handler)
    builder.add_node("sibling", sibling)
    builder.add_edge(api.START, "fails")
    builder.add_edge(api.START, "sibling")
    graph = builder.compile(checkpointer=api.InMemorySaver())

    async def run() -> None:
        for what, given in (("run: the sibling fails", {"log": []}), ("resumed", None)):
            try:
                t.add(what, await graph.ainvoke(given, cfg()))
            except Exception as exc:
                t.add(what, {"error": exc})
            first_run[0] = False
        t.record_state("state", await graph.aget_state(cfg()))

    started = asyncio.Event()
    asyncio.run(run())
    t.add("calls", dict(sorted(calls.items())))

@scenario()
def scenario_breakpoint_named_after_an_error_handler(api: Api, t: Transcript) -> None:
    """A breakpoint named after a node's error handler is taken, as LangGraph's handlers are
    nodes; the handler runs in its node's step all the same, with no stop."""
    calls: Counter[str] = Counter()

    def fails(state: S) -> dict[str, Any]:
        calls["node"] += 1
        raise RuntimeError("boom")

    def handler(state: S, error: api.NodeError) -> dict[str, Any]:  # type: ignore[name-defined]
        calls[f"handler saw {error.node}"] += 1
        return {"log": ["handled"]}

    builder = api.StateGraph(S)
    builder.add_node("fails", fails, error_handler=handler)
    builder.add_edge(api.START, "fails")
    graph = builder.compile(checkpointer=api.InMemorySaver(),
                            interrupt_before=["__error_handler__fails"])
    t.call("run", graph.invoke, {"log": []}, cfg())
    t.state("state", graph.get_state, cfg())
    t.call("invoked again", graph.invoke, None, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))
    t.call("an unknown breakpoint", lambda: builder.compile(interrupt_before=["nope"]))


@scenario()
def scenario_resumed_stream_tells_its_checkpoint(api: Api, t: Transcript) -> None:
    """A resumed run's stream: the state, then the checkpoint it goes on from with the
    questions asked there, then the updates of the tasks already done, as LangGraph's."""
    calls: Counter[str] = Counter()

    def asks(state: S) -> dict[str, Any]:
        calls["asks"] += 1
        return {"log": [f"asks:{api.interrupt('ok?')}"]}

    builder = api.StateGraph(S)
    builder.add_node("asks", asks)
    builder.add_node("done", lambda state: {"log": ["done"]})
    builder.add_edge(api.START, "asks")
    builder.add_edge(api.START, "done")
    graph = builder.compile(checkpointer=api.InMemorySaver())

    def streamed(given: Any) -> list[Any]:
        shown: list[Any] = []
        for mode, event in graph.stream(given, cfg(), stream_mode=["values", "updates",
                                                                    "checkpoints"]):
            if mode == "checkpoints":
                event = (event["metadata"], event["next"], event["values"],
                         [(task["name"], [i["value"] for i in task["interrupts"]])
                          for task in event["tasks"]])
            shown.append((mode, event))
        return shown

    t.call("run", streamed, {"log": []})
    t.call("resumed", streamed, api.Command(resume="yes"))
    t.add("calls", dict(sorted(calls.items())))


class Docs(TypedDict, total=False):
    query: str
    docs: Annotated[list[str], operator.add]
    answer: str


@scenario()
def scenario_update_before_a_join_target(api: Api, t: Transcript) -> None:
    """A run stopped before a join's target (both sources done), updated as one source: the
    target is still due, as LangGraph's barrier is consumed only when its target runs."""
    builder = api.StateGraph(Docs)
    builder.add_node("rewrite", lambda state: {"query": "q"})
    builder.add_node("one", lambda state: {"query": "a"})
    builder.add_node("r1", lambda state: {"docs": ["d1"]})
    builder.add_node("r2", lambda state: {"docs": ["d2"]})
    builder.add_node("qa", lambda state: {"answer": ",".join(state["docs"])})
    builder.add_edge(api.START, "rewrite")
    builder.add_edge("rewrite", "one")
    builder.add_edge("one", "r1")
    builder.add_conditional_edges("rewrite", lambda state: "r2", {"r2": "r2"})
    builder.add_edge(["r1", "r2"], "qa")
    graph = builder.compile(checkpointer=api.InMemorySaver(), interrupt_before=["qa"])
    t.call("run", graph.invoke, {"query": "x"}, cfg())
    t.call("update as the last source", graph.update_state, cfg(), {"docs": ["d5"]})
    t.state("state after the update", graph.get_state, cfg())
    t.call("resume", graph.invoke, None, cfg())
    t.call("a second run on the thread", graph.invoke, {"query": "again"}, cfg())
    t.state("state after the second run", graph.get_state, cfg())


@scenario()
def scenario_checkpointer_lists_subgraphs(api: Api, t: Transcript) -> None:
    """A saver's `list` of a config without `checkpoint_ns` lists the subgraphs' checkpoints
    too, each under its namespace, after the thread's own (newest first in each), as
    LangGraph's saver does; `limit` counts them all."""
    saver = api.InMemorySaver()
    inner = api.StateGraph(S)
    inner.add_node("inner_1", lambda state: {"log": ["inner_1"]})
    inner.add_node("inner_2", lambda state: {"log": ["inner_2"]})
    inner.add_edge(api.START, "inner_1")
    inner.add_edge("inner_1", "inner_2")
    outer = api.StateGraph(S)
    outer.add_node("inner", inner.compile(checkpointer=saver))
    outer.add_edge(api.START, "inner")
    outer.add_conditional_edges("inner", lambda s: "inner" if len(s["log"]) < 6 else api.END)
    graph = outer.compile(checkpointer=saver)
    t.call("invoke", graph.invoke, {"log": []}, cfg())

    def shown(found: Any) -> Any:
        namespace = found.config["configurable"]["checkpoint_ns"]
        return (namespace.split(":")[0], found.metadata.get("source"), found.metadata.get("step"),
                found.parent_config is not None
                and found.parent_config["configurable"]["checkpoint_ns"] == namespace)

    t.add("list", [shown(found) for found in saver.list(cfg())])
    t.add("list limit=6", [shown(found) for found in saver.list(cfg(), limit=6)])
    root = {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}
    t.add("list of the root", [shown(found) for found in saver.list(root)])


@scenario()
def scenario_durability_exit(api: Api, t: Transcript) -> None:
    """durability="exit": a run lists only the checkpoint it ends at in the thread's history
    (its interrupt, when it stops at one); "sync" and "async" list every step."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("exit run", graph.invoke, {"log": ["in"]}, cfg(), durability="exit")
    t.history("history after an exit run", graph.get_state_history, cfg())
    t.call("async run", graph.invoke, {"log": ["again"]}, cfg(), durability="async")
    t.history("history after an async run", graph.get_state_history, cfg())
    asking = _ask_then_b(api, calls)
    t.call("exit run to an interrupt", asking.invoke, {"log": []}, cfg("asking"),
           durability="exit")
    t.state("state at the interrupt", asking.get_state, cfg("asking"))
    t.call("exit resume", asking.invoke, api.Command(resume="r"), cfg("asking"),
           durability="exit")
    t.history("history of the asking thread", asking.get_state_history, cfg("asking"))
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_unknown_checkpoint_id(api: Api, t: Transcript) -> None:
    """A config naming a checkpoint the thread does not have: an input starts the thread
    afresh from it, a resume has nothing to resume, get_state shows nothing."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a",)), api)
    t.call("invoke", graph.invoke, {"log": ["x"]}, cfg())
    nowhere = {"configurable": {"thread_id": THREAD, "checkpoint_id": "nope"}}
    t.call("input from nowhere", graph.invoke, {"log": ["in"]}, nowhere)
    t.call("resume from nowhere", graph.invoke, None,
           {"configurable": {"thread_id": "other", "checkpoint_id": "nope"}})
    t.add("state of nowhere", graph.get_state(nowhere).values)
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_update_finished_thread(api: Api, t: Transcript) -> None:
    """update_state on a thread that ran to its end: as its last node, then as an earlier one
    (which makes the next node due again)."""
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls, ("a", "b")), api)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.call("update without as_node", graph.update_state, cfg(), {"log": ["u1"]})
    t.state("state after update 1", graph.get_state, cfg())
    t.call("update as a", graph.update_state, cfg(), {"log": ["u2"]}, as_node="a")
    t.state("state after update 2", graph.get_state, cfg())
    t.call("continue", graph.invoke, None, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_update_state_misuse(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    g = _linear(api, calls, ("x",))
    g.add_node("y", lambda state: {"log": ["y"]})
    g.add_edge(api.START, "y")
    graph = _compile(g, api, interrupt_after=["x", "y"])
    t.call("update a thread that never ran", graph.update_state, cfg("fresh"), {"log": ["u"]})
    t.state("state of that thread", graph.get_state, cfg("fresh"))
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    t.call("update without as_node after two nodes wrote", graph.update_state, cfg(),
           {"log": ["u"]})
    t.call("update as an unknown node", graph.update_state, cfg(), {"log": ["u"]},
           as_node="nobody")
    t.call("update with an unknown key", graph.update_state, cfg(), {"nokey": 1}, as_node="x")
    t.state("state", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())


# ---------------------------------------------------------------------------------------------
# 7. Replay from an older checkpoint


@scenario()
def scenario_replay(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _compile(_linear(api, calls), api)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    shots = t.history("history", graph.get_state_history, cfg())
    older = next((s for s in shots if tuple(s.next) == ("b",)), None)
    if older is None:
        t.add("replay", "no checkpoint before b")
        return
    t.add("calls before the replay", dict(sorted(calls.items())))
    t.stream("replay from before b",
             graph.stream(None, older.config, stream_mode=["values", "updates"]))
    t.add("calls after the replay", dict(sorted(calls.items())))
    t.state("state after the replay", graph.get_state, cfg())
    t.state("the older checkpoint", graph.get_state, older.config)
    t.history("history after the replay", graph.get_state_history, cfg())


# ---------------------------------------------------------------------------------------------
# 8. Multi-mode streams through an interrupt and a resume, a failure and a resume


@scenario()
def scenario_stream_interrupt_resume(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _parallel_interrupt(api, calls)
    t.stream("stream", graph.stream({"log": ["in"]}, cfg(), stream_mode=MODES))
    t.stream("resume", graph.stream(api.Command(resume="yes"), cfg(), stream_mode=MODES))
    t.state("state done", graph.get_state, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_stream_failure_resume(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    failing = {"on": True}
    graph = _failing_pair(api, calls, failing)
    t.stream("stream", graph.stream({"log": ["in"]}, cfg(), stream_mode=MODES))
    failing["on"] = False
    t.stream("resume", graph.stream(None, cfg(), stream_mode=MODES))
    t.state("state done", graph.get_state, cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 9. A Send fan-out where one Send task interrupts


@scenario()
def scenario_send_interrupt(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()

    def fan_out(state: S) -> list[Any]:
        return [api.Send("work", {"item": x}) for x in ("x", "y", "z")]

    def work(arg: Item) -> dict[str, Any]:
        calls[f"work {arg['item']}"] += 1
        answer = api.interrupt(f"approve {arg['item']}?") if arg["item"] == "y" else "auto"
        return {"log": [f"{arg['item']}:{answer}"]}

    g = api.StateGraph(S)
    g.add_node("work", work)
    g.add_conditional_edges(api.START, fan_out, ["work"])
    graph = _compile(g, api)
    t.call("invoke", graph.invoke, {"log": ["in"]}, cfg())
    snap = t.state("state interrupted", graph.get_state, cfg())
    ids = [i.id for i in (snap.interrupts if snap else ())]
    t.add("pending interrupts", len(ids))
    t.call("resume by id", graph.invoke, api.Command(resume={i: "ok" for i in ids}), cfg())
    t.state("state done", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 10. The async API: scenarios 2 and 6 through ainvoke / astream / aget_state / aupdate_state


async def _ahistory(graph: Any, config: dict[str, Any]) -> list[Any]:
    return [s async for s in graph.aget_state_history(config)]


@scenario()
def scenario_async_interrupt_parallel(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _parallel_interrupt(api, calls, use_async=True)

    async def main() -> None:
        try:
            t.add("ainvoke", await graph.ainvoke({"log": ["in"]}, cfg()))
        except Exception as exc:
            t.add("ainvoke", {"error": exc})
        t.record_state("aget_state interrupted", await graph.aget_state(cfg()))
        t.record_history("aget_state_history interrupted", await _ahistory(graph, cfg()))
        await t.astream("astream resume", graph.astream(
            api.Command(resume="yes"), cfg(), stream_mode=MODES))
        t.record_state("aget_state done", await graph.aget_state(cfg()))
        t.record_history("aget_state_history done", await _ahistory(graph, cfg()))

    asyncio.run(main())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_async_update_state(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    graph = _updatable(api, calls, use_async=True)

    async def main() -> None:
        await t.astream("astream", graph.astream(
            {"log": ["in"], "text": "t0"}, cfg(), stream_mode=MODES))
        t.record_state("aget_state at the breakpoint", await graph.aget_state(cfg()))
        t.add("aupdate_state without as_node",
              await graph.aupdate_state(cfg(), {"text": "t1", "log": ["u1"]}))
        t.record_state("aget_state after update 1", await graph.aget_state(cfg()))
        t.add("aupdate_state as a",
              await graph.aupdate_state(cfg(), {"text": "t2", "log": ["u2"]}, as_node="a"))
        t.record_state("aget_state after update 2", await graph.aget_state(cfg()))
        t.add("ainvoke continue", await graph.ainvoke(None, cfg()))
        t.record_state("aget_state done", await graph.aget_state(cfg()))
        t.record_history("aget_state_history done", await _ahistory(graph, cfg()))

    asyncio.run(main())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# 11. RetryPolicy


def _retrying(api: Api, calls: Counter[str], fail: Callable[[int], Exception | None],
              policy: Any) -> Any:
    def flaky(state: S) -> dict[str, Any]:
        calls["flaky"] += 1
        exc = fail(calls["flaky"])
        if exc is not None:
            raise exc
        return {"log": [f"flaky ok after {calls['flaky']}"]}

    g = api.StateGraph(S)
    if policy is None:
        g.add_node("flaky", flaky)
    else:
        g.add_node("flaky", flaky, retry_policy=policy)
    g.add_edge(api.START, "flaky")
    return _compile(g, api)


@scenario()
def scenario_retry_policy(api: Api, t: Transcript) -> None:
    def policy() -> Any:
        return api.RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False)

    runs: list[tuple[str, Callable[[int], Exception | None], Any]] = [
        ("fails twice then succeeds",
         lambda n: ConnectionError(f"down #{n}") if n <= 2 else None, policy()),
        ("always fails", lambda n: ConnectionError(f"down #{n}"), policy()),
        ("ValueError, not retried", lambda n: ValueError(f"bad #{n}"), policy()),
        ("ValueError, no policy", lambda n: ValueError(f"bad #{n}"), None),
    ]
    for i, (what, fail, retry) in enumerate(runs):
        calls: Counter[str] = Counter()
        graph = _retrying(api, calls, fail, retry)
        t.call(what, graph.invoke, {"log": []}, cfg(f"r{i}"))
        t.add(f"{what}: calls", calls["flaky"])
        t.state(f"{what}: state", graph.get_state, cfg(f"r{i}"))


# ---------------------------------------------------------------------------------------------
# 11b. Error handlers (add_node(error_handler=...), set_node_defaults)


def _handled(api: Api, calls: Counter[str], handler: Callable[..., Any], *,
             retry: Any = None, defaults: bool = False) -> Any:
    """START -> a -> (b, e); b fails (ConnectionError) and has `handler`; b -> c, e -> c."""

    def a(state: S) -> dict[str, Any]:
        calls["a"] += 1
        return {"log": ["a"]}

    def b(state: S) -> dict[str, Any]:
        calls["b"] += 1
        raise ConnectionError(f"b down #{calls['b']}")

    def e(state: S) -> dict[str, Any]:
        calls["e"] += 1
        return {"log": ["e"]}

    def c(state: S) -> dict[str, Any]:
        calls["c"] += 1
        return {"log": ["c"]}

    def d(state: S) -> dict[str, Any]:
        calls["d"] += 1
        return {"log": ["d"]}

    g = api.StateGraph(S)
    if defaults:
        g.set_node_defaults(error_handler=handler, retry_policy=retry)
        g.add_node("b", b)
    else:
        g.add_node("b", b, error_handler=handler, retry_policy=retry)
    for name, fn in (("a", a), ("e", e), ("c", c), ("d", d)):
        g.add_node(name, fn)
    g.add_edge(api.START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "e")
    g.add_edge("b", "c")
    g.add_edge("e", "c")
    return _compile(g, api)


@scenario()
def scenario_error_handler(api: Api, t: Transcript) -> None:
    """The handler's writes stand in for the node's; the node's own edges are not followed."""
    calls: Counter[str] = Counter()

    def handler(state: S, error: "NodeError") -> dict[str, Any]:  # noqa: F821, UP037
        calls["handler"] += 1
        return {"log": [f"handled {error.node}: {type(error.error).__name__}: {error.error}"]}

    graph = _handled(api, calls, handler)
    events = list(graph.stream({"log": []}, cfg(), stream_mode=["values", "updates"]))
    t.add("values", [payload for mode, payload in events if mode == "values"])
    # b's handler and e run in the same superstep: their updates come in either order
    t.add("updates", sorted(repr(payload) for mode, payload in events if mode == "updates"))
    t.add("calls", dict(sorted(calls.items())))
    t.state("state", graph.get_state, cfg())
    t.history("history", graph.get_state_history, cfg())


@scenario()
def scenario_error_handler_goto_after_retries(api: Api, t: Transcript) -> None:
    """After the retries, a handler routing with Command(goto=...)."""
    calls: Counter[str] = Counter()

    def handler(state: S, error: "NodeError") -> Any:  # noqa: F821, UP037
        calls["handler"] += 1
        return api.Command(update={"log": [f"rerouted after {error.error}"]}, goto="d")

    retry = api.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=False)
    graph = _handled(api, calls, handler, retry=retry)
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_error_handler_defaults_and_failures(api: Api, t: Transcript) -> None:
    """set_node_defaults(error_handler=...); a handler that raises fails the run; a parameter
    `error` without the NodeError annotation is not injected."""
    calls: Counter[str] = Counter()

    def handler(state: S, error: "NodeError") -> dict[str, Any]:  # noqa: F821, UP037
        calls["handler"] += 1
        return {"log": [f"default handler for {error.node}"]}

    graph = _handled(api, calls, handler, defaults=True)
    t.call("defaults", graph.invoke, {"log": []}, cfg("defaults"))

    def raising(state: S, error: "NodeError") -> dict[str, Any]:  # noqa: F821, UP037
        raise KeyError(f"handler gave up on {error.node}")

    graph = _handled(api, calls, raising)
    t.call("raising handler", graph.invoke, {"log": []}, cfg("raising"))
    t.state("raising handler: state", graph.get_state, cfg("raising"))

    def unannotated(state: S, error: Any) -> dict[str, Any]:
        return {"log": ["never"]}

    graph = _handled(api, calls, unannotated)
    t.call("unannotated", graph.invoke, {"log": []}, cfg("unannotated"))


# ---------------------------------------------------------------------------------------------
# 12. Node timeouts


@scenario()
def scenario_node_timeout_async(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()

    async def slow(state: S) -> dict[str, Any]:
        calls["slow"] += 1
        await asyncio.sleep(1)
        return {"log": ["slow"]}

    async def quick(state: S) -> dict[str, Any]:
        calls["quick"] += 1
        return {"log": ["quick"]}

    g = api.StateGraph(S)
    # added in name order: the order of tasks in snapshots is scenario task_order's subject
    g.add_node("quick", quick, timeout=0.5)
    g.add_node("slow", slow, timeout=0.05)
    g.add_edge(api.START, "quick")
    g.add_edge(api.START, "slow")
    graph = _compile(g, api)
    started = time.monotonic()
    try:
        asyncio.run(graph.ainvoke({"log": []}, cfg()))
        t.add("ainvoke", "no error")
    except Exception as exc:
        t.add("ainvoke", _timeout_error(exc, api))
    t.add("cancelled before the node's sleep ended", time.monotonic() - started < 0.9)
    t.add("calls", dict(sorted(calls.items())))
    snap = t.state("state", graph.get_state, cfg())
    errors = [task.error for task in (snap.tasks if snap else ()) if task.error]
    t.add("task errors", [str(e)[: str(e).find("exceeded") + 8] for e in errors])


@scenario()
def scenario_node_timeout_sync(api: Api, t: Transcript) -> None:
    def slow(state: S) -> dict[str, Any]:
        time.sleep(0.2)
        return {"log": ["slow"]}

    g = api.StateGraph(S)
    t.attempt("add_node(timeout=) on a sync node", lambda: g.add_node("slow", slow, timeout=0.05))
    g.add_edge(api.START, "slow")
    graph = t.attempt("compile", lambda: g.compile(checkpointer=api.InMemorySaver()))
    if graph is not None:
        t.call("invoke", graph.invoke, {"log": []}, cfg())
        t.call("ainvoke", lambda: asyncio.run(graph.ainvoke({"log": []}, cfg("t2"))))


# ---------------------------------------------------------------------------------------------
# 13. Misuse: no checkpointer, no thread id


@scenario()
def scenario_no_checkpointer(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    bare = _linear(api, calls, ("a",)).compile()
    t.call("invoke without a checkpointer", bare.invoke, {"log": []}, cfg())
    t.state("get_state without a checkpointer", bare.get_state, cfg())
    t.history("get_state_history without a checkpointer", bare.get_state_history, cfg())
    t.call("update_state without a checkpointer", bare.update_state, cfg(), {"log": ["x"]})
    saved = _compile(_linear(api, calls, ("a",)), api)
    t.call("invoke without a config", saved.invoke, {"log": []})
    t.call("invoke with an empty configurable", saved.invoke, {"log": []}, {"configurable": {}})
    t.call("stream without a config", lambda: list(saved.stream({"log": []})))
    t.state("get_state of an unknown thread", saved.get_state, cfg("nobody"))
    t.history("history of an unknown thread", saved.get_state_history, cfg("nobody"))
    t.add("calls", dict(sorted(calls.items())))


@scenario(run=GAP_NO_THREAD_ID, state=GAP_NO_THREAD_ID, history=GAP_NO_THREAD_ID)
def scenario_configurable_without_thread_id(api: Api, t: Transcript) -> None:
    calls: Counter[str] = Counter()
    saved = _compile(_linear(api, calls, ("a",)), api)
    other = {"configurable": {"user": "u1"}}
    t.call("invoke, configurable without thread_id", saved.invoke, {"log": []}, other)
    t.call("stream, configurable without thread_id",
           lambda: list(saved.stream({"log": []}, other)))
    t.state("get_state, configurable without thread_id", saved.get_state, other)
    t.state("get_state, empty configurable", saved.get_state, {"configurable": {}})
    t.history("history, configurable without thread_id", saved.get_state_history, other)
    t.call("update_state, configurable without thread_id", saved.update_state, other,
           {"log": ["x"]})
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# The order of a step's tasks in snapshots (nodes added out of name order, Send tasks)


@scenario()
def scenario_task_order(api: Api, t: Transcript) -> None:
    """A step of pull tasks added out of name order and of Send tasks, seen at a breakpoint."""
    calls: Counter[str] = Counter()

    def make(name: str) -> Callable[[S], dict[str, Any]]:
        def node(state: S) -> dict[str, Any]:
            calls[name] += 1
            return {"log": [name]}

        return node

    def worker(arg: Item) -> dict[str, Any]:
        calls[f"worker {arg['item']}"] += 1
        return {"log": [f"worker {arg['item']}"]}

    def fan_out(state: S) -> list[Any]:
        return [api.Send("worker", {"item": "2"}), api.Send("worker", {"item": "1"})]

    g = api.StateGraph(S)
    g.add_node("pre", make("pre"))
    g.add_node("zeta", make("zeta"))
    g.add_node("worker", worker)
    g.add_node("alpha", make("alpha"))
    g.add_edge(api.START, "pre")
    g.add_edge("pre", "zeta")
    g.add_edge("pre", "alpha")
    g.add_conditional_edges("pre", fan_out, ["worker"])
    graph = _compile(g, api, interrupt_after=["pre"])
    t.call("invoke", graph.invoke, {"log": []}, cfg())
    t.state("state at the breakpoint", graph.get_state, cfg())
    t.call("continue", graph.invoke, None, cfg())
    t.history("history", graph.get_state_history, cfg())
    t.add("calls", dict(sorted(calls.items())))


@scenario()
def scenario_interrupt_order(api: Api, t: Transcript) -> None:
    """Two interrupting nodes added out of name order, resumed together. LangGraph lists the
    interrupts in the order its threads finish the two nodes (which varies under load), so the
    transcript holds them sorted; snapshots list tasks in node order (scenario task_order)."""
    calls: Counter[str] = Counter()
    graph = _askers(api, calls, ("zeta", "alpha"))
    paused = graph.invoke({"log": []}, cfg())
    t.add("invoke", {**paused, "__interrupt__": sorted(i.value for i in paused["__interrupt__"])})
    snap = graph.get_state(cfg())
    t.add("state interrupted", (snap.values, snap.next, sorted(i.value for i in snap.interrupts)),
          STATE)
    ids = {i.value: i.id for i in snap.interrupts}
    answers = {iid: value.upper() for value, iid in ids.items()}
    t.call("resume both", graph.invoke, api.Command(resume=answers), cfg())
    t.add("calls", dict(sorted(calls.items())))


# ---------------------------------------------------------------------------------------------
# Running and comparing


def _run_in_thread(sc: Scenario, api: Api) -> Transcript:
    """Run a scenario in a daemon thread (a hang fails the test, not the session)."""
    transcript = Transcript()
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            sc.run(api, transcript)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"scenario-{sc.name}")
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        transcript.add("timeout", f"scenario still running after {TIMEOUT}s")
        for section in SECTIONS:
            transcript.add("timeout", "", section)
    elif "error" in box:
        raise box["error"]
    return transcript


REFERENCE_SIDE, CANDIDATE_SIDE = "reference", "candidate"
_TRANSCRIPTS: dict[tuple[str, str], Transcript] = {}


def transcript(name: str, side: str) -> Transcript:
    """A scenario's transcript on one side, run once per side (and per side even when both
    sides are LangGraph, under DIFF_SELF_CHECK=1: two runs must agree)."""
    key = (name, side)
    if key not in _TRANSCRIPTS:
        prefix = REFERENCE if side == REFERENCE_SIDE else candidate_prefix()
        _TRANSCRIPTS[key] = _run_in_thread(SCENARIOS[name], Api(prefix))
    return _TRANSCRIPTS[key]


def _explain(expected: list[tuple[str, Any]], actual: list[tuple[str, Any]]) -> str:
    """The first differing entry of a section, both sides."""
    for i, (exp, act) in enumerate(zip(expected, actual, strict=False)):
        if exp != act:
            return f"entry {i} differs:\n  reference: {exp!r}\n  candidate: {act!r}"
    return f"lengths differ: reference {len(expected)} entries, candidate {len(actual)}"


def gap_mark(reason: str) -> pytest.MarkDecorator:
    """A known difference: xfail on arqgraph only (the self-check side must agree)."""
    return pytest.mark.xfail(not self_check(), reason=reason, strict=True)


def _params() -> list[Any]:
    params = []
    for sc in SCENARIOS.values():
        for section in SECTIONS:
            reason = sc.gaps.get(section)
            marks = [gap_mark(reason)] if reason else []
            params.append(pytest.param(sc.name, section, id=f"{sc.name}-{section}", marks=marks))
    return params


def test_candidate_is_arqgraph() -> None:
    api = Api(candidate_prefix())
    module = api.InMemorySaver.__module__
    assert module.startswith("langgraph." if self_check() else "arqgraph."), module


@pytest.mark.parametrize(("name", "section"), _params())
def test_thread_scenario(name: str, section: str) -> None:
    expected = transcript(name, REFERENCE_SIDE).section(section)
    actual = transcript(name, CANDIDATE_SIDE).section(section)
    if section == RUN:
        assert expected, f"scenario {name} recorded nothing"
    assert actual == expected, f"scenario {name}, section {section}: " + _explain(
        expected, actual)

