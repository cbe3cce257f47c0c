"""arqgraph: LangGraph's graph API, run on a worker pool over Redis (or embedded in-process).

A LangGraph program ports by changing its `langgraph.` import prefix to `arqgraph.`: the public
modules (`arqgraph.graph`, `arqgraph.types`, `arqgraph.func`, ...) mirror LangGraph's names. This
package is the repository's `shared/` folder; `orchestrator/` and `workers/` install as its
subpackages `arqgraph.orchestrator` and `arqgraph.workers`.
"""

__version__ = "0.1.0"
