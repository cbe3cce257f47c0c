"""A second version of `cluster_graphs.versioned`: same name, one more node.

A worker loading this module must refuse tasks planned with the first version.
"""

from arqgraph.graph import END, START, StateGraph
from tests.graphs.cluster_graphs import VersionState, first


def second(state: VersionState) -> dict:
    return {"steps": ["second"]}


_versioned = StateGraph(VersionState)
_versioned.add_node("first", first)
_versioned.add_node("second", second)
_versioned.add_edge(START, "first")
_versioned.add_edge("first", "second")
_versioned.add_edge("second", END)
versioned = _versioned.compile(name="cluster_versioned")
