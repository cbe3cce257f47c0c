"""`create_react_agent`: a chat model that calls tools in a loop until it answers, as
`langgraph.prebuilt.chat_agent_executor`, built on arqgraph's StateGraph.

The graph is LangGraph's: `agent` (the model) and `tools` (a ToolNode), optional
`pre_model_hook`, `post_model_hook` and `generate_structured_response` nodes. In version "v2"
(the default) the agent sends each tool call to `tools` on its own (`Send`), so on a cluster
the calls of one turn run as separate jobs, spread over the workers.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, NotRequired, TypeVar, cast, get_type_hints

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel
from typing_extensions import TypedDict

from arqgraph.graph import END, StateGraph
from arqgraph.graph.message import add_messages
from arqgraph.managed import RemainingSteps
from arqgraph.prebuilt._agent_model import (
    PROMPT_RUNNABLE_NAME,
    chat_model,
    prompt_runnable,
    should_bind_tools,
    state_value,
    validate_chat_history,
)
from arqgraph.prebuilt.tool_node import ToolCallWithContext, ToolNode
from arqgraph.runtime import Runtime
from arqgraph.types import Send

__all__ = [
    "create_react_agent", "create_tool_calling_executor", "AgentState", "AgentStatePydantic",
    "AgentStateWithStructuredResponse", "AgentStateWithStructuredResponsePydantic",
    "PROMPT_RUNNABLE_NAME",
]

StructuredResponse = dict[str, Any] | BaseModel
StructuredResponseSchema = dict[str, Any] | type[BaseModel]
MORE_STEPS = "Sorry, need more steps to process this request."


class AgentState(TypedDict):
    """The agent's state: the conversation, and the steps left before the recursion limit."""

    messages: Annotated[Sequence[BaseMessage], add_messages]
    remaining_steps: NotRequired[RemainingSteps]


class AgentStatePydantic(BaseModel):
    """AgentState as a pydantic model."""

    messages: Annotated[Sequence[BaseMessage], add_messages]
    remaining_steps: RemainingSteps = 25


class AgentStateWithStructuredResponse(AgentState):
    """AgentState with the answer in the `response_format` schema."""

    structured_response: StructuredResponse


class AgentStateWithStructuredResponsePydantic(AgentStatePydantic):
    """AgentStatePydantic with the answer in the `response_format` schema."""

    structured_response: StructuredResponse


StateSchema = TypeVar("StateSchema", bound=AgentState | AgentStatePydantic)


def _check_arguments(version: str, state_schema: Any, response_format: Any,
                     extra: dict[str, Any]) -> Any:
    """The context schema a deprecated `config_schema` gives, after the arguments' checks."""
    context_schema = None
    if "config_schema" in extra:
        warnings.warn("`config_schema` is deprecated and will be removed. Please use "
                      "`context_schema` instead.", DeprecationWarning, stacklevel=3)
        context_schema = extra.pop("config_schema")
    if extra:
        raise TypeError(f"create_react_agent() got unexpected keyword arguments: {extra}")
    if version not in ("v1", "v2"):
        raise ValueError(f"Invalid version {version}. Supported versions are 'v1' and 'v2'.")
    if state_schema is not None:
        required = {"messages", "remaining_steps"}
        if response_format is not None:
            required.add("structured_response")
        if missing := required - set(get_type_hints(state_schema)):
            raise ValueError(f"Missing required key(s) {missing} in state_schema")
    return context_schema


def _model_input_schema(state_schema: Any) -> Any:
    """The agent node's input with a pre-model hook: the state and `llm_input_messages`."""
    if isinstance(state_schema, type) and issubclass(state_schema, BaseModel):
        from pydantic import create_model
        return create_model("CallModelInputSchema", llm_input_messages=(list[AnyMessage], ...),
                            __base__=state_schema)

    class CallModelInputSchema(state_schema):  # type: ignore[misc]
        llm_input_messages: list[AnyMessage]

    return CallModelInputSchema


def _send_calls(calls: list[Any], state: Any) -> list[Send]:
    return [Send("tools", ToolCallWithContext(__type="tool_call_with_context",
                                              tool_call=call, state=state)) for call in calls]


def create_react_agent(  # noqa: C901 - one builder, as LangGraph's, reads best whole
    model: Any,
    tools: Sequence[BaseTool | Callable[..., Any] | dict[str, Any]] | ToolNode,
    *,
    prompt: Any = None,
    response_format: StructuredResponseSchema | tuple[str, StructuredResponseSchema] | None = None,
    pre_model_hook: Any = None,
    post_model_hook: Any = None,
    state_schema: Any = None,
    context_schema: type[Any] | None = None,
    checkpointer: Any = None,
    store: Any = None,
    interrupt_before: list[str] | None = None,
    interrupt_after: list[str] | None = None,
    debug: bool = False,
    version: Literal["v1", "v2"] = "v2",
    name: str | None = None,
    **deprecated_kwargs: Any,
) -> Any:
    """An agent graph: the model answers or calls tools; the tools run; the model again.

    `model` is a chat model (its tools bound here unless `bind_tools` did), or a function
    `(state, runtime)` giving one per call. `prompt` (a string, SystemMessage, function or
    runnable) makes the model's input. `response_format` adds a last call for a structured
    answer in `structured_response`. The model's turn stops at the recursion limit with a
    "need more steps" message instead of failing the run.
    """
    context_schema = _check_arguments(version, state_schema, response_format,
                                      deprecated_kwargs) or context_schema
    if state_schema is None:
        state_schema = (AgentStateWithStructuredResponse if response_format is not None
                        else AgentState)
    builtin: list[dict[str, Any]] = []
    if isinstance(tools, ToolNode):
        tool_node = tools
    else:
        builtin = [t for t in tools if isinstance(t, dict)]
        tool_node = ToolNode([t for t in tools if not isinstance(t, dict)])
    tool_classes = list(tool_node.tools_by_name.values())
    dynamic = not isinstance(model, str | Runnable) and callable(model)
    static_model: Runnable[Any, Any] | None = None
    if not dynamic:
        if isinstance(model, str):
            try:
                from langchain.chat_models import init_chat_model
            except ImportError:
                raise ImportError("Please install langchain (`pip install langchain`) to use "
                                  "'<provider>:<model>' string syntax for `model` parameter."
                                  ) from None
            model = init_chat_model(model)
        if should_bind_tools(model, tool_classes, len(builtin)) and tool_classes + builtin:
            model = model.bind_tools(tool_classes + builtin)
        static_model = prompt_runnable(prompt) | model
    return_direct = {t.name for t in tool_classes if t.return_direct}

    async def resolve(state: Any, runtime: Runtime[Any]) -> Runnable[Any, Any]:
        if static_model is not None:
            return static_model
        chosen = model(state, runtime)
        if inspect.isawaitable(chosen):
            chosen = await chosen
        return prompt_runnable(prompt) | cast(Runnable[Any, Any], chosen)

    def more_steps_needed(state: Any, response: BaseMessage) -> bool:
        calls = response.tool_calls if isinstance(response, AIMessage) else []
        all_direct = isinstance(response, AIMessage) and all(
            c["name"] in return_direct for c in calls)
        remaining = state_value(state, "remaining_steps", None)
        if remaining is None:
            return False
        return (remaining < 1 and all_direct) or (remaining < 2 and bool(calls))

    def model_input(state: Any) -> Any:
        messages = (state_value(state, "llm_input_messages") if pre_model_hook is not None
                    else None) or state_value(state, "messages")
        if messages is None:
            keys = ("'llm_input_messages' or 'messages' key" if pre_model_hook is not None
                    else "'messages' key")
            raise ValueError(f"Expected input to call_model to have {keys}, but got {state}")
        validate_chat_history(messages)
        if isinstance(state, BaseModel):
            state.messages = messages  # type: ignore[attr-defined]
        else:
            state["messages"] = messages
        return state

    async def call_model(state: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        runnable = await resolve(state, runtime)
        response = cast(AIMessage, await runnable.ainvoke(model_input(state), config))
        response.name = name
        if more_steps_needed(state, response):
            return {"messages": [AIMessage(id=response.id, content=MORE_STEPS)]}
        return {"messages": [response]}

    async def generate_structured_response(state: Any, config: RunnableConfig,
                                           runtime: Runtime[Any]) -> Any:
        messages = state_value(state, "messages")
        schema = response_format
        if isinstance(response_format, tuple):
            system, schema = response_format
            messages = [SystemMessage(content=system), *messages]
        structured = chat_model(await resolve(state, runtime)).with_structured_output(
            cast(Any, schema))
        return {"structured_response": await structured.ainvoke(messages, config)}

    input_schema = _model_input_schema(state_schema) if pre_model_hook is not None else None
    workflow = StateGraph(state_schema, context_schema=context_schema)
    workflow.add_node("agent", call_model, input_schema=input_schema)
    entry = "agent"
    if pre_model_hook is not None:
        workflow.add_node("pre_model_hook", pre_model_hook)
        workflow.add_edge("pre_model_hook", "agent")
        entry = "pre_model_hook"
    workflow.set_entry_point(entry)
    if post_model_hook is not None:
        workflow.add_node("post_model_hook", post_model_hook)
    if response_format is not None:
        workflow.add_node("generate_structured_response", generate_structured_response)
    compile_args = {"checkpointer": checkpointer, "store": store, "debug": debug, "name": name,
                    "interrupt_before": interrupt_before, "interrupt_after": interrupt_after}

    if not tool_classes:
        if post_model_hook is not None:
            workflow.add_edge("agent", "post_model_hook")
        if response_format is not None:
            last = "post_model_hook" if post_model_hook is not None else "agent"
            workflow.add_edge(last, "generate_structured_response")
        return workflow.compile(**compile_args)

    after_model = ("post_model_hook" if post_model_hook is not None else
                   "generate_structured_response" if response_format is not None else END)

    def should_continue(state: Any) -> str | list[Send]:
        last = state_value(state, "messages")[-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return after_model
        if version == "v1":
            return "tools"
        if post_model_hook is not None:
            return "post_model_hook"
        return _send_calls(last.tool_calls, state)

    workflow.add_node("tools", tool_node)
    agent_paths = ["post_model_hook"] if post_model_hook is not None else ["tools"]
    hook_paths = [entry, "tools"]
    finish = "generate_structured_response" if response_format is not None else END
    (hook_paths if post_model_hook is not None else agent_paths).append(finish)
    if post_model_hook is not None:
        workflow.add_edge("agent", "post_model_hook")

        def post_model_hook_router(state: Any) -> str | list[Send]:
            messages = state_value(state, "messages")
            answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
            last_ai = next(m for m in reversed(messages) if isinstance(m, AIMessage))
            pending = [c for c in last_ai.tool_calls if c["id"] not in answered]
            if pending:
                return _send_calls(pending, state)
            if isinstance(messages[-1], ToolMessage):
                return entry
            return finish

        workflow.add_conditional_edges("post_model_hook", post_model_hook_router,
                                       path_map=hook_paths)
    workflow.add_conditional_edges("agent", should_continue, path_map=agent_paths)

    def route_tool_responses(state: Any) -> str:
        message: Any = None
        for message in reversed(state_value(state, "messages")):
            if not isinstance(message, ToolMessage):
                break
            if message.name in return_direct:
                return END
        if isinstance(message, AIMessage) and any(
                c["name"] in return_direct for c in message.tool_calls):
            return END  # (a return_direct tool of the same turn ran in another Send)
        return entry

    if return_direct:
        workflow.add_conditional_edges("tools", route_tool_responses, path_map=[entry, END])
    else:
        workflow.add_edge("tools", entry)
    return workflow.compile(**compile_args)


create_tool_calling_executor = create_react_agent
