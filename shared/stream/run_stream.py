"""The handle `stream_events(version="v3")` returns: a run whose reading drives it.

Nothing runs in the background: each time a reader of a projection (`run.values`,
`run.messages`, the raw events...) finds nothing queued, the handle pulls one more part from
the graph's stream and passes it through the mux. A subgraph's handle pulls through its
root's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from arqgraph.stream._convert import convert_to_protocol_event
from arqgraph.stream._mux import StreamMux
from arqgraph.stream._types import ProtocolEvent
from arqgraph.stream.stream_channel import StreamChannel

T = TypeVar("T")


class _RunView:
    """What a run handle keeps of its own scope's values events: the latest state and the
    interrupts; and the projections, as attributes for native transformers."""

    _mux: StreamMux

    def _setup(self, mux: StreamMux) -> None:
        self._mux = mux
        self.extensions: Mapping[str, Any] = MappingProxyType(mux.extensions)
        self._exhausted = False
        self._latest: dict[str, Any] | None = None
        self._interrupted = False
        self._interrupts: list[Any] = []
        self._scope_list = list(mux.scope)
        for key in mux.native_keys:
            setattr(self, key, mux.extensions[key])

    def __getattr__(self, name: str) -> StreamChannel[Any]:
        mux = self.__dict__.get("_mux")  # (not self._mux: it may not be set yet)
        registered = sorted(mux.native_keys) if mux is not None else []
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} "
                             f"(registered projections: {', '.join(registered) or 'none'})")

    def _observe_event(self, event: ProtocolEvent) -> None:
        params = event["params"]
        if event["method"] != "values" or params["namespace"] != self._scope_list:
            return
        self._latest = params["data"]
        if interrupts := params.get("interrupts", ()):
            self._interrupted = True
            self._interrupts.extend(interrupts)

    def _checked(self, value: T) -> T:
        if (err := self._mux._events._error) is not None:
            raise err
        return value


class GraphRunStream(_RunView):
    """A sync run: iterate it for the raw protocol events, or read its projections."""

    def __init__(self, graph_iter: Iterator[Any] | None, mux: StreamMux, *,
                 wire_pump: bool = True) -> None:
        self._graph_iter = graph_iter
        self._setup(mux)
        if wire_pump:
            mux.bind_pump(self._pump_next)

    def _pump_next(self) -> bool:
        """Pull one part of the graph's stream through the mux; False once it is over."""
        if self._exhausted or self._graph_iter is None:
            return False
        try:
            event = convert_to_protocol_event(next(self._graph_iter))
        except StopIteration:
            self._exhausted = True
            self._mux.close()
            return False
        except Exception as exc:
            self._exhausted = True
            self._mux.fail(exc)
            return False
        self._observe_event(event)
        self._mux.push(event)
        return True

    def _drive(self) -> None:
        while self._pump_next():
            pass

    def abort(self) -> None:
        """Stop the run (closing the graph's stream) and end every projection."""
        if self._exhausted:
            return
        self._exhausted = True
        graph_iter, self._graph_iter = self._graph_iter, None
        try:
            if (close := getattr(graph_iter, "close", None)) is not None:
                close()
        except Exception:
            pass
        try:
            self._mux.close()
        except Exception:
            pass

    def __enter__(self) -> GraphRunStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()

    @property
    def output(self) -> dict[str, Any] | None:
        """The run's last state at its own level (runs it to the end; raises its error)."""
        self._drive()
        return self._checked(self._latest)

    @property
    def interrupted(self) -> bool:
        self._drive()
        return bool(self._checked(self._interrupted))

    @property
    def interrupts(self) -> list[Any]:
        self._drive()
        return list(self._checked(self._interrupts))

    def __iter__(self) -> Iterator[ProtocolEvent]:
        return iter(self._mux._events)

    def interleave(self, *names: str) -> Iterator[tuple[str, Any]]:
        """The items of several projections as `(name, item)`, in the order they came."""
        channels = _subscribed(self.extensions, names, want_async=False)
        live = dict(channels)
        try:
            while True:
                if (item := _earliest(live)) is not None:
                    yield item
                elif not _waiting(live, self._mux._pump_fn is not None and self._mux._pump_fn()):
                    return
        finally:
            for channel in channels.values():
                channel._subscribed = False


class AsyncGraphRunStream(_RunView):
    """An async run: `async for` its raw events, or await its projections; several readers
    may pull at once (one pull at a time reaches the graph)."""

    def __init__(self, graph_aiter: AsyncIterator[Any] | None, mux: StreamMux, *,
                 wire_pump: bool = True) -> None:
        self._graph_aiter = graph_aiter
        self._setup(mux)
        self._pump_lock = asyncio.Lock()
        self._anext_task: asyncio.Future[Any] | None = None
        self._aborting = False
        if wire_pump:
            mux.bind_apump(self._apump_next)

    async def _apump_next(self) -> bool:
        if self._pump_lock.locked():  # another reader is pulling: its event will do
            async with self._pump_lock:
                return not self._exhausted
        async with self._pump_lock:
            if self._exhausted or self._graph_aiter is None:
                return False
            self._anext_task = asyncio.ensure_future(anext(self._graph_aiter))
            try:
                part = await self._anext_task
            except StopAsyncIteration:
                self._exhausted = True
                await self._mux.aclose()
                return False
            except asyncio.CancelledError:
                if self._aborting:
                    self._exhausted = True
                    return False
                self._anext_task.cancel()
                raise
            except Exception as exc:
                self._exhausted = True
                await self._mux.afail(exc)
                return False
            finally:
                self._anext_task = None
            event = convert_to_protocol_event(part)
            self._observe_event(event)
            await self._mux.apush(event)
            return True

    async def _drive(self) -> None:
        while await self._apump_next():
            pass

    async def abort(self) -> None:
        """Stop the run: cancel the pull in flight (and with it the graph's nodes and
        subgraphs), close the graph's stream, end every projection."""
        if self._exhausted:
            return
        self._exhausted = self._aborting = True
        graph_aiter, self._graph_aiter = self._graph_aiter, None
        if (pulling := self._anext_task) is not None and not pulling.done():
            pulling.cancel()
            try:
                await pulling
            except (asyncio.CancelledError, Exception):
                pass
        try:
            if (aclose := getattr(graph_aiter, "aclose", None)) is not None:
                await aclose()
        except Exception:
            pass
        try:
            await self._mux.aclose()
        except Exception:
            pass

    async def __aenter__(self) -> AsyncGraphRunStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.abort()

    async def output(self) -> dict[str, Any] | None:
        await self._drive()
        return self._checked(self._latest)

    async def interrupted(self) -> bool:
        await self._drive()
        return bool(self._checked(self._interrupted))

    async def interrupts(self) -> list[Any]:
        await self._drive()
        return list(self._checked(self._interrupts))

    def __aiter__(self) -> AsyncIterator[ProtocolEvent]:
        return aiter(self._mux._events)

    async def interleave(self, *names: str) -> AsyncIterator[tuple[str, Any]]:
        channels = _subscribed(self.extensions, names, want_async=True)
        live = dict(channels)
        try:
            while True:
                if (item := _earliest(live)) is not None:
                    yield item
                    continue
                pump = self._mux._apump_fn
                if not _waiting(live, pump is not None and await pump()):
                    return
        finally:
            for channel in channels.values():
                channel._subscribed = False


class _SubgraphHandle:
    """Where a subgraph sits and how it ended, for a subgraph's run handle."""

    def _place(self, path: tuple[str, ...], graph_name: str | None,
               trigger_call_id: str | None) -> None:
        self.path = path
        self.graph_name = graph_name
        self.trigger_call_id = trigger_call_id
        self.status = "started"
        self.error: str | None = None
        self._seen_terminal = False

    def _over(self) -> bool:
        return bool(getattr(self, "_exhausted", False) or self._seen_terminal
                    or self._mux._events._closed)  # type: ignore[attr-defined]


class SubgraphRunStream(GraphRunStream, _SubgraphHandle):
    """A subgraph of a sync run, seen from inside: its own projections, pulled by the root."""

    def __init__(self, mux: StreamMux, *, path: tuple[str, ...], graph_name: str | None = None,
                 trigger_call_id: str | None = None) -> None:
        self._parent_pump_fn: Callable[[], bool] | None = mux._pump_fn
        super().__init__(None, mux, wire_pump=False)
        self._place(path, graph_name, trigger_call_id)

    def _pump_next(self) -> bool:
        return not self._over() and self._parent_pump_fn is not None and self._parent_pump_fn()


class AsyncSubgraphRunStream(AsyncGraphRunStream, _SubgraphHandle):
    """A subgraph of an async run, seen from inside."""

    def __init__(self, mux: StreamMux, *, path: tuple[str, ...], graph_name: str | None = None,
                 trigger_call_id: str | None = None) -> None:
        self._parent_apump_fn: Callable[[], Awaitable[bool]] | None = mux._apump_fn
        super().__init__(None, mux, wire_pump=False)
        self._place(path, graph_name, trigger_call_id)

    async def _apump_next(self) -> bool:
        if self._over() or self._parent_apump_fn is None:
            return False
        return await self._parent_apump_fn()


def _subscribed(extensions: Mapping[str, Any], names: tuple[str, ...],
                want_async: bool) -> dict[str, StreamChannel[Any]]:
    """Take the reading of the projections `names` (a KeyError for an unknown one)."""
    channels: dict[str, StreamChannel[Any]] = {}
    try:
        for name in names:
            channel = extensions[name]
            if not isinstance(channel, StreamChannel):
                raise TypeError(f"interleave() requires StreamChannel projections, got "
                                f"{type(channel).__name__} for {name!r}")
            if channel._is_async is None:
                raise TypeError(f"StreamChannel {name!r} has not been bound yet. Register the "
                                "transformer with a StreamMux first.")
            if channel._is_async != want_async:
                raise TypeError(f"StreamChannel {name!r} is bound to "
                                f"{'async' if channel._is_async else 'sync'} mode")
            if channel._subscribed:
                raise RuntimeError(f"StreamChannel {name!r} already has a subscriber; use "
                                   ".tee(n) for fan-out.")
            channel._subscribed = True
            channels[name] = channel
    except BaseException:
        for channel in channels.values():
            channel._subscribed = False
        raise
    return channels


def _earliest(channels: dict[str, StreamChannel[Any]]) -> tuple[str, Any] | None:
    """The queued item pushed first, across the channels (by the mux's push stamp)."""
    queued = [(channel._items[0][0], name) for name, channel in channels.items()
              if channel._items]
    if not queued:
        return None
    _, name = min(queued)
    return name, channels[name]._items.popleft()[1]


def _waiting(live: dict[str, StreamChannel[Any]], pumped: bool) -> bool:
    """Drop the channels that ended empty (raising a failed one's error); whether there is
    more to read: a channel left and the run went on, or items queued."""
    for name, channel in list(live.items()):
        if channel._closed and not channel._items:
            if channel._error is not None:
                raise channel._error
            del live[name]
    return bool(live) and (pumped or any(channel._items for channel in live.values()))
