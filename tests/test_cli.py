"""The `arqgraph` command as a user runs it: real OS processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from arqgraph.cli import main
from arqgraph.client import SyncClient
from bench.cluster import free_port
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "arqgraph.cli"]


def run_embedded(log_jobs: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARQGRAPH_LOG_JOBS"}
    if log_jobs is not None:
        env["ARQGRAPH_LOG_JOBS"] = log_jobs
    return subprocess.run(
        [*CLI, "run", "examples.llm_db:graph", "--input", '{"query": "q"}', "--stream", "updates"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True, env=env,
    )


def test_run_embedded_prints_events_and_final_state():
    done = run_embedded()
    assert "arqgraph.run_task" not in done.stderr  # arq's lines per job: off unless asked for
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {next(iter(e["updates"])) for e in events[:-1]} == {"start", "llm", "db"}
    assert events[-1] == {
        "query": "q", "llm_result": "LLM answer for: q", "db_result": "DB result for: q"
    }


def test_run_embedded_logs_arq_s_lines_per_job_when_asked_for():
    done = run_embedded(log_jobs="1")
    assert done.stderr.count("arqgraph.run_task") == 2 * 3  # start and end of each node


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "examples.nope:graph"], "cannot import 'examples.nope'"),
        (["run", "examples.llm_db:nope"], "has no attribute 'nope'"),
        (["run", "examples.llm_db"], "must look like 'package.module:attribute'"),
        (["run", "examples.llm_db:graph", "--input", "{bad"], "Expecting property name"),
    ],
)
def test_bad_specs_and_input_get_a_clear_error(args, message):
    done = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


def _worker_pids(url: str) -> set[int]:
    import redis

    from arqgraph import protocol

    client = redis.Redis.from_url(url)
    try:
        beats = client.hvals(protocol.WORKERS_KEY)
    finally:
        client.close()
    return {protocol.decode_heartbeat(b).pid for b in beats}  # type: ignore[union-attr]


def _start_up(url: str, data_dir: Path, log: Path, metrics: int = 0
              ) -> subprocess.Popen[bytes]:
    """`arqgraph up` with 2 workers, once it says ready (metrics on port `metrics` and up,
    none with 0: the default 9400 may be another test run's)."""
    readies = log.read_text().count("arqgraph up: ready") if log.exists() else 0
    with open(log, "ab") as out:
        up = subprocess.Popen([*CLI, "up", "examples.llm_db:graph", "--workers", "2", "--redis",
                               url, "--data-dir", str(data_dir), "--metrics-port", str(metrics)],
                              cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: log.read_text().count("arqgraph up: ready") > readies
             or up.poll() is not None, 60, "up to say ready")
    assert up.poll() is None, log.read_text()
    return up


def _stop_up(up: subprocess.Popen[bytes], log: Path) -> None:
    """Ctrl-C: workers, then the orchestrator, then Redis, quietly."""
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=60) == 0, log.read_text()
    text = log.read_text()
    assert "stopping: workers, then the orchestrator, then redis-server" in text
    assert "lost Redis" not in text and "Traceback" not in text and " ERROR " not in text, text


def test_up_supervises_its_pool_and_keeps_threads_across_restarts(tmp_path):
    if not __import__("shutil").which("redis-server"):
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server not installed")
    port = free_port()
    url, log, data = f"redis://127.0.0.1:{port}/0", tmp_path / "up.log", tmp_path / "data"
    thread = {"configurable": {"thread_id": "kept"}}
    metrics = free_port()
    up = _start_up(url, data, log, metrics)
    try:
        # Ready means served: the graph is registered and both workers beat; healthy.
        assert len(_worker_pids(url)) == 2
        assert main(["health", "--redis", url]) == 0
        with SyncClient(url, ready_timeout=0) as client:
            assert client.submit("llm_db", {"query": "up"}, thread).result()["db_result"] == (
                "DB result for: up")
        # `up` turns metrics on: its orchestrator counted the run it started
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as reply:
            assert 'arqgraph_runs_started_total{graph="llm_db"} 1.0' in reply.read().decode()
        # A worker killed -9 is restarted, not a reason to stop the pool.
        first = _worker_pids(url)
        os.kill(min(first), signal.SIGKILL)
        wait_for(lambda: _worker_pids(url) - first, 60, "a restarted worker's heartbeat")
        assert "exited with code -9; restarting it in" in log.read_text()
    finally:
        _stop_up(up, log)
    with socket.socket() as s:  # every child (redis-server too) is gone with it
        assert s.connect_ex(("127.0.0.1", port)) != 0

    up = _start_up(url, data, log)  # the same --data-dir: the thread is still there
    try:
        with SyncClient(url, ready_timeout=0) as client:
            assert client.get_state(thread).values["db_result"] == "DB result for: up"
    finally:
        _stop_up(up, log)


def test_log_jobs_is_a_flag_its_env_var_sets_too():
    from arqgraph.settings import Settings

    assert Settings.from_env({}).log_jobs is False
    assert Settings.from_env({"ARQGRAPH_LOG_JOBS": "1"}).log_jobs is True
    assert Settings.from_env({"ARQGRAPH_LOG_JOBS": "off"}).log_jobs is False
    with pytest.raises(ValueError, match="ARQGRAPH_LOG_JOBS='maybe' is not a valid bool"):
        Settings.from_env({"ARQGRAPH_LOG_JOBS": "maybe"})


def test_without_log_jobs_arq_logs_only_warnings_and_errors():
    import logging

    from arqgraph.cli import log_arq_jobs

    arq_log = logging.getLogger("arq.worker")
    level = arq_log.level
    try:
        log_arq_jobs(False)
        assert not arq_log.isEnabledFor(logging.INFO) and arq_log.isEnabledFor(logging.WARNING)
        log_arq_jobs(True)
        assert arq_log.level == logging.NOTSET  # as the root logger says (INFO for the CLI)
    finally:
        arq_log.setLevel(level)


def test_the_cli_collects_young_objects_less_often_and_keeps_a_higher_or_off_setting():
    import gc

    from arqgraph.cli import GC_YOUNG_THRESHOLD, tune_gc

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(GC_YOUNG_THRESHOLD * 2, 5, 7)
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD * 2, 5, 7)
        gc.set_threshold(0, 10, 10)
        tune_gc()
        assert gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_a_redis_password_set_apart_is_put_into_the_url_encoded(tmp_path):
    from arqgraph.settings import Settings
    from arqgraph.storage.connection import redis_settings

    secret = tmp_path / "secret"
    secret.write_text("p/a@s:s\n")
    for env in ({"ARQGRAPH_REDIS_PASSWORD": "p/a@s:s"},
                {"ARQGRAPH_REDIS_PASSWORD_FILE": str(secret), "ARQGRAPH_REDIS_PASSWORD": "x"}):
        url = Settings.from_env(env).url("redis://app@redis:6379/3")
        parsed = redis_settings(url)
        assert (parsed.username, parsed.password, parsed.host, parsed.database) == (
            "app", "p/a@s:s", "redis", 3)
        assert "p/a" not in url  # encoded: nothing of it splits the URL
    assert Settings.from_env({"ARQGRAPH_REDIS_PASSWORD": "y"}).url("redis://:own@h/0") == (
        "redis://:own@h/0")  # a URL's own password wins


def test_settings_read_a_dotenv_file_under_the_environment_and_the_flags(tmp_path, monkeypatch):
    from arqgraph.cli import build_parser
    from arqgraph.settings import Settings

    for key in [k for k in os.environ if k.startswith("ARQGRAPH_")]:
        monkeypatch.delenv(key)
    (tmp_path / ".env").write_text("ARQGRAPH_CONCURRENCY=7\nARQGRAPH_QUEUE=q-env\n"
                                   "ARQGRAPH_REDIS_URL=redis://dotenv:6379/0\nOTHER=x\n")
    monkeypatch.chdir(tmp_path)
    assert build_parser(Settings.from_env()).parse_args(["run", "g"]).redis == (
        "redis://dotenv:6379/0")  # a URL in .env: `run` submits there instead of embedded
    monkeypatch.setenv("ARQGRAPH_CONCURRENCY", "9")  # the environment over .env
    args = build_parser(Settings.from_env()).parse_args(["worker", "m:g", "--queue", "q-flag"])
    assert (args.concurrency, args.queue, args.redis) == (9, "q-flag", "redis://dotenv:6379/0")
    (tmp_path / ".env").unlink()
    assert build_parser(Settings.from_env()).parse_args(["run", "g"]).redis is None  # embedded


def test_version_and_graph_drawing(capsys):
    from arqgraph import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"arqgraph {__version__}\n"
    assert main(["graph", "tests.graphs.ops_graphs:ask", "--mermaid"]) == 0
    drawing = capsys.readouterr().out
    assert "graph TD" in drawing and "ask_name" in drawing and "greet" in drawing
