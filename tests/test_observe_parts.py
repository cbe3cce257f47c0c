"""The parts of arqgraph.observe on their own, in this process: the log formats and context,
the counting hooks on a private registry, traces staying off without an SDK, the flags, and the
job message's trace field at the wire boundary. (tests/test_observe.py checks them on a real
cluster; this file, the embedded default's traces.)"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator

import pydantic
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from arqgraph import observe, protocol
from arqgraph.cli import build_parser, main
from arqgraph.observe import Attempt, logs, traces
from arqgraph.observe.logs import ObserveSettingError
from arqgraph.observe.metrics import Metrics, PrometheusHooks
from arqgraph.observe.metrics import serve as serve_metrics
from arqgraph.orchestrator.launcher import pool_commands
from arqgraph.settings import Settings
from tests.conftest import REPO_ROOT
from tests.graphs.observed_graphs import observed


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def attempt(**fields: object) -> Attempt:
    values: dict[str, object] = {"graph": "g", "node": "n", "attempt": 2, "run_id": "r1",
                                 "thread_id": "t1", "step": 3}
    return Attempt(**{**values, **fields})  # type: ignore[arg-type]


def test_json_lines_carry_the_role_and_the_attempt_context(
        restored_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("debug", "json", role="worker")
    log = logging.getLogger("tests.parts")
    log.debug("outside")
    with observe.node_attempt(attempt()):
        log.info("inside %s", "the node")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    outside, inside, failed = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert outside["level"] == "DEBUG" and outside["role"] == "worker"
    assert "run_id" not in outside
    assert inside["message"] == "inside the node"
    assert {k: inside[k] for k in logs.CONTEXT_FIELDS} == {
        "run_id": "r1", "thread_id": "t1", "graph": "g", "node": "n", "attempt": 2}
    assert "ValueError: boom" in failed["exception"]


async def test_the_context_follows_the_tasks_a_node_starts(
        restored_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "text", role="worker")
    log = logging.getLogger("tests.parts")

    async def node() -> None:
        log.info("from a task of the node")

    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(run_id)s %(message)s"))
    with observe.node_attempt(attempt(run_id="r9")):
        await asyncio.create_task(node())
    assert capsys.readouterr().err.splitlines() == ["r9 from a task of the node"]


def test_bad_levels_and_formats_are_named(restored_logging: None) -> None:
    with pytest.raises(ObserveSettingError, match="'LOUD' is not a logging level"):
        logs.configure("loud")
    with pytest.raises(ObserveSettingError, match="'xml' is neither"):
        logs.configure("INFO", "xml")  # type: ignore[arg-type]


def test_the_flags_parse_and_refuse_what_they_do_not_know(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(Settings(metrics_port=9100, log_format="json"))
    args = parser.parse_args(["worker", "m:g", "--log-level", "debug"])
    assert (args.metrics_port, args.log_level, args.log_format) == (9100, "DEBUG", "json")
    assert build_parser(Settings()).parse_args(["orchestrator", "m:g"]).metrics_port is None
    with pytest.raises(SystemExit):
        parser.parse_args(["orchestrator", "m:g", "--log-format", "xml"])
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_up_gives_each_process_a_metrics_port_of_its_own() -> None:
    args = build_parser(Settings()).parse_args(
        ["up", "m:g", "--workers", "2", "--metrics-port", "9100"])
    ports = [c[c.index("--metrics-port") + 1] for c in pool_commands(args)]
    assert ports == ["9100", "9101", "9102"]
    default = build_parser(Settings()).parse_args(["up", "m:g", "--workers", "1"])
    assert [c[c.index("--metrics-port") + 1] for c in pool_commands(default)] == ["9400", "9401"]
    off = build_parser(Settings()).parse_args(["up", "m:g", "--metrics-port", "0"])
    assert not any("--metrics-port" in c for c in pool_commands(off))


def test_bad_settings_end_the_command_with_a_message(
        restored_logging: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ARQGRAPH_LOG_LEVEL", "loud")  # (argparse checks flags, not defaults)
    assert main(["orchestrator", "tests.graphs.one_node:nothing"]) == 2
    assert "'LOUD' is not a logging level" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ObserveSettingError, match=f"--metrics-port {port}: cannot serve"):
            serve_metrics(port, "127.0.0.1")
    with pytest.raises(ObserveSettingError, match="not a TCP port"):
        serve_metrics(70000)


def test_counting_hooks_label_by_graph_node_and_outcome() -> None:
    registry = CollectorRegistry()
    hooks = PrometheusHooks(Metrics(registry))
    hooks.attempt_started(attempt(queued=0.5))
    hooks.attempt_ended(attempt(outcome="timeout", retried=True), 1.5)
    hooks.attempt_ended(attempt(), 0.1)
    hooks.run_ended("g", "done", 2.0)
    hooks.run_ended("g", "failed", None)
    hooks.job_refused("g", "TaskLostError")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    node = {"graph": "g", "node": "n"}
    assert value("arqgraph_node_attempts_total", **node, outcome="timeout") == 1
    assert value("arqgraph_node_attempts_total", **node, outcome="done") == 1
    assert value("arqgraph_node_retries_total", **node) == 1
    assert value("arqgraph_node_duration_seconds_sum", **node) == pytest.approx(1.6)
    assert value("arqgraph_node_queue_wait_seconds_count", **node) == 1
    assert value("arqgraph_runs_ended_total", graph="g", status="failed") == 1
    assert value("arqgraph_run_duration_seconds_count", graph="g", status="done") == 1
    assert value("arqgraph_run_duration_seconds_count", graph="g", status="failed") is None
    assert value("arqgraph_jobs_refused_total", graph="g", reason="TaskLostError") == 1


def test_without_an_sdk_traces_cost_nothing_and_carry_nothing() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert traces.run_trace("g", "r1") == ""
    assert traces.step_trace(parent, "g", "r1", 0, 2) == parent  # (nodes hang from the run)
    with traces.node_span(attempt(), parent):
        pass


def test_a_job_s_trace_is_validated_at_the_boundary() -> None:
    job = {"run_id": protocol.new_run_id("t"), "checkpoint_id": "c", "step": 0, "task_id": "x",
           "graph": "g", "fingerprint": "f"}
    assert protocol.TaskJob.model_validate(job).trace == ""  # (jobs enqueued without one)
    with pytest.raises(pydantic.ValidationError, match="trace"):
        protocol.TaskJob.model_validate({**job, "trace": 7})


async def test_the_embedded_default_traces_a_run_too(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert (await observed.ainvoke({"log": []}))["log"] == ["a", "b", "c", "d"]
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.name == "run observed"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    steps = {s.context.span_id: s for s in spans if s.name.startswith("superstep ")}
    nodes = [s for s in spans if s.name.startswith("node ")]
    assert sorted(n.name for n in nodes) == ["node a", "node b", "node b", "node c", "node d"]
    assert all(n.parent is not None and n.parent.span_id in steps for n in nodes)


def test_everything_works_without_opentelemetry_installed() -> None:
    """A fresh interpreter where `import opentelemetry` fails, as without the `otel` extra."""
    program = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from arqgraph.observe import traces\n"
        "assert traces.trace is None and traces.run_trace('g', 'r') == ''\n"
        "from tests.graphs.observed_graphs import observed\n"
        "print(observed.invoke({'log': []})['log'])\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a', 'b', 'c', 'd']"
