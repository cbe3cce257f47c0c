"""The type variables of LangGraph's generic classes (`StateGraph[State, Context, Input, Output]`),
with LangGraph's defaults: the context defaults to None, input and output to the state."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeVar

StateLike = Any
"""A TypedDict, a dataclass or a pydantic model (LangGraph: its `StateLike` protocol)."""

StateT = TypeVar("StateT", bound=StateLike)
StateT_co = TypeVar("StateT_co", bound=StateLike, covariant=True)
StateT_contra = TypeVar("StateT_contra", bound=StateLike, contravariant=True)
ContextT = TypeVar("ContextT", bound=StateLike | None, default=None)
ContextT_contra = TypeVar("ContextT_contra", bound=StateLike | None, contravariant=True,
                          default=None)
InputT = TypeVar("InputT", bound=StateLike, default=StateT)
OutputT = TypeVar("OutputT", bound=StateLike, default=StateT)
NodeInputT = TypeVar("NodeInputT", bound=StateLike)
NodeInputT_contra = TypeVar("NodeInputT_contra", bound=StateLike, contravariant=True)

__all__ = [
    "ContextT", "ContextT_contra", "InputT", "NodeInputT", "NodeInputT_contra", "OutputT",
    "StateLike", "StateT", "StateT_co", "StateT_contra",
]
