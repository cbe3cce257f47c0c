"""Differential cases for `stream_events(version="v3")`: subgraphs that write custom events,
stream chat-model tokens, interrupt and fail, so every built-in projection has something to
show. Registered into `tests.differential.cases.CASES` on import (cases.py imports this
module last); tests/test_stream_events.py runs them through the v3 stream.
"""

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from tests.differential.api import Api
from tests.differential.cases import Case, LogState, Run, _compile, case
from tests.differential.message_cases import EchoModel


@case([{"text": "a", "log": []}])
def build_v3_writer_subgraph(api: Api) -> Any:
    def work(state: LogState) -> dict[str, Any]:
        api.get_stream_writer()({"working_on": state["text"]})
        return {"log": ["inner.work"]}

    inner = api.StateGraph(LogState)
    inner.add_node("work", work)
    inner.add_edge(api.START, "work")

    def route(state: LogState) -> dict[str, Any]:
        return {"log": ["route"]}

    g = api.StateGraph(LogState)
    g.add_node("route", route)
    g.add_node("inner", inner.compile(name="diff_v3_inner"))
    g.add_edge(api.START, "route")
    g.add_edge("route", "inner")
    return _compile(g, "v3_writer_subgraph")


@case([{"messages": [HumanMessage(content="hi there", id="in")]}])
def build_v3_chat_subgraph(api: Api) -> Any:
    """A model streaming in the root graph, one in a subgraph, and a node that returns a whole
    message without a model."""
    model = EchoModel()

    def chat(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def sign(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content="signed", id="sig")]}

    inner = api.StateGraph(api.MessagesState)
    inner.add_node("chat", chat)
    inner.add_node("sign", sign)
    inner.add_edge(api.START, "chat")
    inner.add_edge("chat", "sign")
    g = api.StateGraph(api.MessagesState)
    g.add_node("first", chat)
    g.add_node("agent", inner.compile(name="diff_v3_agent"))
    g.add_edge(api.START, "first")
    g.add_edge("first", "agent")
    return _compile(g, "v3_chat_subgraph")


def build_v3_interrupt_subgraph(api: Api) -> Any:
    def ask(state: LogState) -> dict[str, Any]:
        answer = api.interrupt({"question": state["text"]})
        return {"log": [f"answer:{answer}"]}

    inner = api.StateGraph(LogState)
    inner.add_node("ask", ask)
    inner.add_edge(api.START, "ask")
    g = api.StateGraph(LogState)
    g.add_node("inner", inner.compile(name="diff_v3_asking"))
    g.add_edge(api.START, "inner")
    return g.compile(name="diff_v3_interrupt_subgraph", checkpointer=api.InMemorySaver())


# Only for the v3 stream: a subgraph's interrupt id comes from its task's id, which differs
# from run to run (on LangGraph too), so the other differential tests could not compare it.
V3_ONLY = [Case("v3_interrupt_subgraph", build_v3_interrupt_subgraph,
                [Run({"text": "q", "log": []}, {"configurable": {"thread_id": "v3-ask"}})],
                cluster="the case's checkpointer keeps the thread in the test process")]


@tool
def shout(text: str) -> str:
    """The text, loud."""
    return text.upper()


@tool
def refuse(text: str) -> str:
    """Always fails."""
    raise ValueError(f"no {text}")


@case([{"text": "hi", "log": []}])
def build_tools_mode(api: Api) -> Any:
    """Tool calls for the "tools" stream mode: one that ends, one that fails (the node goes
    on), one kept out with the `nostream` tag."""
    def call_tools(state: LogState) -> dict[str, Any]:
        loud = shout.invoke({"text": state["text"]})
        try:
            refuse.invoke({"text": state["text"]})
        except ValueError:
            pass
        shout.with_config(tags=["nostream"]).invoke({"text": "quiet"})
        return {"log": [loud]}

    g = api.StateGraph(LogState)
    g.add_node("call_tools", call_tools)
    g.add_edge(api.START, "call_tools")
    return _compile(g, "tools_mode")


def _tool_call(name: str, word: str) -> dict[str, Any]:
    """One call per run: parallel calls would start in any order, and a handle read late
    misses the deltas sent before it was read."""
    calls = [{"name": name, "args": {"word": word}, "id": f"call-{name}"}]
    return {"messages": [AIMessage(content="", id="ask", tool_calls=calls)]}


@case([_tool_call("spell", "abc"), _tool_call("refuse", "no")])
def build_tool_call_streams(api: Api) -> Any:
    """A ToolNode whose tools stream output deltas and fail, compiled with the
    ToolCallTransformer: `run.tool_calls` gives a handle per call."""
    from langchain_core.tools import tool as make_tool

    def spell(word: str, runtime: api.ToolRuntime) -> str:  # type: ignore[name-defined]
        """Spell a word, a letter at a time."""
        for letter in word:
            runtime.emit_output_delta(letter)
        return "-".join(word)

    def refuse(word: str) -> str:
        """Refuse a word."""
        raise ValueError(f"no {word}")

    g = api.StateGraph(api.MessagesState)
    g.add_node("tools", api.ToolNode([make_tool(spell), make_tool(refuse)],
                                     handle_tool_errors=True))
    g.add_edge(api.START, "tools")
    return g.compile(name="diff_tool_call_streams", transformers=[api.ToolCallTransformer])


@case([{"text": "hi", "log": []}])
def build_node_streams_inner_messages(api: Api) -> Any:
    """A node that streams an inner graph's "messages" itself reads chunks, under an outer
    v3 run too (whose own message events are protocol events)."""
    model = EchoModel()

    def chat(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    inner = api.StateGraph(api.MessagesState)
    inner.add_node("chat", chat)
    inner.add_edge(api.START, "chat")
    graph = inner.compile(name="diff_v3_streamed")

    def call(state: LogState, config: RunnableConfig) -> dict[str, Any]:
        parts = list(graph.stream({"messages": [HumanMessage(content=state["text"], id="q")]},
                                  config, stream_mode="messages"))
        return {"log": [f"{type(chunk).__name__}:{chunk.content}" for chunk, _ in parts]}

    g = api.StateGraph(LogState)
    g.add_node("call", call)
    g.add_edge(api.START, "call")
    return _compile(g, "node_streams_inner_messages")
