"""`add_messages` and `push_message` against LangGraph's: the same inputs give equal messages of
the same classes (message-likes and chunks converted to whole messages on both sides), the
`format="langchain-openai"` reducer converts contents as LangGraph's does, and bad use raises
LangGraph's errors. Graphs that push messages are compared on the embedded default and on a
cluster in tests/test_stream_messages.py (the `messages_pushed_*` cases)."""

import importlib
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph", reason="the reference runtime is a test dependency")
pytest.importorskip("langchain_core", reason="messages are LangChain's")

from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    HumanMessage,
    RemoveMessage,
)

from tests.differential.api import REFERENCE, Api  # noqa: E402

PREFIXES = [REFERENCE, "arqgraph"]


def reducer(prefix: str) -> Any:
    return importlib.import_module(f"{prefix}.graph.message").add_messages


def shown(messages: list[Any]) -> list[tuple[str, Any, Any]]:
    """Each message's class, content and id (one made up by the reducer as `<new>`)."""
    return [(type(m).__name__, m.content, m.id if len(m.id) < 3 else "<new>") for m in messages]


MERGES = {
    "likes and chunks": (
        [HumanMessage(content="Hello", id="1"), {"role": "assistant", "content": "Hi", "id": "2"}],
        [AIMessageChunk(content="chunk", id="3"), ("user", "Thanks")]),
    "chunks only": ([AIMessageChunk(content="a", id="1")], [AIMessageChunk(content="b", id="2")]),
    "single values": (HumanMessage(content="a", id="1"), AIMessageChunk(content="b", id="1")),
    "removal": ([HumanMessage(content="a", id="1"), HumanMessage(content="b", id="2")],
                [RemoveMessage(id="1")]),
}


@pytest.mark.parametrize("name", list(MERGES))
def test_merges_are_langgraphs(name: str) -> None:
    left, right = MERGES[name]
    expected, actual = (shown(reducer(p)(left, right)) for p in PREFIXES)
    assert expected and all(kind != "AIMessageChunk" for kind, _, _ in expected)
    assert actual == expected


def test_bad_use_raises_langgraphs_errors() -> None:
    for prefix in PREFIXES:
        with pytest.raises(ValueError, match="Unrecognized format="):
            reducer(prefix)([], [], format="invalid")
        with pytest.raises(ValueError, match="Must specify non-null arguments"):
            reducer(prefix)([HumanMessage(content="a")])
        with pytest.raises(RuntimeError, match="outside of a runnable context"):
            importlib.import_module(f"{prefix}.graph.message").push_message(
                AIMessage(content="x", id="1"))


def openai_state(prefix: str) -> list[tuple[str, Any]]:
    """A graph whose messages key keeps OpenAI's content format."""
    api = Api(prefix)

    class State(TypedDict):
        messages: Annotated[list[AnyMessage], api.add_messages(format="langchain-openai")]

    def node(state: State) -> dict[str, Any]:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                             "data": "1234"}}
        return {"messages": [
            HumanMessage(content=[{"type": "text", "text": "look",
                                   "cache_control": {"type": "ephemeral"}}, image]),
            AIMessage(content=[{"type": "tool_use", "name": "f", "input": {"a": 1}, "id": "1"}]),
            HumanMessage(content=[{"type": "tool_result", "tool_use_id": "1", "is_error": False,
                                  "content": [image]}]),
        ]}

    g = api.StateGraph(State)
    g.add_node("node", node)
    g.add_edge(api.START, "node")
    out = g.compile().invoke({"messages": [("user", "hi")]})
    return [(type(m).__name__, m.content, getattr(m, "tool_calls", None))
            for m in out["messages"]]


def test_the_openai_format_is_langgraphs() -> None:
    expected = openai_state(REFERENCE)
    assert [kind for kind, _, _ in expected] == [
        "HumanMessage", "HumanMessage", "AIMessage", "ToolMessage"]
    assert openai_state("arqgraph") == expected


def test_a_pushed_message_needs_an_id() -> None:
    api = Api("arqgraph")

    def node(state: Any) -> dict[str, Any]:
        try:
            api.push_message(AIMessage(content="no id"))
        except ValueError as exc:
            return {"messages": [AIMessage(content=str(exc), id="told")]}
        return {}

    g = api.StateGraph(api.MessagesState)
    g.add_node("node", node)
    g.add_edge(api.START, "node")
    out = g.compile().invoke({"messages": []})
    assert [m.content for m in out["messages"]] == ["Message ID is required"]


def ids_streamed(api: Api) -> list[Any]:
    """The messages of each "updates" and "values" event of a node returning one message
    without an id and one as a tuple: ids as labels by first use (None when it has none)."""
    def node(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(content="reply"), ("ai", "a tuple")]}

    graph = api.StateGraph(api.MessagesState)
    graph.add_node("node", node)
    graph.add_edge(api.START, "node")
    labels: dict[str, int] = {}
    shown = []
    for mode, chunk in graph.compile().stream({"messages": [HumanMessage("hi", id="in")]},
                                              stream_mode=["updates", "values"]):
        messages = chunk["node"]["messages"] if mode == "updates" else chunk["messages"]
        shown.append((mode, [None if getattr(m, "id", None) is None
                             else labels.setdefault(m.id, len(labels)) for m in messages]))
    return shown


def test_a_returned_message_shows_its_state_id_in_the_update() -> None:
    """As LangGraph's reducer gives a returned message its id in place, the node's update
    event shows the id the state keeps; a message given as a tuple shows none there."""
    expected = ids_streamed(Api(REFERENCE))
    assert expected[1] == ("updates", [1, None])
    assert ids_streamed(Api("arqgraph")) == expected
