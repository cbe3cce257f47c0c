"""Functional API programs built by library prefix ("langgraph" or "arqgraph"), so the same code
builds the reference and the candidate, embedded or served by a cluster
(`tests.differential.served:GRAPHS`): tasks that call tasks, and an entrypoint that invokes a
graph after its own interrupt was answered."""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from pathlib import Path
from typing import Any


def _lib(prefix: str, module: str) -> Any:
    return importlib.import_module(f"{prefix}.{module}")


def build_nested_tasks(prefix: str) -> Any:
    """`mapper` tasks each calling a `submapper` task; then a question; then, answered, a
    one-value-state graph on the answers."""
    func, graph, types = _lib(prefix, "func"), _lib(prefix, "graph"), _lib(prefix, "types")

    def suffix(items: list[str]) -> list[str]:
        return [it + "a" for it in items]

    builder = graph.StateGraph(list[str])
    builder.add_node("suffix", suffix)
    builder.add_edge(graph.START, "suffix")
    add_a = builder.compile()

    @func.task
    def submapper(value: int) -> str:
        return str(value)

    @func.task
    async def mapper(value: int) -> str:
        return await submapper(value) * 2  # type: ignore[no-any-return]

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    async def nested_tasks(values: list[int]) -> list[str]:
        mapped = [await mapper(v) for v in values]
        answer = types.interrupt("question")
        return await add_a.ainvoke([m + answer for m in mapped])  # type: ignore[no-any-return]

    return nested_tasks


def build_traced_calls(prefix: str) -> Any:
    """An entrypoint whose task calls run in parallel, one of them failing (and caught)."""
    func = _lib(prefix, "func")

    @func.task
    async def doubled(value: int, times: int = 2) -> str:
        return str(value) * times

    @func.task
    def refused(value: int) -> int:
        raise ValueError(f"no {value}")

    @func.entrypoint()
    async def traced_calls(values: list[int]) -> list[str]:
        out = [await doubled(v) for v in values]
        try:
            await refused(len(values))
        except ValueError:
            out.append("refused")
        return out

    return traced_calls


def build_streaming_calls(prefix: str) -> Any:
    """An entrypoint whose task calls stream: a chat model's tokens, a tool's start and end,
    a custom write, and the config a task reads."""
    from langchain_core.tools import tool

    import tests.differential.cases  # noqa: F401 - (it imports message_cases: first)
    from tests.differential.message_cases import EchoModel

    func, config = _lib(prefix, "func"), _lib(prefix, "config")

    @tool
    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    @func.task
    def chat(text: str) -> str:
        config.get_stream_writer()({"chatting": text})
        shout.invoke({"text": text})
        return str(EchoModel().invoke(text).content)

    @func.task
    async def achat(text: str) -> str:
        await shout.ainvoke({"text": text})
        node = config.get_config()["metadata"]["langgraph_node"]
        return f"{node}: " + str((await EchoModel().ainvoke(text)).content)

    @func.entrypoint()
    async def streaming_calls(text: str) -> list[str]:
        return [await chat(text), await achat(text + " again")]

    return streaming_calls


def _marked(folder: str | Path, what: str) -> int:
    """How many times `what` was marked in `folder` (a file each: any process may mark)."""
    return sum(1 for name in os.listdir(folder) if name.startswith(what))


def build_cancelled_call(prefix: str) -> Any:
    """An entrypoint that cancels one of its two task calls once it has started, gathers the
    other, then asks a question. The calls mark their starts and cancels as files in the
    folder the input names, so that a call on another process is counted too."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task
    async def slow_unless_first(value: int, marks: str) -> str:
        if value:
            Path(marks, f"started-{uuid.uuid4()}").touch()
            try:
                await asyncio.sleep(120)  # (until cancelled: the test fails by its timeout)
            except asyncio.CancelledError:
                Path(marks, f"cancelled-{uuid.uuid4()}").touch()
                raise
        return str(value) * 2

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    async def cancels_a_call(given: dict[str, Any]) -> list[str]:
        marks = given["marks"]
        started = _marked(marks, "started")
        futures = [slow_unless_first(v, marks) for v in given["values"]]
        while _marked(marks, "started") == started:  # (the last call has started)
            await asyncio.sleep(0.01)
        futures.pop().cancel()
        mapped = await asyncio.gather(*futures)
        answer = types.interrupt("question")
        return [m + answer for m in mapped]

    return cancels_a_call


def build_cached_calls(prefix: str) -> Any:
    """An entrypoint calling a task with a cache policy, with a question after each call;
    each run of the task marks a file in the folder the input names."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task(cache_policy=types.CachePolicy())
    def double(value: int, marks: str) -> int:
        Path(marks, f"ran-{uuid.uuid4()}").touch()
        return 2 * value

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver(),
                     cache=_lib(prefix, "cache.memory").InMemoryCache())
    def doubles_cached(given: dict[str, Any]) -> list[Any]:
        values: list[Any] = []
        for value in [1, 1, 2]:
            values += [double(value, given["marks"]).result(), types.interrupt("next?")]
        return values

    return doubles_cached


def build_two_asking_calls(prefix: str, reverse: bool = False) -> Any:
    """Two task calls that each ask a question (the first returns None once answered); each
    run of a call marks a file named after it in the folder the input names. The entrypoint
    stops at the first question, the one `result()` raises (with `reverse`, the second
    call's: its answer must reach that call, whichever asks first)."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task
    def ask_a(marks: str) -> None:
        Path(marks, f"a-{uuid.uuid4()}").touch()
        types.interrupt("A")

    @func.task
    def ask_b(marks: str) -> Any:
        Path(marks, f"b-{uuid.uuid4()}").touch()
        return types.interrupt("B")

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    def two_asking_calls(given: dict[str, Any]) -> list[Any]:
        a, b = ask_a(given["marks"]), ask_b(given["marks"])
        return [a.result(), b.result()]

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    def two_asking_calls_reversed(given: dict[str, Any]) -> list[Any]:
        a, b = ask_a(given["marks"]), ask_b(given["marks"])
        return [b.result(), a.result()]

    return two_asking_calls_reversed if reverse else two_asking_calls


def build_slow_call(prefix: str) -> Any:
    """An entrypoint awaiting one task call that runs until cancelled, marking its start and
    its cancel as files in the folder its input names."""
    func = _lib(prefix, "func")

    @func.task
    async def runs_until_cancelled(marks: str) -> str:
        Path(marks, f"started-{uuid.uuid4()}").touch()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            Path(marks, f"cancelled-{uuid.uuid4()}").touch()
            raise
        return "never"

    @func.entrypoint()
    async def awaits_a_slow_call(marks: str) -> str:
        return await runs_until_cancelled(marks)  # type: ignore[no-any-return]

    return awaits_a_slow_call


def build_nested_model_calls(prefix: str) -> Any:
    """An entrypoint calling a task that calls a task whose chat model streams "a b"."""
    func = _lib(prefix, "func")

    @func.task
    async def inner(text: str) -> str:
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

        message = await GenericFakeChatModel(messages=iter(["a b"])).ainvoke(text)
        return str(message.content)

    @func.task
    async def outer(text: str) -> str:
        return await inner(text) + "!"  # type: ignore[no-any-return]

    @func.entrypoint()
    async def nested_model_calls(text: str) -> str:
        return await outer(text)  # type: ignore[no-any-return]

    return nested_model_calls


def build_asking_entrypoint(prefix: str) -> Any:
    """An entrypoint calling a task, asking a question, and adding what it returned before
    (`previous`) to its result."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task
    def double(value: int) -> int:
        return 2 * value

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    def asking_entrypoint(value: int, *, previous: Any = None) -> int:
        doubled: int = double(value).result()
        types.interrupt("ok?")
        return doubled + (previous or 0)

    return asking_entrypoint


def build_counting_entrypoint(prefix: str) -> Any:
    """An entrypoint that keeps a running total: it adds its input to what it saved before
    (`previous`), returns a text, and saves the number (`entrypoint.final`)."""
    func = _lib(prefix, "func")

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    def counting_entrypoint(n: int, *, previous: Any = None) -> Any:
        total = (previous or 0) + n
        return func.entrypoint.final(value=f"total {total}", save=total)

    return counting_entrypoint


def counting_run(prefix: str, cluster: str | None = None, thread: str = "counting") -> Any:
    """Three calls of the counting entrypoint on one thread: results, stream, saved state."""
    graph = build_counting_entrypoint(prefix)
    graph = graph.with_cluster(cluster) if cluster else graph
    config = {"configurable": {"thread_id": thread}}
    return [graph.invoke(2, config), graph.invoke(3, config), list(graph.stream(4, config)),
            graph.get_state(config).values]


def build_flaky_call(prefix: str) -> Any:
    """A call that fails its first run (each run marks the folder the input names), caught by
    the entrypoint, which then asks two questions."""
    func, types = _lib(prefix, "func"), _lib(prefix, "types")

    @func.task
    def flaky(marks: str) -> str:
        runs = len(list(Path(marks).glob("flaky-*")))
        Path(marks, f"flaky-{uuid.uuid4()}").touch()
        if not runs:
            raise ValueError("first run")
        return f"run {runs + 1}"

    @func.entrypoint(checkpointer=_lib(prefix, "checkpoint.memory").InMemorySaver())
    def flaky_call(given: dict[str, Any]) -> dict[str, Any]:
        try:
            got = flaky(given["marks"]).result()
        except ValueError as exc:
            got = f"failed: {exc}"
        return {"got": got, "one": types.interrupt("one"), "two": types.interrupt("two")}

    return flaky_call
