"""The seed documents' examples (examples/seeds/) run on the embedded default at 1/100 speed
(ARQGRAPH_SEED_SCALE=0.01): each module's `main()` prints and returns what the document says.

That branches ran in parallel is read from the start/end marks their calls made (`custom`
stream events, see examples/seeds/standins.py) or from the order of the lines they printed,
never from how long a run took.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from arqgraph.loader import load_all

ROOT = Path(__file__).resolve().parent.parent
SCALE = "0.01"
TIMING_SCALE = "0.1"  # for the patterns whose calls end a few scaled ms from a deadline
# what main() reports of those patterns: checked at TIMING_SCALE, on their own
TIMING_RESULTS = {"WaitNode", "WaitTimeoutNode", "MultiTimeoutNode", "TimeoutHandlingNode"}
MODULES = ("async_node", "screening_lab", "async_patterns_basics", "async_patterns_streaming",
           "async_patterns_concurrency", "async_patterns_errors", "async_patterns_integration",
           "screening_functional", "pocketflow_recipes")


@pytest.fixture(scope="module")
def seeds() -> Iterator[dict[str, ModuleType]]:
    """The example modules, imported (their node options scaled) and run at SCALE."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARQGRAPH_SEED_SCALE", SCALE)
        modules = {}
        for name in ("standins", *MODULES):
            module_name = f"examples.seeds.{name}"
            loaded = sys.modules.get(module_name)
            modules[name] = importlib.reload(loaded) if loaded else importlib.import_module(
                module_name
            )
        yield modules


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def all_started_before_any_ended(spans: dict[str, tuple[float, float]], *calls: str) -> bool:
    return max(spans[c][0] for c in calls) < min(spans[c][1] for c in calls)


def one_after_another(spans: dict[str, tuple[float, float]], *calls: str) -> bool:
    return all(spans[a][1] <= spans[b][0] for a, b in zip(calls, calls[1:], strict=False))


def started_not_ended(marks: list[dict[str, Any]], what: str) -> bool:
    events = [m["event"] for m in marks if m["what"] == what]
    return events == ["start"]


# -- seed 000 -----------------------------------------------------------------------------------


async def test_async_node_doc(seeds: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    out = await seeds["async_node"].main()
    printed = lines_of(capsys.readouterr().out)
    assert "{'value': 2}" in printed  # §4
    assert out["fetch"].result == {"query": "weather", "data": "data for weather"}  # §3
    assert out["parallel"].result == {"a": "a", "b": "b", "calls": ["A", "B"], "joined": "ab"}
    assert all_started_before_any_ended(out["parallel"].spans(), "api_a", "api_b")  # §5
    demo = ("{'query': 'LangGraph async nodes', 'llm_result': 'LLM answer for: LangGraph async "
            "nodes', 'db_result': 'DB result for: LangGraph async nodes'}")
    index = printed.index(demo)
    assert printed[index + 1].startswith("Elapsed: ")
    assert all_started_before_any_ended(out["demo"].spans(), "fake_llm_call", "fake_db_search")


# -- seed 002 -----------------------------------------------------------------------------------


async def test_screening_lab(seeds: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    out = await seeds["screening_lab"].main()
    printed = lines_of(capsys.readouterr().out)
    sequential = printed[printed.index("🎯 Sequential screening for Alice Johnson"):]
    assert sequential[1:7] == [
        "📄 Parsing resume for Alice Johnson (2s)...", "   ✅ Resume parsed",
        "🔍 Background check for Alice Johnson (3s)...", "   ✅ Background complete",
        "📞 Reference check for Alice Johnson (2s)...", "   ✅ References complete",
    ]
    assert sequential[8].startswith("⏱️  Sequential Total Time: ")
    assert sequential[8].endswith(" seconds") and sequential[9] == "Expected ≈ 2s + 3s + 2s = 7s"

    chained = out["sequential_graph"]
    assert chained.result == {"name": "Alice Johnson"}  # `decision` is no key of the state
    assert one_after_another(chained.spans(), "parse", "background", "references")

    parallel = printed[printed.index("🎯 Parallel Flow as a graph"):]
    assert parallel[1:3] == ["📄 Parsing resume for Bob Lee (2s)...", "   ✅ Resume parsed"]
    assert set(parallel[3:5]) == {"🔍 Background check (3s)...", "📞 Reference check (2s)..."}
    assert parallel[5:8] == ["   ✅ References complete", "   ✅ Background check complete",
                             "📋 Final decision for Bob Lee..."]
    assert parallel[9].startswith("⏱️ Graph Parallel Total Time: ")
    assert parallel[9].endswith(" seconds (Expected ~5s)")
    spans = out["parallel"].spans()
    assert all_started_before_any_ended(spans, "background", "references")
    assert spans["parse"][1] <= min(spans["background"][0], spans["references"][0])


def test_screening_lab_through_the_cli() -> None:
    env = {**os.environ, "ARQGRAPH_SEED_SCALE": SCALE}
    done = subprocess.run(
        [sys.executable, "-m", "arqgraph.cli", "run", "examples.seeds.screening_lab:graph",
         "--input", '{"name": "Bob Lee"}', "--stream", "updates"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [next(iter(e["updates"])) for e in events[:-1]][-1] == "decide"
    assert events[-1] == {"name": "Bob Lee"}


def test_every_module_graph_loads_by_its_spec(seeds: dict[str, ModuleType]) -> None:
    """`arqgraph run examples.seeds.<module>:graph` works, and all graphs have unique names."""
    specs = [f"examples.seeds.{name}:graph" for name in MODULES]
    assert len(load_all(specs)) == len(MODULES)
    compiled = [f"examples.seeds.{name}:{attr}" for name in MODULES
                for attr, value in vars(seeds[name]).items()
                if attr.endswith("graph") and hasattr(value, "fingerprint")]
    assert len(load_all(compiled)) == len(compiled) > 30


# -- seed 001 -----------------------------------------------------------------------------------


async def test_basics(seeds: dict[str, ModuleType]) -> None:
    out = await seeds["async_patterns_basics"].main()
    assert out["basic"].result == {"query": "test", "result": "Data for test"}
    assert out["direct"] == {"result": "Data for test"}
    assert out["async"] == {"query": "test", "data": "async data"}
    assert out["sync"] == {"query": "test", "data": "sync data"}
    assert out["fetch"].result["data"] == {"items": [1, 2, 3]}
    assert out["sequential"].result == {
        "user_id": 7, "user": {"id": 7, "name": "Alice"}, "posts": [{"id": 1, "title": "Post 1"}],
        "comments": [{"id": 1, "text": "Comment 1"}],
    }
    assert one_after_another(out["sequential"].spans(), "fetch_user", "fetch_posts", "fetch_comments")
    concurrent = out["concurrent"]
    assert {k: concurrent.result[k] for k in ("user", "weather", "news")} == {
        "user": {"id": 7}, "weather": {"temp": 72}, "news": {"articles": []},
    }
    assert all_started_before_any_ended(concurrent.spans(), "fetch_user", "fetch_weather", "fetch_news")
    assert out["database"].result == {"query": "SELECT 1", "result": "result"}
    assert one_after_another(out["database"].spans(), "connect", "execute", "disconnect")


async def test_streaming(seeds: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    module = seeds["async_patterns_streaming"]
    out = await module.main()
    printed = capsys.readouterr().out
    assert out["generator"].result["results"] == [{"item": i, "query": "q"} for i in range(5)]
    assert out["process"].result["processed"] == [{"processed": {"data": i}} for i in range(5)]
    calls = [f"{step} {i}" for i in range(5) for step in ("receive", "process")]
    assert one_after_another(out["process"].spans(), *calls)  # each processed as it arrived

    answer = "Async nodes await I/O without blocking the loop."
    assert module.content(out["llm"].result["messages"][-1]) == answer
    events = out["stream_events"]
    tokens = [chunk for mode, chunk in events if mode == "custom" and isinstance(chunk, str)]
    assert "".join(tokens) == answer and len(tokens) == 8
    last_token = max(i for i, (mode, chunk) in enumerate(events) if chunk == tokens[-1])
    final = max(i for i, (mode, _) in enumerate(events) if mode == "values")
    assert last_token < final  # every token reached the caller before the node's result
    assert module.content(events[final][1]["messages"][-1]) == answer
    assert f"AI: {answer}" in printed


async def test_concurrency(seeds: dict[str, ModuleType]) -> None:
    module = seeds["async_patterns_concurrency"]
    max_in_flight = seeds["standins"].max_in_flight
    out = await module.main()
    gather = out["GatherNode"]
    assert gather.result["user"] == {"id": 7}
    assert all_started_before_any_ended(gather.spans(), "fetch_user", "fetch_posts", "fetch_comments")
    assert out["GatherErrorHandlingNode"].result["successes"] == [
        {"op": 0, "result": "success1"}, {"op": 2, "result": "success3"}]
    assert out["GatherErrorHandlingNode"].result["failures"] == [{"op": 1, "error": "Operation 2 failed"}]

    # asyncio.wait: 1 ms apart at this scale, a busy machine may finish two calls in one turn
    # of the event loop; test_wait_patterns checks the document's values at a wider scale
    wait = out["WaitNode"]
    ended = [m["what"] for m in sorted(wait.marks, key=lambda m: m["t"]) if m["event"] == "end"]
    assert ended[0] == "fast_op" and f"{wait.result['first_result']}_op" in ended
    # (WaitTimeoutNode's calls end a few scaled ms from its deadline: test_wait_patterns)

    assert out["SemaphoreNode"].result["results"] == [f"Processed {i}" for i in range(20)]
    assert max_in_flight(out["SemaphoreNode"].marks) == 5
    assert len(out["RateLimitedAPINode"].result["results"]) == 6
    assert max_in_flight(out["RateLimitedAPINode"].marks) == 3
    assert out["TaskGroupNode"].result["results"] == ["result1", "result2", "result3"]
    assert all_started_before_any_ended(out["TaskGroupNode"].spans(),
                                        "operation1", "operation2", "operation3")
    for key in ("RateLimitedNode", "TokenBucketNode"):
        assert out[key].result["results"] == [f"Result for {c}" for c in "abcde"]
        assert max_in_flight(out[key].marks) == 1
    assert len(out["PooledHTTPNode"].result["results"]) == 20
    assert out["pool_max_open"] == 10 and max_in_flight(out["PooledHTTPNode"].marks) == 10

    cluster = out["cluster_semaphore"]
    assert cluster.result["results"] == [f"Processed {i}" for i in range(20)]
    assert 1 <= max_in_flight(cluster.marks) <= 5
    limited = out["cluster_rate_limit"]
    assert limited.result["results"] == [f"Result for {c}" for c in "abcde"]
    interval = 0.1 * float(SCALE)  # rate_limit="10/s", scaled
    starts = sorted(m["t"] for m in limited.marks if m["event"] == "start")
    assert len(starts) == 5
    for k, start in enumerate(starts):  # the k-th call waited for k intervals
        assert start - limited.started >= k * interval - 1e-3


async def check_wait_patterns(module: ModuleType, run_traced: Any) -> None:
    """WaitNode and WaitTimeoutNode, at 1/10 speed, where their calls end 40 ms or more apart."""
    wait = await run_traced(module.wait_graph, {})
    assert wait.result["first_result"] == "fast"
    # medium_op ends only 50 ms after fast_op: a stalled loop may end both in one turn
    assert started_not_ended(wait.marks, "slow_op")
    timed = await run_traced(module.wait_timeout_graph, {})
    assert sorted(timed.result["completed"]) == ["op1", "op2"]
    assert timed.result["incomplete_count"] == 1 and started_not_ended(timed.marks, "op3")


async def check_timeout_patterns(module: ModuleType, run_traced: Any) -> None:
    """MultiTimeoutNode and TimeoutHandlingNode, at 1/10 speed, where each call ends 50 ms or
    more from its deadline (at 1/100 speed, 5 ms: a loop stalled that long on a loaded machine
    missed one)."""
    multi = await run_traced(module.multi_timeout_graph, {})
    assert multi.result == {"results": ["result1", "result2"], "errors": ["Operation 2 failed: "]}
    handling = await run_traced(module.timeout_handling_graph, {})
    assert handling.result == {"results": {"quick": "quick", "op1": "op1", "op2": "op2"}}
    assert started_not_ended(handling.marks, "slow_op3")


async def test_wait_patterns(seeds: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARQGRAPH_SEED_SCALE", TIMING_SCALE)  # their sleeps and timeouts read it per call
    await check_wait_patterns(seeds["async_patterns_concurrency"], seeds["standins"].run_traced)


async def test_timeout_patterns(seeds: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARQGRAPH_SEED_SCALE", TIMING_SCALE)
    await check_timeout_patterns(seeds["async_patterns_errors"], seeds["standins"].run_traced)


async def test_errors(seeds: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    out = await seeds["async_patterns_errors"].main()
    printed = capsys.readouterr().out
    timeout = out["TimeoutNode"]
    assert timeout.result == {"input": "x", "result": None, "timed_out": True}
    assert started_not_ended(timeout.marks, "slow_operation")
    assert "[log] [TimeoutNode] Operation timed out" in printed
    option = out["timeout=5 + error_handler"]
    assert option.result == {"input": "x", "result": None, "timed_out": True}
    assert started_not_ended(option.marks, "slow_operation")

    assert out["ErrorHandlingNode"].result == {"input": "hello", "result": "Processed hello",
                                               "error": None}
    assert out["ErrorHandlingNode (fail)"].result == {"input": "fail", "result": None,
                                                      "error": "Invalid input"}
    assert "[log] [ErrorHandlingNode] Unexpected error\n  [log]   error: 'Invalid input'" in printed

    assert out["RetryNode"].result == {"input": "flaky", "result": "Success: flaky", "attempts": 3}
    assert out["RetryNode (down)"].result == {"input": "down", "result": None,
                                              "error": "Random failure", "attempts": 3}
    assert "Attempt 2 failed: Random failure" in printed
    assert out["retry_policy + error_handler"].result == {"input": "flaky", "result": "Success: flaky"}
    assert out["retry_policy + error_handler (down)"].result == {
        "input": "down", "result": None, "error": "Random failure", "attempts": 3}
    for key, backoff in (("RetryNode", 1.0), ("retry_policy + error_handler", 1.0)):
        attempts = [m["t"] for m in out[key].marks if m["what"] == "attempt at flaky"]
        assert len(attempts) == 6  # three attempts, each a start and an end
        ends, starts = attempts[1::2], attempts[2::2]
        for n, (end, start) in enumerate(zip(ends, starts, strict=False)):  # waited 1 s, then 2 s
            assert start - end >= backoff * 2 ** n * float(SCALE) - 1e-3

    assert out["CancellableNode (cancel_requested)"].result == {
        "cancel_requested": True, "result": None, "cancelled": True}
    assert out["astream_cancelled"] and out["run_status"] == "cancelled"
    assert printed.count("[log] [CancellableNode] Task was cancelled") == 2
    assert printed.count("[log] [CancellableNode] Cleaning up...") == 2


async def test_integration(seeds: dict[str, ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    out = await seeds["async_patterns_integration"].main()
    printed = capsys.readouterr().out
    assert out["HTTPNode"].result["data"] == {"items": [1, 2, 3]}
    assert out["HTTPNode"].result["result"] == {"answer": "results for 'async nodes'"}
    assert out["RobustHTTPNode"].result["error"] is None
    missing = "404, message='Not Found', url='https://api.example.com/missing'"
    assert out["RobustHTTPNode (404)"].result["error"] == missing
    assert f"HTTP error: {missing}" in printed
    assert out["RobustHTTPNode (unknown host)"].result["error"].startswith("Cannot connect to host")
    assert out["DatabaseNode"].result["users"] == [{"id": 1, "name": "Alice"}]
    assert out["PooledDatabaseNode (second run: reuses it)"].result["users"] == [{"id": 2, "name": "Bob"}]
    assert (out["pool_opened"], out["pool_reopened"]) == (10, 0)
    assert out["FileNode"].result["processed"] is True and out["file_output"] == "ASYNC FILE I/O"
    assert [r["length"] for r in out["MultiFileNode"].result["results"]] == [1, 2, 3]
    expected = {"input": "x", "async_result": "Async: x", "sync_result": "Sync: x"}
    assert out["MixedNode"].result == expected
    mixed = out["sync node beside an async node"]
    assert mixed.result == expected
    assert all_started_before_any_ended(mixed.spans(), "sync node", "async node")
    assert out["BatchNode"].result["results"] == [i * 2 for i in range(25)]
    assert seeds["standins"].max_in_flight(out["BatchNode"].marks) == 10
    assert out["CachedNode (first call)"].result == {"query": "q", "result": "expensive answer for q"}
    assert out["CachedNode (cached)"].result == out["CachedNode (first call)"].result
    assert out["CachedNode (first call)"].marks and not out["CachedNode (cached)"].marks


# -- the document's own "Testing Async Nodes" (seed 001, section 11), made to run --------------
# As written, the document's tests do not match its nodes: `test_with_mock` replaces
# `fetch_data` by a function taking no argument and reads `result["data"]`, `test_timeout`
# passes a dict to a node that reads `state.input`, and `test_concurrent` expects `results`
# from ConcurrentNode (which returns user/weather/news) and measures elapsed time.


async def test_async_node(seeds: dict[str, ModuleType]) -> None:
    basics = seeds["async_patterns_basics"]
    node = basics.MyAsyncNode()
    result = await node(basics.State(query="test"))
    assert result == {"result": "Data for test"}


async def test_with_mock(seeds: dict[str, ModuleType]) -> None:
    basics = seeds["async_patterns_basics"]
    node = basics.MyAsyncNode()

    async def mock_fetch(query: str) -> str:
        return "mocked data"

    node.fetch_data = mock_fetch  # type: ignore[method-assign]
    result = await node(basics.State(query="test"))
    assert result["result"] == "mocked data"


async def test_timeout(seeds: dict[str, ModuleType]) -> None:
    errors = seeds["async_patterns_errors"]
    node = errors.TimeoutNode()
    result = await node(errors.State(input="slow"))
    assert result["timed_out"] is True


async def test_concurrent(seeds: dict[str, ModuleType]) -> None:
    basics = seeds["async_patterns_basics"]
    node = basics.ConcurrentNode()
    events: list[tuple[str, str]] = []

    def recorded(name: str, value: Any) -> Any:
        async def call(_arg: Any) -> Any:
            events.append(("start", name))
            await asyncio.sleep(0.01)
            events.append(("end", name))
            return value
        return call

    node.fetch_user = recorded("user", {"id": 1})  # type: ignore[method-assign]
    node.fetch_weather = recorded("weather", {"temp": 72})  # type: ignore[method-assign]
    node.fetch_news = recorded("news", {"articles": []})  # type: ignore[method-assign]
    result = await node(basics.UserState(user_id=1, location="Paris", topic="async"))
    assert len(result) == 3
    assert [event for event, _ in events] == ["start"] * 3 + ["end"] * 3  # concurrent


# -- seed 002 (Functional API) and seed 003 (PocketFlow) ---------------------------------------


async def test_functional_screening(seeds: dict[str, ModuleType],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    result = await seeds["screening_functional"].main()
    assert result == "HIRED - Background: Clear, Refs: Positive"
    printed = lines_of(capsys.readouterr().out)
    run = printed[printed.index("🎯 Functional API screening for Clara Smith"):]
    assert run[1:3] == ["📄 Parsing resume for Clara Smith (2s)...", "   ✅ Resume parsed"]
    # both checks start before either completes: the two task jobs ran at the same time
    assert set(run[3:5]) == {"🔍 Background check (3s)...", "📞 Reference check (2s)..."}
    assert set(run[5:7]) == {"   ✅ References complete", "   ✅ Background complete"}
    assert run[7] == "📋 Final decision for Clara Smith..."
    assert run[9].startswith("⏱️ Functional Parallel Total Time: ")
    assert run[9].endswith(" seconds (Expected ~5s)")


async def test_pocketflow_recipes(seeds: dict[str, ModuleType],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    final = await seeds["pocketflow_recipes"].main()
    assert final == {"user_ingredient": "chicken", "recipes": ["Pizza", "Pasta", "Salad"],
                     "ingredient": "chicken"}
    assert lines_of(capsys.readouterr().out) == [
        "Starting async recipe flow...",
        "🌐 Fetching recipes for 'chicken'... (simulating 2 sec delay)",
        "✅ Recipes for 'chicken' fetched!",
        "Stored recipes for chicken.",
        "💡 Suggestion: Pizza",
        "",
        "Async recipe flow finished.",
    ]


# -- on a cluster of processes ------------------------------------------------------------------

CLUSTER_RUNS = [
    ("async_node", {"query": "LangGraph async nodes"}),
    ("screening_lab", {"name": "Bob Lee"}),
    ("async_patterns_basics", {"user_id": 7, "location": "Paris", "topic": "async"}),
    ("async_patterns_streaming", {"query": "q"}),
    ("async_patterns_concurrency", {"items": list(range(20))}),
    ("screening_functional", "Clara Smith"),
    ("pocketflow_recipes", {"user_ingredient": "chicken"}),
]


@contextlib.contextmanager
def seed_cluster(arq_processes: Any, name: str, specs: list[str], url: str,
                 scale: str = SCALE) -> Iterator[None]:
    """An orchestrator and two workers (separate processes, at `scale`) serving `specs`."""
    from tests.test_cluster import STARTUP_LIMIT, wait_registered

    env = {"ARQGRAPH_SEED_SCALE": scale}
    flags = ("--redis", url)
    orchestrator = arq_processes.start(f"{name}-orchestrator", "orchestrator", *specs, *flags,
                                       env=env)
    workers = [arq_processes.start(f"{name}-worker{i}", "worker", *specs, *flags,
                                   "--poll-delay", "0.05", env=env) for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_for_output("worker serving graphs", STARTUP_LIMIT)
        wait_registered(url, [g.name for g in load_all(specs)])
        yield
    finally:
        for proc in (orchestrator, *workers):
            proc.kill()


async def test_seed_examples_run_on_a_cluster_of_processes(
    seeds: dict[str, ModuleType], redis_server: Any, arq_processes: Any
) -> None:
    """Each module's `graph`, served by an orchestrator and two workers, ends as it does
    embedded."""
    from arqgraph.client import Client
    from tests.test_cluster import within

    url = f"redis://127.0.0.1:{redis_server.port}/3"
    with seed_cluster(arq_processes, "seeds", [f"examples.seeds.{n}:graph" for n in MODULES], url):
        client = await within(Client.connect(url), 10)
        try:
            for name, data in CLUSTER_RUNS:
                graph = seeds[name].graph
                embedded = await within(graph.ainvoke(data))
                handle = await within(client.submit(graph.name, data))
                assert await within(handle.result()) == embedded, name
        finally:
            await client.close()


async def test_every_seed_module_runs_on_a_cluster_of_processes(
    seeds: dict[str, ModuleType], redis_server: Any, arq_processes: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Every module's main(), its graphs run by an orchestrator and two workers (serving every
    graph of every module), ends with the same results as embedded.
    (Results that hang on a stand-in's state in one process, like a flaky service's call count,
    are not compared; nor, at this scale, the TIMING_RESULTS: see the next test. The few
    demonstrations that call `ainvoke`/`invoke` themselves, rather than through
    `standins.run_traced`, stay embedded.)"""
    url = f"redis://127.0.0.1:{redis_server.port}/5"
    # fresh node objects: some hold asyncio primitives bound to the loop of the test that ran
    # them before (a worker process has one loop for good)
    seeds = {name: importlib.reload(module) for name, module in seeds.items()}
    found: dict[int, str] = {}  # one spec per graph (a module may name a graph twice)
    for name in MODULES:
        for attr, value in vars(seeds[name]).items():
            if hasattr(value, "fingerprint") and not attr.startswith("_"):
                found.setdefault(id(value), f"examples.seeds.{name}:{attr}")
    process_local = {"RetryNode", "retry_node", "retry_option", "RobustHTTPNode",
                     "retry_policy + error_handler"}
    with seed_cluster(arq_processes, "seeds-all", list(found.values()), url):
        for name in MODULES:
            embedded = _results(await seeds[name].main())
            monkeypatch.setenv("ARQGRAPH_SEED_CLUSTER", url)
            try:
                remote = _results(await seeds[name].main())
            finally:
                monkeypatch.delenv("ARQGRAPH_SEED_CLUSTER")
            for key in embedded.keys() - process_local - TIMING_RESULTS:
                assert _plain(remote.get(key)) == _plain(embedded[key]), f"{name}: {key}"
        capsys.readouterr()


async def test_timing_patterns_run_on_a_cluster_of_processes(
    seeds: dict[str, ModuleType], redis_server: Any, arq_processes: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TIMING_RESULTS' graphs on an orchestrator and two workers at TIMING_SCALE: the same
    results as test_wait_patterns and test_timeout_patterns check embedded."""
    url = f"redis://127.0.0.1:{redis_server.port}/6"
    concurrency, errors = seeds["async_patterns_concurrency"], seeds["async_patterns_errors"]
    specs = [f"{concurrency.__name__}:wait_graph", f"{concurrency.__name__}:wait_timeout_graph",
             f"{errors.__name__}:multi_timeout_graph", f"{errors.__name__}:timeout_handling_graph"]
    with seed_cluster(arq_processes, "seeds-timing", specs, url, scale=TIMING_SCALE):
        monkeypatch.setenv("ARQGRAPH_SEED_CLUSTER", url)
        await check_wait_patterns(concurrency, seeds["standins"].run_traced)
        await check_timeout_patterns(errors, seeds["standins"].run_traced)


def _results(out: Any) -> dict[str, Any]:
    """The final states a main() reports (its traces' results, or the values themselves)."""
    if not isinstance(out, dict):
        return {"result": out}
    return {k: getattr(v, "result", v) for k, v in out.items()
            if hasattr(v, "result") and not k.endswith("_seconds")}


def _plain(value: Any) -> Any:
    """A result without what differs from run to run: messages' ids, temp file names."""
    if isinstance(value, dict):  # `completed`: taken from asyncio.wait's set, in any order
        return {k: sorted(v) if k == "completed" else _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "content") and hasattr(value, "type"):  # a langchain-core message
        return (value.type, value.content)
    if isinstance(value, str) and value.startswith(tempfile.gettempdir()):
        return "<a temp file>"  # each run writes its files in a temp dir of its own
    return value
