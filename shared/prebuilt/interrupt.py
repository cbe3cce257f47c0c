"""The shapes of a human-in-the-loop request and its answer, as `langgraph.prebuilt.interrupt`
(Agent Inbox's protocol): a node passes `HumanInterrupt`s to `interrupt()`, and the run is
resumed with `HumanResponse`s. Plain TypedDicts, so they cross the wire as dicts."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict


class HumanInterruptConfig(TypedDict):
    """Which answers the human may give: ignore the step, respond in text, edit, accept."""

    allow_ignore: bool
    allow_respond: bool
    allow_edit: bool
    allow_accept: bool


class ActionRequest(TypedDict):
    """The action awaiting the human: its name and its arguments."""

    action: str
    args: dict[str, Any]


class HumanInterrupt(TypedDict):
    """What a node asks the human: the action, what they may answer, and why."""

    action_request: ActionRequest
    config: HumanInterruptConfig
    description: str | None


class HumanResponse(TypedDict):
    """The human's answer: `accept`/`ignore` (args None), `response` (a text), `edit` (an
    ActionRequest with the edited arguments)."""

    type: Literal["accept", "ignore", "response", "edit"]
    args: None | str | ActionRequest
