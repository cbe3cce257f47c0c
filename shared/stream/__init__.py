"""LangGraph's v3 event streaming: `graph.stream_events(input, version="v3")` (and
`astream_events`) returns a run handle whose projections (`run.values`, `run.messages`,
`run.subgraphs`, `run.lifecycle`, and those of transformers you add) are built from the
graph's stream by transformers. The same on the embedded default and on a cluster: it reads
the run's ordinary stream."""

from arqgraph.stream._types import ProtocolEvent, StreamTransformer
from arqgraph.stream.run_stream import (
    AsyncGraphRunStream,
    AsyncSubgraphRunStream,
    GraphRunStream,
    SubgraphRunStream,
)
from arqgraph.stream.stream_channel import StreamChannel
from arqgraph.stream.transformers import (
    CheckpointsTransformer,
    CustomTransformer,
    DebugTransformer,
    LifecyclePayload,
    LifecycleTransformer,
    SubgraphStatus,
    SubgraphTransformer,
    TasksTransformer,
    UpdatesTransformer,
)

__all__ = [
    "AsyncGraphRunStream",
    "AsyncSubgraphRunStream",
    "CheckpointsTransformer",
    "CustomTransformer",
    "DebugTransformer",
    "GraphRunStream",
    "LifecyclePayload",
    "LifecycleTransformer",
    "ProtocolEvent",
    "StreamChannel",
    "StreamTransformer",
    "SubgraphRunStream",
    "SubgraphStatus",
    "SubgraphTransformer",
    "TasksTransformer",
    "UpdatesTransformer",
]
