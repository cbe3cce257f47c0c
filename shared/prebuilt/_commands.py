"""A tool's result as a ToolNode's update: ToolMessages, and `Command`s a tool returns to
update the state or route the graph. Every tool call must end in exactly one ToolMessage with
its id (most chat models refuse a history without one), so a Command for this graph that
lacks it is refused with a ValueError that says how to fix the tool."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from typing import Any, Literal, cast

from langchain_core.messages import RemoveMessage, ToolCall, ToolMessage, convert_to_messages

from arqgraph.graph.message import REMOVE_ALL_MESSAGES
from arqgraph.prebuilt._errors import msg_content_output
from arqgraph.types import Command, Send

InputType = Literal["list", "dict", "tool_calls"]


def normalize_response(response: Any, call: ToolCall, kind: InputType, key: str) -> Any:
    """A tool's raw return (a ToolMessage, a Command, a list of them) checked and tidied."""
    if isinstance(response, Command):
        return _checked_command(response, call, kind, key)
    if isinstance(response, ToolMessage):
        response.content = msg_content_output(response.content)  # type: ignore[assignment]
        return response
    if isinstance(response, list):
        if all(isinstance(r, Command | ToolMessage) for r in response):
            return _checked_list(response, call, kind, key)
        raise TypeError(f"Tool {call['name']} returned a list with invalid element types: "
                        "expected all Command or ToolMessage")
    raise TypeError(f"Tool {call['name']} returned unexpected type: {type(response)}")


def _checked_list(response: list[Any], call: ToolCall, kind: InputType, key: str) -> list[Any]:
    expected = call["id"]
    count = 0
    for item in response:
        if isinstance(item, ToolMessage):
            count += item.tool_call_id == expected
        elif isinstance(item, Command) and isinstance(item.update, dict):
            count += sum(isinstance(m, ToolMessage) and m.tool_call_id == expected
                         for m in item.update.get(key, []))
    if count != 1:
        raise ValueError(
            f"Tool {call['name']} returned a list with {count} messages bound to tool_call_id "
            f"{expected!r}; expected exactly one terminating ToolMessage.")
    checked: list[Any] = []
    for item in response:
        if isinstance(item, Command):
            checked.append(_checked_command(item, call, kind, key, require_terminator=False))
        else:
            item.content = msg_content_output(item.content)
            checked.append(item)
    return checked


def _checked_command(command: Command[Any], call: ToolCall, kind: InputType, key: str, *,
                     require_terminator: bool = True) -> Command[Any]:
    if isinstance(command.update, dict):
        if kind not in ("dict", "tool_calls"):
            raise ValueError(
                f"Tools can provide a dict in Command.update only when using dict with '{key}' "
                f"key as ToolNode input, got: {command.update} for tool '{call['name']}'")
        updated = deepcopy(command)
        messages = (updated.update or {}).get(key, [])
    elif isinstance(command.update, list):
        if kind != "list":
            raise ValueError(
                "Tools can provide a list of messages in Command.update only when using list "
                f"of messages as ToolNode input, got: {command.update} for tool '{call['name']}'")
        updated = deepcopy(command)
        messages = updated.update
    else:
        return command
    messages = convert_to_messages(messages)
    if messages == [RemoveMessage(id=REMOVE_ALL_MESSAGES)]:
        return updated
    matched = False
    for message in messages:
        if isinstance(message, ToolMessage) and message.tool_call_id == call["id"]:
            message.name = call["name"]
            matched = True
    if require_terminator and updated.graph is None and not matched:
        example = ('`Command(update={"messages": [ToolMessage("Success", '
                   'tool_call_id=tool_call_id), ...]}, ...)`' if kind == "dict" else
                   '`Command(update=[ToolMessage("Success", tool_call_id=tool_call_id), '
                   '...], ...)`')
        raise ValueError(
            f"Expected to have a matching ToolMessage in Command.update for tool "
            f"'{call['name']}', got: {messages}. Every tool call (LLM requesting to call a "
            "tool) in the message history MUST have a corresponding ToolMessage. You can fix "
            f"it by modifying the tool to return {example}.")
    return updated


def combine_outputs(outputs: list[Any], kind: InputType, key: str) -> Any:
    """The node's update from its calls' results. Without Commands: the messages (a list for
    list input, else under `key`); with: a list of Commands and updates, where Commands that
    `Send` in the parent graph merge into one."""
    flat: list[Any] = []
    for output in outputs:
        flat.extend(output if isinstance(output, list) else [output])
    if not any(isinstance(output, Command) for output in flat):
        return flat if kind == "list" else {key: flat}
    combined: list[Any] = []
    parent: Command[Any] | None = None
    for output in flat:
        if not isinstance(output, Command):
            combined.append([output] if kind == "list" else {key: [output]})
        elif (output.graph == Command.PARENT and isinstance(output.goto, list)
              and all(isinstance(send, Send) for send in output.goto)):
            parent = (Command(graph=Command.PARENT, goto=output.goto) if parent is None
                      else replace(parent, goto=[*cast(list[Send], parent.goto), *output.goto]))
        else:
            combined.append(output)
    if parent is not None:
        combined.append(parent)
    return combined
