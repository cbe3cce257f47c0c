"""`arqgraph.prebuilt` embedded: ToolNode on its own and in graphs, tools_condition,
create_react_agent's options, ValidationNode; where LangGraph's prebuilt answers the same
call, compared with it (`both`)."""

from __future__ import annotations

import asyncio
import importlib
import warnings
from typing import Annotated, Any

import pydantic
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool

from arqgraph.core.codec import packb, unpackb
from arqgraph.graph import END, START, MessagesState, StateGraph
from arqgraph.prebuilt import (
    InjectedState,
    InjectedStore,
    ToolNode,
    ToolRuntime,
    ValidationNode,
    create_react_agent,
    tools_condition,
)
from arqgraph.prebuilt.tool_node import ToolCallWithContext, ToolInvocationError
from arqgraph.store.memory import InMemoryStore
from arqgraph.types import Command, Send
from tests.differential.prebuilt_cases import ScriptedToolModel, add, explode, multiply
from tests.test_differential import normalize

pytest.importorskip("langgraph", reason="compared with LangGraph's prebuilt")


def call(name: str, args: dict[str, Any], id: str = "c1") -> dict[str, Any]:
    return {"name": name, "args": args, "id": id, "type": "tool_call"}


def asked(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [HumanMessage("hi", id="h"), AIMessage("", tool_calls=list(calls),
                                                                id="a")]}


def both(make: Any, run: Any) -> Any:
    """`run(make(module))` on LangGraph's prebuilt and ours: the same normalized outcome."""
    outcomes = []
    for prefix in ("langgraph", "arqgraph"):
        module = importlib.import_module(f"{prefix}.prebuilt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                outcomes.append(normalize(run(make(module))))
            except Exception as exc:
                outcomes.append((type(exc).__name__, str(exc).splitlines()[0]))
    assert outcomes[1] == outcomes[0]
    return outcomes[1]


# -- ToolNode on its own -----------------------------------------------------------------------


def in_graph(module: Any, node: Any, send: Any = None) -> Any:
    """`node` as the one node of a graph of LangGraph's or ours (as `module` is), given the
    graph's input, or each of `send`'s payloads by a Send."""
    root = importlib.import_module(module.__name__.split(".")[0] + ".graph")
    types = importlib.import_module(module.__name__.split(".")[0] + ".types")
    graph = root.StateGraph(root.MessagesState)
    graph.add_node(node)
    if send is None:
        graph.add_edge(root.START, "tools")
    else:
        graph.add_conditional_edges(root.START, lambda _: [types.Send("tools", p) for p in send])
    return graph.compile()


def test_tool_node_runs_parallel_calls_and_sent_calls_as_langgraph() -> None:
    input = asked(call("add", {"a": 1, "b": 2}, "x"), call("multiply", {"a": 3, "b": 4}, "y"))
    out = both(lambda m: in_graph(m, m.ToolNode([add, multiply])), lambda g: g.invoke(input))
    assert [m[2]["content"] for m in out["messages"][2:]] == ["3", "12"]
    sent = [ToolCallWithContext(__type="tool_call_with_context",  # type: ignore[typeddict-unknown-key]
                                tool_call=call("add", {"a": 1, "b": i}, f"s{i}"), state=input)
            for i in range(2)]
    both(lambda m: in_graph(m, m.ToolNode([add]), send=sent), lambda g: g.invoke(input))


def test_tool_node_on_its_own_reads_messages_and_tool_calls() -> None:
    node = ToolNode([add, multiply])
    messages = asked(call("add", {"a": 1, "b": 2}))["messages"]
    assert [m.content for m in node.invoke(messages)] == ["3"]
    out = asyncio.run(node.ainvoke([call("multiply", {"a": 2, "b": 5})]))
    assert [m.content for m in out["messages"]] == ["10"]
    with pytest.raises(ValueError, match="No AIMessage found in input"):
        node.invoke([HumanMessage("hi")])


@pytest.mark.parametrize("handling", [
    True, "it failed", ValueError, (KeyError, ValueError), False, None])
def test_handle_tool_errors_as_langgraph(handling: Any) -> None:
    kwargs = {} if handling is None else {"handle_tool_errors": handling}
    input = asked(call("explode", {"reason": "r"}), call("add", {"a": "x", "b": 1}, "c2"),
                  call("nope", {}, "c3"))
    both(lambda m: in_graph(m, m.ToolNode([explode, add], **kwargs)), lambda g: g.invoke(input))


def test_a_handler_catches_only_what_it_annotates() -> None:
    def on_value(e: ValueError) -> str:
        return f"handled {e}"

    node = ToolNode([explode], handle_tool_errors=on_value)
    [message] = node.invoke(asked(call("explode", {"reason": "r"})))["messages"]
    assert message.content == "handled boom: r" and message.status == "error"

    def on_key(e: KeyError) -> str:
        return "never"

    with pytest.raises(ValueError, match="boom"):
        ToolNode([explode], handle_tool_errors=on_key).invoke(asked(call("explode", {"reason": "r"})))


def test_bad_arguments_name_only_the_models_own() -> None:
    @tool
    def scale(x: int, state: Annotated[dict, InjectedState]) -> int:
        """Scale x."""
        return x

    node = ToolNode([scale], handle_tool_errors=False)
    with pytest.raises(ToolInvocationError) as caught:
        node.invoke(asked(call("scale", {"x": "many"})))
    assert "x: Input should be a valid integer" in caught.value.message
    assert "state" not in caught.value.message


def test_injected_state_store_runtime_and_call_id() -> None:
    store = InMemoryStore()
    store.put(("prefs",), "color", {"value": "blue"})

    @tool
    def profile(field: str, messages: Annotated[list, InjectedState("messages")],
                whole: Annotated[dict, InjectedState],
                store: Annotated[Any, InjectedStore()],
                call_id: Annotated[str, InjectedToolCallId], runtime: ToolRuntime) -> str:
        """Read a preference."""
        item = store.get(("prefs",), field)
        return (f"{item.value['value']} {len(messages)} {sorted(whole)} {call_id} "
                f"{runtime.tool_call_id} {runtime.context}")

    graph = StateGraph(MessagesState)
    graph.add_node(ToolNode([profile]))
    graph.add_edge(START, "tools")
    forged = call("profile", {"field": "color", "whole": {"forged": 1}, "call_id": "forged"}, "c9")
    out = graph.compile(store=store).invoke(asked(forged), context={"user": "u"})
    assert out["messages"][-1].content == "blue 2 ['messages'] c9 c9 {'user': 'u'}"


def test_a_tool_that_returns_a_command_updates_state() -> None:
    class State(MessagesState):
        unit: str

    @tool
    def set_unit(unit: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Set the unit."""
        return Command(update={"unit": unit, "messages": [
            ToolMessage("ok", tool_call_id=tool_call_id)]})

    @tool
    def forgetful(unit: str) -> Command:
        """Sets the unit but answers no call."""
        return Command(update={"unit": unit})

    graph = StateGraph(State)
    graph.add_node(ToolNode([set_unit, forgetful]))
    graph.add_edge(START, "tools")
    out = graph.compile().invoke({**asked(call("set_unit", {"unit": "kg"})), "unit": "lb"})
    assert out["unit"] == "kg" and out["messages"][-1].name == "set_unit"
    with pytest.raises(ValueError, match="Expected to have a matching ToolMessage"):
        graph.compile().invoke({**asked(call("forgetful", {"unit": "kg"})), "unit": "lb"})


def test_wrap_tool_call_may_retry_and_async_wrapper_is_preferred() -> None:
    tries: list[int] = []

    def retry(request: Any, execute: Any) -> Any:
        tries.append(1)
        result = execute(request)
        return execute(request.override(tool_call={**request.tool_call, "args": {"a": 9, "b": 1}}))\
            if result.content == "3" else result

    async def awrap(request: Any, execute: Any) -> Any:
        message = await execute(request)
        message.content = f"async {message.content}"
        return message

    assert ToolNode([add], wrap_tool_call=retry).invoke(asked(call("add", {"a": 1, "b": 2})))[
        "messages"][0].content == "10"
    node = ToolNode([add], wrap_tool_call=retry, awrap_tool_call=awrap)
    out = asyncio.run(node.ainvoke(asked(call("add", {"a": 1, "b": 2}))))
    assert out["messages"][0].content == "async 3" and len(tries) == 1


def test_tools_condition_as_langgraph() -> None:
    with_calls = asked(call("add", {"a": 1, "b": 2}))
    answered = {"messages": [AIMessage("done")]}
    for state in (with_calls, answered, with_calls["messages"], {"messages": []}):
        both(lambda m: m.tools_condition, lambda condition, s=state: condition(s))


# -- create_react_agent -------------------------------------------------------------------------


def agent(module: Any, script: list[Any], **kwargs: Any) -> Any:
    return module.create_react_agent(ScriptedToolModel(script=script), [add, multiply], **kwargs)


ONE_TURN = [[("add", {"a": 1, "b": 2}), ("multiply", {"a": 3, "b": 4})]]
QUESTION = {"messages": [HumanMessage("compute", id="q")]}


def test_interrupt_before_tools_then_resume_as_langgraph() -> None:
    def run(graph: Any) -> Any:
        config = {"configurable": {"thread_id": "t"}}
        first = graph.invoke(QUESTION, config)
        paused = graph.get_state(config)
        return first, paused.next, graph.invoke(None, config)

    both(lambda m: agent(m, ONE_TURN, checkpointer=saver_of(m), interrupt_before=["tools"]), run)


def saver_of(prebuilt: Any) -> Any:
    root = prebuilt.__name__.split(".")[0]
    return importlib.import_module(f"{root}.checkpoint.memory").InMemorySaver()


def test_interrupt_in_a_tool_then_resume_as_langgraph() -> None:
    @tool
    def approve(amount: int) -> str:
        """Ask before paying."""
        from arqgraph.types import interrupt
        return f"paid {amount}" if interrupt(f"pay {amount}?") == "yes" else "refused"

    @tool
    def approve_lg(amount: int) -> str:
        """Ask before paying."""
        from langgraph.types import interrupt
        return f"paid {amount}" if interrupt(f"pay {amount}?") == "yes" else "refused"

    def make(m: Any) -> Any:
        tools = [approve] if m.__name__.startswith("arqgraph") else [approve_lg]
        tools[0].name = "approve"
        return m.create_react_agent(ScriptedToolModel(script=[[("approve", {"amount": 5})]]),
                                    tools, checkpointer=saver_of(m))

    def run(graph: Any) -> Any:
        config = {"configurable": {"thread_id": "t"}}
        first = graph.invoke(QUESTION, config)
        root = type(graph).__module__.split(".")[0]
        resume = importlib.import_module(f"{root}.types").Command(resume="yes")
        return [i.value for i in first["__interrupt__"]], graph.invoke(resume, config)

    out = both(make, run)
    assert "paid 5" in repr(out)


@pytest.mark.parametrize("options", [
    {"prompt": "Be brief."},
    {"prompt": lambda state: [HumanMessage("rewritten", id="r")]},
    {"version": "v1"},
    {"version": "v3"},
    {"state_schema": MessagesState},
])
def test_agent_options_as_langgraph(options: dict[str, Any]) -> None:
    both(lambda m: agent(m, ONE_TURN, **options), lambda graph: graph.invoke(QUESTION))


def test_the_recursion_limit_gives_a_message_not_an_error() -> None:
    both(lambda m: agent(m, ONE_TURN * 5),
         lambda graph: graph.invoke(QUESTION, {"recursion_limit": 4}))


def test_a_dynamic_model_is_picked_per_call() -> None:
    def pick(state: Any, runtime: Any) -> Any:
        return ScriptedToolModel(script=ONE_TURN).bind_tools([add, multiply])

    both(lambda m: m.create_react_agent(pick, [add, multiply]), lambda g: g.invoke(QUESTION))


def test_a_model_bound_to_other_tools_is_refused() -> None:
    bound = ScriptedToolModel().bind_tools([add])
    both(lambda m: m.create_react_agent(bound, [add, multiply]), lambda g: g)


def test_structured_response_with_its_own_prompt() -> None:
    class Answer(pydantic.BaseModel):
        total: int

    def make(m: Any) -> Any:
        model = ScriptedToolModel(script=ONE_TURN, structured={"total": 15})
        return m.create_react_agent(model, [add, multiply], response_format=("sum up", Answer))

    out = both(make, lambda g: g.invoke(QUESTION)["structured_response"])
    assert out == ("<model>", "Answer", {"total": 15})


# -- messages and sends on the wire, ValidationNode ----------------------------------------------


def test_a_tool_call_send_crosses_the_wire_whole() -> None:
    payload = ToolCallWithContext(__type="tool_call_with_context",  # type: ignore[typeddict-unknown-key]
                                  tool_call=call("add", {"a": 1, "b": 2}),
                                  state=asked(call("add", {"a": 1, "b": 2})))
    send = Send("tools", payload)
    back = unpackb(packb(send))
    assert back == send and isinstance(back.arg["state"]["messages"][1], AIMessage)
    assert back.arg["state"]["messages"][1].tool_calls == [payload["tool_call"]]


def test_validation_node_as_langgraph() -> None:
    class Pick(pydantic.BaseModel):
        number: int

    input = asked(call("Pick", {"number": 3}), call("Pick", {"number": "x"}, "c2"))
    out = both(lambda m: m.ValidationNode([Pick]), lambda node: node.invoke(input))
    assert "is_error" in repr(out)


def test_a_graph_with_tools_condition_ends_without_calls() -> None:
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [AIMessage("bye", id="b")]})
    graph.add_node(ToolNode([add]))
    graph.add_edge(START, "chat")
    graph.add_conditional_edges("chat", tools_condition)
    graph.add_edge("tools", END)
    out = graph.compile().invoke({"messages": [HumanMessage("hi", id="h")]})
    assert [m.content for m in out["messages"]] == ["hi", "bye"]
    assert ValidationNode and create_react_agent  # (imported for the names above)
