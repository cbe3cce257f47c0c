"""Shared fixtures: a private redis-server, and arqgraph processes started as real OS processes.

`redis_server` (session scope) starts its own `redis-server` on a free port of 127.0.0.1 with
persistence off and its own temp dir; it never touches a Redis on the default port 6379. When
the binary is missing the tests that need it are skipped, or fail when CI=true.

`redis_servers` (function scope) starts dedicated redis-servers for one test, durable (AOF) if
asked, which the test may kill -9 and restart on the same port and dir; all are stopped at the end.

`arq_processes` (session scope) starts `python -m arqgraph.cli ...` from the repository root
with stdout/stderr written to files; everything it started is stopped at the end (SIGTERM, then
SIGKILL). `own_processes` is the same for the processes of a single test, stopped when it ends.
When a test fails, the tails of those log files are attached to its report.

`protocol_redis` (function scope, parametrized "memory" and "lua") is a factory of fresh
in-process Redis clients: the in-memory store of the embedded default (`MemoryRedis`, whose
scripts are Python twins of the Lua ones) and fakeredis running the protocol's real Lua. The unit
tests of the Redis layer take it, so each runs on both and holds the twins to the Lua.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from arq.connections import ArqRedis

from bench.cluster import DEFAULT_REDIS_PORT, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
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


EPHEMERAL_ARGS = ("--save", "", "--appendonly", "no")  # nothing on disk: the shared server
DURABLE_ARGS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str] = field(default_factory=list)
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what is not in the AOF yet is lost."""
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port_outside_ephemeral_range() -> int:
    """A free port that no outgoing connection can take as its local port.

    While a server is down, clients keep connecting to its port; if that port lies in the
    ephemeral range, a connect can pick it as its own local port and connect to itself (TCP
    simultaneous open), which then also keeps the server from binding it again on restart.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low <= 12000:
        return free_port()
    for _ in range(200):
        port = random.randint(10000, low - 1)
        if port == DEFAULT_REDIS_PORT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_port()


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


def _start_redis(
    binary: str, workdir: Path, *, port: int | None = None,
    args: Sequence[str] = EPHEMERAL_ARGS, pick_port: Callable[[], int] = free_port,
) -> RedisServer:
    """Start redis-server on `port`, or on a free port (another one if that one was taken
    meanwhile); it answers PING when this returns."""
    last_log = ""
    for _ in range(1 if port is not None else 5):
        chosen = port if port is not None else pick_port()
        log = workdir / f"redis-{chosen}.log"
        argv = [binary, "--port", str(chosen), "--bind", "127.0.0.1", *args,
                "--dir", str(workdir), "--daemonize", "no", "--databases", "64",
                "--loglevel", "notice"]
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            if _pings(chosen):
                return RedisServer(chosen, process, log, argv, workdir)
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
        last_log = log.read_text(errors="replace")[-LOG_TAIL:]
    raise RuntimeError(f"redis-server did not come up; last log:\n{last_log}")


def missing(message: str) -> NoReturn:
    """Skip a test for want of a tool; in CI (CI=true), fail it: CI must not skip it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed (apt-get install redis-server); it is needed "
                "for the integration tests with real processes")
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = _start_redis(_redis_binary(), tmp_path_factory.mktemp("redis"))
    assert server.port != DEFAULT_REDIS_PORT
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RedisServers:
    """Dedicated redis-servers of one test, each in a temp dir of its own."""

    binary: str
    tmp_path_factory: pytest.TempPathFactory
    started: list[RedisServer] = field(default_factory=list)

    def start(self, *, durable: bool = False) -> RedisServer:
        """A new server on a free port; `durable`: every write is in the AOF before the reply."""
        server = _start_redis(self.binary, self.tmp_path_factory.mktemp("redis-own"),
                              args=DURABLE_ARGS if durable else EPHEMERAL_ARGS,
                              pick_port=_free_port_outside_ephemeral_range)
        self.started.append(server)
        return server

    def restart(self, server: RedisServer) -> RedisServer:
        """Start `server` again, same port, dir and options (it reloads its AOF)."""
        assert not server.alive(), "stop or kill the server first"
        assert server.workdir is not None
        args = server.argv[server.argv.index("--bind") + 2:server.argv.index("--dir")]
        again = _start_redis(self.binary, server.workdir, port=server.port, args=args)
        self.started.append(again)
        return again

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServers]:
    servers = RedisServers(_redis_binary(), tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop_all()


# -- in-process Redis: the in-memory store and fakeredis with the real Lua --------------------


def _memory_redis() -> ArqRedis:
    from arqgraph.embedded import in_memory_redis

    return in_memory_redis()


def _lua_redis() -> ArqRedis:
    """fakeredis with Lua, speaking arq's msgpack job format (the embedded default until the
    in-memory store replaced it): the protocol's scripts run as the Lua they are."""
    import fakeredis
    from fakeredis.aioredis import FakeAsyncRedisConnection
    from redis.asyncio import ConnectionPool

    from arqgraph.storage.connection import job_deserializer, job_serializer

    server = fakeredis.FakeServer()
    pool = ConnectionPool(connection_class=FakeAsyncRedisConnection, server=server)
    return ArqRedis(connection_pool=pool, job_serializer=job_serializer,
                    job_deserializer=job_deserializer)


PROTOCOL_REDIS: dict[str, Callable[[], ArqRedis]] = {"memory": _memory_redis, "lua": _lua_redis}


@pytest.fixture(params=list(PROTOCOL_REDIS), ids=list(PROTOCOL_REDIS))
def protocol_redis(request: pytest.FixtureRequest) -> Callable[[], ArqRedis]:
    """A factory of Redis clients, each over a fresh store of its own: the in-memory store
    ("memory") or fakeredis running the real Lua scripts ("lua")."""
    return PROTOCOL_REDIS[request.param]


# -- arqgraph processes ---------------------------------------------------------------------


@dataclass
class ArqProcess:
    """One `python -m arqgraph.cli ...` process and its log files."""

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

    def start(self, name: str, *args: str, env: dict[str, str] | None = None,
              module: str = "arqgraph.cli", cwd: Path = REPO_ROOT) -> ArqProcess:
        """`python -m module args...` (by default `arqgraph`'s CLI), logged to files named
        after `name`, run in `cwd` (the repository root unless told)."""
        count = sum(1 for p in self.started if p.name == name)
        label = name if count == 0 else f"{name}-{count}"
        stdout = self.logdir / f"{label}.stdout.log"
        stderr = self.logdir / f"{label}.stderr.log"
        # The caller's ARQGRAPH_* settings must not leak in: the flags given here decide.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARQGRAPH_")}
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack (see hung())
        full_env.update(env or {})
        argv = [sys.executable, "-m", module, *args]
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
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


@pytest.fixture
def own_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArqProcesses]:
    """`arq_processes` for the processes of one test: all stopped when the test ends."""
    registry = ArqProcesses(tmp_path_factory.mktemp("arqgraph-own-logs"))
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
