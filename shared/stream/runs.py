"""`stream_events(version="v3")` and `astream_events(version="v3")` of a graph: a mux of the
built-in transformers, the graph's own (`compile(transformers=...)`) and the call's, over the
graph's v2 stream of exactly the modes those transformers need, subgraphs included.

`astream_events` versions "v1" and "v2" are LangChain's callback events, made by LangChain's
own implementation over the graph's `astream`: the run's callbacks report the graph's run from
this process, and its nodes' runs (their models' tokens, tools, subgraphs) as the workers
recorded them (see `arqgraph.callbacks`)."""



from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arqgraph.constants import CONF, CONFIG_KEY_STREAM_MESSAGES_V2
from arqgraph.stream._mux import StreamMux, TransformerFactory
from arqgraph.stream._types import StreamTransformer
from arqgraph.stream.lifecycle import LifecycleTransformer, SubgraphTransformer
from arqgraph.stream.messages import MessagesTransformer
from arqgraph.stream.run_stream import AsyncGraphRunStream, GraphRunStream
from arqgraph.stream.transformers import ValuesTransformer

BUILTINS: tuple[TransformerFactory, ...] = (
    ValuesTransformer, MessagesTransformer, LifecycleTransformer, SubgraphTransformer)
OWNED = ("stream_mode", "subgraphs")  # v3 sets these itself


def factories(specs: Sequence[Callable[[tuple[str, ...]], Any]] | None) -> list[
        TransformerFactory]:
    """Transformer classes or factories taking a scope; an instance cannot be given, since
    each subgraph scope needs a fresh one."""
    for spec in specs or ():
        if isinstance(spec, StreamTransformer):
            raise TypeError("stream_events(version='v3') transformers must be scope-aware "
                            f"callables, got pre-built instance {type(spec).__name__}. Pass the "
                            "transformer class or a factory like "
                            "`lambda scope: MyTransformer(scope, ...)`.")
        if not callable(spec):
            raise TypeError("stream_events(version='v3') transformers must be scope-aware "
                            f"callables, got {type(spec).__name__}.")
    return list(specs or ())


def _setup(graph: Any, config: Mapping[str, Any] | None, transformers: Any,
           kwargs: dict[str, Any], is_async: bool) -> tuple[StreamMux, dict[str, Any]]:
    if owned := [key for key in OWNED if key in kwargs]:
        raise TypeError(f"stream_events(version='v3') / astream_events(version='v3') do not "
                        f"accept {', '.join(owned)}; v3 owns these (stream_mode is built from "
                        "the transformers, subgraphs is always True).")
    mux = StreamMux(factories=[*BUILTINS, *factories(graph.stream_transformers),
                               *factories(transformers)],
                    scope=_scope(graph.config, config), is_async=is_async)
    modes = sorted({mode for t in mux._transformers for mode in t.required_stream_modes})
    config = dict(config or {})
    config[CONF] = {**(config.get(CONF) or {}), CONFIG_KEY_STREAM_MESSAGES_V2: True}
    call = {"interrupt_before": None, "interrupt_after": None, "control": None, **kwargs,
            "stream_mode": modes, "subgraphs": True, "version": "v2"}
    return mux, {"input_config": config, **call}


def _scope(*configs: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The namespace the caller runs in: a graph streamed from inside a node sees its own
    level's events as its root's."""
    ns = ""
    for config in configs:
        ns = ((config or {}).get(CONF) or {}).get("checkpoint_ns") or ns
    return tuple(ns.split("|")) if ns else ()


def stream_events(graph: Any, input: Any, config: Mapping[str, Any] | None, version: str,
                  transformers: Any, kwargs: dict[str, Any]) -> GraphRunStream:
    if version != "v3":
        raise NotImplementedError(
            f"stream_events(version={version!r}): LangChain's callback events have no sync "
            "form; use version='v3', or astream_events")
    return open_stream(graph, input, config, transformers, kwargs)


def astream_events(graph: Any, input: Any, config: Mapping[str, Any] | None, version: str,
                   transformers: Any, kwargs: dict[str, Any]) -> Any:
    """The v3 run handle (to await), or LangChain's v1/v2 events (to iterate)."""
    if version == "v3":
        return aopen_stream(graph, input, config, transformers, kwargs)
    return _langchain("event_stream", f"_astream_events_implementation_{version}")(
        graph, input, config, **kwargs)


def astream_log(graph: Any, input: Any, config: Mapping[str, Any] | None,
                kwargs: dict[str, Any]) -> Any:
    filters = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith(("include_", "exclude_"))}
    handler = _langchain("log_stream", "LogStreamCallbackHandler")(
        auto_close=False, _schema_format="original", **filters)
    return _langchain("log_stream", "_astream_log_implementation")(
        graph, input, config, diff=kwargs.pop("diff", True), stream=handler,
        with_streamed_output_list=kwargs.pop("with_streamed_output_list", True), **kwargs)


def _langchain(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(f"langchain_core.tracers.{module}"), name)
    except ImportError as exc:
        raise ImportError("astream_events(version='v1'/'v2') needs langchain-core: install "
                          "arqgraph[langchain], or use version='v3'") from exc
    except AttributeError:
        raise ValueError(f"astream_events: unknown version {name.rsplit('_', 1)[-1]!r}; "
                         "expected 'v1', 'v2' or 'v3'") from None


def open_stream(graph: Any, input: Any, config: Mapping[str, Any] | None, transformers: Any,
                kwargs: dict[str, Any]) -> GraphRunStream:
    mux, call = _setup(graph, config, transformers, kwargs, is_async=False)
    return GraphRunStream(iter(graph.stream(input, call.pop("input_config"), **call)), mux)


async def aopen_stream(graph: Any, input: Any, config: Mapping[str, Any] | None,
                       transformers: Any, kwargs: dict[str, Any]) -> AsyncGraphRunStream:
    mux, call = _setup(graph, config, transformers, kwargs, is_async=True)
    return AsyncGraphRunStream(aiter(graph.astream(input, call.pop("input_config"), **call)),
                               mux)
