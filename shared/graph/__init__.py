"""`from arqgraph.graph import StateGraph, START, END`: LangGraph's graph-building names."""

from arqgraph.constants import END, START
from arqgraph.graph.compiled import CompiledStateGraph
from arqgraph.graph.message import MessagesState, add_messages
from arqgraph.graph.state import StateGraph

__all__ = ["END", "START", "CompiledStateGraph", "MessagesState", "StateGraph", "add_messages"]
