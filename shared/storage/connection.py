"""Connections to Redis: URLs (TLS, users, passwords), retries, and arq's msgpack job format.

Every process connects through `connect`, so every process understands the same URLs, waits out
an unreachable Redis the same way, and never pickles an arq job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

import msgpack
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    OutOfMemoryError,
    ResponseError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from arqgraph.errors import SerializationError
from arqgraph.storage.memory import say_if_unguarded
from arqgraph.storage.packing import pack_with_hiredis

log = logging.getLogger("arqgraph.connection")

RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def lost_redis(exc: BaseException) -> bool:
    """Whether `exc` means Redis cannot serve us for now (worth retrying once it can): the
    connection failed, or Redis is over its maxmemory and refuses writes.

    Besides those: the WatchError redis-py raises instead when the connection fails while a
    transaction watches keys (arq watches keys to pick up and to enqueue jobs).
    """
    return isinstance(exc, (*RETRYABLE, OutOfMemoryError)) or (
        isinstance(exc, WatchError) and isinstance(exc.__context__, RETRYABLE)
    )


def job_serializer(obj: Any) -> bytes:
    """arq jobs and job results as plain msgpack; anything else (arq stores a failed job's
    exception as its result) is written as its repr, never pickled."""
    return msgpack.packb(obj, use_bin_type=True, default=repr)


def job_deserializer(data: bytes) -> Any:
    """Jobs carry only strings and ints: read them as plain msgpack, no extension types, so a
    forged job cannot make a worker import or build anything."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise SerializationError(f"not a valid arqgraph job: {exc}") from None


TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for `url`: `redis://` or `rediss://` (TLS), user and password (percent-
    encoded as in any URL), database as path or `?db=`, and the TLS options of redis-py as query
    parameters, e.g. `rediss://app:secret@redis:6380/0?ssl_ca_certs=/certs/ca.pem`. Through
    Redis Sentinel: `redis+sentinel://[user:pass@]host1:26379,host2:26379/service[/db]` (the
    user and password are the master's; `rediss+sentinel://` for TLS)."""
    parsed = urlparse(url)
    if parsed.scheme in SENTINEL_SCHEMES:
        settings = _sentinel_settings(url)
    elif parsed.scheme in ("redis", "rediss", "unix"):
        settings = RedisSettings.from_dsn(url)
    else:
        raise ValueError(f"{safe_url(url)} is not a Redis URL (redis://, rediss://, unix:// or "
                         "redis+sentinel://)")
    settings.username = unquote(parsed.username) if parsed.username else None
    settings.password = unquote(parsed.password) if parsed.password else None
    for name, values in parse_qs(parsed.query).items():
        if name == "db":
            continue
        if name not in TLS_OPTIONS:
            raise ValueError(f"unknown option {name!r} in Redis URL {safe_url(url)}; known: db, "
                             f"{', '.join(TLS_OPTIONS)}")
        value: Any = values[-1]
        if name == "ssl_check_hostname":
            value = value.lower() in ("1", "true", "yes")
        setattr(settings, name, value)
    return settings


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


def _sentinel_settings(url: str) -> RedisSettings:
    """arq's settings for a `redis+sentinel://` URL (see `redis_settings`)."""
    parsed = urlparse(url)
    hosts: list[tuple[str, int]] = []
    for host in parsed.netloc.rpartition("@")[2].split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        if not name or not port.isdigit():
            raise ValueError(f"{safe_url(url)}: {host!r} is not host:port of a sentinel")
        hosts.append((name, int(port)))
    service, _, db = parsed.path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise ValueError(f"{safe_url(url)}: the path must be /service or /service/db")
    settings = RedisSettings(host=hosts, sentinel=True, sentinel_master=service,  # type: ignore[arg-type]
                             database=int(db or 0), ssl=parsed.scheme.startswith("rediss"))
    if "db" in parse_qs(parsed.query):
        settings.database = int(parse_qs(parsed.query)["db"][-1])
    return settings


def thread_client(redis: Redis) -> Redis:
    """A client of the same Redis as `redis` with connections of its own, for another thread's
    event loop (a connection pool serves one loop): through the same sentinels for Sentinel,
    whose pool is bound to its own; the in-memory store's own way for its keyspace."""
    for_another_loop = getattr(redis, "for_another_loop", None)
    if for_another_loop is not None:
        return for_another_loop()  # type: ignore[no-any-return]
    pool = redis.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        sentinels = [(s.connection_pool.connection_kwargs["host"],
                      s.connection_pool.connection_kwargs["port"]) for s in manager.sentinels]
        kwargs = {k: v for k, v in pool.connection_kwargs.items()
                  if k not in ("connection_pool", "connection_class")}
        return Sentinel(sentinels, sentinel_kwargs=manager.sentinel_kwargs,
                        **kwargs).master_for(pool.service_name)
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class,
                                                **pool.connection_kwargs))


def url_with_password(url: str, password: str) -> str:
    """`url` with `password` put in, percent-encoded (so `/`, `@`, `:` and the rest are safe),
    unless the URL has a password of its own: a password kept apart from the URL (a compose
    variable, a Docker secret) never has to be encoded by hand."""
    parsed = urlparse(url)
    if not password or parsed.password or parsed.scheme == "unix":
        return url
    host = parsed.netloc.rpartition("@")[2]
    netloc = f"{quote(unquote(parsed.username or ''), safe='')}:{quote(password, safe='')}@{host}"
    return parsed._replace(netloc=netloc).geturl()


class Backoff:
    """The waits between tries while Redis is away: doubling from `first` up to `most`, and
    back to `first` after a try that worked (every process rides out outages this way)."""

    def __init__(self, first: float = 0.1, most: float = 2.0) -> None:
        self.first = self.delay = first
        self.most = most

    def reset(self) -> None:
        self.delay = self.first

    async def wait(self, stopping: Callable[[], bool] | None = None) -> None:
        """Sleep the current delay (cut short once `stopping()` is true), then double it."""
        if stopping is None:
            await asyncio.sleep(self.delay)
        else:
            until = asyncio.get_running_loop().time() + self.delay
            while not stopping() and asyncio.get_running_loop().time() < until:
                await asyncio.sleep(min(0.1, self.delay))
        self.delay = min(self.delay * 2, self.most)


async def connect(url: str, *, attempts: int | None = None, timeout: float | None = None,
                  what: str = "arqgraph") -> ArqRedis:
    """Connect to Redis at `url`, retrying with backoff (and saying so) while it is unreachable:
    `attempts` times or for `timeout` seconds at most (None or 0: no bound), then raising
    ConnectionError naming the URL (not its password) and the last error, so a typo or a Redis
    that is down ends in one clear line instead of a silent wait."""
    last: list[BaseException] = []
    try:
        async with asyncio.timeout(timeout or None):
            return await _connect(url, attempts, timeout, what, last)
    except TimeoutError:
        why = f" (last error: {last[-1]})" if last else ""
        raise ConnectionError(f"{what}: Redis at {safe_url(url)} stayed unreachable for "
                              f"{timeout:g} s{why}") from None


async def _connect(url: str, attempts: int | None, timeout: float | None, what: str,
                   last: list[BaseException]) -> ArqRedis:
    settings = redis_settings(url)
    settings.conn_retries = 0
    backoff, attempt = Backoff(0.2, 5.0), 0
    while True:
        attempt += 1
        try:
            pool = await create_pool(
                settings, job_serializer=job_serializer, job_deserializer=job_deserializer
            )
            pack_with_hiredis(pool)
            await pool.ping()
            await say_if_unguarded(pool, what)
            return pool
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError) as exc:
            raise ConnectionRefusedError(f"{what}: Redis at {safe_url(url)} refused us: {exc}") from exc
        except RETRYABLE as exc:
            if attempts is not None and attempt >= attempts:
                raise
            last[:] = [exc]  # (a bounded wait ends in an error saying it: no warning per try)
            log.log(logging.DEBUG if timeout else logging.WARNING,
                    "%s: Redis at %s unreachable (%s); retrying in %.1fs", what, safe_url(url),
                    exc, backoff.delay)
            await backoff.wait()


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
