"""`add_messages`: the chat-history reducer, `MessagesState`, and `push_message`.

Messages are appended, or replace an earlier message with the same id. When langchain-core is
installed, messages are coerced to its message classes exactly as LangGraph does (message
chunks become whole messages, on both sides); without it, messages stay plain dicts
(`{"role": ..., "content": ..., "id": ...}`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, TypedDict

from arqgraph.config import current_pushes, get_config

REMOVE_ALL_MESSAGES = "__remove_all__"
FORMATS = ("langchain-openai",)

_lc: Any
try:  # pragma: no cover - depends on the environment
    from langchain_core import messages as _lc
except ImportError:  # pragma: no cover
    _lc = None


def _coerce_all(messages: list[Any]) -> list[Any]:
    """Messages as LangGraph keeps them: LangChain messages, chunks made whole."""
    if _lc is None:
        return [_coerce_plain(m) for m in messages]
    if all(isinstance(m, _lc.BaseMessage) and not isinstance(m, _lc.BaseMessageChunk)
           for m in messages):
        return messages
    return [_lc.message_chunk_to_message(m) for m in _lc.convert_to_messages(messages)]


def _coerce_plain(message: Any) -> Any:
    if isinstance(message, str):
        return {"role": "user", "content": message}
    if isinstance(message, tuple) and len(message) == 2:
        return {"role": message[0], "content": message[1]}
    return message


def _get_id(message: Any) -> Any:
    return message.get("id") if isinstance(message, dict) else getattr(message, "id", None)


def _set_id(message: Any, value: str) -> None:
    if isinstance(message, dict):
        message["id"] = value
    else:
        message.id = value


def _is_remove(message: Any) -> bool:
    kind = message.get("type") if isinstance(message, dict) else getattr(message, "type", None)
    return kind == "remove"


def add_messages(
    left: Any = None, right: Any = None, *, format: Literal["langchain-openai"] | None = None,
) -> Any:
    """Merge two lists of messages, updating existing messages by id. Called with neither
    list (`add_messages(format="langchain-openai")`), it is the reducer with that format:
    messages are given back in OpenAI's content format, as LangChain converts them."""
    if left is None and right is None:
        return partial(_merge, format=format)
    if left is None or right is None:
        raise ValueError("Must specify non-null arguments for both 'left' and 'right'. Only "
                         f"received: '{'left' if left is not None else 'right'}'.")
    return _merge(left, right, format=format)


def _merge(left: Any, right: Any, *, format: str | None = None) -> list[Any]:
    left_list = _coerce_all(list(left) if isinstance(left, list) else [left])
    right_list = _coerce_all(list(right) if isinstance(right, list) else [right])
    for message in left_list + right_list:
        if _get_id(message) is None:
            _set_id(message, str(uuid.uuid4()))
    merged = _merged(left_list, right_list)
    if format == "langchain-openai":
        if _lc is None:
            raise ImportError("format='langchain-openai' needs langchain-core")
        return list(_lc.convert_to_messages(_lc.convert_to_openai_messages(merged)))
    if format:
        raise ValueError(f"Unrecognized format={format!r}. Expected one of "
                         f"{', '.join(map(repr, FORMATS))}, None.")
    return merged


# (the workers give the messages a node returns their ids as these would: see
# `arqgraph.workers.executor.give_message_ids`)
add_messages.assigns_message_ids = True  # type: ignore[attr-defined]
_merge.assigns_message_ids = True  # type: ignore[attr-defined]


def _merged(left_list: list[Any], right_list: list[Any]) -> list[Any]:
    for i, message in enumerate(right_list):
        if _is_remove(message) and _get_id(message) == REMOVE_ALL_MESSAGES:
            return right_list[i + 1 :]
    merged = list(left_list)
    position = {_get_id(m): i for i, m in enumerate(merged)}
    removed: set[Any] = set()
    for message in right_list:
        mid = _get_id(message)
        if mid in position:
            if _is_remove(message):
                removed.add(mid)
            else:
                removed.discard(mid)
                merged[position[mid]] = message
        elif _is_remove(message):
            raise ValueError(f"Attempting to delete a message with an ID that doesn't exist ('{mid}')")
        else:
            position[mid] = len(merged)
            merged.append(message)
    return [m for m in merged if _get_id(m) not in removed]


def push_message(message: Any, *, state_key: str | None = "messages") -> Any:
    """Send a message from inside a node before the node returns: on the "messages" stream
    mode at once (when the run streams it), and, unless `state_key` is None, into that state
    key, as if the node had returned it. The message needs an id (it is how the node's
    later output is told apart from it)."""
    config = get_config()
    message = _coerce_all([message])[0]
    if _get_id(message) is None:
        raise ValueError("Message ID is required")
    for handler in _handlers(config.get("callbacks")):
        pushed: Callable[[Any], None] | None = getattr(handler, "node_pushed", None)
        if pushed is not None:
            pushed(message)
    pushes = current_pushes.get()
    if state_key and pushes is not None:
        pushes.append((state_key, message))
    return message


def _handlers(callbacks: Any) -> list[Any]:
    if isinstance(callbacks, list | tuple):
        return list(callbacks)
    return list(getattr(callbacks, "handlers", None) or [])


class MessagesState(TypedDict):
    messages: Annotated[list[Any], add_messages]
