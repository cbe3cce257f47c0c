"""A projection of a run: a queue with one reader, whose reading drives the run.

The run is pulled, not pushed: when the reader finds the queue empty it asks the run for
one more event (the "pump"), so memory stays bounded by the reader's pace. A named channel
also forwards each item into the run's main event log under its name.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from arqgraph.stream._mux import StreamMux

T = TypeVar("T")


class StreamChannel(Generic[T]):
    """One reader's queue of a run's items (use `tee`/`atee` for several readers).

    Items pushed before anyone subscribes are not kept (nobody could read them), but a named
    channel forwards them all the same. The mux binds a channel to sync or async reading,
    and closes or fails it when the run ends.
    """

    def __init__(self, name: str | None = None, *, maxlen: int | None = None) -> None:
        if maxlen is not None and maxlen <= 0:
            raise ValueError("StreamChannel maxlen must be a positive int or None")
        self.name = name
        self._maxlen = maxlen
        self._items: deque[tuple[int, T]] = deque()  # (the mux's push stamp, item)
        self._closed = False
        self._error: BaseException | None = None
        self._is_async: bool | None = None
        self._subscribed = False
        self._request_more: Callable[[], bool] | None = None
        self._arequest_more: Callable[[], Awaitable[bool]] | None = None
        self._wire_fn: Callable[[T], None] | None = None
        self._mux: StreamMux | None = None

    def _bind_mux(self, mux: StreamMux) -> None:
        self._mux = mux

    def _bind(self, *, is_async: bool) -> None:
        if self._is_async is not None:
            raise RuntimeError("StreamChannel is already bound")
        self._is_async = is_async

    def _wire(self, fn: Callable[[T], None]) -> None:
        self._wire_fn = fn

    def push(self, item: T) -> None:
        """Queue `item` for the reader (if there is one) and forward it (if named)."""
        if self._subscribed:
            if self._closed:
                raise RuntimeError("Cannot push to a closed StreamChannel")
            stamp = self._mux._next_push_seq() if self._mux is not None else 0
            self._items.append((stamp, item))
        if self._wire_fn is not None:
            self._wire_fn(item)

    def close(self) -> None:
        self._closed = True

    def fail(self, err: BaseException) -> None:
        """End the channel: its reader gets the items left, then `err`."""
        self._error = err
        self._closed = True

    def _subscribe(self, want_async: bool) -> None:
        if self._is_async is None:
            raise TypeError("StreamChannel has not been bound yet. "
                            "Register the transformer with a StreamMux first.")
        if self._is_async != want_async:
            raise TypeError("This StreamChannel is bound to async mode — use 'async for' instead."
                            if self._is_async else
                            "This StreamChannel is bound to sync mode — use 'for' instead.")
        if self._subscribed:
            fan_out = ".atee(n)" if want_async else ".tee(n)"
            raise RuntimeError(f"StreamChannel already has a subscriber; use {fan_out} for "
                               "fan-out.")
        self._subscribed = True

    def __iter__(self) -> Iterator[T]:
        self._subscribe(want_async=False)
        return self._read()

    def __aiter__(self) -> AsyncIterator[T]:
        self._subscribe(want_async=True)
        return self._aread()

    def _ended(self) -> bool:
        """Whether nothing more will come; raises the run's error once the queue is empty."""
        if self._closed and self._error is not None:
            raise self._error
        return self._closed

    def _read(self) -> Iterator[T]:
        while True:
            if self._items:
                yield self._items.popleft()[1]
            elif self._ended():
                return
            elif self._request_more is None or not (self._request_more() or self._items
                                                    or self._closed):
                return

    async def _aread(self) -> AsyncIterator[T]:
        while True:
            if self._items:
                yield self._items.popleft()[1]
            elif self._ended():
                return
            elif self._arequest_more is None or not (await self._arequest_more()
                                                     or self._items or self._closed):
                return

    def tee(self, n: int = 2) -> tuple[Iterator[T], ...]:
        """`n` readers of this channel, each seeing every item."""
        if n < 1:
            raise ValueError("tee() requires n >= 1")
        source = iter(self)
        queues: list[deque[T]] = [deque() for _ in range(n)]
        done = [False]

        def branch(queue: deque[T]) -> Iterator[T]:
            while True:
                if queue:
                    yield queue.popleft()
                    continue
                if done[0]:
                    return
                try:
                    item = next(source)
                except StopIteration:
                    done[0] = True
                    return
                for q in queues:
                    q.append(item)

        return tuple(branch(q) for q in queues)

    def atee(self, n: int = 2) -> tuple[AsyncIterator[T], ...]:
        """`n` async readers of this channel, each seeing every item (and the error)."""
        if n < 1:
            raise ValueError("atee() requires n >= 1")
        source = aiter(self)
        queues: list[deque[T]] = [deque() for _ in range(n)]
        end: list[Any] = []  # [None] when exhausted, [error] when failed
        lock = asyncio.Lock()

        async def branch(queue: deque[T]) -> AsyncIterator[T]:
            while True:
                if queue:
                    yield queue.popleft()
                    continue
                if end:
                    if end[0] is not None:
                        raise end[0]
                    return
                async with lock:
                    if queue or end:
                        continue
                    try:
                        item = await anext(source)
                    except StopAsyncIteration:
                        end.append(None)
                        continue
                    except Exception as exc:
                        end.append(exc)
                        continue
                    for q in queues:
                        q.append(item)

        return tuple(branch(q) for q in queues)
