"""What a node's return value means, as LangGraph reads it: writes to the state (a dict, a
Command, a list of Commands, an instance of a state class, a one-value state's value), where to
go next, and the messages it pushed before returning. Pure: the executor calls these after the
node ran."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from arqgraph.core.pregel import Repeated
from arqgraph.core.schema import ROOT, StateSchema
from arqgraph.errors import InvalidUpdateError
from arqgraph.types import Command, object_fields


def split_result(
    node: str, result: Any, schema: StateSchema | None = None
) -> tuple[dict[str, Any] | None, list[Any]]:
    """A node's return value as (writes, goto targets), as LangGraph reads it: a dict, a
    Command, a list of Commands (and dicts), or an instance of a state class (its fields that
    are set); for a graph whose state is one value (`schema.kind == "root"`), that value.
    Anything else is an InvalidUpdateError."""
    root = schema is not None and schema.kind == "root"
    if result is None:
        return None, []
    if isinstance(result, Command):
        return _command_writes(result, root), result.goto_targets()
    if is_command_list(result):
        targets: list[Any] = []
        pairs: list[tuple[str, Any]] = []
        for part in result:
            more, goto = split_result(node, part, schema)
            pairs += _pairs(more)
            targets += goto
        return _collected(pairs), targets
    if root:
        return {ROOT: result}, []
    if isinstance(result, Mapping):
        return dict(result), []
    if schema is not None and (fields := _set_fields(result, schema)) is not None:
        return fields, []
    raise InvalidUpdateError(f"Expected dict, got {result}")


def with_pushed(result: Any, pushes: list[tuple[str, Any]]) -> Any:
    """The node's result with the messages it pushed (`push_message`) written first, each a
    write of its own, as LangGraph writes them."""
    if not pushes:
        return result
    parts: list[Any] = [Command(update={key: value}) for key, value in pushes]
    if is_command_list(result):
        return [*parts, *result]
    return parts if result is None else [*parts, result]


def is_command_list(result: Any) -> bool:
    return isinstance(result, list | tuple) and any(isinstance(r, Command) for r in result)


def _command_writes(command: Command[Any], root: bool) -> dict[str, Any]:
    if root and command.update is not None and not isinstance(command.update, dict):
        return {ROOT: command.update}
    return _collected(command.update_items())


def give_message_ids(schema: StateSchema, writes: Mapping[str, Any]) -> None:
    """Give the messages a node returns for an `add_messages` key an id when they have none,
    in place, as LangGraph's reducer does to them: the node's update event then shows the
    ids its state keeps (here the reducer runs later, in another process)."""
    for key, value in writes.items():
        channel = schema.channels.get(key)
        reducer = getattr(channel, "reducer", None)
        if not getattr(getattr(reducer, "func", reducer), "assigns_message_ids", False):
            continue
        for written in value.values if isinstance(value, Repeated) else (value,):
            for message in written if isinstance(written, list) else (written,):
                if hasattr(message, "content") and getattr(message, "id", "") is None:
                    message.id = str(uuid.uuid4())


def _collected(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Writes by key: a key written twice keeps both values, in order (`Repeated`)."""
    writes: dict[str, Any] = {}
    for key, value in pairs:
        if key in writes:
            before = writes[key].values if isinstance(writes[key], Repeated) else (writes[key],)
            value = Repeated((*before, value))
        writes[key] = value
    return writes


def _pairs(writes: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Writes as the (key, value) pairs they were made of, in order (see `_collected`)."""
    return [(key, v) for key, value in (writes or {}).items()
            for v in (value.values if isinstance(value, Repeated) else (value,))]


def write_pairs(node: str, result: Any, schema: StateSchema) -> list[tuple[str, Any]]:
    """A node's writes in the order it made them: those of a Command's update pairs, or of a
    list of Commands part by part (LangGraph's update event lists each when a key repeats)."""
    if isinstance(result, Command) and schema.kind != "root":
        return list(result.update_items())
    if is_command_list(result):
        return [pair for part in result for pair in write_pairs(node, part, schema)]
    return _pairs(split_result(node, result, schema)[0])


def _set_fields(result: Any, schema: StateSchema) -> dict[str, Any] | None:
    """The update a node returns as an instance of a state class (`object_fields`), keys of
    the graph's channels only."""
    fields = object_fields(result)
    return None if fields is None else {k: v for k, v in fields.items() if k in schema.channels}
