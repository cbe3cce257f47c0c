"""Operating a pool on a real cluster (a real redis-server, orchestrator and worker processes):
readiness instead of races, the admin commands (`runs`, `status`, `cancel`, `resume`, `state`,
`workers`, `graphs`, `health`), and errors a user causes shown as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from arqgraph.cli import main
from arqgraph.client import Client
from arqgraph.errors import UnknownGraphError
from tests.conftest import REPO_ROOT, ArqProcess, ArqProcesses, RedisServer, wait_for
from tests.graphs import ops_graphs
from tests.test_cluster import STARTUP_LIMIT, WORKER_FLAGS, wait_registered

DATABASE = 12  # a database of its own on the session's redis-server
SPECS = ("tests.graphs.ops_graphs:ask", "tests.graphs.ops_graphs:boom",
         "tests.graphs.ops_graphs:held")
LONELY_QUEUE = "arqgraph:ops-lonely"  # no worker listens on it


@dataclass
class Pool:
    url: str
    orchestrator: ArqProcess
    worker: ArqProcess
    lonely: ArqProcess  # the orchestrator of a graph whose queue has no worker


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, arq_processes: ArqProcesses) -> Iterator[Pool]:
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    redis.Redis.from_url(url).flushdb()
    orchestrator = arq_processes.orchestrator(*SPECS, redis=url, name="ops-orchestrator",
                                              extra=("--sweep-interval", "1"))
    worker = arq_processes.worker(*SPECS, redis=url, name="ops-worker", extra=WORKER_FLAGS)
    lonely = arq_processes.orchestrator("tests.graphs.ops_graphs:lonely", redis=url,
                                        name="ops-lonely", extra=("--queue", LONELY_QUEUE))
    wait_registered(url, [ops_graphs.ask.name, ops_graphs.boom.name, ops_graphs.lonely.name])
    yield Pool(url, orchestrator, worker, lonely)
    for proc in (orchestrator, worker, lonely):
        proc.terminate()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`arqgraph ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_workers_graphs_and_health_show_the_live_pool(pool: Pool, capsys) -> None:
    def worker_beats() -> list[dict[str, Any]]:
        return [w for w in cli_json(capsys, "workers", "--redis", pool.url)
                if w["pid"] == pool.worker.pid]

    [worker] = wait_for(worker_beats, STARTUP_LIMIT, "the worker's heartbeat")
    assert worker["queues"] == ["arqgraph:queue"] and worker["concurrency"] == 8
    assert set(worker["graphs"]) == {"ops_ask", "ops_boom", "ops_held"}

    graphs = {g["name"]: g for g in cli_json(capsys, "graphs", "--redis", pool.url)}
    assert graphs["ops_ask"]["fingerprint"] == ops_graphs.ask.fingerprint
    assert graphs["ops_ask"]["workers"] == 1 and not graphs["ops_ask"]["waiting_for_workers"]
    assert len(graphs["ops_ask"]["orchestrators"]) == 1
    assert graphs["ops_lonely"]["queue"] == LONELY_QUEUE
    assert graphs["ops_lonely"]["waiting_for_workers"]

    # The lonely graph's queue has no worker: unhealthy, saying which; and its orchestrator
    # warns in its log.
    code, out, _ = cli(capsys, "health", "--redis", pool.url)
    assert code == 1 and f"no live worker on queue {LONELY_QUEUE!r}" in out
    pool.lonely.wait_for_output("waiting for workers", STARTUP_LIMIT)


def test_a_run_waiting_for_workers_says_so_and_can_be_cancelled(pool: Pool, capsys) -> None:
    import asyncio

    run_id = asyncio.run(submit(pool.url, "ops_lonely", {"name": "x"}))
    status = wait_for(lambda: (s := cli_json(capsys, "status", run_id, "--redis", pool.url))
                      ["step"] is not None and s, STARTUP_LIMIT, "the run's first step")
    assert status["status"] == "running" and status["waiting_for_workers"]
    assert [(t["node"], t["state"]) for t in status["tasks"]] == [("greet", "queued")]
    [running] = cli_json(capsys, "runs", "--graph", "ops_lonely", "--redis", pool.url)
    assert running["finished"] is None and running["duration"] >= 0  # so far
    later = cli_json(capsys, "runs", "--graph", "ops_lonely", "--redis", pool.url)[0]
    assert later["duration"] >= running["duration"]  # it grows while the run goes on
    code, out, _ = cli(capsys, "status", run_id, "--redis", pool.url)
    assert "running (waiting for workers)" in out

    assert cli_json(capsys, "cancel", run_id, "--redis", pool.url)["status"] == "cancelling"
    wait_for(lambda: cli_json(capsys, "status", run_id, "--redis", pool.url)["status"]
             == "cancelled", STARTUP_LIMIT, "the run to be cancelled")
    [cancelled] = cli_json(capsys, "runs", "--graph", "ops_lonely", "--redis", pool.url)
    assert cancelled["duration"] == round(cancelled["finished"] - cancelled["created"], 3)
    assert cancelled["duration"] >= later["duration"]  # from submit to the cancel, now fixed


def test_run_interrupt_state_resume_and_runs(pool: Pool, capsys) -> None:
    code, out, err = cli(capsys, "run", "ops_ask", "--redis", pool.url, "--thread-id", "t-ops")
    assert code == 0, err
    run_line = err.splitlines()[0]
    assert run_line.startswith("run ") and run_line.endswith(" thread t-ops")
    run_id = run_line.split()[1]
    assert json.loads(err.splitlines()[1]) == {"interrupts": [{"question": "name?"}]}
    assert (f"arqgraph resume t-ops --value '<JSON answer>' --graph ops_ask --redis {pool.url}"
            in err)

    status = cli_json(capsys, "status", run_id, "--redis", pool.url)
    assert status["status"] == "interrupted" and status["step"] == 0
    assert [(t["node"], t["state"]) for t in status["tasks"]] == [("ask_name", "interrupted")]
    assert [i["value"] for i in status["interrupts"]] == [{"question": "name?"}]
    state = cli_json(capsys, "state", "t-ops", "--redis", pool.url)
    assert state["next"] == ["ask_name"] and state["interrupts"][0]["value"] == {
        "question": "name?"}

    code, out, err = cli(capsys, "resume", "t-ops", "--value", '"Ada"', "--graph", "ops_ask",
                         "--redis", pool.url)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1]) == {"name": "Ada", "log": ["hello Ada"]}
    history = cli_json(capsys, "state", "t-ops", "--history", "--redis", pool.url)
    assert history[0]["values"] == {"name": "Ada", "log": ["hello Ada"]} and len(history) > 2

    runs = cli_json(capsys, "runs", "--graph", "ops_ask", "--redis", pool.url)
    assert [r["thread_id"] for r in runs[:2]] == ["t-ops", "t-ops"]
    assert [r["status"] for r in runs[:2]] == ["done", "interrupted"]  # newest first
    assert runs[1]["run_id"] == run_id
    assert [r["step"] for r in runs[:2]] == [2, 0]  # the resumed run ended after greet
    assert runs[1]["created"] <= runs[1]["moved"] <= runs[0]["created"] <= runs[0]["moved"]
    for run in runs[:2]:  # from submit to its end: an interrupt ends a run too
        assert run["created"] <= run["finished"]
        assert run["duration"] == round(run["finished"] - run["created"], 3)
    assert runs[1]["finished"] <= runs[0]["created"]  # resumed once the first had ended
    code, out, _ = cli(capsys, "runs", "--graph", "ops_ask", "--redis", pool.url)
    header, first = out.splitlines()[:2]
    assert header.split() == ["run_id", "thread_id", "graph", "status", "step", "started",
                              "duration"]
    assert first.split()[-1].endswith("s")  # e.g. 0.1s
    code, out, _ = cli(capsys, "status", run_id, "--redis", pool.url)
    assert "duration " in out
    assert cli_json(capsys, "runs", "--status", "interrupted", "--graph", "ops_ask",
                    "--redis", pool.url)[0]["run_id"] == run_id


def test_a_failed_run_shows_its_node_and_the_worker_s_traceback(pool: Pool, capsys) -> None:
    code, out, err = cli(capsys, "run", "ops_boom", "--redis", pool.url)
    assert code == 1
    assert "failed in node 'explode': ValueError: the boom node exploded" in err
    assert "Traceback" in err and "in explode" in err  # the worker's, not this process's
    run_id = err.splitlines()[0].split()[1]
    error = cli_json(capsys, "status", run_id, "--redis", pool.url)["error"]
    assert error["node"] == "explode" and "in explode" in error["traceback"]


async def submit(url: str, graph: str, data: dict[str, Any]) -> str:
    client = await Client.connect(url)
    try:
        return (await client.submit(graph, data)).run_id
    finally:
        await client.close()


def test_status_shows_a_running_task_s_worker_and_since_when(
    pool: Pool, capsys, tmp_path
) -> None:
    import asyncio

    release = tmp_path / "release"
    run_id = asyncio.run(submit(pool.url, "ops_held", {"release": str(release)}))

    def running() -> dict[str, Any] | None:
        tasks = cli_json(capsys, "status", run_id, "--redis", pool.url)["tasks"]
        return tasks[0] if tasks and tasks[0]["worker"] else None

    task = wait_for(running, STARTUP_LIMIT, "the held task on its worker's heartbeat")
    assert task["node"] == "hold" and task["state"] == "running" and task["attempt"] == 1
    assert f"-{pool.worker.pid}-" in task["worker"] and task["since"] > 0
    code, out, _ = cli(capsys, "status", run_id, "--redis", pool.url)
    assert f"running, attempt 1 on {task['worker']} since" in out
    release.touch()
    wait_for(lambda: cli_json(capsys, "status", run_id, "--redis", pool.url)["status"]
             == "done", STARTUP_LIMIT, "the held run to finish")


async def test_submit_waits_for_registration_then_names_the_registered_graphs(
    pool: Pool,
) -> None:
    client = await Client.connect(pool.url, ready_timeout=0.3)
    try:
        with pytest.raises(UnknownGraphError, match="'nope'.*waited 0.3s.*ops_ask, ops_boom, ops_held"):
            await client.submit("nope", {})
    finally:
        await client.close()


def test_an_orchestrator_serving_a_graph_on_another_queue_is_refused(
    pool: Pool, arq_processes: ArqProcesses
) -> None:
    other = arq_processes.orchestrator("tests.graphs.ops_graphs:ask", redis=pool.url,
                                       name="ops-conflict", extra=("--queue", "arqgraph:other"))
    assert other.wait_exit(STARTUP_LIMIT) == 2
    assert ("graph 'ops_ask' is served by orchestrator" in other.output()
            and "queue 'arqgraph:queue', not 'arqgraph:other'" in other.output())


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    (("workers", "--redis", "http://host/0"), {}, 2, "is not a Redis URL"),
    (("workers",), {"ARQGRAPH_CONCURRENCY": "many"}, 2, "ARQGRAPH_CONCURRENCY='many'"),
    (("status", "abc.def"), {}, 2, "no run 'abc.def'"),
    (("run", "nope"), {"ARQGRAPH_READY_TIMEOUT": "0.1"}, 2, "no orchestrator serves a graph"),
    (("run", "ops_ask", "--input", "{bad"), {}, 2, "not valid JSON"),
    (("workers", "--redis", "redis://127.0.0.1:1/0"), {"ARQGRAPH_CONNECT_TIMEOUT": "0.5"}, 1,
     "cannot reach Redis"),
])
def test_a_user_s_mistake_is_one_line_and_an_exit_code(
    pool: Pool, capsys, monkeypatch, args, env, code, message
) -> None:
    for key, value in {"ARQGRAPH_REDIS_URL": pool.url, **env}.items():
        monkeypatch.setenv(key, value)
    done, _, err = cli(capsys, *args)
    assert done == code, err
    assert message in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("arqgraph: error: ")] == [
        err.strip()]
    with pytest.raises(Exception, match="."):  # --debug: the error itself, with its traceback
        main([*args, "--debug"])


def test_a_mistake_in_a_real_process_prints_no_traceback(pool: Pool) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
    done = subprocess.run([sys.executable, "-m", "arqgraph.cli", "status", "abc.def", "--redis",
                           pool.url], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          env=clean)
    assert (done.returncode, done.stderr) == (2, "arqgraph: error: no run 'abc.def' (finished "
                                                 "runs expire after their retention)\n")


def test_run_on_a_terminal_shows_a_live_progress_line(pool: Pool, tmp_path) -> None:
    import os
    import pty
    import threading

    pytest.importorskip("rich")
    release = tmp_path / "release"
    main_fd, terminal = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
    clean |= {"TERM": "xterm", "COLUMNS": "120"}  # a terminal as a person has, whatever CI has
    run = subprocess.Popen(
        [sys.executable, "-m", "arqgraph.cli", "run", "ops_held", "--redis", pool.url,
         "--input", json.dumps({"release": str(release)})],
        cwd=REPO_ROOT, stdin=terminal, stdout=terminal, stderr=terminal, env=clean)
    os.close(terminal)
    seen: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: b"step 0: 0/1 tasks done" in b"".join(seen), STARTUP_LIMIT,
                 "the progress line")
        release.touch()
        assert run.wait(timeout=STARTUP_LIMIT) == 0, b"".join(seen).decode(errors="replace")
    finally:
        if run.poll() is None:
            run.kill()
        reader.join(timeout=5)
        os.close(main_fd)
    assert b'"log": ["released"]' in b"".join(seen)
