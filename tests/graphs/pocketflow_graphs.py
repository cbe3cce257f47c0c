"""PocketFlow flows for tests/test_pocketflow.py (embedded, and compared with running the same
flows on the real `pocketflow` package) and for the cluster test in tests/test_cluster.py.

Each `make_*` builds a fresh flow from the real pocketflow classes; `flow_graph` turns one into a
graph. Nodes log what they do in `EVENTS` (the embedded tests run in this process).
"""

import asyncio
import time
from typing import Any

from pocketflow import (
    AsyncFlow,
    AsyncNode,
    AsyncParallelBatchFlow,
    AsyncParallelBatchNode,
    BatchFlow,
    Flow,
    Node,
)

from arqgraph.pocketflow import flow_graph

EVENTS: list[str] = []
SCALE = 1.0  # the tests shrink the sleeps


# -- the seeds' async basics: fetch recipes, then suggest --------------------------------------


class FetchRecipes(AsyncNode):
    async def prep_async(self, shared: dict) -> str:
        return shared.get("user_ingredient", "chicken")

    async def exec_async(self, ingredient: str) -> list[str]:
        await asyncio.sleep(0.02 * SCALE)
        return ["Pizza", "Pasta", "Salad"]

    async def post_async(self, shared: dict, prep_res: str, recipes: list[str]) -> str:
        shared["recipes"] = recipes
        shared["ingredient"] = prep_res
        return "suggest"


class SuggestRecipe(Node):
    def post(self, shared: dict, prep_res: Any, suggestion: Any) -> str:
        shared["suggestion"] = shared.get("recipes", [])[0]
        return "done"


def make_recipe_flow() -> AsyncFlow:
    fetch, suggest = FetchRecipes(), SuggestRecipe()
    fetch - "suggest" >> suggest
    return AsyncFlow(start=fetch)


# -- a parallel batch node: 8 items at once ------------------------------------------------------


class SlowSquares(AsyncParallelBatchNode):
    async def prep_async(self, shared: dict) -> list[int]:
        return shared["numbers"]

    async def exec_async(self, n: int) -> dict:
        started = time.time()
        await asyncio.sleep(0.5 * SCALE)
        return {"n": n, "square": n * n, "span": [started, time.time()]}

    async def post_async(self, shared: dict, prep_res: list[int], results: list[dict]) -> None:
        shared["squares"] = [r["square"] for r in results]  # in input order
        spans = [r["span"] for r in results]
        shared["all_overlap"] = max(s for s, _ in spans) < min(e for _, e in spans)


def make_parallel_flow() -> AsyncFlow:
    return AsyncFlow(start=SlowSquares())


# -- an agent loop: decide, search, answer, with a stub LLM ---------------------------------------


def stub_llm(question: str, context: list[str]) -> str:
    return "search" if len(context) < 2 else "answer"


class Decide(Node):
    def prep(self, shared: dict) -> dict:
        return {"question": shared["question"], "context": shared.get("context", [])}

    def exec(self, inputs: dict) -> str:
        return stub_llm(inputs["question"], inputs["context"])

    def post(self, shared: dict, prep_res: dict, action: str) -> str:
        shared.setdefault("trace", []).append(f"decide:{action}")
        return action


class Search(Node):
    def prep(self, shared: dict) -> str:
        return f"{shared['question']} #{len(shared.get('context', []))}"

    def exec(self, query: str) -> str:
        return f"result for {query}"

    def post(self, shared: dict, prep_res: str, result: str) -> str:
        shared.setdefault("context", []).append(result)
        shared["trace"].append("search")
        return "decide"


class Answer(Node):
    def prep(self, shared: dict) -> list[str]:
        return shared["context"]

    def exec(self, context: list[str]) -> str:
        return f"answer from {len(context)} results"

    def post(self, shared: dict, prep_res: Any, answer: str) -> None:
        shared["answer"] = answer
        shared["trace"].append("answer")


def make_agent_flow() -> Flow:
    decide, search, answer = Decide(), Search(), Answer()
    decide - "search" >> search
    decide - "answer" >> answer
    search - "decide" >> decide
    return Flow(start=decide)


# -- a nested batch flow: per file, per chunk ------------------------------------------------------


class LoadChunk(Node):
    def prep(self, shared: dict) -> str:
        return f"{self.params['file']}/{self.params['chunk']}"

    def exec(self, name: str) -> str:
        return name.upper()

    def post(self, shared: dict, prep_res: str, loaded: str) -> None:
        shared.setdefault("loaded", []).append(loaded)


class PerChunk(BatchFlow):
    def prep(self, shared: dict) -> list[dict]:
        return [{"chunk": c} for c in range(2)]


class PerFile(BatchFlow):
    def prep(self, shared: dict) -> list[dict]:
        return [{"file": f} for f in shared["files"]]


def make_nested_batch_flow() -> Flow:
    return PerFile(start=PerChunk(start=LoadChunk()))


# -- a parallel batch flow: branches advance on their own -------------------------------------------


class Step(AsyncNode):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    async def exec_async(self, prep_res: Any) -> str:
        EVENTS.append(f"{self.params['branch']}:{self.label}")
        await asyncio.sleep((0.1 if self.params["branch"] == "slow" else 0.0) * SCALE)
        return self.label

    async def post_async(self, shared: dict, prep_res: Any, label: str) -> None:
        shared.setdefault(self.params["branch"], []).append(label)


class Branches(AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict) -> list[dict]:
        return [{"branch": "slow"}, {"branch": "fast"}]


def make_branches_flow() -> Flow:
    first, second = Step("first"), Step("second")
    first >> second
    return Branches(start=first)


# -- retries, fallback, and what cannot cross the network -------------------------------------------


class Flaky(Node):
    def __init__(self) -> None:
        super().__init__(max_retries=3, wait=0)

    def exec(self, fails: int) -> str:
        EVENTS.append(f"try {self.cur_retry}")
        if self.cur_retry < fails:
            raise ConnectionError(f"attempt {self.cur_retry} failed")
        return f"ok after {self.cur_retry}"

    def exec_fallback(self, prep_res: Any, exc: Exception) -> str:
        return f"fallback after {exc}"

    def prep(self, shared: dict) -> int:
        return shared["fails"]

    def post(self, shared: dict, prep_res: Any, result: str) -> None:
        shared["result"] = result


def make_flaky_flow() -> Flow:
    return Flow(start=Flaky())


class Unsendable(Node):
    def post(self, shared: dict, prep_res: Any, exec_res: Any) -> None:
        shared["handle"] = object()  # fine in one process; cannot travel back to the caller


def make_unsendable_flow() -> Flow:
    return Flow(start=Unsendable())


class JunkExec(Node):
    """exec returns what cannot be sent back; its fallback (if `fallback`) reports the error."""

    def __init__(self) -> None:
        super().__init__(max_retries=2, wait=0)

    def prep(self, shared: dict) -> bool:
        return shared["fallback"]

    def exec(self, fallback: bool) -> object:
        EVENTS.append(f"exec {self.cur_retry}")
        return object()

    def exec_fallback(self, fallback: bool, exc: Exception) -> str:
        if not fallback:
            raise exc
        return f"fallback: {exc}"

    def post(self, shared: dict, prep_res: Any, result: str) -> None:
        shared["result"] = result


def make_junk_exec_flow() -> Flow:
    return Flow(start=JunkExec())


recipes = flow_graph(make_recipe_flow(), name="pf_recipes")
parallel_squares = flow_graph(make_parallel_flow(), name="pf_parallel")
agent = flow_graph(make_agent_flow(), name="pf_agent")
nested_batch = flow_graph(make_nested_batch_flow(), name="pf_nested_batch")
branches = flow_graph(make_branches_flow(), name="pf_branches")
flaky = flow_graph(make_flaky_flow(), name="pf_flaky")
unsendable = flow_graph(make_unsendable_flow(), name="pf_unsendable")
junk_exec = flow_graph(make_junk_exec_flow(), name="pf_junk_exec")

GRAPHS = [recipes, parallel_squares, agent, nested_batch, branches, flaky, unsendable, junk_exec]
