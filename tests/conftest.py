"""Shared fixtures: a private redis-server, and arqgraph processes started as real OS processes.

`redis_server` (session scope) starts its own `redis-server` on a free port of 127.0.0.1 with
persistence off and its own temp dir; it never touches a Redis on the default port 6379. When
the binary is missing the tests that need it are skipped, or fail when CI=true.

`arq_processes` (session scope) starts `python -m orchestrator.cli ...` from the repository root
with stdout/stderr written to files; everything it started is stopped at the end (SIGTERM, then
SIGKILL). When a test fails, the tails of those log files are attached to its report.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_PORT = 6379
LOG_TAIL = 6000


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# -- redis-server ---------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != DEFAULT_REDIS_PORT:
            return port


def _pings(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5,
                         socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False
    finally:
        client.close()


def _start_redis(binary: str, workdir: Path) -> RedisServer:
    """Start redis-server on a free port; retry on another port if that one was taken meanwhile."""
    last_log = ""
    for _ in range(5):
        port = _free_port()
        log = workdir / f"redis-{port}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                 "--databases", "64", "--loglevel", "notice"],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            if _pings(port):
                return RedisServer(port, process, log)
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
        last_log = log.read_text(errors="replace")[-LOG_TAIL:]
    raise RuntimeError(f"redis-server did not come up after 5 attempts; last log:\n{last_log}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server); it is needed " \
                  "for the integration tests with real processes"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    server = _start_redis(binary, tmp_path_factory.mktemp("redis"))
    assert server.port != DEFAULT_REDIS_PORT
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


# -- arqgraph processes ---------------------------------------------------------------------


@dataclass
class ArqProcess:
    """One `python -m orchestrator.cli ...` process and its log files."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """stdout and stderr so far (arqgraph logs to stderr)."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before logging "
                    f"{text!r}:\n{self.logs()}"
                )
            return text in self.output()

        wait_for(seen, timeout, f"{self.name} to log {text!r}")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait at most `timeout` s for the exit; return the exit code.

        Raises AssertionError (after killing the process) if it did not exit in time.
        """
        self.signal_term()
        return self.wait_exit(timeout)

    def signal_term(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        """Wait at most `timeout` s for the process to exit; kill it and fail if it does not."""
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout}s of SIGTERM:\n{self.logs()}"
            ) from None
        return self.returncode

    def hung(self) -> str:
        """For a process that stopped answering: dump its threads' stacks (SIGABRT), return logs."""
        if self.alive():
            self.process.send_signal(signal.SIGABRT)
            try:
                self.returncode = self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.logs()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.returncode = self.process.wait(timeout=10)

    def logs(self, tail: int = LOG_TAIL) -> str:
        parts = []
        for label, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = path.read_text(errors="replace") if path.exists() else ""
            if len(text) > tail:
                text = "...\n" + text[-tail:]
            state = "running" if self.alive() else f"exit code {self.process.returncode}"
            parts.append(f"--- {self.name} (pid {self.pid}, {state}) {label} [{path}] ---\n{text}")
        return "\n".join(parts)


@dataclass
class ArqProcesses:
    """Starts arqgraph processes from the repo root and stops them all at teardown."""

    logdir: Path
    started: list[ArqProcess] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> ArqProcess:
        count = sum(1 for p in self.started if p.name == name)
        label = name if count == 0 else f"{name}-{count}"
        stdout = self.logdir / f"{label}.stdout.log"
        stderr = self.logdir / f"{label}.stderr.log"
        # The caller's ARQGRAPH_* settings must not leak in: the flags given here decide.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack (see hung())
        full_env.update(env or {})
        argv = [sys.executable, "-m", "orchestrator.cli", *args]
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=full_env,
            )
        proc = ArqProcess(label, argv, process, stdout, stderr)
        self.started.append(proc)
        return proc

    def orchestrator(self, *specs: str, redis: str, extra: tuple[str, ...] = (),
                     name: str = "orchestrator") -> ArqProcess:
        return self.start(name, "orchestrator", *specs, "--redis", redis, *extra)

    def worker(self, *specs: str, redis: str, extra: tuple[str, ...] = (),
               name: str = "worker") -> ArqProcess:
        return self.start(name, "worker", *specs, "--redis", redis, *extra)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.alive():
                proc.process.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.returncode = proc.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.started)


_REGISTRIES: list[ArqProcesses] = []


@pytest.fixture(scope="session")
def arq_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArqProcesses]:
    registry = ArqProcesses(tmp_path_factory.mktemp("arqgraph-logs"))
    _REGISTRIES.append(registry)
    try:
        yield registry
    finally:
        registry.stop_all()
        _REGISTRIES.remove(registry)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the logs of the arqgraph processes started so far to the report."""
    report: pytest.TestReport = yield
    if report.failed and _REGISTRIES:
        text = "\n".join(r.logs() for r in _REGISTRIES if r.started)
        if text:
            report.sections.append(("arqgraph process logs", text))
    return report
