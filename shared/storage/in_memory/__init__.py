"""The in-memory store of the embedded default: the Redis protocol answered in this process.

`MemoryRedis` is a redis-py client (an `ArqRedis`, so arq's worker and producer use it as they
use a Redis) whose commands never leave the process: each is answered at once from a
`Keyspace` of plain Python objects, and each of the protocol's Lua scripts runs as its Python
twin (`in_memory.scripts`). There is no Lua, no socket and no RESP in between, which is where
an in-process Redis spends its time. Replies go through redis-py's own parsers, so the storage
layer above cannot tell it from a Redis server: the orchestrator, the worker and the client run
unchanged on either, and the conformance tests hold the two to the same answers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import ConnectionPool
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from arqgraph.storage.in_memory import commands
from arqgraph.storage.in_memory.keyspace import Keyspace, Stream, as_float, as_int, entry_id
from arqgraph.storage.in_memory.scripts import SCRIPTS, sha

__all__ = ["Keyspace", "MemoryRedis"]


class MemoryRedis(ArqRedis):
    """A Redis client over a `Keyspace` in this process (a fresh one, or one to share)."""

    def __init__(self, keyspace: Keyspace | None = None, **arq_options: Any) -> None:
        # Each embedded run makes a few clients: the first of each kind is built as redis-py
        # builds a client (its pool is never connected: every command is answered here), and
        # the next ones share its parts, which nothing changes.
        kind = tuple(sorted(arq_options.items()))
        made = _MADE.get(kind)
        if made is None:
            super().__init__(ConnectionPool(), **arq_options)
            self._encode = self.connection_pool.get_encoder().encode
            self._arq_options = arq_options
            _MADE[kind] = made = dict(vars(self))
        else:
            vars(self).update(made)
        self.keyspace = keyspace if keyspace is not None else Keyspace()

    def for_another_loop(self) -> MemoryRedis:
        """A client of the same keyspace for another thread's event loop."""
        return MemoryRedis(self.keyspace, **self._arq_options)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name, raw = self._words(args)
        if name in _BLOCKING:
            reply = await _BLOCKING[name](self, raw)
        else:
            with self.keyspace.lock:
                reply = self._run(name, raw)
        return self._parse(args[0], reply, options)

    def call(self, *args: Any) -> Any:
        """A command from sync code, from any thread (a node asking for a drain): answered
        at once, unparsed."""
        name, raw = self._words(args)
        with self.keyspace.lock:
            return self._run(name, raw)

    def run_script(self, digest: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One of the protocol's scripts, called from this process (see `Batch.script`):
        EVALSHA's answer, without redis-py's way to a command in between. Each argument is
        still made the bytes Redis would get, so that the script's twin reads what Lua reads."""
        encode = self._encode
        raw = [digest.encode(), b"%d" % len(keys)]
        raw += [v if type(v) is bytes else v.encode() if type(v) is str else
                b"%d" % v if type(v) is int else encode(v) for part in (keys, args) for v in part]
        with self.keyspace.lock:
            return self._run("EVALSHA", raw)

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        return _Script(self, script)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> MemoryPipeline:
        return MemoryPipeline(self, transaction)

    def pubsub(self, **kwargs: Any) -> MemoryPubSub:  # type: ignore[override]
        return MemoryPubSub(self)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        return None

    async def close(self, close_connection_pool: bool | None = None) -> None:
        return None

    def __repr__(self) -> str:
        return f"<MemoryRedis keyspace={id(self.keyspace):#x}>"

    def _words(self, args: tuple[Any, ...]) -> tuple[str, list[bytes]]:
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        if " " in name:  # ("SCRIPT LOAD", script)
            first, *rest = name.upper().split()
            return first, [*(w.encode() for w in rest), *map(self._arg, args[1:])]
        return name.upper(), [*map(self._arg, args[1:])]

    def _arg(self, value: Any) -> bytes:
        """An argument as Redis gets it: redis-py's encoding, the common cases first."""
        kind = type(value)
        if kind is bytes:
            return value  # type: ignore[no-any-return]
        if kind is str:
            return value.encode()  # type: ignore[no-any-return]
        if kind is int:
            return b"%d" % value
        return self._encode(value)  # type: ignore[no-any-return]

    def _run(self, name: str, raw: list[bytes]) -> Any:
        """One command, under the keyspace's lock."""
        ks = self.keyspace
        if name == "EVALSHA" or name == "EVAL":
            digest = raw[0].decode() if name == "EVALSHA" else sha(raw[0].decode())
            script = SCRIPTS.get(digest)
            if script is None:
                if name == "EVALSHA":
                    raise NoScriptError("NOSCRIPT No matching script.")
                raise ResponseError("ERR the in-memory store runs arqgraph's own scripts only")
            n = as_int(raw[1])
            return script(ks, [None, *raw[2:2 + n]], [None, *raw[2 + n:]])
        if name == "SCRIPT":
            return _script_command(raw)
        command = commands.COMMANDS.get(name)
        if command is None:
            raise ResponseError(f"ERR unknown command '{name}': the in-memory store answers "
                                "the commands arqgraph sends, not every Redis command")
        return command(ks, raw)

    def _parse(self, name: Any, reply: Any, options: Mapping[str, Any]) -> Any:
        options = {k: v for k, v in options.items() if k not in _NOT_FOR_PARSERS}
        if name in self.response_callbacks:
            return self.response_callbacks[name](reply, **options)
        return reply

    async def _block(self, attempt: Callable[[], Any], keys: list[bytes],
                     timeout: float | None) -> Any:
        """Try `attempt` until it answers (not None), waking whenever one of `keys` is
        written; None after `timeout` seconds (None or 0: no limit)."""
        ks = self.keyspace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        while True:
            with ks.lock:
                reply = attempt()
                if reply is not None:
                    return reply
                if deadline is not None and loop.time() >= deadline:
                    return None
                woken: asyncio.Future[None] = loop.create_future()
                for key in keys:
                    ks.waiters.setdefault(key, []).append(woken)
            timer = None if deadline is None else loop.call_later(
                deadline - loop.time(), _settle, woken)
            try:
                await woken
            finally:
                if timer is not None:
                    timer.cancel()
                with ks.lock:
                    for key in keys:
                        waiting = ks.waiters.get(key)
                        if waiting and woken in waiting:
                            waiting.remove(woken)


_NOT_FOR_PARSERS = ("keys", NEVER_DECODE, EMPTY_RESPONSE)
_MADE: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}


class _Script(AsyncScript):
    """redis-py's script, its digest known (the script is one of the protocol's)."""

    def __init__(self, client: MemoryRedis, script: Any) -> None:
        self.registered_client, self.script = client, script
        text = script if isinstance(script, str) else script.decode()
        self.sha = _DIGESTS.get(text) or _DIGESTS.setdefault(text, sha(text))


_DIGESTS: dict[str, str] = {}


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _script_command(raw: list[bytes]) -> Any:
    what = raw[0].upper()
    if what == b"LOAD":
        digest = sha(raw[1].decode())
        if digest not in SCRIPTS:
            raise ResponseError("ERR the in-memory store runs arqgraph's own scripts only")
        return digest.encode()
    if what == b"EXISTS":
        return [int(d.decode() in SCRIPTS) for d in raw[1:]]
    if what == b"FLUSH":
        return b"OK"
    raise ResponseError(f"ERR SCRIPT {what.decode()} is not answered here")


async def _blmpop(client: MemoryRedis, raw: list[bytes]) -> Any:
    keys = raw[2:2 + as_int(raw[1])]
    return await client._block(lambda: client._run("LMPOP", raw[1:]), keys, as_float(raw[0]))


async def _brpop(client: MemoryRedis, raw: list[bytes]) -> Any:
    keys = raw[:-1]

    def pop() -> Any:
        for key in keys:
            value = client._run("RPOP", [key])
            if value is not None:
                return [key, value]
        return None

    return await client._block(pop, keys, as_float(raw[-1]))


async def _xread(client: MemoryRedis, raw: list[bytes]) -> Any:
    """XREAD [COUNT n] [BLOCK ms] STREAMS keys ids: tried as XREAD without BLOCK."""
    block, words, i = None, [], 0
    while raw[i].upper() != b"STREAMS":
        if raw[i].upper() == b"BLOCK":
            block = as_int(raw[i + 1])
        else:
            words += raw[i:i + 2]
        i += 2
    rest = raw[i + 1:]
    keys = rest[:len(rest) // 2]
    # "$" means "after the last entry as the read began", not at each try
    with client.keyspace.lock:
        ids = [_last_id(client.keyspace, key) if last == b"$" else last
               for key, last in zip(keys, rest[len(rest) // 2:], strict=True)]
    args = [*words, b"STREAMS", *keys, *ids]
    if block is None:
        with client.keyspace.lock:
            return client._run("XREAD", args)
    return await client._block(lambda: client._run("XREAD", args), keys, block / 1000)


def _last_id(ks: Keyspace, key: bytes) -> bytes:
    stream = ks.get(key, Stream)
    return entry_id(stream.last) if stream is not None else b"0-0"


_BLOCKING = {"BLMPOP": _blmpop, "BRPOP": _brpop, "XREAD": _xread}


class MemoryPipeline(Pipeline):
    """A pipeline whose commands run together under the keyspace's lock: a transaction
    (MULTI/EXEC) is atomic, and WATCH holds trivially (nothing runs between a WATCH and its
    EXEC that does not hold the same lock or run on this loop)."""

    def __init__(self, owner: MemoryRedis, transaction: bool) -> None:
        super().__init__(owner.connection_pool, owner.response_callbacks, transaction, None)
        self.owner = owner

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() == "WATCH":
            self.watching = True
            return True
        return await self.owner.execute_command(*args, **options)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack, owner = self.command_stack, self.owner
        replies: list[Any] = []
        try:
            with owner.keyspace.lock:
                for args, options in stack:
                    name, raw = owner._words(args)
                    if name in _BLOCKING:
                        raise ResponseError(f"ERR {name} cannot be pipelined here")
                    try:
                        replies.append(owner._parse(args[0], owner._run(name, raw), options))
                    except ResponseError as exc:
                        replies.append(exc)
        finally:
            await self.reset()
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies


class MemoryPubSub:
    """The part of redis-py's PubSub the lease keeper uses: subscribe, get_message, close."""

    def __init__(self, owner: MemoryRedis) -> None:
        self.keyspace = owner.keyspace
        self.messages: deque[dict[str, Any]] = deque()
        self.subscribed: list[bytes] = []
        self.arrived: asyncio.Future[None] | None = None

    async def subscribe(self, *channels: Any) -> None:
        with self.keyspace.lock:
            for channel in channels:
                name = channel.encode() if isinstance(channel, str) else channel
                self.keyspace.channels.setdefault(name, []).append(self._deliver)
                self.subscribed.append(name)
                self.messages.append({"type": "subscribe", "pattern": None, "channel": name,
                                      "data": len(self.subscribed)})

    def _deliver(self, channel: bytes, message: bytes) -> None:
        self.messages.append({"type": "message", "pattern": None, "channel": channel,
                              "data": message})
        arrived = self.arrived
        if arrived is not None:
            arrived.get_loop().call_soon_threadsafe(_settle, arrived)

    async def get_message(self, ignore_subscribe_messages: bool = False,
                          timeout: float | None = 0.0) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or 0)
        while True:
            while self.messages:
                message = self.messages.popleft()
                if not (ignore_subscribe_messages and message["type"] == "subscribe"):
                    return message
            left = deadline - loop.time()
            if left <= 0:
                return None
            self.arrived = loop.create_future()
            if self.messages:  # (one came before the future was set)
                continue
            try:
                await asyncio.wait_for(asyncio.shield(self.arrived), left)
            except TimeoutError:
                return None
            finally:
                self.arrived = None

    async def aclose(self) -> None:
        with self.keyspace.lock:
            for name in self.subscribed:
                listeners = self.keyspace.channels.get(name, [])
                if self._deliver in listeners:
                    listeners.remove(self._deliver)
            self.subscribed.clear()

    close = aclose
    reset = aclose
