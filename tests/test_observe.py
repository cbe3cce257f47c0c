"""Metrics, traces and logs of a real cluster: an orchestrator and a worker, separate OS
processes on a real redis-server, each with an OpenTelemetry SDK exporting its spans to a file
(`tests.traced_process`), its Prometheus metrics on a port of its own, and JSON logs.

The test process is the producer. The metrics test scrapes both processes' `/metrics` after a
few runs and checks the counts; the trace test follows one run from the producer's span through
the orchestrator's and the worker's spans (the trace context crossing processes in the run's
hash and in each job's message); the log test reads the worker's JSON lines. Every wait is on a
condition with a bound.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from arqgraph import protocol
from arqgraph.client import Client
from arqgraph.errors import NodeTimeoutError
from arqgraph.storage.connection import connect
from bench.cluster import free_port
from tests.conftest import ArqProcess, ArqProcesses, RedisServer, wait_for
from tests.graphs.observed_graphs import LOGGED

SPEC = "tests.graphs.observed_graphs:GRAPHS"
QUEUE = "arqgraph:observe"
DB = 9  # a keyspace of this module's own
LIMIT = 30.0


@dataclass
class Pool:
    url: str
    orchestrator: ArqProcess
    worker: ArqProcess
    ports: dict[str, int]  # role -> metrics port
    spans: dict[str, Path]  # role -> the process's spans, a JSON object a line


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, arq_processes: ArqProcesses,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{DB}"
    folder = tmp_path_factory.mktemp("spans")
    spans = {role: folder / f"{role}.jsonl" for role in ("orchestrator", "worker")}
    ports = {"orchestrator": free_port(), "worker": free_port()}
    common = ("--redis", url, "--queue", QUEUE, "--log-format", "json")
    orchestrator = arq_processes.start(
        "observe-orchestrator", "orchestrator", SPEC, *common, "--sweep-interval", "1",
        "--metrics-port", str(ports["orchestrator"]), module="tests.traced_process",
        env={"ARQGRAPH_TEST_SPANS": str(spans["orchestrator"])})
    worker = arq_processes.start(
        "observe-worker", "worker", SPEC, *common, "--poll-delay", "0.05", "--concurrency", "4",
        "--metrics-port", str(ports["worker"]), module="tests.traced_process",
        env={"ARQGRAPH_TEST_SPANS": str(spans["worker"])})
    for process in (orchestrator, worker):
        process.wait_for_output("metrics at http://", LIMIT)
    yield Pool(url, orchestrator, worker, ports, spans)


@pytest.fixture
async def client(pool: Pool) -> AsyncIterator[Client]:
    client = await Client.connect(pool.url)
    try:
        yield client
    finally:
        await client.close()


async def run_observed(client: Client) -> Any:
    handle = await client.submit("observed", {"log": []})
    return await asyncio.wait_for(handle.result(), LIMIT)


# -- metrics ----------------------------------------------------------------------------------


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of the process's /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_metrics_count_the_runs_of_a_real_cluster(pool: Pool, client: Client) -> None:
    def both() -> dict[str, Samples]:
        return {role: scrape(port) for role, port in pool.ports.items()}

    before = both()  # (the module's other tests may have run first: counts are differences)
    for _ in range(3):
        assert (await run_observed(client))["log"] == ["a", "b", "c", "d"]
    with pytest.raises(NodeTimeoutError):
        await asyncio.wait_for((await client.submit("failing", {"log": []})).result(), LIMIT)
    assert await asyncio.wait_for((await client.submit("doubled", [1, 2])).result(), LIMIT) == [2, 4]
    redis = await connect(pool.url, what="test")  # a job that is not a task: a dead letter
    try:
        await redis.enqueue_job(protocol.TASK_FUNCTION, _job_id="not-a-task", _queue_name=QUEUE,
                                garbage=True)
        await redis.rpush(protocol.ready_key(QUEUE), "not-a-task")
    finally:
        await redis.aclose()

    now = before

    def new(role: str, name: str, **labels: str) -> float:
        return total(now[role], name, **labels) - total(before[role], name, **labels)

    def summed(name: str, **labels: str) -> float:  # a run's end is counted by whoever commits it
        return new("orchestrator", name, **labels) + new("worker", name, **labels)

    def counted() -> bool:
        nonlocal now
        now = both()
        return (summed("arqgraph_runs_ended_total", graph="observed", status="done") >= 3
                and summed("arqgraph_runs_ended_total", graph="failing", status="failed") >= 1
                and new("worker", "arqgraph_jobs_refused_total", reason="ValidationError") >= 1)

    wait_for(counted, LIMIT, "the runs' ends and the refused job to be counted")
    assert new("orchestrator", "arqgraph_runs_started_total", graph="observed") == 3
    assert new("orchestrator", "arqgraph_runs_started_total", graph="failing") == 1
    assert summed("arqgraph_runs_ended_total", graph="observed", status="done") == 3
    assert summed("arqgraph_runs_ended_total", graph="failing", status="failed") == 1
    assert summed("arqgraph_run_duration_seconds_count", graph="observed") == 3

    def attempts(node: str, outcome: str) -> float:
        return new("worker", "arqgraph_node_attempts_total", node=node, outcome=outcome)

    assert [attempts(n, "done") for n in "abcd"] == [3, 3, 3, 3]
    assert attempts("b", "failed") == 3  # its first attempt in each run, retried
    assert new("worker", "arqgraph_node_retries_total", graph="observed", node="b") == 3
    assert attempts("slow", "timeout") == 1
    assert attempts("double", "done") == 2  # each @task call is a job, and an attempt
    assert new("worker", "arqgraph_node_retries_total", node="slow") == 0
    assert new("worker", "arqgraph_node_duration_seconds_count", graph="observed", node="b") == 6
    assert new("worker", "arqgraph_node_queue_wait_seconds_count", node="b") == 6
    # the steps' commits: some by the worker (after a step of one task), some by the orchestrator
    assert new("worker", "arqgraph_commit_seconds_count", kind="step") > 0
    assert new("orchestrator", "arqgraph_commit_seconds_count", kind="step") > 0
    assert new("worker", "arqgraph_jobs_refused_total") == 1
    assert new("worker", "arqgraph_worker_heartbeats_total") > 0
    worker = now["worker"]
    assert total(worker, "arqgraph_worker_slots") == 4
    assert ("arqgraph_tasks_in_flight", frozenset()) in worker  # (its value: whatever runs)
    assert ("arqgraph_queue_depth", frozenset({("queue", QUEUE)})) in now["orchestrator"]
    # labels stay bounded: no run id anywhere
    for samples in now.values():
        assert not {k for _, labels in samples for k, _ in labels} & {"run_id", "thread_id"}


# -- traces -----------------------------------------------------------------------------------


@pytest.fixture
def producer_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """An SDK for this (producer) process, its spans kept in memory; the global provider is
    left alone (it can be set once per process), the API asked for this one instead."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return exporter


def hex_id(value: int) -> str:
    return f"0x{value:016x}"


async def test_a_run_is_one_trace_across_producer_orchestrator_and_worker(
    pool: Pool, client: Client, producer_spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer_provider().get_tracer("tests")
    with tracer.start_as_current_span("producer request") as request:
        handle = await client.submit("observed", {"log": []})
    await asyncio.wait_for(handle.result(), LIMIT)

    [root] = [s for s in producer_spans.get_finished_spans() if s.name == "run observed"]
    assert root.parent is None  # a trace of its own...
    assert [link.context.span_id for link in root.links] == [request.get_span_context().span_id]
    trace_id = f"0x{root.context.trace_id:032x}"

    def run_spans(role: str) -> list[dict[str, Any]]:
        path = pool.spans[role]
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        for span in lines:
            span["made_by"] = role
        return [s for s in lines if s["context"]["trace_id"] == trace_id]

    def nodes_done() -> list[dict[str, Any]]:
        spans = run_spans("orchestrator") + run_spans("worker")
        return spans if sum(s["name"].startswith("node ") for s in spans) == 5 else []

    spans = wait_for(nodes_done, LIMIT, "the spans of the run's five node attempts")
    steps = {s["context"]["span_id"]: s for s in spans if s["name"].startswith("superstep ")}
    nodes = [s for s in spans if s["name"].startswith("node ")]
    assert {n["made_by"] for n in nodes} == {"worker"}
    # each superstep's span hangs from the run's root, made in the producer's process
    assert steps and all(s["parent_id"] == hex_id(root.context.span_id) for s in steps.values())
    # each node attempt hangs from the span of its own superstep
    for node in nodes:
        step = steps[node["parent_id"]]
        assert step["attributes"]["arqgraph.step"] == node["attributes"]["arqgraph.step"]
    by_node = sorted((n["attributes"]["arqgraph.node"], n["attributes"]["arqgraph.attempt"],
                      n["attributes"]["arqgraph.outcome"]) for n in nodes)
    assert by_node == [("a", 1, "done"), ("b", 1, "failed"), ("b", 2, "done"), ("c", 1, "done"),
                       ("d", 1, "done")]
    # the steps were committed in both processes: the orchestrator's (a's step, after the
    # input's; d's, after the fan-out) and the worker's (b and c's, after a's step of one task)
    made_by = {steps[n["parent_id"]]["made_by"] for n in nodes}
    assert made_by == {"orchestrator", "worker"}


# -- logs -------------------------------------------------------------------------------------


async def test_json_logs_carry_the_role_and_the_run(pool: Pool, client: Client) -> None:
    handle = await client.submit("observed", {"log": []})
    await asyncio.wait_for(handle.result(), LIMIT)

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in pool.worker.stderr.read_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("run_id") == handle.run_id]

    lines = wait_for(lambda: len(logged()) >= 2 and logged(), LIMIT, "b's two lines")
    first = lines[0]
    assert first["message"] == LOGGED and first["level"] == "WARNING"
    assert first["role"] == "worker" and first["graph"] == "observed" and first["node"] == "b"
    assert [line["attempt"] for line in lines[:2]] == [1, 2]
    assert first["thread_id"] and first["timestamp"].endswith("+00:00")
    every = [json.loads(line) for line in pool.orchestrator.stderr.read_text().splitlines()
             if line.startswith("{")]  # (not a warning Python itself may print)
    assert every and all(line["role"] == "orchestrator" for line in every)
