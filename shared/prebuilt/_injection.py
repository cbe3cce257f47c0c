"""What a ToolNode passes to a tool that the model does not: graph state, the store, the
tool's runtime. A tool asks by annotation (`Annotated[dict, InjectedState]`,
`Annotated[BaseStore, InjectedStore()]`, `runtime: ToolRuntime`); LangChain leaves those
arguments out of the schema the model sees, and the ToolNode fills them in before the call,
dropping whatever the model put there (a model must not forge them)."""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Union, get_args, get_origin, get_type_hints

from langchain_core.messages import ToolCall
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolArg
from langchain_core.tools.base import (
    _DirectlyInjectedToolArg,
    _is_injected_arg_type,
    get_all_basemodel_annotations,
)
from typing_extensions import TypeVar

from arqgraph.config import current_tool_writer
from arqgraph.runtime import ExecutionInfo, ServerInfo
from arqgraph.types import StreamWriter

StateT = TypeVar("StateT", default=dict[str, Any])
ContextT = TypeVar("ContextT", default=None)


class InjectedState(InjectedToolArg):
    """Marks a tool argument that receives the graph state (`InjectedState`), or one key of
    it (`InjectedState("foo")`), hidden from the model."""

    def __init__(self, field: str | None = None) -> None:
        self.field = field


class InjectedStore(InjectedToolArg):
    """Marks a tool argument that receives the graph's store (compile it with `store=`)."""


@dataclass
class ToolRuntime(_DirectlyInjectedToolArg, Generic[ContextT, StateT]):
    """What a tool gets as `runtime: ToolRuntime`: the state, the run's context, config,
    stream writer and store, its tool call id, the node's tools, where it runs."""

    state: StateT
    context: ContextT
    config: RunnableConfig
    stream_writer: StreamWriter
    tool_call_id: str | None
    store: Any
    tools: list[BaseTool] = field(default_factory=list)
    execution_info: ExecutionInfo | None = None
    server_info: ServerInfo | None = None

    def emit_output_delta(self, delta: Any) -> None:
        """A partial output of the tool on the `tools` stream mode, when the run streams it
        (nothing happens otherwise, as in LangGraph)."""
        if (writer := current_tool_writer.get()) is not None:
            writer(delta)


@dataclass
class InjectedArgs:
    """A tool's injected parameters: state ones (parameter -> state key, None for the whole
    state), the store's, the runtime's, every injected name, and optional state ones."""

    state: dict[str, str | None]
    store: str | None
    runtime: str | None
    all_injected_keys: set[str]
    optional_state: set[str]

    def names(self) -> set[str]:
        """The parameters the model has no say in."""
        found = set(self.state)
        found.update(name for name in (self.store, self.runtime) if name)
        return found


def _is_injection(type_arg: Any, kind: type) -> bool:
    if isinstance(type_arg, kind) or (isinstance(type_arg, type) and issubclass(type_arg, kind)):
        return True
    origin = get_origin(type_arg)
    if origin is Union or origin is Annotated:
        return any(_is_injection(arg, kind) for arg in get_args(type_arg))
    return origin is not None and isinstance(origin, type) and issubclass(origin, kind)


def _injection(type_: Any, kind: type) -> Any:
    """The marker of `kind` in an annotation (an instance, or True for the bare class)."""
    matches = [arg for arg in get_args(type_) if _is_injection(arg, kind)]
    if len(matches) > 1:
        raise ValueError(f"A tool argument should not be annotated with {kind.__name__} "
                         f"more than once. Found: {matches}")
    if matches:
        return matches[0]
    return True if _is_injection(type_, kind) else None


def injected_args_of(tool: BaseTool) -> InjectedArgs:
    """Read once per tool, when the ToolNode is made: its schema's and function's annotations."""
    schema = tool.get_input_schema()
    annotations = get_all_basemodel_annotations(schema)
    func = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
    hints = get_type_hints(func, include_extras=True) if func else {}
    found = InjectedArgs({}, None, None, set(), set())
    for name, type_ in {**hints, **annotations}.items():
        if _is_injected_arg_type(type_):
            found.all_injected_keys.add(name)
        if name == "runtime" or _injection(type_, ToolRuntime):
            found.runtime = name
        if marker := _injection(type_, InjectedState):
            key = marker.field if isinstance(marker, InjectedState) else None
            found.state[name] = key
            field_info = getattr(schema, "model_fields", {}).get(name) if key else None
            if field_info is not None and not field_info.is_required():
                found.optional_state.add(name)
        if _injection(type_, InjectedStore):
            found.store = name
    return found


def _state_values(call: ToolCall, state: Any, wanted: InjectedArgs, messages_key: str
                  ) -> dict[str, Any]:
    if isinstance(state, list):  # a ToolNode given messages: they are the state's messages
        keys = list(wanted.state.values())
        if (len(keys) == 1 and keys[0] == messages_key) or keys[0] is None:
            state = {messages_key: state}
        else:
            message = (f"Invalid input to ToolNode. Tool {call['name']} requires graph state "
                       "dict as input.")
            if any(keys):
                message += f" State should contain fields {', '.join(k for k in keys if k)}."
            raise ValueError(message)
    values: dict[str, Any] = {}
    for arg, key in wanted.state.items():
        if not key:
            values[arg] = state
        elif isinstance(state, dict):
            if key in state:
                values[arg] = state[key]
            elif arg not in wanted.optional_state:
                raise KeyError(key)
        elif hasattr(state, key):
            values[arg] = getattr(state, key)
        elif arg not in wanted.optional_state:
            raise AttributeError(key)
    return values


def inject(call: ToolCall, runtime: ToolRuntime, wanted: InjectedArgs | None,
           messages_key: str) -> ToolCall:
    """`call` with its injected arguments set from `runtime` (the model's values for them
    dropped)."""
    if not wanted:
        return call
    values = _state_values(call, runtime.state, wanted, messages_key) if wanted.state else {}
    if wanted.store:
        if runtime.store is None:
            raise ValueError("Cannot inject store into tools with InjectedStore annotations - "
                             "please compile your graph with a store.")
        values[wanted.store] = runtime.store
    if wanted.runtime:
        values[wanted.runtime] = runtime
    injected = copy(call)
    given = {k: v for k, v in call["args"].items() if k not in wanted.all_injected_keys}
    injected["args"] = {**given, **values}
    return injected
