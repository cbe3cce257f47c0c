"""Seed 001, "Async Patterns for LangGraph Nodes": section 7 "Integration Patterns" and section
10 "Performance Optimization", on arqgraph (`arqgraph.nodes.AsyncBaseNode`/`BaseNode` for the
document's own base classes; latencies scaled by ARQGRAPH_SEED_SCALE).

No network and no database server: `aiohttp`, `asyncpg` and `aiofiles` are the local stand-ins
of `standins` (an in-memory web, an in-memory `users` table, real files in a temp directory),
with the same calls, so the nodes' code is the document's.

- Async HTTP Clients: `HTTPNode`, a GET then a POST (~0.2 s) -> `data == {'items': [1, 2, 3]}`,
  `result == {'answer': "results for 'async nodes'"}`; `RobustHTTPNode` -> the data with
  `error None`, or for a 404 `error == "404, message='Not Found', url='.../missing'"`, or for an
  unknown host the connection error. (Its 30 s `ClientTimeout` path is not run: it takes 30 s.)
- Async Database Operations: `DatabaseNode` connects, queries and closes: `users == [{'id': 1,
  'name': 'Alice'}]`; `PooledDatabaseNode` opens a pool of 10 on its first run and reuses it:
  its second run opens no connection. With `concurrency=20` the node keeps at most 20 queries
  in flight on the whole cluster, however many workers (each with its own pool) there are.
- Async File I/O: `FileNode` reads a file, writes it upper-cased -> `processed True`;
  `MultiFileNode` reads three files concurrently -> their lengths.
- Mixed Sync/Async Code: `MixedNode`, an async call (1 s) then a blocking call in a thread pool
  (1 s): ~2 s -> `{'async_result': 'Async: x', 'sync_result': 'Sync: x'}`. In a graph a blocking
  library can also be a sync node: the worker runs sync nodes in threads, so a `BaseNode` doing
  `time.sleep(1)` and an async node awaiting 1 s run side by side, ~1 s (`graph`).
- Performance Optimization: "Batch operations": 25 items in batches of 10 (~0.3 s, at most 10
  at once); "Cache results": `CachedNode` (1 s) answers a repeated query from its cache at once.
  ("Use connection pooling" is `PooledHTTPNode` in async_patterns_concurrency.py.)

    python examples/seeds/async_patterns_integration.py
    arqgraph run examples.seeds.async_patterns_integration:graph --input '{"input": "x"}'
"""

import asyncio
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from arqgraph.graph import END, START, StateGraph
from arqgraph.nodes import AsyncBaseNode, BaseNode

try:
    from examples.seeds.standins import (
        Connection,
        aiofiles,
        aiohttp,
        asyncpg,
        blocking_sleep,
        max_in_flight,
        node_logs_printed,
        report,
        run_traced,
        sleep,
    )
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_patterns_integration.py
    from standins import (  # type: ignore[no-redef]
        Connection,
        aiofiles,
        aiohttp,
        asyncpg,
        blocking_sleep,
        max_in_flight,
        node_logs_printed,
        report,
        run_traced,
        sleep,
    )


def single_node_graph(state: type, name: str, node: Any, **options: Any) -> Any:
    builder = StateGraph(state)
    builder.add_node(type(node).__name__, node, **options)
    builder.add_edge(START, type(node).__name__)
    return builder.compile(name=f"seeds.integration.{name}")


# -- Async HTTP Clients --------------------------------------------------------------------------


@dataclass(kw_only=True)
class HttpState:
    url: str
    api_url: str = ""
    query: str = ""
    data: Any = None
    result: Any = None
    error: str | None = None


class HTTPNode(AsyncBaseNode):
    async def execute(self, state):
        """Make HTTP requests with aiohttp."""
        async with aiohttp.ClientSession() as session:
            # GET request
            async with session.get(state.url) as response:
                data = await response.json()

            # POST request
            async with session.post(
                state.api_url,
                json={"query": state.query}
            ) as response:
                result = await response.json()

        return {"data": data, "result": result}


# With error handling
class RobustHTTPNode(AsyncBaseNode):
    async def execute(self, state):
        """HTTP with error handling."""
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(
                    state.url,
                    timeout=aiohttp.ClientTimeout(total=30)
                ) as response:
                    response.raise_for_status()
                    data = await response.json()
                    return {"data": data, "error": None}

            except aiohttp.ClientError as e:
                self.log(f"HTTP error: {e}")
                return {"data": None, "error": str(e)}

            except TimeoutError:
                return {"data": None, "error": "timeout"}


http_graph = single_node_graph(HttpState, "http", HTTPNode())
robust_http_graph = single_node_graph(HttpState, "robust_http", RobustHTTPNode(verbose=True))


# -- Async Database Operations -------------------------------------------------------------------


@dataclass(kw_only=True)
class DbState:
    user_id: int
    users: list | None = None


class DatabaseNode(AsyncBaseNode):
    async def execute(self, state):
        """Query database asynchronously."""
        # Connect to database
        conn = await asyncpg.connect(
            user='user',
            password='password',
            database='database',
            host='localhost'
        )

        try:
            # Execute query
            rows = await conn.fetch(
                'SELECT * FROM users WHERE id = $1',
                state.user_id
            )

            # Process results
            users = [dict(row) for row in rows]

            return {"users": users}

        finally:
            await conn.close()


# With connection pool
class PooledDatabaseNode(AsyncBaseNode):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pool = None

    async def execute(self, state):
        """Use connection pool."""
        if self.pool is None:
            self.pool = await asyncpg.create_pool(
                user='user',
                password='password',
                database='database',
                host='localhost',
                min_size=10,
                max_size=20
            )

        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                'SELECT * FROM users WHERE id = $1',
                state.user_id
            )
            return {"users": [dict(row) for row in rows]}


database_graph = single_node_graph(DbState, "database", DatabaseNode())
# concurrency=20: the pool's max_size, held across all workers together
pooled_database_graph = single_node_graph(DbState, "pooled_database", PooledDatabaseNode(),
                                          concurrency=20)


# -- Async File I/O ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class FileState:
    input_file: str = ""
    output_file: str = ""
    files: list = field(default_factory=list)
    processed: bool | None = None
    results: list | None = None


class FileNode(AsyncBaseNode):
    async def execute(self, state):
        """Read/write files asynchronously."""
        # Read file
        async with aiofiles.open(state.input_file, 'r') as f:
            content = await f.read()

        # Process content
        processed = content.upper()

        # Write file
        async with aiofiles.open(state.output_file, 'w') as f:
            await f.write(processed)

        return {"processed": True}


# Process multiple files concurrently
class MultiFileNode(AsyncBaseNode):
    async def execute(self, state):
        """Process multiple files concurrently."""
        tasks = [
            self.process_file(file_path)
            for file_path in state.files
        ]

        results = await asyncio.gather(*tasks)

        return {"results": results}

    async def process_file(self, file_path):
        """Process single file."""
        async with aiofiles.open(file_path, 'r') as f:
            content = await f.read()

        # Process
        processed = len(content)

        return {"file": file_path, "length": processed}


file_graph = single_node_graph(FileState, "file", FileNode())
multi_file_graph = single_node_graph(FileState, "multi_file", MultiFileNode())


# -- Mixed Sync/Async Code -----------------------------------------------------------------------


@dataclass(kw_only=True)
class MixedState:
    input: str = ""
    async_result: str | None = None
    sync_result: str | None = None


class MixedNode(AsyncBaseNode):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.executor = ThreadPoolExecutor(max_workers=5)

    async def execute(self, state):
        """Mix sync and async operations."""
        # Async operation
        async_result = await self.async_operation(state.input)

        # Run sync operation in thread pool
        loop = asyncio.get_event_loop()
        sync_result = await loop.run_in_executor(
            self.executor,
            self.sync_operation,
            state.input
        )

        return {
            "async_result": async_result,
            "sync_result": sync_result
        }

    async def async_operation(self, input_data):
        """Async operation."""
        await sleep(1, "async_operation")
        return f"Async: {input_data}"

    def sync_operation(self, input_data):
        """Blocking sync operation."""
        blocking_sleep(1)  # Blocks thread, not event loop
        return f"Sync: {input_data}"


mixed_node_graph = single_node_graph(MixedState, "mixed_node", MixedNode())


# The graph's way: a sync node (run by the worker in a thread) beside an async node.
class SyncStep(BaseNode):
    def execute(self, state):
        blocking_sleep(1, "sync node")  # Blocks its thread, not the worker's event loop
        return {"sync_result": f"Sync: {state.input}"}


class AsyncStep(AsyncBaseNode):
    async def execute(self, state):
        await sleep(1, "async node")
        return {"async_result": f"Async: {state.input}"}


builder = StateGraph(MixedState)
builder.add_node("sync_step", SyncStep())
builder.add_node("async_step", AsyncStep())
builder.add_edge(START, "sync_step")
builder.add_edge(START, "async_step")
builder.add_edge("sync_step", END)
builder.add_edge("async_step", END)
graph = builder.compile(name="seeds.integration.mixed")


# -- Performance Optimization --------------------------------------------------------------------


@dataclass(kw_only=True)
class BatchState:
    items: list = field(default_factory=list)
    results: list | None = None


class BatchNode(AsyncBaseNode):
    async def execute(self, state):
        # Batch into groups of 10
        results = []
        for i in range(0, len(state.items), 10):
            batch = state.items[i:i+10]
            batch_results = await asyncio.gather(
                *[self.process(item) for item in batch]
            )
            results.extend(batch_results)

        return {"results": results}

    async def process(self, item):
        await sleep(0.1, f"process {item}")
        return item * 2


@dataclass(kw_only=True)
class CacheState:
    query: str
    result: str | None = None


async def expensive_operation(key):
    await sleep(1, f"expensive_operation {key}")
    return {"result": f"expensive answer for {key}"}


class CachedNode(AsyncBaseNode):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cache = {}

    async def execute(self, state):
        key = state.query

        if key in self.cache:
            return self.cache[key]

        result = await expensive_operation(key)
        self.cache[key] = result
        return result


batch_graph = single_node_graph(BatchState, "batch", BatchNode())
cached_node = CachedNode()
cached_graph = single_node_graph(CacheState, "cached", cached_node)


async def main() -> dict[str, Any]:
    """Run every pattern; print results and timings."""
    out: dict[str, Any] = {}

    async def show(key: str, graph: Any, inputs: dict[str, Any], expected: float,
                   sequential: float | None = None) -> Any:
        print(f"\n{key}")
        out[key] = trace = await run_traced(graph, inputs)
        print({k: v for k, v in trace.result.items() if k not in inputs})
        report(key, trace.elapsed, expected, sequential)
        return trace

    base = "https://api.example.com"
    with node_logs_printed():  # RobustHTTPNode logs its HTTP errors
        await show("HTTPNode", http_graph, {"url": f"{base}/data", "api_url": f"{base}/search",
                                            "query": "async nodes"}, 0.2)
        await show("RobustHTTPNode", robust_http_graph, {"url": f"{base}/data"}, 0.1)
        await show("RobustHTTPNode (404)", robust_http_graph, {"url": f"{base}/missing"}, 0.1)
        await show("RobustHTTPNode (unknown host)", robust_http_graph,
                   {"url": "https://unknown.example.org/"}, 0)

    await show("DatabaseNode", database_graph, {"user_id": 1}, 0.1)
    before = Connection.opened
    await show("PooledDatabaseNode (first run: opens the pool)", pooled_database_graph,
               {"user_id": 1}, 0.1)
    out["pool_opened"] = Connection.opened - before
    before = Connection.opened
    await show("PooledDatabaseNode (second run: reuses it)", pooled_database_graph,
               {"user_id": 2}, 0.05)
    out["pool_reopened"] = Connection.opened - before
    print(f"connections opened: {out['pool_opened']} by the first run, "
          f"{out['pool_reopened']} by the second")

    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "in.txt"), os.path.join(folder, "out.txt")
        with open(source, "w", encoding="utf-8") as f:
            f.write("async file i/o")
        await show("FileNode", file_graph, {"input_file": source, "output_file": target}, 0)
        with open(target, encoding="utf-8") as f:
            out["file_output"] = f.read()
        print("output file:", out["file_output"])
        files = []
        for name, text in (("a.txt", "a"), ("b.txt", "bb"), ("c.txt", "ccc")):
            files.append(os.path.join(folder, name))
            with open(files[-1], "w", encoding="utf-8") as f:
                f.write(text)
        print("\nMultiFileNode")
        out["MultiFileNode"] = trace = await run_traced(multi_file_graph, {"files": files})
        print([(os.path.basename(r["file"]), r["length"]) for r in trace.result["results"]])

    await show("MixedNode", mixed_node_graph, {"input": "x"}, 2)
    await show("sync node beside an async node", graph, {"input": "x"}, 1, sequential=2)
    await show("BatchNode", batch_graph, {"items": list(range(25))}, 0.3, sequential=2.5)
    print(f"at most {max_in_flight(out['BatchNode'].marks)} calls at once")
    await show("CachedNode (first call)", cached_graph, {"query": "q"}, 1)
    await show("CachedNode (cached)", cached_graph, {"query": "q"}, 0)
    return out


if __name__ == "__main__":
    asyncio.run(main())
