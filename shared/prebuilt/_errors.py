"""What a ToolNode tells the model when a tool call goes wrong, and which errors it tells at all.

The texts are LangGraph's, word for word: a model prompted on one library sees the same
feedback on the other, and a differential test can compare the ToolMessages.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from types import UnionType
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

from langchain_core.tools.base import TOOL_MESSAGE_BLOCK_TYPES, ToolException
from pydantic import ValidationError

INVALID_TOOL_NAME_ERROR_TEMPLATE = (
    "Error: {requested_tool} is not a valid tool, try one of [{available_tools}]."
)
TOOL_CALL_ERROR_TEMPLATE = "Error: {error}\n Please fix your mistakes."
TOOL_EXECUTION_ERROR_TEMPLATE = (
    "Error executing tool '{tool_name}' with kwargs {tool_kwargs} with error:\n"
    " {error}\n"
    " Please fix the error and try again."
)
TOOL_INVOCATION_ERROR_TEMPLATE = (
    "Error invoking tool '{tool_name}' with kwargs {tool_kwargs} with error:\n"
    " {error}\n"
    " Please fix the error and try again."
)

ErrorHandling = bool | str | Callable[..., str] | type[Exception] | tuple[type[Exception], ...]


def msg_content_output(output: Any) -> str | list[dict[str, Any]]:
    """A tool's return value as ToolMessage content: a string or content blocks as they are,
    anything else as JSON (or its str when it is not JSON)."""
    if isinstance(output, str) or (
        isinstance(output, list)
        and all(isinstance(x, dict) and x.get("type") in TOOL_MESSAGE_BLOCK_TYPES for x in output)
    ):
        return output
    try:
        return json.dumps(output, ensure_ascii=False)
    except Exception:
        return str(output)


class ToolInvocationError(ToolException):
    """The model called a tool with arguments its schema refuses. Only the arguments the model
    controls are named: injected ones (state, store, runtime) are its system's, not its fault."""

    def __init__(
        self,
        tool_name: str,
        source: ValidationError,
        tool_kwargs: dict[str, Any],
        filtered_errors: list[Any] | None = None,
    ) -> None:
        if filtered_errors is not None:
            shown = "\n".join(
                f"{'.'.join(str(part) for part in error.get('loc', ()))}: "
                f"{error.get('msg', 'Unknown error')}"
                for error in filtered_errors
            )
        else:
            shown = str(source)
        self.message = TOOL_INVOCATION_ERROR_TEMPLATE.format(
            tool_name=tool_name, tool_kwargs=tool_kwargs, error=shown)
        self.tool_name = tool_name
        self.tool_kwargs = tool_kwargs
        self.source = source
        self.filtered_errors = filtered_errors
        super().__init__(self.message)


def default_handle_tool_errors(e: Exception) -> str:
    """The default: bad arguments go back to the model; a failing tool fails the node."""
    if isinstance(e, ToolInvocationError):
        return e.message
    raise e


def handled_types(flag: ErrorHandling) -> tuple[type[Exception], ...]:
    """The exception types `handle_tool_errors` catches (a handler's by its annotation)."""
    if isinstance(flag, type) and issubclass(flag, Exception):
        return (flag,)
    if isinstance(flag, tuple):
        return flag
    if callable(flag) and not isinstance(flag, type):
        return _annotated_types(flag)
    return (Exception,)


def _annotated_types(handler: Callable[..., str]) -> tuple[type[Exception], ...]:
    params = list(inspect.signature(handler).parameters.values())
    if not params:
        return (Exception,)
    first = params[1] if params[0].name in ("self", "cls") and len(params) == 2 else params[0]
    hints = get_type_hints(handler)
    if first.name not in hints:
        return (Exception,)
    if get_origin(first.annotation) in (Union, UnionType):
        args = get_args(first.annotation)
        if all(issubclass(arg, Exception) for arg in args):
            return tuple(args)
        raise ValueError(
            "All types in the error handler error annotation must be Exception types. "
            "For example, `def custom_handler(e: Union[ValueError, TypeError])`. "
            f"Got '{first.annotation}' instead."
        )
    annotated = hints[first.name]
    if Exception in getattr(annotated, "__mro__", ()):
        return (annotated,)
    raise ValueError(
        "Arbitrary types are not supported in the error handler signature. Please annotate "
        "the error with either a specific Exception type or a union of Exception types. "
        "For example, `def custom_handler(e: ValueError)` or "
        f"`def custom_handler(e: Union[ValueError, TypeError])`. Got '{annotated}' instead."
    )


def error_content(e: Exception, flag: ErrorHandling) -> str:
    """The ToolMessage text for a caught error, as `handle_tool_errors` asks."""
    if isinstance(flag, bool | tuple) or (isinstance(flag, type) and issubclass(flag, Exception)):
        return TOOL_CALL_ERROR_TEMPLATE.format(error=repr(e))
    if isinstance(flag, str):
        return flag
    if callable(flag):
        return cast(Callable[..., str], flag)(e)
    raise ValueError(
        "Got unexpected type of `handle_tool_error`. Expected bool, str or callable. "
        f"Received: {flag}"
    )


def model_errors(error: ValidationError, injected: set[str]) -> list[Any]:
    """The validation errors of the arguments the model gave, without injected values."""
    kept: list[Any] = []
    for detail in error.errors():
        if not detail["loc"] or detail["loc"][0] in injected:
            continue
        copy: dict[str, Any] = {**detail}
        if isinstance(copy.get("input"), dict):
            copy["input"] = {k: v for k, v in copy["input"].items() if k not in injected}
        kept.append(copy)
    return kept
