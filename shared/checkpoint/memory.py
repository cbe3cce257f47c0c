"""`InMemorySaver`: LangGraph's in-memory checkpointer, here an in-memory Redis (fakeredis).

`graph.compile(checkpointer=InMemorySaver())` makes the embedded default keep the graph's
threads between calls, in this process, for as long as the saver lives: what LangGraph's
saver does. A cluster keeps threads in its Redis whatever checkpointer the graph was given.
"""

from __future__ import annotations

import fakeredis


class InMemorySaver:
    """Threads and their checkpoints in this process's memory."""

    def __init__(self) -> None:
        self.server = fakeredis.FakeServer()


MemorySaver = InMemorySaver  # LangGraph's older name
