"""`stream_events(version="v3")` / `astream_events(version="v3")`: the run handle and its
projections, compared with LangGraph's on the same programs, embedded and on a real cluster;
and the stream's parts (channel, mux, transformers) on their own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from arqgraph.stream import StreamChannel, StreamTransformer
from arqgraph.stream._mux import StreamMux
from arqgraph.stream._types import ProtocolEvent
from tests.conftest import ArqProcesses, RedisServer
from tests.differential.api import REFERENCE, Api
from tests.differential.cases import CASES, Case
from tests.differential.stream_event_cases import V3_ONLY

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")

from tests.test_differential import _build, _explain, _in_thread, error_info  # noqa: E402

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SUBGRAPH_CASES = ["subgraph_as_node", "subgraph_other_schema", "subgraph_nested",
                  "subgraph_failure", "subgraph_invoked_in_node", "v3_writer_subgraph",
                  "v3_chat_subgraph", "v3_interrupt_subgraph", "messages_sync_model",
                  "messages_async_model", "node_streams_inner_messages"]


@pytest.fixture(scope="module")
def reference() -> Api:
    return Api(REFERENCE)


@pytest.fixture(scope="module")
def candidate() -> Api:
    return Api("arqgraph")


def _event(method: str, data: Any, namespace: list[str] | None = None) -> ProtocolEvent:
    return {"type": "event", "method": method,
            "params": {"namespace": namespace or [], "timestamp": 0, "data": data}}


# ---------------------------------------------------------------------------------------------
# The parts


def test_channel_has_one_reader_and_ends_with_the_runs_error() -> None:
    channel: StreamChannel[int] = StreamChannel()
    with pytest.raises(TypeError, match="not been bound"):
        iter(channel)
    channel._bind(is_async=False)
    channel.push(0)  # nobody reads yet: not kept
    reader = iter(channel)
    with pytest.raises(RuntimeError, match="already has a subscriber"):
        iter(channel)
    channel.push(1)
    channel.push(2)
    channel.fail(ValueError("boom"))
    with pytest.raises(RuntimeError, match="closed"):
        channel.push(3)
    assert next(reader) == 1 and next(reader) == 2
    with pytest.raises(ValueError, match="boom"):
        next(reader)


def test_channel_tee_gives_every_reader_every_item() -> None:
    channel: StreamChannel[int] = StreamChannel()
    channel._bind(is_async=False)
    left, right = channel.tee(2)
    for item in (1, 2, 3):
        channel.push(item)
    channel.close()
    assert list(left) == [1, 2, 3] and list(right) == [1, 2, 3]


async def test_async_channel_refuses_a_sync_reader() -> None:
    channel: StreamChannel[int] = StreamChannel()
    channel._bind(is_async=True)
    with pytest.raises(TypeError, match="async"):
        iter(channel)
    reader = aiter(channel)
    channel.push(7)
    channel.close()
    assert [item async for item in reader] == [7]


class _Counting(StreamTransformer):
    """Counts events per method; keeps "secret" events out of the main log."""

    required_stream_modes = ("custom",)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self.counts = StreamChannel[dict[str, int]]("counts")
        self.seen: dict[str, int] = {}

    def init(self) -> dict[str, Any]:
        return {"counts": self.counts}

    def process(self, event: ProtocolEvent) -> bool:
        self.seen[event["method"]] = self.seen.get(event["method"], 0) + 1
        return event["method"] != "secret"

    def finalize(self) -> None:
        self.counts.push(dict(self.seen))


def test_mux_suppresses_forwards_and_numbers_events() -> None:
    mux = StreamMux(factories=[_Counting])
    events = iter(mux._events)
    mux.push(_event("values", {"a": 1}))
    mux.push(_event("secret", 1))
    mux.close()
    logged = list(events)
    # a named channel of a transformer that is not native goes in as "custom:<name>"
    assert [(e["method"], e["seq"]) for e in logged] == [("values", 1), ("custom:counts", 2)]
    assert logged[1]["params"]["data"] == {"values": 1, "secret": 1}
    with pytest.raises(ValueError, match="conflict"):
        StreamMux(factories=[_Counting, _Counting])


def test_sync_run_refuses_an_async_transformer() -> None:
    class Slow(StreamTransformer):
        def init(self) -> dict[str, Any]:
            return {}

        async def aprocess(self, event: ProtocolEvent) -> bool:
            return True

    with pytest.raises(RuntimeError, match="requires an async run"):
        StreamMux(factories=[Slow])


def test_v3_owns_stream_mode_and_subgraphs_and_refuses_instances(candidate: Api) -> None:
    graph = next(c for c in CASES if c.name == "v3_writer_subgraph").build(candidate)
    with pytest.raises(TypeError, match="stream_mode"):
        graph.stream_events({"text": "a", "log": []}, version="v3", stream_mode="values")
    with pytest.raises(TypeError, match="pre-built instance"):
        graph.stream_events({"text": "a", "log": []}, version="v3", transformers=[_Counting()])


# ---------------------------------------------------------------------------------------------
# The same programs on LangGraph and on arqgraph


def _plain(value: Any) -> Any:
    """A value with task UUIDs, message ids of runs and times taken out."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()
                if k not in ("timestamp", "run_id", "seq", "id", "message_id")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return UUID.sub("U", value)
    if hasattr(value, "content") and hasattr(value, "type"):  # a LangChain message
        return {"type": value.type, "text": value.text if isinstance(value.text, str)
                else value.text(), "name": getattr(value, "name", None)}
    if hasattr(value, "value") and hasattr(value, "id") and type(value).__name__ == "Interrupt":
        return {"interrupt": _plain(value.value)}
    return value


def _messages_event(data: Any) -> Any:
    payload, metadata = data
    node = (metadata or {}).get("langgraph_node")
    if isinstance(payload, dict) and "event" in payload:
        return ["event", node, payload["event"], _plain(payload.get("delta"))]
    return ["whole", node, _plain(payload)]


def _v3_transcript(graph: Any, case: Case, run_index: int, use_async: bool) -> dict[str, Any]:
    """Everything a v3 run shows: its raw events in order, its output and interrupts; then,
    on a second run, each subgraph handle's projections and end."""
    run = case.runs[run_index]

    def raw(events: list[Any]) -> list[Any]:
        return [[e["method"], _plain(e["params"]["namespace"]),
                 _messages_event(e["params"]["data"]) if e["method"] == "messages"
                 else _plain(e["params"]["data"])] for e in events]

    def handle(h: Any, values: list[Any], messages: list[str]) -> dict[str, Any]:
        return {"path": _plain(list(h.path)), "graph_name": h.graph_name, "status": h.status,
                "error": h.error, "values": _plain(values)}

    def sync_call() -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            stream = graph.stream_events(run.input, run.config, version="v3")
            out["events"] = raw(list(stream))
            out["output"] = _plain(stream.output)
            out["interrupts"] = _plain(stream.interrupts)
        except Exception as exc:
            out["error"] = error_info(exc)
        try:
            stream = graph.stream_events(run.input, run.config, version="v3")
            out["subgraphs"] = [handle(h, list(h.values), []) for h in stream.subgraphs]
            stream = graph.stream_events(run.input, run.config, version="v3")
            out["subgraph_messages"] = [[m.output.text for m in h.messages]
                                        for h in stream.subgraphs]
            stream = graph.stream_events(run.input, run.config, version="v3")
            out["root_messages"] = [(m.node, m.output.text) for m in stream.messages]
        except Exception as exc:
            out["subgraph_error"] = error_info(exc)
        return out

    async def async_call() -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            stream = await graph.astream_events(run.input, run.config, version="v3")
            out["events"] = raw([e async for e in stream])
            out["output"] = _plain(await stream.output())
            out["interrupts"] = _plain(await stream.interrupts())
        except Exception as exc:
            out["error"] = error_info(exc)
        try:
            stream = await graph.astream_events(run.input, run.config, version="v3")
            out["subgraphs"] = [handle(h, [v async for v in h.values], [])
                                async for h in stream.subgraphs]
            stream = await graph.astream_events(run.input, run.config, version="v3")
            out["subgraph_messages"] = [[(await m.output).text async for m in h.messages]
                                        async for h in stream.subgraphs]
            stream = await graph.astream_events(run.input, run.config, version="v3")
            out["root_messages"] = [(m.node, (await m.output).text)
                                    async for m in stream.messages]
        except Exception as exc:
            out["subgraph_error"] = error_info(exc)
        return out

    return _in_thread(lambda: asyncio.run(async_call()) if use_async else sync_call())


def _cases(cluster: bool = False) -> list[Any]:
    return [pytest.param(c, i, id=f"{c.name}-{i}") for c in [*CASES, *V3_ONLY]
            if c.name in SUBGRAPH_CASES
            and (c.cluster is True or not cluster) for i in range(len(c.runs))]


@pytest.mark.parametrize(("case", "run_index"), _cases())
def test_stream_events_v3(case: Case, run_index: int, reference: Api, candidate: Api) -> None:
    """The v3 run of each program: events, output, interrupts, subgraph handles."""
    for use_async in sorted({True, case.async_only}):
        expected = _v3_transcript(_build(reference, case, None), case, run_index, use_async)
        actual = _v3_transcript(_build(candidate, case, None), case, run_index, use_async)
        assert actual == expected, f"async={use_async} " + _explain(case, run_index)


DATABASE = 8


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    spec = "tests.differential.served:GRAPHS"
    orchestrator = arq_processes.orchestrator(spec, redis=url, name="v3-orchestrator")
    worker = arq_processes.worker(spec, redis=url, name="v3-worker",
                                  extra=("--poll-delay", "0.05", "--concurrency", "16"))
    orchestrator.wait_for_output("serving graphs", timeout=60)
    worker.wait_for_output("worker serving graphs", timeout=60)
    yield url
    for proc in (orchestrator, worker):
        proc.terminate()


@pytest.mark.parametrize(("case", "run_index"), _cases(cluster=True))
def test_stream_events_v3_on_a_cluster(case: Case, run_index: int, reference: Api,
                                       candidate: Api, cluster: str) -> None:
    """The same, the candidate's nodes running on a worker process."""
    use_async = case.async_only
    expected = _v3_transcript(_build(reference, case, None), case, run_index, use_async)
    actual = _v3_transcript(_build(candidate, case, cluster), case, run_index, use_async)
    assert actual == expected, _explain(case, run_index)


EVENT_CASES = ["messages_sync_model", "messages_async_model", "v3_chat_subgraph",
               "v3_writer_subgraph", "subgraph_failure", "runnable_nodes", "runnable_chat_chain"]


def _langchain_events(graph: Any, case: Case, version: str) -> dict[str, Any]:
    """LangChain's events of a run: each with its run and parents as first-seen numbers."""
    run = case.runs[0]

    async def collect() -> dict[str, Any]:
        numbers: dict[str, int] = {}
        seen: list[Any] = []
        try:
            async for e in graph.astream_events(run.input, run.config, version=version):
                number = numbers.setdefault(e["run_id"], len(numbers))
                metadata = {k: v for k, v in e.get("metadata", {}).items()
                            if k in ("langgraph_node", "langgraph_step", "langgraph_triggers")}
                seen.append((number, [numbers.get(p) for p in e.get("parent_ids", [])],
                             e["event"], e["name"], sorted(e.get("tags", [])), metadata,
                             _plain(e.get("data"))))
        except Exception as exc:
            return {"events": seen, "error": error_info(exc)}
        return {"events": seen}

    return _in_thread(lambda: asyncio.run(collect()))


def _first_difference(actual: list[Any], expected: list[Any]) -> str:
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        if a != e:
            return f"event {i}: {a!r} != {e!r}"
    return f"{len(actual)} events != {len(expected)}"


@pytest.mark.parametrize("name", EVENT_CASES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_langchain_events_of_graph_and_nodes(name: str, version: str, reference: Api,
                                             candidate: Api) -> None:
    """`astream_events` v1/v2: the graph's run and its nodes', with their models' tokens, in
    LangGraph's order, with LangGraph's names, tags, parents and data."""
    case = next(c for c in CASES if c.name == name)
    expected = _langchain_events(case.build(reference), case, version)
    actual = _langchain_events(case.build(candidate), case, version)
    nodes = [e[3] for e in actual["events"] if e[2] == "on_chain_start" and e[5]]
    assert nodes  # (the nodes' runs are there)
    assert actual == expected


@pytest.mark.parametrize("name", [n for n in EVENT_CASES if n != "subgraph_failure"])
def test_langchain_events_from_a_cluster(name: str, reference: Api, candidate: Api,
                                         cluster: str) -> None:
    """The same with the nodes on a worker process: their callbacks come back to the
    producer's handlers."""
    case = next(c for c in CASES if c.name == name)
    expected = _langchain_events(case.build(reference), case, "v2")
    actual = _langchain_events(case.build(candidate).with_cluster(cluster), case, "v2")
    assert actual == expected, _first_difference(actual["events"], expected["events"])


def _tools_events(graph: Any) -> list[Any]:
    case = next(c for c in CASES if c.name == "tools_mode")
    parts = graph.stream(case.runs[0].input, stream_mode=["tools", "updates"], version="v2")
    return _in_thread(lambda: [(p["type"], list(p["ns"]), _plain(p["data"])) for p in parts])


def test_tools_mode_matches_langgraph(reference: Api, candidate: Api) -> None:
    """The "tools" stream mode: each tool call's start, end or error, LangGraph's way."""
    case = next(c for c in CASES if c.name == "tools_mode")
    expected = _tools_events(case.build(reference))
    assert [e[2].get("event") for e in expected if e[0] == "tools"] == [
        "tool-started", "tool-finished", "tool-started", "tool-error"]
    assert _tools_events(case.build(candidate)) == expected


def test_tools_mode_from_a_cluster(reference: Api, candidate: Api, cluster: str) -> None:
    case = next(c for c in CASES if c.name == "tools_mode")
    expected = _tools_events(case.build(reference))
    assert _tools_events(case.build(candidate).with_cluster(cluster)) == expected


def _tool_calls(graph: Any, use_async: bool) -> dict[str, Any]:
    """Each `run.tool_calls` handle of the case's runs: its name, input, deltas and end, by
    call id."""
    case = next(c for c in CASES if c.name == "tool_call_streams")
    return {k: v for run in case.runs for k, v in _run_tool_calls(graph, run.input,
                                                                 use_async).items()}


def _run_tool_calls(graph: Any, run_input: Any, use_async: bool) -> dict[str, Any]:

    def shown(h: Any, deltas: list[Any]) -> tuple[Any, ...]:
        return (h.tool_name, h.input, deltas, h.output, h.error, h.completed)

    def sync_call() -> dict[str, Any]:  # (each handle's deltas read as it comes)
        run = graph.stream_events(run_input, version="v3")
        return {h.tool_call_id: shown(h, list(h)) for h in run.tool_calls}

    async def async_call() -> dict[str, Any]:
        run = await graph.astream_events(run_input, version="v3")
        return {h.tool_call_id: shown(h, [d async for d in h]) async for h in run.tool_calls}

    return _in_thread(lambda: asyncio.run(async_call()) if use_async else sync_call())


@pytest.mark.parametrize("use_async", [False, True])
def test_tool_call_transformer_matches_langgraph(use_async: bool, reference: Api,
                                                 candidate: Api) -> None:
    """`compile(transformers=[ToolCallTransformer])`: a handle per tool call with its output
    deltas, output or error, as LangGraph's."""
    case = next(c for c in CASES if c.name == "tool_call_streams")
    expected = _tool_calls(case.build(reference), use_async)
    assert expected["call-spell"][2] == ["a", "b", "c"]  # (the case shows what it should)
    assert _tool_calls(case.build(candidate), use_async) == expected


def test_tool_call_transformer_on_a_cluster(reference: Api, candidate: Api, cluster: str) -> None:
    """The same with the tools running on a worker process."""
    case = next(c for c in CASES if c.name == "tool_call_streams")
    expected = _tool_calls(case.build(reference), True)
    assert _tool_calls(case.build(candidate).with_cluster(cluster), True) == expected
