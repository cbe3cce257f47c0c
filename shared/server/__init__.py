"""LangGraph's platform HTTP API served from the pool (`arqgraph serve`; see docs/serving.md).
Needs the `serve` extra: `pip install 'arqgraph[serve]'`."""
