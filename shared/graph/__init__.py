"""`from shared.graph import StateGraph, START, END`: LangGraph's graph-building names."""

from shared.graph.compiled import CompiledStateGraph
from shared.graph.message import MessagesState, add_messages
from shared.graph.state import StateGraph
from shared.pregel import END, START

__all__ = ["END", "START", "CompiledStateGraph", "MessagesState", "StateGraph", "add_messages"]
