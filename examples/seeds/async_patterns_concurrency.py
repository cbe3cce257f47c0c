"""Seed 001, "Async Patterns for LangGraph Nodes": section 6 "Concurrency Control" and, from
section 4, "Rate Limiting" and "Connection Pooling", on arqgraph (`arqgraph.nodes.AsyncBaseNode`
for the document's own base class; latencies scaled by ARQGRAPH_SEED_SCALE, HTTP in memory).

The document's nodes, each in a one-node graph:
- asyncio.gather: `GatherNode`, three 1 s calls in ~1 s, overlapping; `GatherErrorHandlingNode`
  -> successes ops 0 and 2, failure op 1 "Operation 2 failed" (`return_exceptions=True`).
- asyncio.wait: `WaitNode` -> `first_result == 'fast'` after ~0.1 s, the others cancelled;
  `WaitTimeoutNode` -> `completed` op1 and op2 (in the order `asyncio.wait`'s set gives them),
  `incomplete_count == 1` after ~2 s.
- Semaphores: `SemaphoreNode(max_concurrent=5)`, 20 items of 0.1 s in ~0.4 s, never more than
  5 at once; `RateLimitedAPINode(max_concurrent=3)`, 6 URLs of 0.5 s in ~1 s, at most 3 at once.
- Task Groups: `TaskGroupNode` -> `['result1', 'result2', 'result3']` in ~0.3 s.
- Rate Limiting: `RateLimitedNode(requests_per_second=10)` and `TokenBucketNode(rate=10,
  capacity=10)`, five items one after the other (~0.5 s), calls started at least 0.1 s apart.
  Their intervals are scaled like the sleeps.
- Connection Pooling: `PooledHTTPNode(pool_size=10)`, 20 URLs through one session whose
  connector allows 10 connections: ~0.2 s, at most 10 open at once; the session is kept by the
  node for later runs and closed by `cleanup()`.

A semaphore or a rate limiter inside a node holds in one process; on a cluster each worker has
its own. The same limits across all workers are node options (`graph`, `rate_limited_graph`):
- `concurrency=5` on `process_item`, fanned out over 20 items with `Send`: at most 5 running
  on the whole cluster, a waiting call holding no worker slot (`graph`).
- `rate_limit="10/s"` on `fetch_item`, fanned out over 5 items: the k-th call starts no sooner
  than k/10 s after the run starts, whichever workers run them (`rate_limited_graph`).

    python examples/seeds/async_patterns_concurrency.py
    arqgraph run examples.seeds.async_patterns_concurrency:graph --input '{"items": [1, 2, 3]}'
"""

import asyncio
import operator
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from arqgraph.graph import END, START, StateGraph
from arqgraph.nodes import AsyncBaseNode
from arqgraph.types import Send

try:
    from examples.seeds.standins import (
        aiohttp,
        max_in_flight,
        report,
        run_traced,
        scale,
        scaled,
        sleep,
    )
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_patterns_concurrency.py
    from standins import (  # type: ignore[no-redef]
        aiohttp,
        max_in_flight,
        report,
        run_traced,
        scale,
        scaled,
        sleep,
    )


@dataclass(kw_only=True)
class State:
    user_id: int = 0
    items: list = field(default_factory=list)
    urls: list = field(default_factory=list)
    user: dict | None = None
    posts: list | None = None
    comments: list | None = None
    successes: list | None = None
    failures: list | None = None
    first_result: str | None = None
    completed: list | None = None
    incomplete_count: int | None = None
    results: list | None = None


def single_node_graph(name: str, node: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node(type(node).__name__, node)
    builder.add_edge(START, type(node).__name__)
    return builder.compile(name=f"seeds.concurrency.{name}")


# -- asyncio.gather ------------------------------------------------------------------------------


class GatherNode(AsyncBaseNode):
    async def execute(self, state):
        """Use gather for concurrent execution."""
        # Basic gather
        results = await asyncio.gather(
            self.fetch_user(state.user_id),
            self.fetch_posts(state.user_id),
            self.fetch_comments(state.user_id)
        )

        user, posts, comments = results

        return {
            "user": user,
            "posts": posts,
            "comments": comments
        }

    async def fetch_user(self, user_id):
        await sleep(1, "fetch_user")
        return {"id": user_id}

    async def fetch_posts(self, user_id):
        await sleep(1, "fetch_posts")
        return []

    async def fetch_comments(self, user_id):
        await sleep(1, "fetch_comments")
        return []


# Gather with error handling
class GatherErrorHandlingNode(AsyncBaseNode):
    async def execute(self, state):
        """Gather with return_exceptions."""
        results = await asyncio.gather(
            self.operation1(),
            self.operation2(),
            self.operation3(),
            return_exceptions=True  # Don't fail on first error
        )

        # Separate successes and failures
        successes = []
        failures = []

        for i, result in enumerate(results):
            if isinstance(result, Exception):
                failures.append({"op": i, "error": str(result)})
            else:
                successes.append({"op": i, "result": result})

        return {
            "successes": successes,
            "failures": failures
        }

    async def operation1(self):
        await sleep(0.1)
        return "success1"

    async def operation2(self):
        await sleep(0.1)
        raise ValueError("Operation 2 failed")

    async def operation3(self):
        await sleep(0.1)
        return "success3"


# -- asyncio.wait --------------------------------------------------------------------------------


class WaitNode(AsyncBaseNode):
    async def execute(self, state):
        """Use wait for flexible completion."""
        tasks = [
            asyncio.create_task(self.fast_op()),
            asyncio.create_task(self.medium_op()),
            asyncio.create_task(self.slow_op()),
        ]

        # Wait for first to complete
        done, pending = await asyncio.wait(
            tasks,
            return_when=asyncio.FIRST_COMPLETED
        )

        # Get first result
        first_result = done.pop().result()

        # Cancel remaining
        for task in pending:
            task.cancel()

        return {"first_result": first_result}

    async def fast_op(self):
        await sleep(0.1, "fast_op")
        return "fast"

    async def medium_op(self):
        await sleep(0.5, "medium_op")
        return "medium"

    async def slow_op(self):
        await sleep(1.0, "slow_op")
        return "slow"


# Wait with timeout
class WaitTimeoutNode(AsyncBaseNode):
    async def execute(self, state):
        """Wait with timeout."""
        tasks = [
            asyncio.create_task(self.op1()),
            asyncio.create_task(self.op2()),
            asyncio.create_task(self.op3()),
        ]

        # Wait up to 2 seconds
        done, pending = await asyncio.wait(
            tasks,
            timeout=scaled(2.0)
        )

        # Get completed results
        results = []
        for task in done:
            try:
                result = task.result()
                results.append(result)
            except Exception as e:
                self.log(f"Task failed: {e}")

        # Cancel incomplete tasks
        for task in pending:
            task.cancel()

        return {
            "completed": results,
            "incomplete_count": len(pending)
        }

    async def op1(self):
        await sleep(1, "op1")
        return "op1"

    async def op2(self):
        await sleep(1.5, "op2")
        return "op2"

    async def op3(self):
        await sleep(3, "op3")
        return "op3"


# -- Semaphores ----------------------------------------------------------------------------------


class SemaphoreNode(AsyncBaseNode):
    def __init__(self, max_concurrent=5, **kwargs):
        super().__init__(**kwargs)
        self.semaphore = asyncio.Semaphore(max_concurrent)

    async def execute(self, state):
        """Limit concurrent operations."""
        # Process many items with concurrency limit
        tasks = [
            self.process_with_limit(item)
            for item in state.items
        ]

        results = await asyncio.gather(*tasks)

        return {"results": results}

    async def process_with_limit(self, item):
        """Process item with semaphore."""
        async with self.semaphore:
            # Only max_concurrent will run at once
            return await self.process_item(item)

    async def process_item(self, item):
        await sleep(0.1, f"process {item}")
        return f"Processed {item}"


# Example: Limit API calls
class RateLimitedAPINode(AsyncBaseNode):
    def __init__(self, max_concurrent=3, **kwargs):
        super().__init__(**kwargs)
        self.semaphore = asyncio.Semaphore(max_concurrent)

    async def execute(self, state):
        """Rate limit API calls."""
        tasks = [
            self.fetch_with_limit(url)
            for url in state.urls
        ]

        results = await asyncio.gather(*tasks, return_exceptions=True)

        # Filter successful results
        successful = [r for r in results if not isinstance(r, Exception)]

        return {"results": successful}

    async def fetch_with_limit(self, url):
        """Fetch URL with semaphore."""
        async with self.semaphore:
            # Simulate API call
            await sleep(0.5, f"fetch {url}")
            return f"Data from {url}"


# -- Task Groups ---------------------------------------------------------------------------------


class TaskGroupNode(AsyncBaseNode):
    async def execute(self, state):
        """Use task group for structured concurrency."""
        # TaskGroup ensures all tasks complete or all fail
        async with asyncio.TaskGroup() as tg:
            task1 = tg.create_task(self.operation1())
            task2 = tg.create_task(self.operation2())
            task3 = tg.create_task(self.operation3())

        # All tasks completed successfully
        return {
            "results": [
                task1.result(),
                task2.result(),
                task3.result()
            ]
        }

    async def operation1(self):
        await sleep(0.1, "operation1")
        return "result1"

    async def operation2(self):
        await sleep(0.2, "operation2")
        return "result2"

    async def operation3(self):
        await sleep(0.3, "operation3")
        return "result3"


# -- Rate Limiting (section 4) -------------------------------------------------------------------


class RateLimitedNode(AsyncBaseNode):
    def __init__(self, requests_per_second=10, **kwargs):
        super().__init__(**kwargs)
        self.rate_limit = requests_per_second
        self.min_interval = scaled(1.0 / requests_per_second)
        self.last_request_time = 0

    async def execute(self, state):
        """Execute with rate limiting."""
        results = []

        for item in state.items:
            # Rate limit
            await self.rate_limit_wait()

            # Make request
            result = await self.fetch_item(item)
            results.append(result)

        return {"results": results}

    async def rate_limit_wait(self):
        """Wait to respect rate limit."""
        now = time.time()
        time_since_last = now - self.last_request_time

        if time_since_last < self.min_interval:
            wait_time = self.min_interval - time_since_last
            await asyncio.sleep(wait_time)  # a wait measured on the clock: not scaled again

        self.last_request_time = time.time()

    async def fetch_item(self, item):
        await sleep(0.1, f"fetch {item}")
        return f"Result for {item}"


# Token bucket rate limiter
class TokenBucketNode(AsyncBaseNode):
    def __init__(self, rate=10, capacity=10, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate / scale()  # Tokens per second (of the scaled clock)
        self.capacity = capacity
        self.tokens = capacity
        self.last_update = time.time()
        self.lock = asyncio.Lock()

    async def execute(self, state):
        """Execute with token bucket rate limiting."""
        results = []

        for item in state.items:
            # Acquire token
            await self.acquire_token()

            # Make request
            result = await self.fetch_item(item)
            results.append(result)

        return {"results": results}

    async def acquire_token(self):
        """Acquire a token, waiting if necessary."""
        async with self.lock:
            # Refill tokens based on time passed
            now = time.time()
            time_passed = now - self.last_update
            self.tokens = min(
                self.capacity,
                self.tokens + time_passed * self.rate
            )
            self.last_update = now

            # Wait if no tokens available
            while self.tokens < 1:
                wait_time = (1 - self.tokens) / self.rate
                await asyncio.sleep(wait_time)  # measured on the clock: not scaled again

                now = time.time()
                time_passed = now - self.last_update
                self.tokens = min(
                    self.capacity,
                    self.tokens + time_passed * self.rate
                )
                self.last_update = now

            # Consume token
            self.tokens -= 1

    async def fetch_item(self, item):
        await sleep(0.1, f"fetch {item}")
        return f"Result for {item}"


# -- Connection Pooling (section 4) --------------------------------------------------------------


class PooledHTTPNode(AsyncBaseNode):
    def __init__(self, pool_size=10, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.session = None

    async def execute(self, state):
        """Execute with connection pooling."""
        # Initialize session if needed
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.pool_size)
            self.session = aiohttp.ClientSession(connector=connector)

        # Make concurrent requests using pool
        tasks = [
            self.fetch_url(url)
            for url in state.urls
        ]

        results = await asyncio.gather(*tasks)

        return {"results": results}

    async def fetch_url(self, url):
        """Fetch URL using pooled session."""
        async with self.session.get(url) as response:
            return await response.text()

    async def cleanup(self):
        """Close session when done."""
        if self.session:
            await self.session.close()


gather_graph = single_node_graph("gather", GatherNode())
gather_errors_graph = single_node_graph("gather_errors", GatherErrorHandlingNode())
wait_graph = single_node_graph("wait", WaitNode())
wait_timeout_graph = single_node_graph("wait_timeout", WaitTimeoutNode(verbose=True))
semaphore_graph = single_node_graph("semaphore", SemaphoreNode(max_concurrent=5))
rate_limited_api_graph = single_node_graph("rate_limited_api", RateLimitedAPINode(max_concurrent=3))
task_group_graph = single_node_graph("task_group", TaskGroupNode())
rate_limited_node_graph = single_node_graph("rate_limited_node", RateLimitedNode(requests_per_second=10))
token_bucket_graph = single_node_graph("token_bucket", TokenBucketNode(rate=10, capacity=10))
pooled_node = PooledHTTPNode(pool_size=10)
pooled_graph = single_node_graph("pooled", pooled_node)


# -- the same limits, cluster-wide: node options -------------------------------------------------


@dataclass(kw_only=True)
class FanOutState:
    items: list = field(default_factory=list)
    results: Annotated[list, operator.add] = field(default_factory=list)


def fan_out(node: str):
    def send_each(state: FanOutState) -> list[Send]:
        return [Send(node, {"item": item}) for item in state.items]
    return send_each


async def process_item(arg):  # SemaphoreNode.process_item, one node run per item
    await sleep(0.1, f"process {arg['item']}")
    return {"results": [f"Processed {arg['item']}"]}


async def fetch_item(arg):  # RateLimitedNode.fetch_item, one node run per item
    await sleep(0.1, f"fetch {arg['item']}")
    return {"results": [f"Result for {arg['item']}"]}


RATE = 10  # calls per second, as RateLimitedNode(requests_per_second=10)

builder = StateGraph(FanOutState)
builder.add_node("process_item", process_item, concurrency=5)  # asyncio.Semaphore(5), cluster-wide
builder.add_conditional_edges(START, fan_out("process_item"), ["process_item"])
builder.add_edge("process_item", END)
graph = builder.compile(name="seeds.concurrency.cluster_semaphore")

builder = StateGraph(FanOutState)
builder.add_node("fetch_item", fetch_item, rate_limit=f"{RATE / scale():g}/s")  # 10/s, scaled
builder.add_conditional_edges(START, fan_out("fetch_item"), ["fetch_item"])
builder.add_edge("fetch_item", END)
rate_limited_graph = builder.compile(name="seeds.concurrency.cluster_rate_limit")


async def main() -> dict[str, Any]:
    """Run every pattern; print results, how many calls overlapped, and timings."""
    out: dict[str, Any] = {}

    async def show(key: str, graph: Any, inputs: dict[str, Any], expected: float,
                   sequential: float | None = None) -> None:
        print(f"\n{key}")
        out[key] = trace = await run_traced(graph, inputs)
        print({k: v for k, v in trace.result.items() if k not in inputs})
        if trace.marks:
            print(f"at most {max_in_flight(trace.marks)} calls at once")
        report(key, trace.elapsed, expected, sequential)

    items = list(range(20))
    urls = [f"https://api.example.com/page/{i}" for i in range(6)]
    await show("GatherNode", gather_graph, {"user_id": 7}, 1, sequential=3)
    await show("GatherErrorHandlingNode", gather_errors_graph, {}, 0.1)
    await show("WaitNode", wait_graph, {}, 0.1)
    await show("WaitTimeoutNode", wait_timeout_graph, {}, 2)
    await show("SemaphoreNode", semaphore_graph, {"items": items}, 0.4, sequential=2)
    await show("RateLimitedAPINode", rate_limited_api_graph, {"urls": urls}, 1, sequential=3)
    await show("TaskGroupNode", task_group_graph, {}, 0.3, sequential=0.6)
    await show("RateLimitedNode", rate_limited_node_graph, {"items": list("abcde")}, 0.5)
    await show("TokenBucketNode", token_bucket_graph, {"items": list("abcde")}, 0.5)
    pages = [f"https://api.example.com/page/{i}" for i in range(20)]
    await show("PooledHTTPNode", pooled_graph, {"urls": pages}, 0.2, sequential=2)
    print(f"pool: at most {pooled_node.session.max_open} connections open at once")
    out["pool_max_open"] = pooled_node.session.max_open
    await pooled_node.cleanup()

    print("\nCluster-wide: add_node('process_item', ..., concurrency=5), 20 items")
    out["cluster_semaphore"] = trace = await run_traced(graph, {"items": items})
    print(trace.result["results"])
    print(f"at most {max_in_flight(trace.marks)} calls at once")
    report("concurrency=5", trace.elapsed, 0.4, sequential=2)

    print(f"\nCluster-wide: add_node('fetch_item', ..., rate_limit='{RATE}/s'), 5 items")
    out["cluster_rate_limit"] = trace = await run_traced(rate_limited_graph, {"items": list("abcde")})
    print(trace.result["results"])
    starts = sorted(m["t"] - trace.started for m in trace.marks if m["event"] == "start")
    print("calls started at", ", ".join(f"{s:.2f} s" for s in starts))
    report(f"rate_limit='{RATE}/s'", trace.elapsed, 0.5)
    return out


if __name__ == "__main__":
    asyncio.run(main())
