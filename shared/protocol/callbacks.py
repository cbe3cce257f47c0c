"""The "callbacks" event: one LangChain callback a node's run made on a worker (a chain,
chat model, tool or retriever starting, streaming, ending), for the producer to replay to
the handlers it was given (see `arqgraph.callbacks`).

Values cross in LangChain's own serialized form (`dumpd`), read back with `load` limited to
langchain-core's classes: nothing else is built from the wire. A value LangChain cannot
serialize arrives as None; an exception arrives rebuilt from its `ErrorInfo`; a model's
`LLMResult` is taken apart and rebuilt.
"""

from __future__ import annotations

import warnings
from typing import Any
from uuid import UUID

from arqgraph.errors import ErrorInfo, GraphInterrupt
from arqgraph.protocol.errors import decode_error, encode_error, rebuild_error
from arqgraph.types import Interrupt

RUN_IDS = ("run_id", "parent_run_id")
TUPLES = ("langgraph_triggers", "langgraph_path")
_ERROR, _RESULT = "__arqgraph_error__", "__arqgraph_llm_result__"
_INTERRUPT = "__arqgraph_interrupt__"


def encode_callback(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A callback as a plain message."""
    return {"method": method, "args": [_encode(a) for a in args],
            "kwargs": {k: str(v) if k in RUN_IDS and v is not None else _encode(v)
                       for k, v in kwargs.items()}}


def decode_callback(event: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
    """The method, positional and keyword arguments of a callback event."""
    kwargs: dict[str, Any] = {k: UUID(v) if k in RUN_IDS and v is not None else _decode(v)
                              for k, v in (event.get("kwargs") or {}).items()}
    metadata = kwargs.get("metadata")
    if isinstance(metadata, dict):  # (LangGraph's tuples came as lists)
        kwargs["metadata"] = {k: tuple(v) if k in TUPLES and isinstance(v, list) else v
                              for k, v in metadata.items()}
    return str(event["method"]), [_decode(a) for a in event.get("args") or ()], kwargs


def _encode(value: Any) -> Any:
    from langchain_core.load import dumpd
    from langchain_core.outputs import LLMResult

    if isinstance(value, GraphInterrupt) and value.args and isinstance(value.args[0], tuple):
        return {_INTERRUPT: [[dumpd(i.value), i.id] for i in value.args[0]]}
    if isinstance(value, BaseException):
        return {_ERROR: encode_error(ErrorInfo.of(value))}
    if isinstance(value, LLMResult):
        return {_RESULT: {"generations": [[dumpd(g) for g in gs] for gs in value.generations],
                          "llm_output": dumpd(value.llm_output)}}
    if isinstance(value, UUID):
        return str(value)
    return dumpd(value)


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and _INTERRUPT in value:
        return _raised(GraphInterrupt(tuple(Interrupt(value=_load(v), id=str(i))
                                            for v, i in value[_INTERRUPT])), "")
    if isinstance(value, dict) and _ERROR in value:
        info = decode_error(value[_ERROR])
        return _raised(rebuild_error(info), info.traceback)
    if isinstance(value, dict) and _RESULT in value:
        from langchain_core.outputs import LLMResult

        result = value[_RESULT]
        return LLMResult(generations=[[_load(g) for g in gs] for gs in result["generations"]],
                         llm_output=_load(result["llm_output"]))
    return _load(value)


def _raised(exc: BaseException, remote: str) -> BaseException:
    """`exc` with a traceback, as handlers format one (a tracer records it), and the one it
    had on the worker as a note."""
    try:
        raise exc
    except BaseException as raised:  # noqa: BLE001 - (only to give it a traceback)
        if remote:
            raised.add_note(f"on the worker:\n{remote.rstrip()}")
        return raised


def _load(value: Any) -> Any:
    from langchain_core.load import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (load is "beta", and asks for allowed_objects)
        return load(value, allowed_objects="core", ignore_unserializable_fields=True)
