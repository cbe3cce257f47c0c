"""One namespace of graph-building names, taken from LangGraph or from arqgraph.

A test graph factory receives an `Api` and builds its graph only through it, so the very same
factory builds the reference graph (`Api("langgraph")`) and the candidate (`Api("arqgraph")`):
the `arqgraph` package mirrors LangGraph's public module names.

`DIFF_SELF_CHECK=1` makes the candidate side use LangGraph too, which validates the harness
(every case must then agree with itself, deterministically).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

REFERENCE = "langgraph"
CANDIDATE = "arqgraph"

# attribute -> (module under the prefix, name in that module)
_NAMES: dict[str, tuple[str, str]] = {
    "StateGraph": ("graph", "StateGraph"),
    "START": ("graph", "START"),
    "END": ("graph", "END"),
    "MessagesState": ("graph", "MessagesState"),
    "add_messages": ("graph.message", "add_messages"),
    "push_message": ("graph.message", "push_message"),
    "Send": ("types", "Send"),
    "Command": ("types", "Command"),
    "RetryPolicy": ("types", "RetryPolicy"),
    "StreamWriter": ("types", "StreamWriter"),
    "InvalidUpdateError": ("errors", "InvalidUpdateError"),
    "GraphRecursionError": ("errors", "GraphRecursionError"),
    "get_stream_writer": ("config", "get_stream_writer"),
    "Runtime": ("runtime", "Runtime"),
    # persistence and control (threads, interrupts, snapshots, timeouts)
    "InMemorySaver": ("checkpoint.memory", "InMemorySaver"),
    "interrupt": ("types", "interrupt"),
    "Interrupt": ("types", "Interrupt"),
    "StateSnapshot": ("types", "StateSnapshot"),
    "PregelTask": ("types", "PregelTask"),
    "GraphInterrupt": ("errors", "GraphInterrupt"),
    "NodeTimeoutError": ("errors", "NodeTimeoutError"),
    "NodeError": ("errors", "NodeError"),
    # the module map: names a program takes from LangGraph's other public modules
    "RemainingSteps": ("managed", "RemainingSteps"),
    "IsLastStep": ("managed", "IsLastStep"),
    "Overwrite": ("types", "Overwrite"),
    "StateUpdate": ("types", "StateUpdate"),
    "CachePolicy": ("types", "CachePolicy"),
    "TimeoutPolicy": ("types", "TimeoutPolicy"),
    "TracePolicy": ("types", "TracePolicy"),
    "omit_payload": ("types", "omit_payload"),
    "is_invalid_resume": ("errors", "is_invalid_resume"),
    "InMemoryCache": ("cache.memory", "InMemoryCache"),
    "InMemoryStore": ("store.memory", "InMemoryStore"),
    "BaseStore": ("store.base", "BaseStore"),
    "get_store": ("config", "get_store"),
    "CONST_START": ("constants", "START"),
    "CONST_END": ("constants", "END"),
    # prebuilt agents and tool nodes (LangChain's tools and messages)
    "ToolNode": ("prebuilt", "ToolNode"),
    "tools_condition": ("prebuilt", "tools_condition"),
    "create_react_agent": ("prebuilt", "create_react_agent"),
    "InjectedState": ("prebuilt", "InjectedState"),
    "InjectedStore": ("prebuilt", "InjectedStore"),
    "ValidationNode": ("prebuilt", "ValidationNode"),
    "ToolRuntime": ("prebuilt", "ToolRuntime"),
    "ToolCallTransformer": ("prebuilt", "ToolCallTransformer"),
}


def self_check() -> bool:
    return os.environ.get("DIFF_SELF_CHECK", "").strip().lower() not in ("", "0", "false", "no")


def candidate_prefix() -> str:
    """The prefix the arqgraph side uses: "arqgraph", or "langgraph" under DIFF_SELF_CHECK=1."""
    return REFERENCE if self_check() else CANDIDATE


class Api:
    """The graph-building names of one library, imported by prefix ("langgraph" or "arqgraph")."""

    StateGraph: Any
    START: str
    END: str
    MessagesState: Any
    add_messages: Any
    push_message: Any
    Send: Any
    Command: Any
    RetryPolicy: Any
    StreamWriter: Any
    InvalidUpdateError: type[Exception]
    GraphRecursionError: type[Exception]
    NodeError: Any
    RemainingSteps: Any
    IsLastStep: Any
    Overwrite: Any
    StateUpdate: Any
    CachePolicy: Any
    TimeoutPolicy: Any
    TracePolicy: Any
    omit_payload: Any
    is_invalid_resume: Any
    InMemoryCache: Any
    InMemoryStore: Any
    BaseStore: Any
    get_store: Any
    CONST_START: str
    CONST_END: str
    get_stream_writer: Any
    Runtime: Any
    InMemorySaver: Any
    interrupt: Any
    Interrupt: Any
    StateSnapshot: Any
    PregelTask: Any
    GraphInterrupt: type[Exception]
    NodeTimeoutError: type[Exception]
    ToolNode: Any
    ToolRuntime: Any
    ToolCallTransformer: Any
    tools_condition: Any
    create_react_agent: Any
    InjectedState: Any
    InjectedStore: Any
    ValidationNode: Any

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        for attr, (module, name) in _NAMES.items():
            mod = importlib.import_module(f"{prefix}.{module}")
            setattr(self, attr, getattr(mod, name))

    @classmethod
    def reference(cls) -> Api:
        return cls(REFERENCE)

    @classmethod
    def candidate(cls) -> Api:
        return cls(candidate_prefix())

    def __repr__(self) -> str:
        return f"Api({self.prefix!r})"
