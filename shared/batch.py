"""Script calls batched per turn of the event loop: the calls that concurrent tasks make at
once go to Redis in one pipeline.

A worker running hundreds of tasks spends most of its CPU on redis-py's cost per round trip
(taking a connection, a socket write, reading the reply), not on the commands. Tasks of a
fan-out start and finish together, so their loads, posts and job ends come in bursts; sending
each burst as one pipeline pays that cost once per burst. A call made while no other is pending
or on its way goes at once, alone (a chain's steps pay no wait for company).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class BatchedScript(Protocol):
    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Awaitable[Any]: ...


class ScriptBatch:
    """Runs registered scripts, many per round trip when many are called at once."""

    def __init__(self) -> None:
        self._pending: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # calls sent and not answered yet

    def script(self, redis: Redis, text: str) -> BatchedScript:
        """`text` registered on `redis`, called as redis-py's scripts are, through this batch."""
        script = redis.register_script(text)

        async def call(keys: Sequence[Any], args: Sequence[Any]) -> Any:
            return await self.run(script, keys, args)

        return call

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not self._pending and not self._in_flight:  # alone (a chain's step): go at once
            self._in_flight += 1
            try:
                return await script(keys=list(keys), args=list(args))
            finally:
                self._in_flight -= 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) == 1:  # others may come in this turn of the loop: wait for them
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        calls, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[Call]) -> None:
        self._in_flight += len(calls)
        try:
            await self._send_all(calls)
        finally:
            self._in_flight -= len(calls)

    async def _send_all(self, calls: list[Call]) -> None:
        if len(calls) == 1:
            script, keys, args, future = calls[0]
            await _settle(future, _call(script, keys, args))
            return
        redis = calls[0][0].registered_client
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for script, keys, args, _ in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller hears it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (script, keys, args, future), reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted or flushed its scripts
                await _settle(future, _call(script, keys, args))
            elif isinstance(reply, Exception):
                if not future.done():
                    future.set_exception(reply)
            elif not future.done():
                future.set_result(reply)


async def _call(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    return await script(keys=list(keys), args=list(args))


async def _settle(future: asyncio.Future[Any], call: Any) -> None:
    try:
        result = await call
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
