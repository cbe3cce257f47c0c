"""Prebuilt agents and tool nodes, as `langgraph.prebuilt`: `ToolNode`, `tools_condition`,
`create_react_agent`, `ValidationNode`, `InjectedState`, `InjectedStore`, `ToolRuntime`.

They run on arqgraph's own StateGraph, so an agent's model call and each of its tool calls are
tasks like any other node's: on a cluster, the v2 agent's tool calls (one `Send` each) spread
over the worker pool. Tools and messages are LangChain's, so this package, and only this one,
needs langchain-core: `pip install 'arqgraph[langchain]'`.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "arqgraph.prebuilt needs langchain-core (its tools and messages): "
        "pip install 'arqgraph[langchain]'"
    ) from exc

from arqgraph.prebuilt.chat_agent_executor import create_react_agent
from arqgraph.prebuilt.tool_calls import ToolCallStream, ToolCallTransformer
from arqgraph.prebuilt.tool_node import (
    InjectedState,
    InjectedStore,
    ToolNode,
    ToolRuntime,
    tools_condition,
)
from arqgraph.prebuilt.tool_validator import ValidationNode

__all__ = [
    "create_react_agent",
    "ToolNode",
    "tools_condition",
    "ValidationNode",
    "InjectedState",
    "InjectedStore",
    "ToolRuntime",
    "ToolCallTransformer",
    "ToolCallStream",
]
