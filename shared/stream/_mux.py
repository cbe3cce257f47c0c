"""The mux: passes each event of a run through its transformers, in order, then into the
main event log; closes or fails every projection when the run ends. A subgraph gets a mux
of its own (`_make_child`), built from the same factories at the subgraph's scope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arqgraph.stream._types import ProtocolEvent, StreamTransformer, transformer_requires_async
from arqgraph.stream.stream_channel import StreamChannel

TransformerFactory = Callable[[tuple[str, ...]], StreamTransformer]


class StreamMux:
    """The transformers of one scope of a run and the log of the events they keep.

    Transformers that set `before_builtins` go first, then the rest in the order given. Only
    the root mux numbers its events (`seq`): a child's events already carry the root's.
    """

    def __init__(
        self,
        transformers: list[StreamTransformer] | None = None,
        *,
        is_async: bool = False,
        factories: list[TransformerFactory] | None = None,
        scope: tuple[str, ...] = (),
        _assign_seq: bool = True,
    ) -> None:
        self.is_async = is_async
        self.scope = scope
        self._assign_seq = _assign_seq
        self._events: StreamChannel[ProtocolEvent] = StreamChannel()
        self._events._bind(is_async=is_async)
        self._events._bind_mux(self)
        self._transformers: list[StreamTransformer] = []
        self._channels: list[StreamChannel[Any]] = []
        self._seq = 0
        self._push_seq = 0
        self.extensions: dict[str, Any] = {}
        self.native_keys: set[str] = set()
        self._projection_owners: dict[str, str] = {}
        self._transformer_by_key: dict[str, StreamTransformer] = {}
        self._factories = list(factories) if factories is not None else None
        self._pump_fn: Callable[[], bool] | None = None
        self._apump_fn: Callable[[], Awaitable[bool]] | None = None
        for group in ([factory(scope) for factory in factories or ()], list(transformers or ())):
            group.sort(key=lambda t: not getattr(t, "before_builtins", False))  # stable
            for transformer in group:
                self._register(transformer)

    def transformer_by_key(self, key: str) -> StreamTransformer | None:
        """The transformer that owns projection `key`."""
        return self._transformer_by_key.get(key)

    def _next_push_seq(self) -> int:
        self._push_seq += 1
        return self._push_seq

    def bind_pump(self, fn: Callable[[], bool]) -> None:
        """Let every reader of this mux's projections pull the run forward with `fn`."""
        self._pump_fn = fn
        for channel in (self._events, *self._channels):
            channel._request_more = fn
        for transformer in self._transformers:
            if (bind := getattr(transformer, "_bind_pump", None)) is not None:
                bind(fn)

    def bind_apump(self, fn: Callable[[], Awaitable[bool]]) -> None:
        self._apump_fn = fn
        for channel in (self._events, *self._channels):
            channel._arequest_more = fn
        for transformer in self._transformers:
            if (bind := getattr(transformer, "_bind_apump", None)) is not None:
                bind(fn)

    def _make_child(self, scope: tuple[str, ...]) -> StreamMux:
        """A mux for the subgraph at `scope`, pulled by the same pump."""
        if self._factories is None:
            raise RuntimeError("StreamMux._make_child requires the mux to be constructed with "
                               "`factories=`; pre-built transformers can't be cloned to a new "
                               "scope.")
        child = StreamMux(factories=self._factories, is_async=self.is_async, scope=scope,
                          _assign_seq=False)
        if self._pump_fn is not None:
            child.bind_pump(self._pump_fn)
        if self._apump_fn is not None:
            child.bind_apump(self._apump_fn)
        return child

    def _register(self, transformer: StreamTransformer) -> None:
        name = type(transformer).__name__
        if transformer_requires_async(transformer) and not self.is_async:
            raise RuntimeError(f"{name} requires an async run — it overrides aprocess/"
                               "afinalize/afail or sets requires_async=True. Use "
                               "astream_events(), not stream_events().")
        projection = transformer.init()
        if not isinstance(projection, dict):
            raise TypeError(f"StreamTransformer.init() must return a dict, got "
                            f"{type(projection).__name__}")
        if conflicts := sorted(set(projection) & set(self.extensions)):
            owners = ", ".join(f"{key!r} (owned by {self._projection_owners[key]})"
                               for key in conflicts)
            raise ValueError(f"Transformer {name} returned projection keys that conflict with "
                             f"already-registered keys: {owners}")
        native = bool(getattr(transformer, "_native", False))
        self._transformers.append(transformer)
        for value in projection.values():
            if isinstance(value, StreamChannel):
                self._adopt(value, native)
        self.extensions.update(projection)
        for key in projection:
            self._projection_owners[key] = name
            self._transformer_by_key[key] = transformer
        if native:
            self.native_keys.update(projection)
        transformer._on_register(self)

    def _adopt(self, channel: StreamChannel[Any], native: bool) -> None:
        """Bind a projection's channel to this mux; a named one forwards into the log, as
        `name` for a native transformer's and `custom:name` for others'."""
        channel._bind(is_async=self.is_async)
        channel._bind_mux(self)
        self._channels.append(channel)
        if channel.name is not None:
            method = channel.name if native else f"custom:{channel.name}"
            channel._wire(lambda item: self._forward(method, item))

    def _log(self, event: ProtocolEvent) -> None:
        if self._assign_seq:
            self._seq += 1
            event["seq"] = self._seq
        self._events.push(event)

    def push(self, event: ProtocolEvent) -> None:
        """Show `event` to every transformer; log it unless one of them suppresses it."""
        keep = True
        for transformer in self._transformers:
            keep = transformer.process(event) and keep
        if keep:
            self._log(event)

    async def apush(self, event: ProtocolEvent) -> None:
        keep = True
        for transformer in self._transformers:
            keep = await transformer.aprocess(event) and keep
        if keep:
            self._log(event)

    def _forward(self, method: str, item: Any) -> None:
        self._log({"type": "event", "method": method,
                   "params": {"namespace": [], "timestamp": int(time.time() * 1000),
                              "data": item}})

    def _end_channels(self, err: BaseException | None) -> None:
        for channel in self._channels:
            if not channel._closed:
                channel.close() if err is None else channel.fail(err)
        if not self._events._closed:
            self._events.close() if err is None else self._events.fail(err)

    def close(self) -> None:
        """The run ended: finalize every transformer (all of them, even after one raises),
        close every channel, then raise the first error."""
        first: BaseException | None = None
        for transformer in self._transformers:
            try:
                transformer.finalize()
            except BaseException as exc:
                first = first or exc
        self._end_channels(None)
        if first is not None:
            raise first

    def fail(self, err: BaseException) -> None:
        for transformer in self._transformers:
            try:
                transformer.fail(err)
            except BaseException:
                pass  # the run's own error is the one to report
        self._end_channels(err)

    def _scheduled(self) -> list[asyncio.Task[Any]]:
        return [task for transformer in self._transformers
                for task in getattr(transformer, "_stream_scheduled_tasks", ())
                if not task.done()]

    async def aclose(self) -> None:
        """As `close`, once the transformers' scheduled work is done."""
        if pending := self._scheduled():
            results = await asyncio.gather(*pending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                        result, asyncio.CancelledError):
                    raise result
        first: BaseException | None = None
        for transformer in self._transformers:
            try:
                await transformer.afinalize()
            except BaseException as exc:
                first = first or exc
        self._end_channels(None)
        if first is not None:
            raise first

    async def afail(self, err: BaseException) -> None:
        pending = self._scheduled()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for transformer in self._transformers:
            try:
                await transformer.afail(err)
            except BaseException:
                pass
        self._end_channels(err)
