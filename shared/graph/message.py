"""`add_messages`: the chat-history reducer, and `MessagesState`.

Messages are appended, or replace an earlier message with the same id. When langchain-core is
installed, messages are coerced to its message classes exactly as LangGraph does; without it,
messages stay plain dicts (`{"role": ..., "content": ..., "id": ...}`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypedDict

REMOVE_ALL_MESSAGES = "__remove_all__"

_lc_convert: Any
try:  # pragma: no cover - depends on the environment
    from langchain_core.messages import convert_to_messages as _lc_convert
except ImportError:  # pragma: no cover
    _lc_convert = None


def _coerce(message: Any) -> Any:
    if _lc_convert is not None:
        return _lc_convert([message])[0]
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


def add_messages(left: Any, right: Any) -> list[Any]:
    """Merge two lists of messages, updating existing messages by id."""
    left_list = [_coerce(m) for m in (left if isinstance(left, list) else [left])]
    right_list = [_coerce(m) for m in (right if isinstance(right, list) else [right])]
    for message in left_list + right_list:
        if _get_id(message) is None:
            _set_id(message, str(uuid.uuid4()))
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


class MessagesState(TypedDict):
    messages: Annotated[list[Any], add_messages]
