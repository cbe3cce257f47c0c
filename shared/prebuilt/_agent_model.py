"""The model side of the ReAct agent: its prompt, binding the tools to the chat model, and the
check that the history it is about to send answers every tool call."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableLambda, RunnableSequence
from langchain_core.tools import BaseTool

from arqgraph.errors import ErrorCode

PROMPT_RUNNABLE_NAME = "Prompt"
TROUBLESHOOTING = "https://docs.langchain.com/oss/python/langgraph/errors/"


def state_value(state: Any, key: str, default: Any = None) -> Any:
    """`key` of a dict state or attribute of a pydantic one."""
    return state.get(key, default) if isinstance(state, dict) else getattr(state, key, default)


def prompt_runnable(prompt: Any) -> Runnable[Any, Any]:
    """What turns the state into the model's input: its messages, after a system prompt (a
    string or a SystemMessage), or what a function or runnable of the state makes."""
    if prompt is None:
        return RunnableLambda(lambda state: state_value(state, "messages"),
                              name=PROMPT_RUNNABLE_NAME)
    if isinstance(prompt, str | SystemMessage):
        system = SystemMessage(content=prompt) if isinstance(prompt, str) else prompt
        return RunnableLambda(lambda state: [system, *state_value(state, "messages")],
                              name=PROMPT_RUNNABLE_NAME)
    if isinstance(prompt, Runnable):
        return prompt
    if inspect.iscoroutinefunction(prompt):
        async def aprompt(state: Any) -> Any:
            return await prompt(state)
        return RunnableLambda(_sync_refused, afunc=aprompt, name=PROMPT_RUNNABLE_NAME)
    if callable(prompt):
        return RunnableLambda(lambda state: prompt(state), name=PROMPT_RUNNABLE_NAME)
    raise ValueError(f"Got unexpected type for `prompt`: {type(prompt)}")


def _sync_refused(state: Any) -> Any:
    raise RuntimeError("an async prompt function needs the agent's async API")


def _chat_step(model: Any) -> Any:
    if isinstance(model, RunnableSequence):
        return next((step for step in model.steps
                     if isinstance(step, RunnableBinding | BaseChatModel)), model)
    return model


def should_bind_tools(model: Any, tools: Sequence[BaseTool], num_builtin: int = 0) -> bool:
    """Whether the agent must bind its tools to `model`: not when `model.bind_tools(...)`
    already did (then those must be the agent's tools, or the model calls unknown ones)."""
    model = _chat_step(model)
    if not isinstance(model, RunnableBinding) or "tools" not in model.kwargs:
        return True
    bound = model.kwargs["tools"]
    if len(tools) != len(bound) - num_builtin:
        raise ValueError(
            "Number of tools in the model.bind_tools() and tools passed to create_react_agent "
            f"must match Got {len(tools)} tools, expected {len(bound) - num_builtin}")
    names = set()
    for spec in bound:
        if spec.get("type") == "function":
            names.add(spec["function"]["name"])
        elif spec.get("name"):
            names.add(spec["name"])
    if missing := {t.name for t in tools} - names:
        raise ValueError(f"Missing tools '{missing}' in the model.bind_tools()")
    return False


def chat_model(model: Any) -> BaseChatModel:
    """The chat model under a binding or a prompt sequence (for `with_structured_output`)."""
    model = _chat_step(model)
    if isinstance(model, RunnableBinding):
        model = model.bound
    if not isinstance(model, BaseChatModel):
        raise TypeError("Expected `model` to be a ChatModel or RunnableBinding (e.g. "
                        f"model.bind_tools(...)), got {type(model)}")
    return model


def validate_chat_history(messages: Sequence[BaseMessage]) -> None:
    """Refuse a history with a tool call that no ToolMessage answers: chat providers do."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    unanswered = [call for m in messages if isinstance(m, AIMessage) for call in m.tool_calls
                  if call["id"] not in answered]
    if not unanswered:
        return
    code = ErrorCode.INVALID_CHAT_HISTORY.value
    raise ValueError(
        "Found AIMessages with tool_calls that do not have a corresponding ToolMessage. Here "
        f"are the first few of those tool calls: {unanswered[:3]}.\n\nEvery tool call (LLM "
        "requesting to call a tool) in the message history MUST have a corresponding "
        "ToolMessage (result of a tool invocation to return to the LLM) - this is required by "
        f"most LLM providers.\nFor troubleshooting, visit: {TROUBLESHOOTING}{code}")


ModelFactory = Callable[..., Any]
