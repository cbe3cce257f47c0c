"""A node's error as it crosses the wire: its type, message, traceback and readable arguments
as a msgpack map, validated when read. A Command for the parent graph travels as such an
error, from the subgraph that raised it to the task that runs the subgraph."""

from __future__ import annotations

import base64
from typing import Any

import pydantic

from arqgraph.core import codec
from arqgraph.errors import ErrorInfo, ParentCommand
from arqgraph.types import Command


def encode_error(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.type,
        "module": error.module,
        "message": error.message,
        "traceback": error.traceback,
        "node": error.node,
        "args": list(error.args) if error.args is not None else None,
        "attrs": dict(error.attrs) if error.attrs else None,
        "validation": dict(error.validation) if error.validation else None,
    }


def decode_error(data: Any) -> ErrorInfo:
    m = ErrorModel.model_validate(data)
    args = tuple(m.args) if m.args is not None else None
    return ErrorInfo(m.type, m.module, m.message, m.traceback, m.node, args, m.attrs,
                     m.validation)


def parent_command_error(command: Command[Any], node: str) -> ErrorInfo:
    """A Command for the parent graph as the error that ends the subgraph's run: it carries the
    command (its update and goto, msgpack) to the task that runs the subgraph."""
    packed = codec.packb({"update": command.update, "goto": command.goto})
    return ErrorInfo(ParentCommand.__qualname__, ParentCommand.__module__,
                     "a Command for the parent graph", node=node,
                     attrs={"command": base64.b64encode(packed).decode()})


def command_of(error: ErrorInfo) -> Command[Any] | None:
    """The Command a `parent_command_error` carries, addressed to the graph it reached."""
    if error.type != ParentCommand.__qualname__ or not error.attrs:
        return None
    packed = error.attrs.get("command")
    if not isinstance(packed, str):
        return None
    fields = codec.unpackb(base64.b64decode(packed))
    return Command(graph=Command.PARENT, update=fields["update"], goto=fields["goto"])


def rebuild_error(error: ErrorInfo) -> BaseException:
    """The exception an error stands for: a Command for the parent graph comes back whole."""
    command = command_of(error)
    return ParentCommand(command) if command is not None else error.rebuild()


class ErrorModel(pydantic.BaseModel):
    type: str
    module: str
    message: str
    traceback: str = ""
    node: str = ""
    args: list[str | int | float | bool | None] | None = None
    attrs: dict[str, str | int | float | bool | None] | None = None
    validation: dict[str, Any] | None = None
