"""Redis calls batched per turn of the event loop: the scripts and commands that concurrent
tasks call at once go to Redis in one pipeline.

A worker running hundreds of tasks spends most of its CPU on redis-py's cost per round trip
(taking a connection, a socket write, reading the reply), not on the commands. Tasks of a
fan-out start and finish together, so their loads, posts and job ends come in bursts; sending
each burst as one pipeline pays that cost once per burst. A call made while no other is pending
or on its way goes at once, alone (a chain's steps pay no wait for company). The in-memory store
of the embedded default has no round trip to share: there each call is answered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

Call = tuple[Callable[[Pipeline], Any], Callable[[], Awaitable[Any]], "asyncio.Future[Any]"]
"""A call: how to add it to a pipeline, how to make it alone, and the caller's future."""


Pack = Callable[[Sequence[tuple[list[Any], list[Any]]]], tuple[list[Any], list[Any]] | None]
"""How the calls of a script go as one call of a script that takes many (see `Batch.gathered`):
its keys and arguments, or None when they cannot go together."""


class BatchedScript(Protocol):
    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Awaitable[Any]: ...


class Batch:
    """Runs scripts and commands on one Redis, many per round trip when many are called at
    once."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # calls sent and not answered yet
        # a store in this process answers each call at once: batching would only add a wait
        self.at_once = hasattr(redis, "run_script")

    def script(self, text: str) -> BatchedScript:
        """`text` registered as a script, called as redis-py's scripts are, through the batch."""
        script = self.redis.register_script(text)
        if self.at_once:  # (the in-memory store: no round trip to share)
            at_once, digest = getattr(self.redis, "run_script"), script.sha  # noqa: B009

            async def now(keys: Sequence[Any], args: Sequence[Any]) -> Any:
                return at_once(digest, keys, args)

            return now

        async def call(keys: Sequence[Any], args: Sequence[Any]) -> Any:
            keys, args = list(keys), list(args)
            return await self._submit(
                lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args),
                lambda: script(keys=keys, args=args),  # (loads the script if Redis lost it)
            )

        return call

    def gathered(self, many: str, one: str, pack: Pack | None = None) -> BatchedScript:
        """The script `one`, whose calls made in one turn of the loop go as one call of the
        script `many`, which takes them all, with the keys and arguments `pack` makes of theirs
        (`pack_calls` if none; calls it returns None for go one by one). `many` replies with
        each call's reply, in order. Redis then pays for one script call, and `many` can do the
        work of calls on the same keys with one command each. A lone call goes as a call of
        `one`."""
        pack = pack or pack_calls
        alone, together = self.script(one), self.script(many)
        if self.at_once:  # (the in-memory store: nothing to gather)
            return alone
        pending: list[tuple[list[Any], list[Any], asyncio.Future[Any]]] = []

        async def send(calls: list[tuple[list[Any], list[Any], asyncio.Future[Any]]]) -> None:
            if len(calls) == 1:
                keys, args, future = calls[0]
                await _settle(future, alone(keys, args))
                return
            try:
                packed = pack([(call_keys, call_args) for call_keys, call_args, _ in calls])
                if packed is None:
                    await asyncio.gather(*(_settle(future, alone(call_keys, call_args))
                                           for call_keys, call_args, future in calls))
                    return
                replies = await together(*packed)
                for (*_, future), reply in zip(calls, replies, strict=True):
                    if not future.done():
                        future.set_result(reply)
            except Exception as exc:  # every caller hears it (none is left waiting)
                for *_, future in calls:
                    if not future.done():
                        future.set_exception(exc)

        def flush() -> None:
            calls = pending[:]
            pending.clear()
            task = asyncio.ensure_future(send(calls))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

        async def call(keys: Sequence[Any], args: Sequence[Any]) -> Any:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            pending.append((list(keys), list(args), future))
            if len(pending) == 1:  # others may come in this turn of the loop: wait for them
                loop.call_soon(flush)
            return await future

        return call

    async def command(self, *words: Any) -> Any:
        """A Redis command (`"HGET", key, field`), through the batch."""
        if self.at_once:
            return await self.redis.execute_command(*words)
        return await self._submit(lambda pipe: pipe.execute_command(*words),
                                  lambda: self.redis.execute_command(*words))

    async def _submit(
        self, add: Callable[[Pipeline], Any], alone: Callable[[], Awaitable[Any]]
    ) -> Any:
        if not self._pending and not self._in_flight:  # alone (a chain's step): go at once
            self._in_flight += 1
            try:
                return await alone()
            finally:
                self._in_flight -= 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((add, alone, future))
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
            _, alone, future = calls[0]
            await _settle(future, alone())
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for add, _, _ in calls:
                    add(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller hears it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, alone, future), reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted or flushed its scripts
                await _settle(future, alone())
            elif isinstance(reply, Exception):
                if not future.done():
                    future.set_exception(reply)
            elif not future.done():
                future.set_result(reply)


def pack_calls(calls: Sequence[tuple[list[Any], list[Any]]]) -> tuple[list[Any], list[Any]]:
    """The calls of a script as one call of a script that takes many (`Batch.gathered`): ARGV 1
    how many calls, then each call's count of keys and of arguments, then their arguments one
    after the other; KEYS theirs, likewise."""
    keys: list[Any] = []
    args: list[Any] = [len(calls)]
    for call_keys, call_args in calls:
        args += [len(call_keys), len(call_args)]
    for call_keys, call_args in calls:
        keys += call_keys
        args += call_args
    return keys, args


async def _settle(future: asyncio.Future[Any], call: Awaitable[Any]) -> None:
    try:
        result = await call
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
