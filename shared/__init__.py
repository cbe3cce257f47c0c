"""arqgraph's shared package: the graph API, the pure superstep algorithm and the wire protocol.

Everything here is importable by every process (producer, orchestrator, worker). The modules
mirror LangGraph's public names (`shared.graph`, `shared.types`, ...) so that a LangGraph program
ports by replacing its `langgraph.` import prefix with `shared.`.
"""

__version__ = "0.1.0"
