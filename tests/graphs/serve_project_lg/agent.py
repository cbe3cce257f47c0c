"""LangGraph's own twins of `tests/graphs/serve_project/agent.py`'s `chat`, `ask` and `reply` (its node
functions on LangGraph's StateGraph), for `langgraph dev` to serve in tests/test_serve.py."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import push_message
from langgraph.types import interrupt

from tests.graphs.serve_project.agent import Log, greet, sign


def ask_name(state: Log) -> Log:  # (LangGraph's interrupt)
    return {"name": str(interrupt("what is your name?")), "log": ["asked"]}


chat_builder = StateGraph(Log)
chat_builder.add_sequence([greet, sign])
chat_builder.add_edge(START, "greet")
chat = chat_builder.compile()

ask_builder = StateGraph(Log)
ask_builder.add_node(ask_name)
ask_builder.add_edge(START, "ask_name")
ask_builder.add_edge("ask_name", END)
ask = ask_builder.compile()


def reply(state: Log) -> Log:  # (LangGraph's push_message)
    push_message(AIMessage(content="hello there", id="reply-1"), state_key=None)
    return {"log": ["replied"]}


reply_builder = StateGraph(Log)
reply_builder.add_node(reply)
reply_builder.add_edge(START, "reply")
replies = reply_builder.compile()
