"""The Functional API (`arqgraph.func`): entrypoints whose `@task` calls are jobs, on the embedded
default (and on a cluster of processes in tests/test_cluster.py)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.embedded import EmbeddedCluster
from arqgraph.func import entrypoint, task
from arqgraph.types import Command, RetryPolicy, interrupt
from tests.graphs.cluster_graphs import functional_screening
from tests.graphs.functional_graphs import _marked

LIMIT = 20.0
events: list[str] = []


@task
async def checked(what: str, seconds: float) -> dict[str, Any]:
    events.append(f"start {what}")
    await asyncio.sleep(seconds)
    events.append(f"end {what}")
    return {"what": what, "status": "ok"}


@entrypoint()
async def screening(name: str) -> str:
    await checked("parse", 0.02)
    background, references = await asyncio.gather(
        checked("background", 0.05), checked("references", 0.02)
    )
    return f"HIRED {name} - {background['what']}: {background['status']}, " \
           f"{references['what']}: {references['status']}"


async def test_task_calls_are_jobs_and_gathered_calls_run_in_parallel() -> None:
    events.clear()
    result = await asyncio.wait_for(screening.ainvoke("Clara"), LIMIT)
    assert result == "HIRED Clara - background: ok, references: ok"
    assert events[:2] == ["start parse", "end parse"]
    # both checks started before either ended: they overlapped
    assert set(events[2:4]) == {"start background", "start references"}
    assert set(events[4:]) == {"end background", "end references"}


async def test_stream_shows_each_task_result_then_the_entrypoint_result() -> None:
    events.clear()
    updates = [u async for u in screening.astream("Ada", stream_mode="updates")]
    assert updates[0] == {"checked": {"what": "parse", "status": "ok"}}
    assert sorted(u["checked"]["what"] for u in updates[1:3]) == ["background", "references"]
    assert updates[3] == {"screening": "HIRED Ada - background: ok, references: ok"}


calls: list[int] = []


@task
def double(x: int) -> int:
    calls.append(x)
    return x * 2


@entrypoint(checkpointer=InMemorySaver())
def approval(x: int) -> dict[str, Any]:
    first = double(x).result()
    verdict = interrupt(f"approve {first}?")
    second = double(first).result()
    return {"first": first, "second": second, "verdict": verdict}


def test_resumed_entrypoint_does_not_run_finished_tasks_again() -> None:
    calls.clear()
    config = {"configurable": {"thread_id": "approval"}}
    paused = approval.invoke(3, config)
    assert [i.value for i in paused["__interrupt__"]] == ["approve 6?"]
    assert approval.get_state(config).values is None and approval.get_state(config).next == (
        "approval",)
    assert approval.invoke(Command(resume="yes"), config) == {
        "first": 6, "second": 12, "verdict": "yes"}
    assert calls == [3, 6]  # double(3) ran once, before the interrupt
    assert approval.get_state(config).values == {"first": 6, "second": 12, "verdict": "yes"}


attempts: list[int] = []


@task(retry_policy=RetryPolicy(initial_interval=0.01, jitter=False))
async def flaky(n: int) -> int:
    attempts.append(n)
    if len(attempts) < 2:
        raise ConnectionError("try again")
    return n + 1


@task
async def broken() -> None:
    raise ValueError("broken task")


@entrypoint()
async def careful(n: int) -> dict[str, Any]:
    value = await flaky(n)
    try:
        await broken()
    except ValueError as exc:
        return {"value": value, "caught": str(exc)}
    return {"value": value}


async def test_task_retries_and_errors_reach_the_entrypoint() -> None:
    attempts.clear()
    assert await asyncio.wait_for(careful.ainvoke(1), LIMIT) == {"value": 2, "caught": "broken task"}
    assert attempts == [1, 1]


async def test_entrypoint_waiting_for_its_tasks_holds_no_worker_slot() -> None:
    """With a single worker slot, the entrypoint's task calls still run."""
    async with EmbeddedCluster([screening], concurrency=1) as cluster:
        handle = await cluster.client.submit(screening.name, "Bo")
        result = await asyncio.wait_for(handle.result(), LIMIT)
    assert result == "HIRED Bo - background: ok, references: ok"


async def test_a_task_called_outside_an_entrypoint_just_runs() -> None:
    calls.clear()
    assert double(5).result() == 10 and calls == [5]
    assert await checked("alone", 0) == {"what": "alone", "status": "ok"}


def test_bare_entrypoint_decorator_and_the_seeds_screening_graph() -> None:
    result = functional_screening.invoke("Clara Smith")
    assert result["decision"] == "HIRED - Background: Clear, Refs: Positive"
    assert result["overlap"], "background and references did not run at the same time"


@pytest.mark.parametrize("bad", [object()])
async def test_unserializable_task_arguments_fail_clearly(bad: Any) -> None:
    @entrypoint()
    async def sends_junk(_: Any) -> Any:
        return await checked(bad, 0)

    with pytest.raises(Exception, match="arguments of task"):
        await asyncio.wait_for(sends_junk.ainvoke(1), LIMIT)


def nested_run(prefix: str, cluster: str | None = None, thread: str = "nested") -> list[Any]:
    """What a Functional API program gives: the updates of tasks calling tasks, in order, then
    after its question is answered the output of a graph it invokes."""
    from tests.graphs.functional_graphs import build_nested_tasks

    graph = build_nested_tasks(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}

    async def run() -> list[Any]:
        shown: list[Any] = [c async for c in graph.astream([0, 1], config)]
        shown[-1] = [i.value for i in shown[-1]["__interrupt__"]]
        return [*shown, await graph.ainvoke(command(resume="!"), config)]

    return asyncio.run(run())


def test_tasks_calling_tasks_and_a_graph_after_a_resume_are_langgraphs() -> None:
    expected = nested_run("langgraph")
    assert expected == [{"submapper": "0"}, {"mapper": "00"}, {"submapper": "1"},
                        {"mapper": "11"}, ["question"], ["00!a", "11!a"]]
    assert nested_run("arqgraph") == expected


def streamed_calls(prefix: str, cluster: str | None = None) -> list[Any]:
    """What the task calls of an entrypoint stream, in order: tokens, tools, custom writes,
    updates, each with its namespace and the node its metadata names."""
    from tests.graphs.functional_graphs import build_streaming_calls

    graph = build_streaming_calls(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph

    def shown(part: dict[str, Any]) -> Any:
        data = part["data"]
        if part["type"] == "messages":
            return data[0].content, data[1]["langgraph_node"], data[1]["langgraph_triggers"]
        return data["event"] if part["type"] == "tools" else data

    async def run() -> list[Any]:
        return [(p["type"], p["ns"], shown(p)) async for p in graph.astream(
            "hi", stream_mode=["messages", "tools", "custom", "updates"], version="v2")]

    return asyncio.run(run())


def langgraphs_task_calls_stream() -> list[Any]:
    """LangGraph's stream of `streaming_calls`, but for one difference: LangGraph shows a task
    call's custom writes under its entrypoint's namespace even when the caller does not
    stream subgraphs; arqgraph shows them at the root, where the call's other events are."""
    expected = streamed_calls("langgraph")
    custom = [i for i, (kind, _, _) in enumerate(expected) if kind == "custom"]
    assert [expected[i][1][0].split(":")[0] for i in custom] == ["streaming_calls"]
    return [(kind, () if kind == "custom" else ns, data) for kind, ns, data in expected]


def test_task_calls_stream_tokens_tools_and_custom_writes() -> None:
    assert streamed_calls("arqgraph") == langgraphs_task_calls_stream()


started_calls: list[str] = []


@task
def _prepare(text: str) -> str:
    started_calls.append(text)
    return text + "+prepared"


@task
def _finish(text: str) -> str:
    return text + "+finished"


@entrypoint(checkpointer=InMemorySaver())
def _asks_while_a_call_runs(text: str) -> str:
    prepared = _prepare(text)  # (not waited for before the interrupt)
    answer = interrupt("go on?")
    return _finish(f"{prepared.result()}+{answer}").result()


def test_a_call_running_when_its_entrypoint_stops_at_an_interrupt_is_not_run_again() -> None:
    """As LangGraph finishes a step's tasks: the call finishes before the run stops, and
    the resume finds its result instead of calling it again."""
    for i in range(10):
        started_calls.clear()
        config = {"configurable": {"thread_id": f"asks-{i}"}}
        stopped = _asks_while_a_call_runs.invoke("t", config)
        assert stopped["__interrupt__"][0].value == "go on?"
        assert _asks_while_a_call_runs.invoke(Command(resume="yes"), config) == \
            "t+prepared+yes+finished"
        assert started_calls == ["t"]


def cancelled_call_run(prefix: str, marks: Path, cluster: str | None = None,
                       thread: str = "cancels") -> list[Any]:
    """A task call cancelled by its entrypoint: what the run streams, then the resumed run's
    output, then how many times the call started and saw CancelledError."""
    from tests.graphs.functional_graphs import build_cancelled_call

    graph = build_cancelled_call(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}
    given = {"values": [0, 1], "marks": str(marks)}

    async def run() -> list[Any]:
        shown: list[Any] = [c async for c in graph.astream(given, config)]
        shown[-1] = [i.value for i in shown[-1]["__interrupt__"]]
        resumed = await graph.ainvoke(command(resume="!"), config)
        # (a call stops on its worker a moment after its cancel: wait for each to say so)
        while _marked(marks, "cancelled") < _marked(marks, "started"):
            await asyncio.sleep(0.01)
        counts = sorted(name.split("-")[0] for name in os.listdir(marks))
        # (the thread reads back: a cancel's mark among its writes is no task's outcome)
        latest = [s.values async for s in graph.aget_state_history(config)][0]
        return [*shown, resumed, counts, latest]

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_cancelled_task_call_stops_where_it_runs_and_runs_again_on_resume(
        tmp_path: Path) -> None:
    """`future.cancel()` stops the call on the worker running it (it sees CancelledError),
    saves no result, and a resumed entrypoint calls it afresh: as LangGraph."""
    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = cancelled_call_run("langgraph", tmp_path / "lg")
    assert expected[:4] == [{"slow_unless_first": "00"}, ["question"], ["00!"],
                            ["cancelled", "cancelled", "started", "started"]]
    assert cancelled_call_run("arqgraph", tmp_path / "arq") == expected


def cached_calls_run(prefix: str, marks: Path, cluster: str | None = None,
                     thread: str = "cached") -> list[Any]:
    """A task with a cache policy called before each of three questions: what each run and
    resume streams, the output, and how many times the task ran."""
    from tests.graphs.functional_graphs import build_cached_calls

    graph = build_cached_calls(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}

    async def run() -> list[Any]:
        shown: list[Any] = []
        given: Any = {"marks": str(marks)}
        for answer in ["a", "b", "c"]:
            shown += [c async for c in graph.astream(given, config) if "__interrupt__" not in c]
            given = command(resume=answer)
        shown.append(await graph.ainvoke(given, config))  # (no question left)
        return [*shown, len(os.listdir(marks))]

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_task_with_a_cache_policy_runs_once_per_key(tmp_path: Path) -> None:
    """Calls of a task with a cache policy find the result of an earlier call with the same
    arguments in the entrypoint's cache, marked cached in the stream: as LangGraph."""
    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = cached_calls_run("langgraph", tmp_path / "lg")
    assert expected[-1] == 2  # (1, then 2: the second 1 is cached)
    assert cached_calls_run("arqgraph", tmp_path / "arq") == expected


def two_asking_calls_run(prefix: str, marks: Path, cluster: str | None = None,
                         thread: str = "two-asking", reverse: bool = False) -> list[Any]:
    """Two calls asking questions, answered one at a time by interrupt id: the questions
    left after each answer, the output, and how many times each call ran."""
    from tests.graphs.functional_graphs import build_two_asking_calls

    graph = build_two_asking_calls(prefix, reverse)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}

    async def run() -> list[Any]:
        shown = []
        await graph.ainvoke({"marks": str(marks)}, config)
        for answer in ["x", "y"]:
            asked = (await graph.aget_state(config)).interrupts  # (the one `result()` raised)
            shown.append([i.value for i in asked])
            output = await graph.ainvoke(command(resume={asked[0].id: answer}), config)
        ran = sorted(name.split("-")[0] for name in os.listdir(marks))
        return [*shown, output, ran]

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_call_whose_question_is_not_answered_yet_runs_again_on_resume(
        tmp_path: Path) -> None:
    """As LangGraph re-runs a task without a result each time its entrypoint runs: a call
    whose interrupt the resume did not answer runs again and asks again; a finished one,
    even one that returned None, does not."""
    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = two_asking_calls_run("langgraph", tmp_path / "lg")
    assert expected == [["A"], ["B"], [None, "y"], ["a", "a", "b", "b", "b"]]
    assert two_asking_calls_run("arqgraph", tmp_path / "arq") == expected


def test_an_answer_reaches_the_call_whose_question_it_answers(tmp_path: Path) -> None:
    """Calls asking at once: an answer given by interrupt id goes to the call that asked
    that question, whichever call asks for an answer first, as LangGraph maps it by id."""
    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    expected = two_asking_calls_run("langgraph", tmp_path / "lg", reverse=True)
    assert expected[0] == ["B"]
    assert two_asking_calls_run("arqgraph", tmp_path / "arq", reverse=True) == expected


@task
def _length(text: str) -> int:
    return len(text)


@entrypoint(checkpointer=InMemorySaver())
async def _blocking_on_a_result(text: str) -> int:
    return _length(text).result()  # (async code must await it)


@entrypoint(checkpointer=InMemorySaver())
def _sync_result(text: str) -> int:
    return _length(text).result()


async def test_result_of_a_pending_call_in_async_code_raises_as_in_langgraph() -> None:
    """`.result()` would block the event loop the call needs: it raises LangGraph's
    InvalidStateError instead of hanging; a sync entrypoint gets its result."""
    with pytest.raises(asyncio.InvalidStateError, match="Result is not set"):
        await _blocking_on_a_result.ainvoke("abc", {"configurable": {"thread_id": "r1"}})
    assert await _sync_result.ainvoke("abc", {"configurable": {"thread_id": "r2"}}) == 3


def call_of_a_cancelled_run(prefix: str, marks: Path, cluster: str | None = None) -> list[str]:
    """Leave a run's stream while its entrypoint awaits a task call: what the call marked."""
    from tests.graphs.functional_graphs import build_slow_call

    graph = build_slow_call(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph

    async def run() -> list[str]:
        stream = graph.astream(str(marks))
        reading = asyncio.ensure_future(anext(stream, None))
        while not any(n.startswith("started") for n in os.listdir(marks)):
            await asyncio.sleep(0.01)
        reading.cancel()  # (as a caller leaving: the run is cancelled)
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await stream.aclose()
        while not any(n.startswith("cancelled") for n in os.listdir(marks)):
            await asyncio.sleep(0.01)
        return sorted(name.split("-")[0] for name in os.listdir(marks))

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_cancelled_run_cancels_its_running_task_calls(tmp_path: Path) -> None:
    """A run cancelled while a task call of its entrypoint runs cancels that call too, on the
    worker running it (it sees CancelledError), as LangGraph cancels it in process."""
    (tmp_path / "lg").mkdir()
    (tmp_path / "arq").mkdir()
    assert call_of_a_cancelled_run("langgraph", tmp_path / "lg") == ["cancelled", "started"]
    assert call_of_a_cancelled_run("arqgraph", tmp_path / "arq") == ["cancelled", "started"]


def nested_call_messages(prefix: str, cluster: str | None = None) -> list[Any]:
    """A task call calling a task whose chat model streams: the messages with the node their
    metadata names, and the updates, in order."""
    from tests.graphs.functional_graphs import build_nested_model_calls

    graph = build_nested_model_calls(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph

    async def run() -> list[Any]:
        return [(mode, (chunk[0].content, chunk[1]["langgraph_node"])
                 if mode == "messages" else chunk)
                async for mode, chunk in graph.astream("hi", stream_mode=["messages", "updates"])]

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_task_called_inside_a_task_is_a_task_of_its_own() -> None:
    """Its model's messages name it, not the task that called it, as LangGraph's."""
    expected = nested_call_messages("langgraph")
    assert ("messages", ("a", "inner")) in expected
    assert nested_call_messages("arqgraph") == expected


def entrypoint_history(prefix: str, cluster: str | None = None,
                       thread: str = "history") -> list[Any]:
    """Two runs of an entrypoint on one thread, each resumed: the thread's history as
    (source, step, value, next, task results)."""
    from tests.graphs.functional_graphs import build_asking_entrypoint

    graph = build_asking_entrypoint(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}

    async def run() -> list[Any]:
        for value in (3, 4):
            await graph.ainvoke(value, config)
            await graph.ainvoke(command(resume="yes"), config)
        return [(s.metadata["source"], s.metadata["step"], s.values, s.next,
                 [(t.name, t.result) for t in s.tasks])
                async for s in graph.aget_state_history(config)]

    return asyncio.run(asyncio.wait_for(run(), 60))


def entrypoint_task_events(prefix: str, cluster: str | None = None,
                           thread: str = "task-events") -> list[Any]:
    """The "tasks" events of an entrypoint run and its resume: the entrypoint's task and
    each task call it makes, with ids labelled in order of first appearance."""
    from tests.graphs.functional_graphs import build_asking_entrypoint

    graph = build_asking_entrypoint(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": thread}}
    labels: dict[str, str] = {}
    shown: list[Any] = []
    for given in (3, command(resume="yes")):
        for mode, event in graph.stream(given, config, stream_mode=["tasks", "checkpoints"]):
            if mode == "checkpoints":  # (a resume tells the checkpoint it goes on from first)
                shown.append((event["metadata"]["source"], event["metadata"]["step"],
                              event["next"], [(t["name"], [i["value"] for i in t["interrupts"]])
                                              for t in event["tasks"]]))
                continue
            event = dict(event)
            event["id"] = labels.setdefault(event["id"], f"t{len(labels)}")
            if event.get("interrupts"):
                event["interrupts"] = [i["value"] for i in event["interrupts"]]
            shown.append(event)
    return shown


def test_task_calls_stream_their_task_events_as_langgraph() -> None:
    """A call tells its start (its arguments, pushed) and its return value; an entrypoint
    its input, triggered by the start, and its return value; a resumed entrypoint tells
    the checkpoint it goes on from, with its question, and the start of a call whose result
    it reuses, and no result for it."""
    expected = entrypoint_task_events("langgraph")
    assert [e["name"] if isinstance(e, dict) else e[0] for e in expected] == [
        "input", "asking_entrypoint", "double", "double", "asking_entrypoint",
        "input", "asking_entrypoint", "double", "asking_entrypoint", "loop"]
    assert ("input", -1, ["asking_entrypoint"], [("asking_entrypoint", ["ok?"])]) in expected
    assert entrypoint_task_events("arqgraph") == expected


def test_an_entrypoints_history_is_langgraphs() -> None:
    """An entrypoint's input checkpoint has it due at once (no `__start__` step), its steps
    are numbered as LangGraph's, and its task's result is its return value."""
    expected = entrypoint_history("langgraph")
    assert [step for _, step, *_ in expected] == [2, 1, 0, -1]
    assert entrypoint_history("arqgraph") == expected


def call_run_events(prefix: str) -> list[Any]:
    """`astream_events` of an entrypoint whose calls succeed and fail: each call's run with
    its input, streamed value and output, and LangGraph's metadata."""
    func = importlib.import_module(f"{prefix}.func")
    saver = importlib.import_module(f"{prefix}.checkpoint.memory").InMemorySaver()

    @func.task()
    async def doubled(number: int) -> int:
        return number * 2

    @func.task()
    async def refused(number: int) -> int:
        raise ValueError(f"no {number}")

    @func.entrypoint(checkpointer=saver)
    async def calling(number: int) -> str:
        await doubled(number)
        try:
            await refused(number)
        except ValueError:
            pass
        return f"done {await doubled(number + 1)}"

    async def run() -> list[Any]:
        config = {"configurable": {"thread_id": "calls"}}
        events = [e async for e in calling.astream_events(1, config, version="v2")]
        return [(e["event"], e["name"], e["tags"], e["data"], len(e["parent_ids"]),
                 {k: v for k, v in e["metadata"].items() if k not in (
                     "thread_id", "langgraph_checkpoint_ns")})
                for e in events
                # (LangGraph tells the entrypoint's value as soon as it returns, before the
                # update of the call it awaited last: arqgraph tells it in its own order)
                if not (e["event"] == "on_chain_stream" and e["name"] == "calling")]

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_task_call_runs_are_reported_as_langgraph() -> None:
    expected = call_run_events("langgraph")
    assert ("on_chain_stream", "doubled", ["seq:step:1"], {"chunk": 2}) in [
        e[:4] for e in expected]
    assert call_run_events("arqgraph") == expected


def flaky_call_run(prefix: str, folder: Path, cluster: str | None = None) -> list[Any]:
    """A call failed in the entrypoint's first start, resumed twice: its results, and how
    often it ran."""
    from tests.graphs.functional_graphs import build_flaky_call

    graph = build_flaky_call(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    command = importlib.import_module(f"{prefix}.types").Command
    marks = folder / prefix
    marks.mkdir()
    config = {"configurable": {"thread_id": f"flaky-{prefix}"}}
    outputs = [graph.invoke({"marks": str(marks)}, config)]
    outputs += [graph.invoke(command(resume=answer), config) for answer in ("a", "b")]
    shown = [{k: v for k, v in out.items() if k != "__interrupt__"} if isinstance(out, dict)
             else out for out in outputs]
    return [shown, len(list(marks.glob("flaky-*")))]


def test_a_failed_call_runs_again_when_its_entrypoint_is_resumed(tmp_path: Path) -> None:
    """As LangGraph keeps no result of a failed task: the resumed entrypoint runs it again,
    and the next start reuses what that run returned."""
    expected = flaky_call_run("langgraph", tmp_path)
    assert expected == [[{}, {}, {"got": "run 2", "one": "a", "two": "b"}], 2]
    assert flaky_call_run("arqgraph", tmp_path) == expected


def call_debug_steps(prefix: str) -> list[Any]:
    """The "debug" events of an entrypoint's second run on its thread (its steps numbered
    from the first's): each event's type, step and task name."""
    from tests.graphs.functional_graphs import build_asking_entrypoint

    graph = build_asking_entrypoint(prefix)
    command = importlib.import_module(f"{prefix}.types").Command
    config = {"configurable": {"thread_id": "debug-steps"}}
    graph.invoke(3, config)
    graph.invoke(command(resume="yes"), config)
    return [(e["type"], e["step"], e["payload"].get("name"))
            for given in (4, command(resume="yes"))
            for e in graph.stream(given, config, stream_mode="debug")]


def test_a_calls_debug_events_name_its_entrypoints_step() -> None:
    expected = call_debug_steps("langgraph")
    assert ("task_result", 2, "double") in expected
    assert call_debug_steps("arqgraph") == expected
