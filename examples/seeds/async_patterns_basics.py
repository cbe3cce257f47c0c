"""Seed 001, "Async Patterns for LangGraph Nodes", sections 2 and 3, on arqgraph.

The document's classes subclass `act_operator_lib.base_node.AsyncBaseNode`/`BaseNode`; here they
subclass `arqgraph.nodes.AsyncBaseNode`/`BaseNode`, which have the same shape (`execute(state[,
config][, runtime])`, `self.log`, calling the instance awaits `execute`). Latencies go through
`standins.sleep` (scaled by ARQGRAPH_SEED_SCALE), HTTP through the in-memory `standins.aiohttp`.

Section 2, "AsyncBaseNode Fundamentals":
- Basic Structure: `MyAsyncNode` (1 s) -> `{'query': 'test', 'result': 'Data for test'}`
  (`basic_graph`).
- Lifecycle: the node called directly, `await node(state, config=config, runtime=runtime)`
  -> `{'result': 'Data for test'}`.
- Async vs Sync: `AsyncNode` with `await graph.ainvoke(...)`, `SyncNode` (a `BaseNode`, run by
  the worker in a thread) with `graph.invoke(...)` (`async_graph`, `sync_graph`).

Section 3, "Core Async Patterns":
- Single Async Operation: `FetchNode`, one GET (`fetch_graph`).
- Multiple Sequential Operations: `SequentialNode`, user -> posts -> comments, 0.1 s each,
  ~0.3 s; each call starts after the previous one ended (`sequential_graph`).
- Concurrent Operations (`graph`): `ConcurrentNode`, user, weather and news with
  `asyncio.gather`: "1 second vs 3 seconds"; the three calls overlap.
- Async Context Managers: `DatabaseNode`; connect, execute, disconnect in that order, ~0.3 s
  (`database_graph`). The document's `get_connection` is `async def`, which makes
  `async with self.get_connection()` raise `TypeError: 'coroutine' object does not support the
  asynchronous context manager protocol`; here it is a plain `def`.

    python examples/seeds/async_patterns_basics.py
    arqgraph run examples.seeds.async_patterns_basics:graph \
        --input '{"user_id": 7, "location": "Paris", "topic": "async"}'
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from arqgraph.graph import START, StateGraph
from arqgraph.nodes import AsyncBaseNode, BaseNode
from arqgraph.runtime import Runtime

try:
    from examples.seeds.standins import aiohttp, blocking_sleep, report, run_traced, sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_patterns_basics.py
    from standins import aiohttp, blocking_sleep, report, run_traced, sleep  # type: ignore[no-redef]


def single_node_graph(state: type, name: str, node: Any) -> Any:
    builder = StateGraph(state)
    builder.add_node(type(node).__name__, node)
    builder.add_edge(START, type(node).__name__)
    return builder.compile(name=f"seeds.basics.{name}")


# -- Basic Structure and Lifecycle --------------------------------------------------------------


@dataclass(kw_only=True)
class State:
    query: str
    result: str | None = None


class MyAsyncNode(AsyncBaseNode):
    async def execute(self, state):
        """Async execute method - note the 'async' keyword."""
        # Await async operations
        result = await self.fetch_data(state.query)
        return {"result": result}

    async def fetch_data(self, query):
        """Helper async method."""
        # Simulate async operation
        await sleep(1)
        return f"Data for {query}"


basic_graph = single_node_graph(State, "basic", MyAsyncNode())


# -- Async vs Sync -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ApiState:
    query: str
    data: str | None = None


async def fetch_from_api():
    await sleep(0.5, "fetch_from_api")
    return "async data"


def fetch_from_api_sync():
    blocking_sleep(0.5, "fetch_from_api_sync")  # a blocking client: the worker runs it in a thread
    return "sync data"


class AsyncNode(AsyncBaseNode):
    async def execute(self, state):
        data = await fetch_from_api()
        return {"data": data}


class SyncNode(BaseNode):
    def execute(self, state):
        data = fetch_from_api_sync()
        return {"data": data}


async_graph = single_node_graph(ApiState, "async", AsyncNode())
sync_graph = single_node_graph(ApiState, "sync", SyncNode())


# -- Single Async Operation ----------------------------------------------------------------------


@dataclass(kw_only=True)
class FetchState:
    url: str
    data: Any = None


class FetchNode(AsyncBaseNode):
    async def execute(self, state):
        """Single async HTTP request."""
        async with aiohttp.ClientSession() as session:
            async with session.get(state.url) as response:
                data = await response.json()
                return {"data": data}


fetch_graph = single_node_graph(FetchState, "fetch", FetchNode())


# -- Multiple Sequential Operations and Concurrent Operations -------------------------------------


@dataclass(kw_only=True)
class UserState:
    user_id: int
    location: str = ""
    topic: str = ""
    user: dict | None = None
    posts: list | None = None
    comments: list | None = None
    weather: dict | None = None
    news: dict | None = None


class SequentialNode(AsyncBaseNode):
    async def execute(self, state):
        """Execute operations in sequence."""
        # Step 1: Fetch user
        user = await self.fetch_user(state.user_id)

        # Step 2: Fetch user's posts (depends on user)
        posts = await self.fetch_posts(user["id"])

        # Step 3: Fetch comments (depends on posts)
        comments = await self.fetch_comments(posts[0]["id"])

        return {
            "user": user,
            "posts": posts,
            "comments": comments
        }

    async def fetch_user(self, user_id):
        await sleep(0.1, "fetch_user")  # Simulate API call
        return {"id": user_id, "name": "Alice"}

    async def fetch_posts(self, user_id):
        await sleep(0.1, "fetch_posts")
        return [{"id": 1, "title": "Post 1"}]

    async def fetch_comments(self, post_id):
        await sleep(0.1, "fetch_comments")
        return [{"id": 1, "text": "Comment 1"}]


class ConcurrentNode(AsyncBaseNode):
    async def execute(self, state):
        """Execute multiple operations concurrently."""
        # Start all operations simultaneously
        user_task = self.fetch_user(state.user_id)
        weather_task = self.fetch_weather(state.location)
        news_task = self.fetch_news(state.topic)

        # Wait for all to complete
        user, weather, news = await asyncio.gather(
            user_task,
            weather_task,
            news_task
        )

        return {
            "user": user,
            "weather": weather,
            "news": news
        }

    async def fetch_user(self, user_id):
        await sleep(1, "fetch_user")
        return {"id": user_id}

    async def fetch_weather(self, location):
        await sleep(1, "fetch_weather")
        return {"temp": 72}

    async def fetch_news(self, topic):
        await sleep(1, "fetch_news")
        return {"articles": []}


sequential_graph = single_node_graph(UserState, "sequential", SequentialNode())
graph = single_node_graph(UserState, "concurrent", ConcurrentNode())


# -- Async Context Managers ----------------------------------------------------------------------


class AsyncDatabaseConnection:
    async def __aenter__(self):
        """Called on 'async with' entry."""
        await self.connect()
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        """Called on 'async with' exit."""
        await self.disconnect()

    async def connect(self):
        await sleep(0.1, "connect")

    async def disconnect(self):
        await sleep(0.1, "disconnect")

    async def execute(self, query):
        await sleep(0.1, "execute")
        return "result"


class DatabaseNode(AsyncBaseNode):
    async def execute(self, state):
        """Use async context manager for connections."""
        async with self.get_connection() as conn:
            # Connection automatically closed after block
            result = await conn.execute(state.query)
            return {"result": result}

    def get_connection(self):  # the document has `async def`: see the module docstring
        """Return async context manager."""
        return AsyncDatabaseConnection()


database_graph = single_node_graph(State, "database", DatabaseNode())


async def main() -> dict[str, Any]:
    """Run every pattern; print results and timings. Returns the traces and results."""
    out: dict[str, Any] = {}
    print("Basic Structure: MyAsyncNode")
    out["basic"] = await run_traced(basic_graph, {"query": "test"})
    print(out["basic"].result)
    report("MyAsyncNode", out["basic"].elapsed, 1)

    print("\nLifecycle: await node(state, config=config, runtime=runtime)")
    node = MyAsyncNode()
    config = {"configurable": {"thread_id": "lifecycle"}}
    out["direct"] = await node(State(query="test"), config=config, runtime=Runtime())
    print(out["direct"])

    print("\nAsync vs Sync")
    out["async"] = await async_graph.ainvoke({"query": "test"})
    print("AsyncNode, await graph.ainvoke:", out["async"])
    out["sync"] = sync_graph.invoke({"query": "test"})
    print("SyncNode, graph.invoke:", out["sync"])

    print("\nSingle Async Operation: FetchNode")
    out["fetch"] = await run_traced(fetch_graph, {"url": "https://api.example.com/data"})
    print(out["fetch"].result)

    print("\nMultiple Sequential Operations: SequentialNode")
    out["sequential"] = await run_traced(sequential_graph, {"user_id": 7})
    print(out["sequential"].result)
    report("SequentialNode", out["sequential"].elapsed, 0.3)

    print("\nConcurrent Operations: ConcurrentNode")
    started = time.perf_counter()
    out["concurrent"] = await run_traced(graph, {"user_id": 7, "location": "Paris", "topic": "async"})
    print(out["concurrent"].result)
    report("ConcurrentNode", time.perf_counter() - started, 1, sequential=3)

    print("\nAsync Context Managers: DatabaseNode")
    out["database"] = await run_traced(database_graph, {"query": "SELECT 1"})
    print(out["database"].result)
    order = [m["what"] for m in out["database"].marks if m["event"] == "start"]
    print("calls in order:", " -> ".join(order))
    report("DatabaseNode", out["database"].elapsed, 0.3)
    return out


if __name__ == "__main__":
    asyncio.run(main())
