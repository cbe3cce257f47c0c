"""`ToolNode`, which runs the tool calls of the last AI message, and `tools_condition`, which
routes to it, as in `langgraph.prebuilt.tool_node`.

A ToolNode is a node like any other: one task runs its calls concurrently. Given one call
(`ToolCallWithContext`, what the v2 ReAct agent `Send`s per call), it runs just that one, so on
a cluster each call of an agent is a job of its own and slow tools spread over the pool.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables.config import (
    RunnableConfig,
    ensure_config,
    get_config_list,
    get_executor_for_config,
)
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as create_tool
from pydantic import BaseModel, ValidationError

from arqgraph.config import CONF
from arqgraph.errors import GraphBubbleUp, is_invalid_resume
from arqgraph.graph.message import REMOVE_ALL_MESSAGES
from arqgraph.prebuilt._commands import combine_outputs, normalize_response
from arqgraph.prebuilt._errors import (
    INVALID_TOOL_NAME_ERROR_TEMPLATE,
    TOOL_CALL_ERROR_TEMPLATE,
    TOOL_EXECUTION_ERROR_TEMPLATE,
    TOOL_INVOCATION_ERROR_TEMPLATE,
    ErrorHandling,
    ToolInvocationError,
    default_handle_tool_errors,
    error_content,
    handled_types,
    model_errors,
    msg_content_output,
)
from arqgraph.prebuilt._injection import (
    InjectedArgs,
    InjectedState,
    InjectedStore,
    ToolRuntime,
    inject,
    injected_args_of,
)
from arqgraph.runtime import Runtime, current_runtime
from arqgraph.types import Command

__all__ = [
    "CONF", "INVALID_TOOL_NAME_ERROR_TEMPLATE", "REMOVE_ALL_MESSAGES", "TOOL_CALL_ERROR_TEMPLATE",
    "TOOL_EXECUTION_ERROR_TEMPLATE", "TOOL_INVOCATION_ERROR_TEMPLATE", "TYPE_CHECKING",
    "InjectedState", "InjectedStore", "ToolCallRequest", "ToolCallWithContext",
    "ToolInvocationError", "ToolNode", "ToolRuntime", "msg_content_output", "tools_condition",
]

InputType = Literal["list", "dict", "tool_calls"]
Output = ToolMessage | Command[Any] | list[Any]


@dataclass
class ToolCallRequest:
    """One tool call as a `wrap_tool_call` interceptor sees it: the call, its tool (None when
    no tool has its name), the state and the tool's runtime."""

    tool_call: ToolCall
    tool: BaseTool | None
    state: Any
    runtime: ToolRuntime

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            warnings.warn(
                f"Setting attribute '{name}' on ToolCallRequest is deprecated. Use the "
                "override() method instead to create a new instance with modified values.",
                DeprecationWarning, stacklevel=2)
        object.__setattr__(self, name, value)

    def override(self, **overrides: Any) -> ToolCallRequest:
        """A copy with `overrides` (tool_call, tool, state); a new state reaches the runtime
        too, so InjectedState and ToolRuntime agree."""
        request = replace(self, **overrides)
        if "state" in overrides and isinstance(request.runtime, ToolRuntime):
            request = replace(request, runtime=replace(request.runtime, state=request.state))
        return request


ToolCallWrapper = Callable[[ToolCallRequest, Callable[[ToolCallRequest], Any]], Any]
AsyncToolCallWrapper = Callable[
    [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[Any]]], Awaitable[Any]]


class ToolCallWithContext(TypedDict):
    """One tool call with the state it was made in: the payload of a `Send` per call."""

    tool_call: ToolCall
    __type: Literal["tool_call_with_context"]
    state: Any


class ToolNode:
    """Runs the tool calls of the last AIMessage, concurrently, as ToolMessages.

    Input: a state with a `messages_key` list, a list of messages, a list of tool calls, or
    one `ToolCallWithContext`. Output: `{messages_key: [ToolMessage, ...]}` (a list for list
    input), or, when a tool returns a `Command`, a list of Commands and updates.
    `handle_tool_errors` decides which tool errors become error ToolMessages for the model.
    """

    name: str = "tools"

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        *,
        name: str = "tools",
        tags: list[str] | None = None,
        handle_tool_errors: ErrorHandling = default_handle_tool_errors,
        messages_key: str = "messages",
        wrap_tool_call: ToolCallWrapper | None = None,
        awrap_tool_call: AsyncToolCallWrapper | None = None,
    ) -> None:
        self.name = name
        self.tags = tags
        self._handle_tool_errors = handle_tool_errors
        self._messages_key = messages_key
        self._wrap_tool_call = wrap_tool_call
        self._awrap_tool_call = awrap_tool_call
        self._tools_by_name: dict[str, BaseTool] = {}
        self._injected_args: dict[str, InjectedArgs] = {}
        for given in tools:
            tool_ = given if isinstance(given, BaseTool) else create_tool(given)
            self._tools_by_name[tool_.name] = tool_
            self._injected_args[tool_.name] = injected_args_of(tool_)

    @property
    def tools_by_name(self) -> dict[str, BaseTool]:
        """The node's tools by name."""
        return self._tools_by_name

    def get_name(self) -> str:
        """The node's name in a graph when added without one (`add_node(ToolNode(...))`)."""
        return self.name

    async def __call__(self, input: Any, config: RunnableConfig | None = None,
                       runtime: Runtime[Any] | None = None) -> Any:
        return await self.ainvoke(input, config, runtime=runtime)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the calls, sync tools in threads (the config's executor)."""
        calls, kind, runtimes = self._prepare(input, config, kwargs.get("runtime"))
        with get_executor_for_config(ensure_config(config)) as executor:
            outputs = list(executor.map(self._run_one, calls, [kind] * len(calls), runtimes))
        return combine_outputs(outputs, kind, self._messages_key)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> Any:
        """Run the calls concurrently on the event loop."""
        calls, kind, runtimes = self._prepare(input, config, kwargs.get("runtime"))
        outputs = await asyncio.gather(
            *(self._arun_one(c, kind, r) for c, r in zip(calls, runtimes, strict=True)))
        return combine_outputs(list(outputs), kind, self._messages_key)

    def _prepare(self, input: Any, config: RunnableConfig | None, runtime: Any
                 ) -> tuple[list[ToolCall], InputType, list[ToolRuntime]]:
        calls, kind = self._parse_input(input)
        runtime = runtime or current_runtime.get() or Runtime()
        state = input["state"] if _with_context(input) else input
        configs = get_config_list(ensure_config(config), len(calls))
        runtimes = [
            ToolRuntime(state=state, tool_call_id=call["id"], config=cfg,
                        context=runtime.context, store=runtime.store,
                        stream_writer=runtime.stream_writer,
                        tools=list(self._tools_by_name.values()),
                        execution_info=runtime.execution_info, server_info=runtime.server_info)
            for call, cfg in zip(calls, configs, strict=True)
        ]
        return calls, kind, runtimes

    def _parse_input(self, input: Any) -> tuple[list[ToolCall], InputType]:
        if isinstance(input, list):
            if input and isinstance(input[-1], dict) and input[-1].get("type") == "tool_call":
                return cast(list[ToolCall], input), "tool_calls"
            kind: InputType = "list"
            messages = input
        elif _with_context(input):
            return [input["tool_call"]], "tool_calls"
        elif isinstance(input, dict) and (messages := input.get(self._messages_key, [])):
            kind = "dict"
        elif messages := getattr(input, self._messages_key, []):
            kind = "dict"
        else:
            raise ValueError("No message found in input")
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if last is None:
            raise ValueError("No AIMessage found in input")
        return list(last.tool_calls), kind

    def _invalid_tool(self, call: ToolCall) -> ToolMessage:
        content = INVALID_TOOL_NAME_ERROR_TEMPLATE.format(
            requested_tool=call["name"], available_tools=", ".join(self._tools_by_name))
        return ToolMessage(content, name=call["name"], tool_call_id=call["id"], status="error")

    def _call_args(self, request: ToolCallRequest) -> dict[str, Any]:
        assert request.tool is not None
        wanted = self._injected_args.get(request.tool_call["name"]) or injected_args_of(
            request.tool)
        return {**inject(request.tool_call, request.runtime, wanted, self._messages_key),
                "type": "tool_call"}

    def _settle_error(self, exc: Exception, call: ToolCall) -> ToolMessage:
        """A tool that raised: interrupts go on up; arguments its schema refused become a
        ToolInvocationError (naming only the model's arguments); then `handle_tool_errors`."""
        if isinstance(exc, GraphBubbleUp):
            raise exc
        if isinstance(exc, ValidationError) and not is_invalid_resume(exc):
            wanted = self._injected_args.get(call["name"])
            errors = model_errors(exc, wanted.names() if wanted else set())
            exc = ToolInvocationError(call["name"], exc, call["args"], errors)
        return self._failed(exc, call)

    def _settle(self, response: Any, call: ToolCall, kind: InputType) -> Output:
        try:
            return cast(Output, normalize_response(response, call, kind, self._messages_key))
        except Exception as exc:
            return self._failed(exc, call)

    def _failed(self, exc: Exception, call: ToolCall, *, wrapper: bool = False) -> ToolMessage:
        """The error ToolMessage for `exc`, or `exc` raised when it is not to be handled (an
        interrupt's refused answer never is: the model cannot fix it)."""
        flag = self._handle_tool_errors
        if is_invalid_resume(exc) or not flag or (
                not wrapper and not isinstance(exc, handled_types(flag))):
            raise exc
        return ToolMessage(content=error_content(exc, flag), name=call["name"],
                           tool_call_id=call["id"], status="error")

    def _execute(self, request: ToolCallRequest, kind: InputType, config: RunnableConfig
                 ) -> Output:
        if request.tool is None:
            return self._invalid_tool(request.tool_call)
        args = self._call_args(request)  # (a missing store or state key is not handled)
        try:
            response = request.tool.invoke(args, config)
        except Exception as exc:
            return self._settle_error(exc, request.tool_call)
        return self._settle(response, request.tool_call, kind)

    async def _aexecute(self, request: ToolCallRequest, kind: InputType,
                        config: RunnableConfig) -> Output:
        if request.tool is None:
            return self._invalid_tool(request.tool_call)
        args = self._call_args(request)  # (a missing store or state key is not handled)
        try:
            response = await request.tool.ainvoke(args, config)
        except Exception as exc:
            return self._settle_error(exc, request.tool_call)
        return self._settle(response, request.tool_call, kind)

    def _request(self, call: ToolCall, runtime: ToolRuntime) -> ToolCallRequest:
        return ToolCallRequest(call, self._tools_by_name.get(call["name"]), runtime.state, runtime)

    def _run_one(self, call: ToolCall, kind: InputType, runtime: ToolRuntime) -> Output:
        request = self._request(call, runtime)
        if self._wrap_tool_call is None:
            return self._execute(request, kind, runtime.config)
        try:
            return cast(Output, self._wrap_tool_call(
                request, lambda req: self._execute(req, kind, runtime.config)))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._failed(exc, request.tool_call, wrapper=True)

    async def _arun_one(self, call: ToolCall, kind: InputType, runtime: ToolRuntime) -> Output:
        request = self._request(call, runtime)
        if self._awrap_tool_call is None and self._wrap_tool_call is None:
            return await self._aexecute(request, kind, runtime.config)
        try:
            if self._awrap_tool_call is not None:
                return cast(Output, await self._awrap_tool_call(
                    request, lambda req: self._aexecute(req, kind, runtime.config)))
            wrap = self._wrap_tool_call
            assert wrap is not None  # (a sync wrapper runs in a thread, off the event loop)
            return cast(Output, await asyncio.to_thread(
                wrap, request, lambda req: self._execute(req, kind, runtime.config)))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._failed(exc, request.tool_call, wrapper=True)


def _with_context(input: Any) -> bool:
    return isinstance(input, dict) and input.get("__type") == "tool_call_with_context"


def tools_condition(
    state: list[AnyMessage] | dict[str, Any] | BaseModel, messages_key: str = "messages",
) -> Literal["tools", "__end__"]:
    """"tools" when the last message has tool calls, else "__end__": the ReAct loop's edge."""
    if isinstance(state, list):
        last = state[-1]
    elif (isinstance(state, dict) and (messages := state.get(messages_key, []))) or (
            messages := getattr(state, messages_key, [])):
        last = messages[-1]
    else:
        raise ValueError(f"No messages found in input state to tool_edge: {state}")
    if hasattr(last, "tool_calls") and len(last.tool_calls) > 0:
        return "tools"
    return "__end__"
