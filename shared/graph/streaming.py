"""What `stream` and `invoke` give, in LangGraph's shapes: one mode's payloads, (mode, payload)
for several modes, the namespace first with `subgraphs=True`; or with `version="v2"` the typed
stream parts of `arqgraph.stream_parts`, whose values come as the graph's state class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arqgraph.core.schema import StateSchema
from arqgraph.stream_parts import GraphOutput

INTERRUPT = "__interrupt__"


def shaped(
    output: StateSchema, state: StateSchema, ns: tuple[str, ...], mode: str, payload: Any,
    stream_mode: str | Sequence[str], subgraphs: bool, version: str,
) -> Any:
    """One event of a run as the caller asked for it (`output`/`state`: the graph's output
    and state schemas, which v2 parts build their values with)."""
    if version == "v2":
        if mode == "values":
            interrupts: tuple[Any, ...] = ()
            if isinstance(payload, dict) and INTERRUPT in payload:
                payload = dict(payload)
                interrupts = tuple(payload.pop(INTERRUPT))
            return {"type": mode, "ns": ns, "data": as_state(output, payload),
                    "interrupts": interrupts}
        if mode in ("checkpoints", "debug"):
            payload = _with_state_values(state, payload)
        return {"type": mode, "ns": ns, "data": payload}
    several = not isinstance(stream_mode, str)
    if subgraphs:
        return (ns, mode, payload) if several else (ns, payload)
    return (mode, payload) if several else payload


def graph_output(output: StateSchema, result: Any) -> GraphOutput[Any]:
    """`invoke(version="v2")`'s result: the output as the output schema's class, and the
    interrupts the run stopped at."""
    interrupts: tuple[Any, ...] = ()
    if isinstance(result, dict) and INTERRUPT in result:
        result = dict(result)
        interrupts = tuple(result.pop(INTERRUPT))
    return GraphOutput(as_state(output, result), interrupts)


def as_state(schema: StateSchema, values: Any) -> Any:
    """Values as an instance of a pydantic or dataclass schema (as LangGraph's v2 mappers
    build them); a TypedDict's stay a dict."""
    if schema.kind in ("pydantic", "dataclass") and isinstance(values, dict):
        return schema.cls(**values)
    return values


def _with_state_values(state: StateSchema, payload: Any) -> Any:
    """A checkpoint or debug payload with its values as the state class (not the input
    checkpoint's, whose state is not filled in yet)."""
    inner = payload.get("payload") if isinstance(payload, dict) and "type" in payload else payload
    if (isinstance(inner, dict) and isinstance(inner.get("values"), dict)
            and "__start__" not in inner.get("next", ())):
        inner = {**inner, "values": as_state(state, inner["values"])}
        return {**payload, "payload": inner} if inner is not payload and "type" in payload else (
            inner)
    return payload
