"""Prebuilt agents served by a cluster (tests/test_prebuilt_cluster.py).

`spread` is a v2 ReAct agent whose one turn calls `rendezvous` twice. Each call counts itself
in Redis and waits until both have started: on workers that run one job at a time, that
happens only if the two calls are jobs on two different worker processes.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis
from langchain_core.tools import tool

from arqgraph.checkpoint.memory import InMemorySaver
from arqgraph.prebuilt import ToolRuntime, create_react_agent
from arqgraph.types import interrupt
from tests.differential.prebuilt_cases import ScriptedToolModel, add, multiply

RENDEZVOUS_SECONDS = 20.0


@tool
async def rendezvous(n: int, runtime: ToolRuntime) -> str:
    """Wait until every call of the turn has started; answer with this process's id."""
    conf = runtime.config["configurable"]
    client = aioredis.Redis.from_url(conf["redis"])
    try:
        key = f"{conf['tag']}:started"
        await client.incr(key)
        async with asyncio.timeout(RENDEZVOUS_SECONDS):
            while int(await client.get(key) or 0) < 2:
                await asyncio.sleep(0.01)  # (polls a condition another process makes true)
    finally:
        await client.aclose()
    return f"{n}:{os.getpid()}"


spread = create_react_agent(
    ScriptedToolModel(script=[[("rendezvous", {"n": 1}), ("rendezvous", {"n": 2})]]),
    [rendezvous], name="prebuilt_spread")


@tool
def approve(amount: int) -> str:
    """Ask a human whether to pay `amount`."""
    answer = interrupt({"question": f"pay {amount}?"})
    return f"paid {amount}" if answer == "yes" else f"refused {amount}"


ARITHMETIC = [[("add", {"a": 1, "b": 2}), ("multiply", {"a": 3, "b": 4})]]

reviewed = create_react_agent(ScriptedToolModel(script=ARITHMETIC), [add, multiply],
                              checkpointer=InMemorySaver(), interrupt_before=["tools"],
                              name="prebuilt_reviewed")
asking = create_react_agent(ScriptedToolModel(script=[[("approve", {"amount": 5})]]), [approve],
                            checkpointer=InMemorySaver(), name="prebuilt_asking")

GRAPHS = [spread, reviewed, asking]
