"""Managed values: state keys whose value the runtime computes for each step instead of storing.

    class State(TypedDict):
        messages: list
        remaining_steps: RemainingSteps   # steps left before the recursion limit
        is_last_step: IsLastStep          # True in the last step the limit allows

A node (or a conditional edge) sees them in its state; they are not stored, streamed or
returned, and writes to them are dropped, as in LangGraph.
"""

from __future__ import annotations

from typing import Annotated


class ManagedValue:
    """A value computed from where a task stands: its superstep `step`, and `stop`, the run's
    first step plus its recursion limit, where LangGraph's count of remaining steps is zero."""

    @staticmethod
    def get(step: int, stop: int) -> object:
        raise NotImplementedError


class IsLastStepManager(ManagedValue):
    @staticmethod
    def get(step: int, stop: int) -> bool:
        return step == stop - 1


class RemainingStepsManager(ManagedValue):
    @staticmethod
    def get(step: int, stop: int) -> int:
        return stop - step


IsLastStep = Annotated[bool, IsLastStepManager]
RemainingSteps = Annotated[int, RemainingStepsManager]

__all__ = ["IsLastStep", "ManagedValue", "RemainingSteps"]
