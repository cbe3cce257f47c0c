"""Resilience with real processes on a real redis-server (no fakeredis).

Each test starts a redis-server of its own (`redis_servers`) and its own orchestrator and
worker processes (`own_processes`); all of them are stopped when the test ends.

- Several orchestrators on one Redis advance every run exactly once: the graph's reducers
  (`operator.add` on a list and on an int) would show a write applied twice, or lost.
- An orchestrator killed with SIGKILL mid-run loses nothing: another one (already running, or
  started afterwards) finishes every run with the exact state.
- Redis killed with SIGKILL and restarted (same port, same dir, AOF): orchestrator, workers and
  the producer's pending `result()` and `stream()` reconnect on their own; every run finishes
  exactly and the stream yields each event once.
- langchain-core messages cross process boundaries and end as real LangGraph ends them.
- A worker handed a task of a graph it did not load fails the run visibly.

Nothing waits on the clock: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from arqgraph import protocol
from arqgraph.client import Client, RunHandle
from tests.conftest import ArqProcess, ArqProcesses, RedisServers, wait_for
from tests.graphs import resilience_graphs as graphs

T = TypeVar("T")

SPEC = "tests.graphs.resilience_graphs:GRAPHS"
CONCURRENCY = 16
WORKER_FLAGS = ("--poll-delay", "0.05", "--concurrency", str(CONCURRENCY), "--shutdown-grace", "5")
NAMES = [g.name for g in graphs.GRAPHS]
ORCHESTRATOR_FLAGS = ("--sweep-interval", "0.5")
STARTUP_LIMIT = 30.0  # bound for a process to come up (2 loaded cores, cold imports)
RUN_LIMIT = 25.0  # bound for a batch of runs to finish


async def within(awaitable: Awaitable[T], seconds: float = RUN_LIMIT, what: str = "") -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what or awaitable}") \
            from None


async def wait_until(
    condition: Callable[[], Any], what: str, seconds: float = RUN_LIMIT, interval: float = 0.02
) -> Any:
    """Poll `condition` (sync or async) without blocking the event loop."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_registered(url: str, names: Sequence[str]) -> None:
    client = redis.Redis.from_url(url)
    try:
        def registered() -> bool:
            keys: list[bytes] = client.hkeys(protocol.GRAPHS_KEY)  # type: ignore[assignment]
            return set(names) <= {k.decode() for k in keys}

        wait_for(registered, STARTUP_LIMIT, f"graphs {list(names)} to be registered at {url}")
    finally:
        client.close()


def start_cluster(
    procs: ArqProcesses, url: str, *, orchestrators: int = 1, workers: int = 2,
    spec: str = SPEC, names: Sequence[str] = tuple(NAMES), prefix: str = "",
) -> tuple[list[ArqProcess], list[ArqProcess]]:
    """Start orchestrators and workers serving `spec` at `url`; return once all are serving."""
    orchs = [procs.orchestrator(spec, redis=url, extra=ORCHESTRATOR_FLAGS,
                                name=f"{prefix}orchestrator{i}")
             for i in range(1, orchestrators + 1)]
    pool = [procs.worker(spec, redis=url, extra=WORKER_FLAGS, name=f"{prefix}worker{i}")
            for i in range(1, workers + 1)]
    start_serving(orchs, pool, url, names)
    return orchs, pool


def start_serving(
    orchs: Sequence[ArqProcess], pool: Sequence[ArqProcess], url: str, names: Sequence[str]
) -> None:
    try:
        wait_registered(url, names)
        for proc in orchs:
            proc.wait_for_output("serving graphs", STARTUP_LIMIT)
        for proc in pool:
            proc.wait_for_output("worker serving graphs", STARTUP_LIMIT)
    except AssertionError as exc:
        stacks = "\n".join(proc.hung() for proc in (*orchs, *pool))
        raise AssertionError(f"{exc}\nstacks and logs of the processes:\n{stacks}") from None


def assert_alive(procs: Sequence[ArqProcess]) -> None:
    for proc in procs:
        assert proc.alive(), f"{proc.name} exited with {proc.process.returncode}:\n{proc.logs()}"


def assert_clean_exit(procs: Sequence[ArqProcess]) -> None:
    """SIGTERM: each process must still be running and exit 0 (it did not crash meanwhile)."""
    assert_alive(procs)
    for proc in procs:
        assert proc.terminate(timeout=20) == 0, proc.logs()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[str], Awaitable[Client]]]:
    """Producer clients, closed at the end of the test."""
    clients: list[Client] = []

    async def make(url: str) -> Client:
        client = await within(Client.connect(url), 10)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


async def submit_rounds(client: Client, inputs: Sequence[dict[str, Any]]) -> list[RunHandle]:
    handles = await within(asyncio.gather(
        *(client.submit(graphs.rounds.name, data) for data in inputs)))
    assert len({h.run_id for h in handles}) == len(inputs)
    return handles


async def assert_exact(handles: Sequence[RunHandle], inputs: Sequence[dict[str, Any]]) -> None:
    results = await within(asyncio.gather(*(h.result() for h in handles)), what="the results")
    for data, got in zip(inputs, results, strict=True):
        assert got == graphs.expected_rounds(data), data
    statuses = await within(asyncio.gather(*(h.status() for h in handles)))
    assert statuses == ["done"] * len(handles)


async def event_count(r: redis.asyncio.Redis, handle: RunHandle) -> int:
    return int(await r.xlen(protocol.events_key(handle.run_id)))


async def unfinished(handles: Sequence[RunHandle]) -> list[RunHandle]:
    statuses = await asyncio.gather(*(h.status() for h in handles))
    return [h for h, s in zip(handles, statuses, strict=True) if s not in protocol.FINAL_STATUSES]


async def wait_mid_run(url: str, handles: Sequence[RunHandle], *, steps: int = 2) -> None:
    """Wait until every run has been started and at least one has `steps` events or more."""
    r = redis.asyncio.Redis.from_url(url)
    try:
        async def in_flight() -> bool:
            counts = await asyncio.gather(*(event_count(r, h) for h in handles))
            return all(c >= 1 for c in counts) and max(counts) >= steps

        await wait_until(in_flight, "the runs to be in flight")
    finally:
        await r.aclose()


async def assert_full_capacity(client: Client, url: str, slots: int) -> None:
    """The workers run `slots` nodes at once: none of their slots was lost."""
    gate = f"test:gate:{uuid.uuid4().hex}"
    handle = await within(client.submit(graphs.gate.name,
                                        {"width": slots, "url": url, "gate": gate}))
    r = redis.asyncio.Redis.from_url(url)
    try:
        prefix = f"arq:in-progress:{protocol.PREFIX}:{handle.run_id}:"

        async def all_running() -> bool:
            return len(await r.keys(f"{prefix}*")) == slots

        await wait_until(all_running, f"{slots} nodes to run at once")
        await r.set(gate, b"1")
    finally:
        await r.aclose()
    result = await within(handle.result())
    assert result["held"] == list(range(slots))


# -- several orchestrators, and orchestrators killed with SIGKILL ----------------------------


async def test_two_orchestrators_apply_every_write_exactly_once(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]],
) -> None:
    server = redis_servers.start()
    orchs, pool = start_cluster(own_processes, server.url, orchestrators=2)
    client = await connect(server.url)

    inputs = [graphs.rounds_input(x, width=1 + x % 4, rounds=1 + x % 3, delay=0.01)
              for x in range(40)]
    handles = await submit_rounds(client, inputs)
    await assert_exact(handles, inputs)

    # Each task's outcome was posted once and each superstep committed once: the run's stream
    # holds exactly one update per node execution and one values event for the input and one per superstep.
    for handle, data in zip(handles, inputs, strict=True):
        updates = [u async for u in handle.stream("updates")]
        names = [next(iter(u)) for u in updates]
        per_round = ["prep", *["work"] * data["width"], "join"]
        assert sorted(names) == sorted(per_round * data["rounds"]), data
        values = [v async for v in handle.stream("values")]
        assert len(values) == 1 + 3 * data["rounds"] and values[-1] == graphs.expected_rounds(data)
    for proc in (*orchs, *pool):
        assert "Traceback" not in proc.output(), proc.logs()
    assert_clean_exit([*orchs, *pool])


async def test_sigkill_one_of_two_orchestrators_the_other_finishes_every_run(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]],
) -> None:
    server = redis_servers.start()
    (victim, survivor), pool = start_cluster(own_processes, server.url, orchestrators=2)
    client = await connect(server.url)

    inputs = [graphs.rounds_input(x, width=1 + x % 3, rounds=3, delay=0.1) for x in range(40)]
    handles = await submit_rounds(client, inputs)
    await wait_mid_run(server.url, handles)
    victim.kill()  # SIGKILL: no cleanup of any kind
    assert victim.returncode == -9
    left = await within(unfinished(handles))
    assert left, "every run had finished before the kill: nothing was tested"

    await assert_exact(handles, inputs)
    assert_clean_exit([survivor, *pool])


async def test_sigkill_the_only_orchestrator_a_new_one_finishes_every_run(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]],
) -> None:
    server = redis_servers.start()
    (first,), pool = start_cluster(own_processes, server.url, orchestrators=1)
    client = await connect(server.url)

    inputs = [graphs.rounds_input(x, width=2 + x % 3, rounds=2, delay=0.1) for x in range(20)]
    handles = await submit_rounds(client, inputs)
    await wait_mid_run(server.url, handles)
    first.kill()  # SIGKILL
    assert first.returncode == -9
    left = await within(unfinished(handles))
    assert left, "every run had finished before the kill: nothing was tested"

    second = own_processes.orchestrator(SPEC, redis=server.url, extra=ORCHESTRATOR_FLAGS,
                                        name="orchestrator-new")
    second.wait_for_output("serving graphs", STARTUP_LIMIT)
    await assert_exact(handles, inputs)
    assert_clean_exit([second, *pool])


# -- Redis killed and restarted --------------------------------------------------------------


def _stream_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


async def test_redis_sigkill_and_restart_every_process_reconnects(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="arqgraph")
    server = redis_servers.start(durable=True)  # AOF, fsync before every reply
    orchs, pool = start_cluster(own_processes, server.url, orchestrators=1)
    client = await connect(server.url)

    inputs = [graphs.rounds_input(x, width=2 + x % 2, rounds=2, delay=0.3) for x in range(12)]
    handles = await submit_rounds(client, inputs)
    # The producer waits on every result, and reads two runs' streams, across the outage.
    results = asyncio.ensure_future(asyncio.gather(*(h.result() for h in handles)))
    watched = handles[:2]
    seen: dict[str, list[Any]] = {h.run_id: [] for h in watched}

    async def read_stream(handle: RunHandle, into: list[Any] | None = None) -> list[Any]:
        events = [] if into is None else into
        async for event in handle.stream(["updates", "values"]):
            events.append(event)
        return events

    streams = asyncio.ensure_future(
        asyncio.gather(*(read_stream(h, seen[h.run_id]) for h in watched)))
    try:
        await wait_mid_run(server.url, handles)
        # The stream readers are mid-stream: each has yielded some events, not all.
        await wait_until(lambda: all(seen.values()), "the streams to yield their first events")
        before = await within(unfinished(handles))
        assert set(watched) <= set(before), "a watched run finished before the kill"
        kill_ms = int(time.time() * 1000)
        server.kill()
        killed_ms = int(time.time() * 1000)  # any event stamped later was written after restart

        # Every process notices the outage (and keeps running) before Redis comes back.
        def all_noticed() -> bool:
            return all("lost Redis" in p.output() for p in (*orchs, *pool)) and any(
                "lost Redis" in r.getMessage() for r in caplog.records)

        await wait_until(all_noticed, "every process to notice that Redis is gone")
        assert_alive([*orchs, *pool])
        assert not results.done() and not streams.done()

        restarted = redis_servers.restart(server)
        got = await within(results, what="the results, after the restart")
        await within(streams, what="the streams, after the restart")
    finally:
        for future in (results, streams):
            future.cancel()
        await asyncio.gather(results, streams, return_exceptions=True)

    assert got == [graphs.expected_rounds(data) for data in inputs]
    # The streams read across the outage yielded every event exactly once, in order: the
    # same as reading them again now, in one go.
    for handle, data in zip(watched, inputs, strict=False):
        events = seen[handle.run_id]
        assert events == await within(read_stream(handle))
        modes = [mode for mode, _ in events]
        assert modes.count("updates") == data["rounds"] * (2 + data["width"])
        assert modes.count("values") == 1 + 3 * data["rounds"]
        assert events[-1] == ("values", graphs.expected_rounds(data))
    # The runs that were unfinished at the kill finished after the restart.
    assert before, "every run had finished before the kill: nothing was tested"
    r = redis.asyncio.Redis.from_url(restarted.url)
    try:
        for handle in before:
            entries = await r.xrange(protocol.events_key(handle.run_id))
            assert _stream_ms(entries[0][0]) <= kill_ms, "a run started after the kill"
            assert _stream_ms(entries[-1][0]) > killed_ms, "a run ended before the kill"
    finally:
        await r.aclose()
    assert await within(asyncio.gather(*(h.status() for h in handles))) == ["done"] * len(handles)
    # The workers came back at full strength: no slot was lost to the outage.
    await assert_full_capacity(client, restarted.url, CONCURRENCY * len(pool))
    assert_clean_exit([*orchs, *pool])


# -- langchain-core messages across processes ------------------------------------------------

MESSAGES_SPEC = "tests.graphs.message_graphs:chat"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def message_rows(messages: list[Any]) -> list[tuple[str, str, Any, Any]]:
    """(class, type, content, id) per message; an id the reducer generated shows as <uuid>."""
    rows = []
    for m in messages:
        mid = "<uuid>" if isinstance(m.id, str) and UUID.match(m.id) else m.id
        rows.append((type(m).__name__, m.type, m.content, mid))
    return rows


async def test_langchain_messages_cross_processes_as_in_langgraph(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]],
) -> None:
    langgraph = pytest.importorskip("langgraph.graph")
    from langchain_core.messages import AIMessage, ToolMessage

    from tests.graphs import message_graphs

    reference = message_graphs.build_chat(langgraph.StateGraph, langgraph.START, langgraph.END,
                                          langgraph.MessagesState)
    expected = await within(reference.ainvoke(message_graphs.chat_input()))

    server = redis_servers.start()
    orchs, pool = start_cluster(own_processes, server.url, spec=MESSAGES_SPEC,
                                names=[message_graphs.chat.name])
    client = await connect(server.url)
    handles = await within(asyncio.gather(*(
        client.submit(message_graphs.chat.name, message_graphs.chat_input()) for _ in range(3))))
    results = await within(asyncio.gather(*(h.result() for h in handles)))

    want = message_rows(expected["messages"])
    assert [row[3] for row in want].count("<uuid>") == 1  # the message sent without an id
    for result in results:
        got = result["messages"]
        assert message_rows(got) == want
        assert len({m.id for m in got}) == len(got)
        by_id = {m.id: m for m in got}
        ref_by_id = {m.id: m for m in expected["messages"]}
        think, tool = by_id["ai-think"], by_id["tool-1"]
        assert isinstance(think, AIMessage) and think.tool_calls == ref_by_id["ai-think"].tool_calls
        assert isinstance(tool, ToolMessage) and tool.tool_call_id == "call-1"
        for mid, message in by_id.items():
            if mid in ref_by_id:
                assert message == ref_by_id[mid], mid
    # The stream's last values are the result, messages and all.
    values = [v async for v in handles[0].stream("values")]
    assert message_rows(values[-1]["messages"]) == want
    assert_clean_exit([*orchs, *pool])


# -- a worker that did not load the graph ----------------------------------------------------


async def test_worker_without_the_graph_fails_the_run_visibly(
    redis_servers: RedisServers, own_processes: ArqProcesses,
    connect: Callable[[str], Awaitable[Client]],
) -> None:
    from tests.graphs import message_graphs

    server = redis_servers.start()
    # The orchestrator serves both graph sets on one queue; its only worker loaded one set.
    orch = own_processes.orchestrator(SPEC, MESSAGES_SPEC, redis=server.url,
                                      extra=ORCHESTRATOR_FLAGS)
    worker = own_processes.worker(SPEC, redis=server.url, extra=WORKER_FLAGS)
    start_serving([orch], [worker], server.url, [*NAMES, message_graphs.chat.name])
    client = await connect(server.url)

    handle = await within(client.submit(message_graphs.chat.name, message_graphs.chat_input()))
    with pytest.raises(LookupError, match="does not serve graph 'cluster_messages'"):
        await within(handle.result())
    assert await within(handle.status()) == "failed"
    assert "does not serve graph 'cluster_messages'" in worker.output()

    # The graphs the worker loaded run as usual next to it.
    data = graphs.rounds_input(4)
    [ok] = await submit_rounds(client, [data])
    assert await within(ok.result()) == graphs.expected_rounds(data)
    assert_clean_exit([orch, worker])
