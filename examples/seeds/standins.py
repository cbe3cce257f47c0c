"""Local stand-ins for the outside world of the seed documents, and the timing helpers the
examples share. Nothing here touches the network.

- `sleep(seconds, what)`: the documented latency of a call, times the scale factor
  `ARQGRAPH_SEED_SCALE` (read at each call; default 1.0, the tests use 0.01). With `what`, it
  records when that call started and ended as `custom` stream events (`mark`), the evidence
  that calls overlapped, which `run_traced` collects.
- `scaled(seconds)`: a configured duration (a timeout, a rate limit's interval, a retry's
  backoff), times the same factor. Node options are scaled when their module is imported.
- `aiohttp`, `asyncpg`, `aiofiles`, `FakeLLM`: just enough of those libraries' interfaces for
  the documents' code to run unchanged, against an in-memory web, an in-memory `users` table,
  real files (in a temp dir) and a canned chat model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from arqgraph.config import get_stream_writer

SCALE_ENV = "ARQGRAPH_SEED_SCALE"


def scale() -> float:
    """The factor every sleep is multiplied by (ARQGRAPH_SEED_SCALE, default 1.0)."""
    return float(os.environ.get(SCALE_ENV, "1.0"))


def scaled(seconds: float) -> float:
    return seconds * scale()


def mark(event: str, what: str) -> None:
    """A `custom` stream event saying that `what` started or ended now (no-op outside a node)."""
    get_stream_writer()({"event": event, "what": what, "t": time.time()})


async def sleep(seconds: float, what: str | None = None) -> None:
    """`asyncio.sleep(seconds)`, scaled; with `what`, marked as the start and end of that call."""
    if what is not None:
        mark("start", what)
    await asyncio.sleep(scaled(seconds))
    if what is not None:
        mark("end", what)


def blocking_sleep(seconds: float, what: str | None = None) -> None:
    """`time.sleep(seconds)`, scaled: a blocking call (sync code, run in a thread)."""
    if what is not None:
        mark("start", what)
    time.sleep(scaled(seconds))
    if what is not None:
        mark("end", what)


# -- running a graph and reading its marks ------------------------------------------------------


@dataclass
class Trace:
    """One run: its final state, the marks its nodes made, its other `custom` chunks."""

    result: Any = None
    marks: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[Any] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0

    def spans(self) -> dict[str, tuple[float, float]]:
        return spans(self.marks)


CLUSTER_ENV = "ARQGRAPH_SEED_CLUSTER"


async def run_traced(graph: Any, inputs: Any, config: dict[str, Any] | None = None) -> Trace:
    """Run `graph` like `ainvoke`, also collecting the `custom` events its nodes wrote. With
    ARQGRAPH_SEED_CLUSTER set to a Redis URL, on the cluster serving it instead of embedded."""
    cluster = os.environ.get(CLUSTER_ENV)
    if cluster:
        graph = graph.with_cluster(cluster)
    trace = Trace(started=time.time())
    start = time.perf_counter()
    async for mode, chunk in graph.astream(inputs, config, stream_mode=["values", "custom"]):
        if mode == "values":
            trace.result = chunk
        elif isinstance(chunk, dict) and {"event", "what", "t"} <= chunk.keys():
            trace.marks.append(chunk)
        else:
            trace.chunks.append(chunk)
    trace.elapsed = time.perf_counter() - start
    return trace


def spans(marks: Iterable[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """`what` -> (start, end) for every call that was marked both ways."""
    starts: dict[str, float] = {}
    result: dict[str, tuple[float, float]] = {}
    for m in sorted(marks, key=lambda m: m["t"]):
        if m["event"] == "start":
            starts[m["what"]] = m["t"]
        elif m["event"] == "end" and m["what"] in starts:
            result[m["what"]] = (starts[m["what"]], m["t"])
    return result


def max_in_flight(marks: Iterable[dict[str, Any]]) -> int:
    """The most marked calls that were running at the same moment."""
    # at equal times an end comes before a start: touching is not overlapping
    events = sorted((m["t"], m["event"] == "start") for m in marks if m["event"] in ("start", "end"))
    running = most = 0
    for _, is_start in events:
        running += 1 if is_start else -1
        most = max(most, running)
    return most


def report(label: str, elapsed: float, expected: float, sequential: float | None = None) -> None:
    """Print a timing next to what the document says it should be (both scaled)."""
    extra = "" if sequential is None else f"; one after the other: {scaled(sequential):.2g} s"
    print(f"⏱️  {label}: {elapsed:.2f} s (expected ≈ {scaled(expected):.2g} s{extra})", flush=True)


# -- aiohttp: an in-memory web ------------------------------------------------------------------


class ClientError(Exception):
    """aiohttp.ClientError."""


class ClientResponseError(ClientError):
    def __init__(self, status: int, message: str, url: str) -> None:
        super().__init__(f"{status}, message={message!r}, url={url!r}")
        self.status = status


class ClientConnectorError(ClientError):
    pass


@dataclass(frozen=True)
class ClientTimeout:
    total: float | None = None


@dataclass(frozen=True)
class TCPConnector:
    limit: int = 100


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: Any = None
    latency: float = 0.1  # seconds, scaled


WEB: dict[str, Route] = {
    "https://api.example.com/data": Route(body={"items": [1, 2, 3]}),
    "https://api.example.com/search": Route(body="echo"),  # POST: answers the json it gets
    "https://api.example.com/missing": Route(status=404, body={"error": "not found"}),
    "https://api.example.com/slow": Route(body={"late": True}, latency=60.0),
    **{f"https://api.example.com/page/{i}": Route(body=f"<html>page {i}</html>") for i in range(100)},
}
REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}


class ClientResponse:
    def __init__(self, url: str, status: int, body: Any) -> None:
        self.url, self.status, self._body = url, status, body

    async def json(self) -> Any:
        return self._body

    async def text(self) -> str:
        return self._body if isinstance(self._body, str) else repr(self._body)

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise ClientResponseError(self.status, REASONS.get(self.status, "Error"), self.url)


class _Request:
    """What `session.get(...)` returns: an async context manager giving the response."""

    def __init__(self, session: ClientSession, method: str, url: str, json: Any,
                 timeout: ClientTimeout | None) -> None:
        self.session, self.method, self.url, self.payload = session, method, url, json
        self.timeout = timeout or session.timeout

    async def __aenter__(self) -> ClientResponse:
        route = WEB.get(self.url)
        if route is None:
            raise ClientConnectorError(f"Cannot connect to host {self.url!r} (stand-in web)")
        async with self.session.connection():
            wait = sleep(route.latency, f"{self.method} {self.url}")
            total = self.timeout.total if self.timeout else None
            if total is None:
                await wait
            else:
                await asyncio.wait_for(wait, scaled(total))  # raises asyncio.TimeoutError
        body = route.body
        if body == "echo":
            body = {"answer": f"results for {(self.payload or {}).get('query')!r}"}
        return ClientResponse(self.url, route.status, body)

    async def __aexit__(self, *_: Any) -> None:
        return None


class ClientSession:
    """aiohttp.ClientSession over `WEB`; `connector=TCPConnector(limit=n)` caps how many
    requests are open at once, and `max_open` says how many were."""

    def __init__(self, connector: TCPConnector | None = None,
                 timeout: ClientTimeout | None = None) -> None:
        self.limit = (connector or TCPConnector()).limit
        self.timeout = timeout
        self.closed = False
        self.open = 0
        self.max_open = 0
        self._slots: asyncio.Semaphore | None = None

    def get(self, url: str, *, timeout: ClientTimeout | None = None) -> _Request:
        return _Request(self, "GET", url, None, timeout)

    def post(self, url: str, *, json: Any = None, timeout: ClientTimeout | None = None) -> _Request:
        return _Request(self, "POST", url, json, timeout)

    def connection(self) -> _Connection:
        if self.closed:
            raise RuntimeError("Session is closed")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        return _Connection(self)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()


class _Connection:
    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> None:
        assert self.session._slots is not None
        await self.session._slots.acquire()
        self.session.open += 1
        self.session.max_open = max(self.session.max_open, self.session.open)

    async def __aexit__(self, *_: Any) -> None:
        assert self.session._slots is not None
        self.session.open -= 1
        self.session._slots.release()


aiohttp = SimpleNamespace(
    ClientSession=ClientSession, TCPConnector=TCPConnector, ClientTimeout=ClientTimeout,
    ClientError=ClientError, ClientResponseError=ClientResponseError,
    ClientConnectorError=ClientConnectorError,
)


# -- asyncpg: an in-memory users table ----------------------------------------------------------


USERS = {1: {"id": 1, "name": "Alice"}, 2: {"id": 2, "name": "Bob"}}
DB_LATENCY = 0.05  # seconds per connect and per query, scaled


class Record(dict[str, Any]):
    """asyncpg.Record: `dict(row)` gives the row."""


class Connection:
    opened = 0  # connections ever opened, to show what a pool saves

    async def _open(self) -> Connection:
        await sleep(DB_LATENCY)
        Connection.opened += 1
        self.closed = False
        return self

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        if " ".join(query.split()) != "SELECT * FROM users WHERE id = $1":
            raise NotImplementedError(f"the stand-in database only knows one query, not {query!r}")
        await sleep(DB_LATENCY, f"query {args}")
        row = USERS.get(args[0])
        return [Record(row)] if row else []

    async def close(self) -> None:
        self.closed = True


class Pool:
    def __init__(self, min_size: int, max_size: int) -> None:
        self.min_size, self.max_size = min_size, max_size
        self.idle: list[Connection] = []
        self.size = 0
        self._slots: asyncio.Semaphore | None = None

    async def _fill(self) -> Pool:
        self.idle = list(await asyncio.gather(*[Connection()._open() for _ in range(self.min_size)]))
        self.size = len(self.idle)
        return self

    def acquire(self) -> _PoolAcquire:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_size)
        return _PoolAcquire(self)


class _PoolAcquire:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        assert self.pool._slots is not None
        await self.pool._slots.acquire()
        if self.pool.idle:
            self.conn = self.pool.idle.pop()
        else:
            self.conn = await Connection()._open()
            self.pool.size += 1
        return self.conn

    async def __aexit__(self, *_: Any) -> None:
        assert self.pool._slots is not None and self.conn is not None
        self.pool.idle.append(self.conn)
        self.pool._slots.release()


async def _connect(**_credentials: Any) -> Connection:
    return await Connection()._open()


async def _create_pool(*, min_size: int = 10, max_size: int = 10, **_credentials: Any) -> Pool:
    return await Pool(min_size, max_size)._fill()


asyncpg = SimpleNamespace(connect=_connect, create_pool=_create_pool)


# -- aiofiles: real files, read and written off the event loop ---------------------------------


class _AsyncFile:
    def __init__(self, path: str, mode: str) -> None:
        self.path, self.mode = path, mode
        self.handle: Any = None

    async def __aenter__(self) -> _AsyncFile:
        self.handle = await asyncio.to_thread(open, self.path, self.mode, encoding="utf-8")
        return self

    async def __aexit__(self, *_: Any) -> None:
        await asyncio.to_thread(self.handle.close)

    async def read(self) -> str:
        return str(await asyncio.to_thread(self.handle.read))

    async def write(self, data: str) -> int:
        return int(await asyncio.to_thread(self.handle.write, data))


aiofiles = SimpleNamespace(open=_AsyncFile)


# -- a chat model that streams a canned answer -------------------------------------------------


class FakeLLM:
    """`astream(messages)` yields the answer's tokens as chunks with `.content`, one every
    `per_token` seconds (scaled), each marked as it is produced."""

    def __init__(self, answer: str = "Async nodes await I/O without blocking the loop.",
                 per_token: float = 0.05) -> None:
        self.tokens = [word + " " for word in answer.split(" ")]
        self.tokens[-1] = self.tokens[-1].rstrip()
        self.per_token = per_token

    async def astream(self, messages: Any) -> AsyncIterator[SimpleNamespace]:
        for i, token in enumerate(self.tokens):
            await sleep(self.per_token)
            mark("token", f"token {i}")
            yield SimpleNamespace(content=token)


# -- node logs on stdout -------------------------------------------------------------------------


class _PrintHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)  # to whatever sys.stdout is now


@contextlib.contextmanager
def node_logs_printed() -> Iterator[None]:
    """Print what verbose nodes log (`self.log(...)`: logger `arqgraph.nodes`, DEBUG) while
    inside."""
    logger = logging.getLogger("arqgraph.nodes")
    handler = _PrintHandler()
    handler.setFormatter(logging.Formatter("  [log] %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
