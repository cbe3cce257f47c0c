"""Seed 001, "Async Patterns for LangGraph Nodes": "Timeout Handling" (section 4) and section 5
"Error Handling", on arqgraph (`arqgraph.nodes.AsyncBaseNode` for the document's own base class;
latencies and timeouts scaled by ARQGRAPH_SEED_SCALE).

The document's nodes, each in a one-node graph:
- Timeout Handling: `TimeoutNode`, a 10 s call under a 5 s `asyncio.wait_for` ->
  `{'result': None, 'timed_out': True}` after ~5 s, logging "Operation timed out";
  `MultiTimeoutNode`, three calls with their own timeouts -> `results == ['result1',
  'result2']`, `errors == ['Operation 2 failed: ']` (a TimeoutError's text is empty) after ~3 s.
- Try-Except in Async: `ErrorHandlingNode` -> `'Processed hello'` for "hello"; for "fail",
  `error == 'Invalid input'` and the log "Unexpected error (error='Invalid input')".
- Async Error Recovery: `RetryNode(max_retries=3, backoff=1.0)`: for "flaky" (fails twice) ->
  `{'result': 'Success: flaky', 'attempts': 3}` after ~3.3 s (waits 1 s, then 2 s); for "down"
  (always fails) -> `{'result': None, 'error': 'Random failure', 'attempts': 3}`. The document's
  `random.random() < 0.5` is `Flaky`, a stand-in failing the first N calls per input, so the
  output is the same on every run.
- Timeout Errors: `TimeoutHandlingNode` -> `{'quick': 'quick', 'op1': 'op1', 'op2': 'op2'}`, op3
  cancelled, after ~2.5 s. The document's version cannot run on Python 3.11: it passes
  coroutines to `asyncio.wait` ("Passing coroutines is forbidden, use tasks explicitly") and
  then compares those coroutines with the finished tasks, which never match, so no result
  would be found; here the operations are tasks from the start.
- Cancellation: `CancellableNode` (a TypedDict state: the document reads it with `state.get`):
  with `cancel_requested` it returns `{'result': None, 'cancelled': True}`; cancelling the
  caller's `astream` (or `ainvoke`) cancels the node, which logs "Task was cancelled" and "Cleaning up...";
  on a cluster the producer's `await run.cancel()` does the same from any process (shown here
  against an in-process cluster). A run left alone completes after ~11 s (not run here).

The same policies as node options, holding on whichever worker runs the node:
- `timeout=5` plus an `error_handler` standing in for the node's result: `TimeoutNode` without
  its try/except (`timeout_graph`): `{'result': None, 'timed_out': True}` after ~5 s.
- `retry_policy=RetryPolicy(max_attempts=3, initial_interval=1.0, backoff_factor=2.0,
  retry_on=ValueError)` plus an `error_handler` for when it gives up: `RetryNode` without its
  loop (`graph`). The waits between attempts are spent in the queue, not in a worker slot.

    python examples/seeds/async_patterns_errors.py
    arqgraph run examples.seeds.async_patterns_errors:graph --input '{"input": "flaky"}'
"""

import asyncio
from dataclasses import dataclass
from typing import Any, TypedDict

from arqgraph.embedded import EmbeddedCluster
from arqgraph.errors import NodeError, RunCancelledError
from arqgraph.graph import START, StateGraph
from arqgraph.nodes import AsyncBaseNode
from arqgraph.types import RetryPolicy

try:
    from examples.seeds.standins import (
        aiohttp,
        node_logs_printed,
        report,
        run_traced,
        scaled,
        sleep,
    )
except ModuleNotFoundError:  # run as a script: python examples/seeds/async_patterns_errors.py
    from standins import (  # type: ignore[no-redef]
        aiohttp,
        node_logs_printed,
        report,
        run_traced,
        scaled,
        sleep,
    )


@dataclass(kw_only=True)
class State:
    input: str = ""
    result: Any = None
    timed_out: bool | None = None
    error: str | None = None
    attempts: int | None = None
    results: Any = None
    errors: list | None = None


def single_node_graph(name: str, node: Any, state: type = State, **options: Any) -> Any:
    node_name = getattr(node, "name", None) or node.__name__
    builder = StateGraph(state)
    builder.add_node(node_name, node, **options)
    builder.add_edge(START, node_name)
    return builder.compile(name=f"seeds.errors.{name}")


class Flaky:
    """Stand-in for a service that fails now and then: the first `FAILURES[input]` calls for an
    input fail (in this process), the next succeed."""

    FAILURES = {"flaky": 2, "down": 1_000_000}

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def fails(self, key: str) -> bool:
        self.calls[key] = self.calls.get(key, 0) + 1
        return self.calls[key] <= self.FAILURES.get(key, 0)


# -- Timeout Handling ----------------------------------------------------------------------------


class TimeoutNode(AsyncBaseNode):
    async def execute(self, state):
        """Execute with timeout."""
        try:
            # Timeout after 5 seconds
            result = await asyncio.wait_for(
                self.slow_operation(state.input),
                timeout=scaled(5.0)
            )
            return {"result": result, "timed_out": False}

        except TimeoutError:
            self.log("Operation timed out")
            return {"result": None, "timed_out": True}

    async def slow_operation(self, input_data):
        """Potentially slow operation."""
        await sleep(10, "slow_operation")  # Takes 10 seconds
        return "result"


# Multiple operations with timeout
class MultiTimeoutNode(AsyncBaseNode):
    async def execute(self, state):
        """Multiple operations with individual timeouts."""
        tasks = [
            asyncio.wait_for(self.op1(), timeout=scaled(1.0)),
            asyncio.wait_for(self.op2(), timeout=scaled(2.0)),
            asyncio.wait_for(self.op3(), timeout=scaled(3.0)),
        ]

        # gather with return_exceptions to handle timeouts
        results = await asyncio.gather(*tasks, return_exceptions=True)

        # Process results
        valid_results = []
        errors = []

        for i, result in enumerate(results):
            if isinstance(result, Exception):
                errors.append(f"Operation {i} failed: {result}")
            else:
                valid_results.append(result)

        return {
            "results": valid_results,
            "errors": errors
        }

    async def op1(self):
        await sleep(0.5, "op1")
        return "result1"

    async def op2(self):
        await sleep(1.5, "op2")
        return "result2"

    async def op3(self):
        await sleep(5, "op3")  # Will timeout
        return "result3"


# The node option: the worker cancels the attempt after 5 s, the handler stands in for it.
async def slow_operation(state):
    await sleep(10, "slow_operation")  # Takes 10 seconds
    return {"result": "result", "timed_out": False}


def timed_out(state, error: NodeError):
    return {"result": None, "timed_out": True}


# -- Try-Except in Async -------------------------------------------------------------------------


class ErrorHandlingNode(AsyncBaseNode):
    async def execute(self, state):
        """Handle async errors."""
        try:
            result = await self.risky_operation(state.input)
            return {"result": result, "error": None}

        except TimeoutError:
            self.log("Operation timed out")
            return {"result": None, "error": "timeout"}

        except aiohttp.ClientError as e:
            self.log("HTTP error", error=str(e))
            return {"result": None, "error": f"http: {e}"}

        except Exception as e:
            self.log("Unexpected error", error=str(e))
            return {"result": None, "error": str(e)}

    async def risky_operation(self, input_data):
        """Operation that might fail."""
        await sleep(0.1)
        if input_data == "fail":
            raise ValueError("Invalid input")
        return f"Processed {input_data}"


# -- Async Error Recovery ------------------------------------------------------------------------


class RetryNode(AsyncBaseNode):
    def __init__(self, max_retries=3, backoff=1.0, **kwargs):
        super().__init__(**kwargs)
        self.max_retries = max_retries
        self.backoff = backoff
        self.flaky = Flaky()

    async def execute(self, state):
        """Execute with exponential backoff retry."""
        last_error = None

        for attempt in range(self.max_retries):
            try:
                result = await self.operation(state.input)
                return {"result": result, "attempts": attempt + 1}

            except Exception as e:
                last_error = e
                self.log(f"Attempt {attempt + 1} failed: {e}")

                if attempt < self.max_retries - 1:
                    # Exponential backoff
                    wait_time = self.backoff * (2 ** attempt)
                    await sleep(wait_time)

        # All retries failed
        return {
            "result": None,
            "error": str(last_error),
            "attempts": self.max_retries
        }

    async def operation(self, input_data):
        """Operation that might fail."""
        await sleep(0.1, f"attempt at {input_data}")
        if self.flaky.fails(input_data):  # the document: random.random() < 0.5
            raise ValueError("Random failure")
        return f"Success: {input_data}"


# The node options: the worker retries the attempt (the wait spent in the queue), the handler
# stands in for the node's result once the policy gives up.
flaky_service = Flaky()


async def operation(state):
    """Operation that might fail."""
    await sleep(0.1, f"attempt at {state.input}")
    if flaky_service.fails(state.input):  # the document: random.random() < 0.5
        raise ValueError("Random failure")
    return {"result": f"Success: {state.input}"}


def gave_up(state, error: NodeError):
    return {"result": None, "error": str(error.error), "attempts": 3}


RETRY = RetryPolicy(max_attempts=3, initial_interval=scaled(1.0), backoff_factor=2.0, jitter=False,
                    retry_on=ValueError)


# -- Timeout Errors ------------------------------------------------------------------------------


class TimeoutHandlingNode(AsyncBaseNode):
    async def execute(self, state):
        """Handle different timeout scenarios."""
        results = {}

        # Individual operation with timeout
        try:
            results["quick"] = await asyncio.wait_for(
                self.quick_op(),
                timeout=scaled(1.0)
            )
        except TimeoutError:
            results["quick"] = None

        # Multiple operations with timeout (tasks: the document passes coroutines)
        tasks = {
            "op1": asyncio.create_task(self.slow_op1()),
            "op2": asyncio.create_task(self.slow_op2()),
            "op3": asyncio.create_task(self.slow_op3()),
        }

        done, pending = await asyncio.wait(
            tasks.values(),
            timeout=scaled(2.0),
            return_when=asyncio.ALL_COMPLETED
        )

        # Cancel pending tasks
        for task in pending:
            task.cancel()

        # Get completed results
        for task in done:
            try:
                result = await task
                # Find which operation
                for name, op_task in tasks.items():
                    if op_task == task:
                        results[name] = result
                        break
            except Exception as e:
                self.log(f"Task failed: {e}")

        return {"results": results}

    async def quick_op(self):
        await sleep(0.5, "quick_op")
        return "quick"

    async def slow_op1(self):
        await sleep(1.5, "slow_op1")
        return "op1"

    async def slow_op2(self):
        await sleep(1.0, "slow_op2")
        return "op2"

    async def slow_op3(self):
        await sleep(3.0, "slow_op3")
        return "op3"


# -- Cancellation --------------------------------------------------------------------------------


class CancelState(TypedDict, total=False):
    cancel_requested: bool
    result: str | None
    cancelled: bool


class CancellableNode(AsyncBaseNode):
    async def execute(self, state):
        """Support cancellation."""
        try:
            # Long-running operation
            for i in range(100):
                # Check for cancellation
                await sleep(0.1, f"step {i}")

                # Cooperative cancellation check
                if state.get("cancel_requested"):
                    return {"result": None, "cancelled": True}

                # Process item
                await self.process_item(i)

            return {"result": "complete", "cancelled": False}

        except asyncio.CancelledError:
            # Handle cancellation
            self.log("Task was cancelled")
            # Cleanup if needed
            await self.cleanup()
            raise  # Re-raise to propagate cancellation

    async def process_item(self, item):
        await sleep(0.01)

    async def cleanup(self):
        """Cleanup on cancellation."""
        self.log("Cleaning up...")
        await sleep(0.1)


timeout_node_graph = single_node_graph("timeout_node", TimeoutNode(verbose=True))
multi_timeout_graph = single_node_graph("multi_timeout", MultiTimeoutNode())
timeout_graph = single_node_graph("timeout_option", slow_operation, timeout=scaled(5.0),
                                  error_handler=timed_out)
error_handling_graph = single_node_graph("error_handling", ErrorHandlingNode(verbose=True))
retry_node = RetryNode(max_retries=3, backoff=1.0, verbose=True)
retry_node_graph = single_node_graph("retry_node", retry_node)
graph = single_node_graph("retry_option", operation, retry_policy=RETRY, error_handler=gave_up)
timeout_handling_graph = single_node_graph("timeout_handling", TimeoutHandlingNode(verbose=True))
cancellable_graph = single_node_graph("cancellable", CancellableNode(verbose=True), CancelState)


async def main() -> dict[str, Any]:
    """Run every pattern; print results, node logs and timings."""
    out: dict[str, Any] = {}
    retry_node.flaky.calls.clear()
    flaky_service.calls.clear()

    async def show(key: str, graph: Any, inputs: dict[str, Any], expected: float) -> Any:
        print(f"\n{key}: {inputs}")
        out[key] = trace = await run_traced(graph, inputs)
        print({k: v for k, v in trace.result.items() if k not in inputs})
        attempts = [m for m in trace.marks if m["event"] == "start" and m["what"].startswith("attempt")]
        if attempts:
            print(f"{len(attempts)} attempt(s)")
        report(key, trace.elapsed, expected)
        return trace

    with node_logs_printed():
        await show("TimeoutNode", timeout_node_graph, {"input": "x"}, 5)
        await show("MultiTimeoutNode", multi_timeout_graph, {}, 3)
        await show("timeout=5 + error_handler", timeout_graph, {"input": "x"}, 5)
        await show("ErrorHandlingNode", error_handling_graph, {"input": "hello"}, 0.1)
        await show("ErrorHandlingNode (fail)", error_handling_graph, {"input": "fail"}, 0.1)
        await show("RetryNode", retry_node_graph, {"input": "flaky"}, 3.3)
        await show("RetryNode (down)", retry_node_graph, {"input": "down"}, 3.3)
        await show("retry_policy + error_handler", graph, {"input": "flaky"}, 3.3)
        await show("retry_policy + error_handler (down)", graph, {"input": "down"}, 3.3)
        await show("TimeoutHandlingNode", timeout_handling_graph, {}, 2.5)

        await show("CancellableNode (cancel_requested)", cancellable_graph,
                   {"cancel_requested": True}, 0.1)

        print("\nCancellableNode: the caller cancels its astream 0.5 s after the node started")
        started = asyncio.Event()

        async def follow() -> None:
            async for _chunk in cancellable_graph.astream({}, stream_mode="custom"):
                started.set()  # the node's first step began

        call = asyncio.create_task(follow())
        await started.wait()
        await asyncio.sleep(scaled(0.5))
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            print("astream cancelled")
            out["astream_cancelled"] = True

        print("\nCancellableNode: run.cancel() from a producer (an in-process cluster here; "
              "Client.connect(url) on a real one)")
        async with EmbeddedCluster([cancellable_graph]) as cluster:
            run = await cluster.client.submit(cancellable_graph.name, {})
            async for _chunk in run.stream("custom"):
                break  # the node's first step began
            await asyncio.sleep(scaled(0.5))
            await run.cancel()
            try:
                await run.result()
            except RunCancelledError as exc:
                print("run.result() raised RunCancelledError:", exc)
            out["run_status"] = await run.status()
            print("run.status():", out["run_status"])
            # the run ends as cancelled at once; let the node finish its cleanup before this
            # in-process cluster stops (stopping it cancels the node again)
            await asyncio.sleep(scaled(0.5))
    return out


if __name__ == "__main__":
    asyncio.run(main())
