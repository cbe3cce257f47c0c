"""PocketFlow programs for the differential tests (tests/test_pocketflow_faithful.py): the
behaviours PocketFlow's own test-suite checks, written anew here, and a few of its cookbook
programs with deterministic stand-ins for the LLM calls.

Each `SCENARIOS` entry builds a fresh flow from the real `pocketflow` classes and gives the
shared store to start from. `GRAPHS` serves every one as a graph (`pfs_<name>`) for the workers
of a cluster. Files are written under `shared["out_dir"]`, which the test gives each run.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable
from typing import Any

from pocketflow import (
    AsyncBatchFlow,
    AsyncBatchNode,
    AsyncFlow,
    AsyncNode,
    AsyncParallelBatchFlow,
    AsyncParallelBatchNode,
    BatchFlow,
    BatchNode,
    Flow,
    Node,
)

from arqgraph.pocketflow import FlowGraph, flow_graph

# -- small nodes the scenarios compose --------------------------------------------------------


class Put(Node):
    """Sets `shared["value"]` to its number (or its params' `value`); returns `action`."""

    def __init__(self, number: int = 0, action: str | None = None) -> None:
        super().__init__()
        self.number, self.action = number, action

    def prep(self, shared: dict) -> int:
        return int(self.params.get("value", self.number))

    def post(self, shared: dict, prep_res: int, exec_res: Any) -> str | None:
        shared["value"] = prep_res
        shared.setdefault("trail", []).append(f"put {prep_res}")
        return self.action


class Apply(Node):
    """value = value <op> number, in `exec`; returns its action (None by default)."""

    def __init__(self, op: str, number: int, action: str | None = None) -> None:
        super().__init__()
        self.op, self.number, self.action = op, number, action

    def prep(self, shared: dict) -> int:
        return int(shared["value"])

    def exec(self, value: int) -> int:
        return {"+": value + self.number, "*": value * self.number, "-": value - self.number}[
            self.op]

    def post(self, shared: dict, prep_res: int, exec_res: int) -> str | None:
        shared["value"] = exec_res
        shared.setdefault("trail", []).append(f"{self.op}{self.number}")
        return self.action


class Sign(Node):
    """Routes on the sign of the value: "positive", "negative" or "zero"."""

    def post(self, shared: dict, prep_res: Any, exec_res: Any) -> str:
        value = shared["value"]
        return "positive" if value > 0 else "negative" if value < 0 else "zero"


class Mark(Node):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def post(self, shared: dict, prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("trail", []).append(self.label)


class Countdown(Node):
    """Loops on itself ("again") until the value reaches 0, then "done"."""

    def post(self, shared: dict, prep_res: Any, exec_res: Any) -> str:
        shared["value"] -= 1
        shared.setdefault("trail", []).append(f"count {shared['value']}")
        return "again" if shared["value"] > 0 else "done"


class Flaky(Node):
    """Fails its first `fails` attempts; counts attempts on `self` (seen by `post`)."""

    def __init__(self, fails: int, max_retries: int, fallback: bool = True, wait: float = 0) -> None:
        super().__init__(max_retries=max_retries, wait=wait)
        self.fails, self.fallback, self.attempts = fails, fallback, 0

    def exec(self, prep_res: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.fails:
            raise ValueError(f"attempt {self.cur_retry} failed")
        return f"ok at retry {self.cur_retry}"

    def exec_fallback(self, prep_res: Any, exc: Exception) -> str:
        if not self.fallback:
            raise exc
        return f"fallback: {exc}"

    def post(self, shared: dict, prep_res: Any, exec_res: str) -> None:
        shared.setdefault("results", []).append({"result": exec_res, "attempts": self.attempts})


class AsyncFlaky(AsyncNode):
    def __init__(self, fails: int, max_retries: int, wait: float = 0) -> None:
        super().__init__(max_retries=max_retries, wait=wait)
        self.fails, self.attempts = fails, 0

    async def exec_async(self, prep_res: Any) -> str:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.attempts <= self.fails:
            raise RuntimeError(f"async attempt {self.attempts} failed")
        return f"async ok at attempt {self.attempts}"

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> str:
        return f"async fallback: {exc}"

    async def post_async(self, shared: dict, prep_res: Any, exec_res: str) -> str:
        shared["async_result"] = [exec_res, self.attempts]
        return "next"


class AsyncDouble(AsyncNode):
    async def prep_async(self, shared: dict) -> int:
        return int(shared["value"])

    async def exec_async(self, value: int) -> int:
        await asyncio.sleep(0.001)
        return value * 2

    async def post_async(self, shared: dict, prep_res: int, exec_res: int) -> str:
        shared["value"] = exec_res
        shared.setdefault("trail", []).append("async x2")
        return "done"


class Warns(Node):
    def post(self, shared: dict, prep_res: Any, exec_res: Any) -> str:
        warnings.warn(f"value is {shared.get('value')}", UserWarning, stacklevel=2)
        warnings.warn("this node is old", DeprecationWarning, stacklevel=2)
        return "nowhere"  # no successor for it: PocketFlow warns "Flow ends"


class Chunks(BatchNode):
    """Sums a list in chunks of 3, one `exec` per chunk."""

    def prep(self, shared: dict) -> list[list[int]]:
        numbers = shared["numbers"]
        return [numbers[i:i + 3] for i in range(0, len(numbers), 3)]

    def exec(self, chunk: list[int]) -> int:
        return sum(chunk)

    def post(self, shared: dict, prep_res: Any, exec_res: list[int]) -> str:
        shared["chunk_sums"] = exec_res
        shared["total"] = sum(exec_res)
        return "summed"


class Squares(AsyncParallelBatchNode):
    """Later items finish first; the results must still come in input order."""

    async def prep_async(self, shared: dict) -> list[int]:
        return shared["numbers"]

    async def exec_async(self, n: int) -> int:
        await asyncio.sleep(0.002 * (10 - n % 10))
        if n < 0:
            raise ValueError(f"negative item {n}")
        return n * n

    async def post_async(self, shared: dict, prep_res: Any, exec_res: list[int]) -> str:
        shared["squares"] = exec_res
        return "squared"


class AsyncCubes(AsyncBatchNode):
    async def prep_async(self, shared: dict) -> list[int]:
        return shared["numbers"]

    async def exec_async(self, n: int) -> int:
        return n ** 3

    async def post_async(self, shared: dict, prep_res: Any, exec_res: list[int]) -> None:
        shared["cubes"] = exec_res


class Scale(Node):
    """value[key] = key's number times params' factor (a batch flow's per-run params)."""

    def prep(self, shared: dict) -> tuple[str, int]:
        key = self.params["key"]
        return key, shared["inputs"][key] * self.params.get("factor", 1)

    def post(self, shared: dict, prep_res: tuple[str, int], exec_res: Any) -> None:
        key, value = prep_res
        shared.setdefault("scaled", {})[key] = value
        shared.setdefault("order", []).append(key)


class AsyncScale(AsyncNode):
    async def prep_async(self, shared: dict) -> tuple[str, int]:
        return self.params["key"], shared["inputs"][self.params["key"]]

    async def exec_async(self, item: tuple[str, int]) -> int:
        await asyncio.sleep(0.001 * item[1])  # bigger inputs finish later
        return item[1] * 10

    async def post_async(self, shared: dict, prep_res: tuple[str, int], exec_res: int) -> None:
        shared.setdefault("scaled", {})[prep_res[0]] = exec_res
        shared.setdefault("order", []).append(prep_res[0])


class Keys(BatchFlow):
    def prep(self, shared: dict) -> list[dict[str, Any]]:
        return [{"key": k} for k in sorted(shared["inputs"])]


class AsyncKeys(AsyncBatchFlow):
    async def prep_async(self, shared: dict) -> list[dict[str, Any]]:
        return [{"key": k} for k in sorted(shared["inputs"])]


class ParallelKeys(AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict) -> list[dict[str, Any]]:
        return [{"key": k} for k in sorted(shared["inputs"], reverse=True)]


class Factors(BatchFlow):
    """The outer level of nested batch flows: each factor runs the inner batch flow."""

    def prep(self, shared: dict) -> list[dict[str, Any]]:
        return [{"factor": f} for f in shared["factors"]]


# -- scenarios: what PocketFlow's tests check ---------------------------------------------------


def sequence() -> Flow:
    start = Put(5)
    start >> Apply("+", 3) >> Apply("*", 2) >> Apply("-", 1)
    return Flow(start=start)


def branching() -> Flow:
    start = Put(-4)
    sign = Sign()
    start >> sign
    sign - "positive" >> Mark("was positive")
    sign - "negative" >> Mark("was negative")
    return Flow(start=start)


def cycle() -> Flow:
    start, loop = Put(3), Countdown()
    start >> loop
    loop - "again" >> loop
    loop - "done" >> Mark("lift-off")
    return Flow(start=start)


def flow_ends_unknown_action() -> Flow:
    start = Put(2, action="sideways")
    start - "up" >> Mark("up")
    return Flow(start=start)


def flow_as_node() -> Flow:
    inner = Put(7)
    inner >> Apply("+", 1)
    middle = Flow(start=Flow(start=inner))
    middle >> Apply("*", 10)
    return Flow(start=middle)


def action_propagation() -> Flow:
    """An inner flow's last action routes the outer flow; the outer returns its own last."""
    inner_start = Put(1)
    inner_start >> Apply("+", 1, action="inner_done")
    inner = Flow(start=inner_start)
    inner - "inner_done" >> Mark("path b")
    inner - "other" >> Mark("path a")
    return Flow(start=inner)


def fallback_and_retries() -> Flow:
    first = Flaky(fails=2, max_retries=3)
    second = Flaky(fails=5, max_retries=2, wait=0.001)
    first >> second
    return Flow(start=first)


def no_fallback() -> Flow:
    return Flow(start=Flaky(fails=5, max_retries=2, fallback=False))


def async_mixed() -> AsyncFlow:
    start = Put(4)
    flaky = AsyncFlaky(fails=1, max_retries=3, wait=0.001)
    start >> flaky
    add = Apply("+", 1, action="go")
    flaky - "next" >> add
    add - "go" >> AsyncDouble()
    return AsyncFlow(start=start)


def async_fallback() -> AsyncFlow:
    return AsyncFlow(start=AsyncFlaky(fails=9, max_retries=2))


def async_node_in_sync_flow() -> Flow:
    return Flow(start=AsyncDouble())


def warns() -> Flow:
    start = Put(9)
    warner = Warns()
    start >> warner
    warner - "elsewhere" >> Mark("never")
    return Flow(start=start)


def batch_node() -> Flow:
    chunks = Chunks()
    chunks - "summed" >> Mark("summed")
    return Flow(start=chunks)


def batch_node_none() -> Flow:
    class Nothing(BatchNode):
        def post(self, shared: dict, prep_res: Any, exec_res: Any) -> None:
            shared["results"] = exec_res

    return Flow(start=Nothing())


def parallel_batch_node() -> AsyncFlow:
    squares = AsyncFlow(start=Squares())
    squares.start_node - "squared" >> AsyncCubes()
    return squares


def parallel_batch_node_error() -> AsyncFlow:
    return AsyncFlow(start=Squares())


def batch_flow() -> Flow:
    flow = Keys(start=Scale())
    flow.set_params({"factor": 3})
    return flow


def nested_batch_flow() -> Flow:
    return Factors(start=Keys(start=Scale()))


def async_batch_flow() -> AsyncFlow:
    return AsyncKeys(start=AsyncScale())


def parallel_batch_flow() -> AsyncFlow:
    return ParallelKeys(start=AsyncScale())


def params_flow() -> Flow:
    """Params set on the flow reach every node; a node's own params are replaced."""
    node = Put()
    node.set_params({"value": 99})
    node >> Apply("+", 1)
    flow = Flow(start=node)
    flow.set_params({"value": 11})
    return flow


class SeedWarning(UserWarning):
    """A warning class of the program's own: the caller gets this class back."""


class Counted(Node):
    """Counts its runs on `self`: PocketFlow runs a copy of the node each time."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def prep(self, shared: dict) -> int:
        self.runs += 1
        return self.runs

    def exec(self, runs: int) -> int:
        warnings.warn(f"run {runs}", SeedWarning, stacklevel=2)
        return runs

    def post(self, shared: dict, prep_res: int, exec_res: int) -> str:
        shared.setdefault("counted", []).append(exec_res)
        return "again" if len(shared["counted"]) < 3 else "done"


def copies_of_nodes() -> Flow:
    counted = Counted()
    counted - "again" >> counted
    return Flow(start=counted)


def async_nested_routing() -> AsyncFlow:
    """An async flow, a sync flow inside it, an async flow inside that one's successor."""
    sync_start = Put(3)
    sync_start >> Apply("*", 5, action="sync_done")
    sync_flow = Flow(start=sync_start)
    inner = AsyncFlow(start=AsyncDouble())
    sync_flow - "sync_done" >> inner
    inner - "done" >> Apply("+", 1, action="finished")
    return AsyncFlow(start=sync_flow)


def top_level_successors() -> Flow:
    flow = Flow(start=Put(1))
    flow >> Mark("never runs")
    return flow


def async_top_level_successors() -> AsyncFlow:
    flow = AsyncFlow(start=AsyncDouble())
    flow >> Mark("never runs")
    return flow


def async_batch_none() -> AsyncFlow:
    class NoItems(AsyncBatchNode):
        pass

    return AsyncFlow(start=NoItems())


def parallel_empty() -> AsyncFlow:
    return AsyncFlow(start=Squares())


def failing_prep() -> Flow:
    class Broken(Node):
        def prep(self, shared: dict) -> Any:
            return shared["missing"]

    start = Put(1)
    start >> Broken(max_retries=3)
    return Flow(start=start)


# -- cookbook programs, with stand-ins for the LLM ---------------------------------------------


async def fake_llm(prompt: str) -> str:
    """A deterministic LLM: answers by the prompt's first word, after a short await."""
    await asyncio.sleep(0.001 * (len(prompt) % 5))
    head, _, rest = prompt.partition(":")
    if head == "translate":
        language, _, text = rest.partition("|")
        return f"[{language}] " + " ".join(reversed(text.split()))
    if head == "decide":
        return "search" if rest.count("result") < 2 else "answer"
    return f"{head} of {rest.strip()}"


def save(shared: dict, filename: str, text: str) -> None:
    """Write a program's output file, as the cookbook programs do, under the run's folder."""
    os.makedirs(shared["out_dir"], exist_ok=True)
    with open(os.path.join(shared["out_dir"], filename), "w", encoding="utf-8") as f:
        f.write(text)


class Translate(AsyncParallelBatchNode):
    """cookbook/pocketflow-parallel-batch: translate a text into many languages, save files."""

    async def prep_async(self, shared: dict) -> list[tuple[str, str]]:
        return [(shared["text"], language) for language in shared["languages"]]

    async def exec_async(self, item: tuple[str, str]) -> dict[str, str]:
        text, language = item
        return {"language": language, "translation": await fake_llm(f"translate:{language}|{text}")}

    async def post_async(self, shared: dict, prep_res: Any, results: list[dict]) -> str:
        for result in results:
            save(shared, f"README_{result['language'].upper()}.md", result["translation"])
        shared["translated"] = [r["language"] for r in results]
        return "default"


def translate() -> AsyncFlow:
    return AsyncFlow(start=Translate(max_retries=3))


class Decide(AsyncNode):
    """cookbook/pocketflow-agent: decide to search again or answer."""

    async def prep_async(self, shared: dict) -> str:
        return f"decide:{shared['question']} " + " ".join(shared.get("context", []))

    async def exec_async(self, prompt: str) -> str:
        return await fake_llm(prompt)

    async def post_async(self, shared: dict, prep_res: str, decision: str) -> str:
        shared.setdefault("decisions", []).append(decision)
        return decision


class Search(Node):
    def prep(self, shared: dict) -> str:
        return shared["question"]

    def exec(self, query: str) -> str:
        return f"result for {query}"

    def post(self, shared: dict, prep_res: str, found: str) -> str:
        shared.setdefault("context", []).append(found)
        return "decide"


class Answer(AsyncNode):
    async def prep_async(self, shared: dict) -> str:
        return f"answer:{shared['question']} from {len(shared['context'])} results"

    async def exec_async(self, prompt: str) -> str:
        return await fake_llm(prompt)

    async def post_async(self, shared: dict, prep_res: str, answer: str) -> str:
        shared["answer"] = answer
        save(shared, "answer.txt", answer)
        return "answered"


def agent() -> AsyncFlow:
    decide = Decide()
    decide.next(Search(), "search").next(decide, "decide")
    decide.next(Answer(), "answer")
    return AsyncFlow(start=decide)


class ReadResumes(Node):
    """cookbook/pocketflow-map-reduce: read resumes, evaluate each (batch), reduce."""

    def exec(self, _: Any) -> dict[str, str]:
        return {f"{name}.txt": f"{name}: {years} years" for name, years in
                [("ana", 5), ("bo", 1), ("cy", 7), ("di", 2)]}

    def post(self, shared: dict, prep_res: Any, resumes: dict[str, str]) -> str:
        shared["resumes"] = resumes
        return "default"


class Evaluate(BatchNode):
    def prep(self, shared: dict) -> list[tuple[str, str]]:
        return list(shared["resumes"].items())

    def exec(self, item: tuple[str, str]) -> tuple[str, dict[str, Any]]:
        filename, content = item
        name, years = content.split(": ")
        return filename, {"name": name, "qualifies": int(years.split()[0]) >= 3}

    def post(self, shared: dict, prep_res: Any, results: list) -> str:
        shared["evaluations"] = dict(results)
        return "default"


class Reduce(Node):
    def prep(self, shared: dict) -> dict[str, Any]:
        return shared["evaluations"]

    def exec(self, evaluations: dict[str, Any]) -> dict[str, Any]:
        names = [e["name"] for e in evaluations.values() if e["qualifies"]]
        return {"total": len(evaluations), "qualified": names}

    def post(self, shared: dict, prep_res: Any, summary: dict[str, Any]) -> str:
        shared["summary"] = summary
        save(shared, "summary.txt", ", ".join(summary["qualified"]))
        return "default"


def map_reduce() -> Flow:
    read = ReadResumes()
    read >> Evaluate() >> Reduce()
    return Flow(start=read)


class Outline(Node):
    """cookbook/pocketflow-workflow: outline, write each section (batch), apply a style."""

    def prep(self, shared: dict) -> str:
        return shared["topic"]

    def exec(self, topic: str) -> list[str]:
        return [f"{topic} intro", f"{topic} body", f"{topic} end"]

    def post(self, shared: dict, prep_res: str, sections: list[str]) -> None:
        shared["sections"] = sections


class WriteSections(AsyncBatchNode):
    async def prep_async(self, shared: dict) -> list[str]:
        return shared["sections"]

    async def exec_async(self, section: str) -> str:
        return await fake_llm(f"write:{section}")

    async def post_async(self, shared: dict, prep_res: Any, drafts: list[str]) -> None:
        shared["draft"] = "\n".join(drafts)


class Style(Node):
    """A sync node ending an async flow."""

    def prep(self, shared: dict) -> str:
        return shared["draft"]

    def exec(self, draft: str) -> str:
        return draft.upper()

    def post(self, shared: dict, prep_res: str, final: str) -> str:
        save(shared, "article.md", final)
        shared["final_article"] = final
        return "published"


class Vote(AsyncBatchNode):
    """cookbook/pocketflow-majority-vote: ask several times, keep the most common answer."""

    async def prep_async(self, shared: dict) -> list[str]:
        return [f"vote:{shared['question']} #{i}" for i in range(shared["attempts"])]

    async def exec_async(self, prompt: str) -> str:
        answer = await fake_llm(prompt)
        if prompt.endswith("#2"):
            raise ValueError("unparsable answer")
        return answer.rsplit("#", 1)[0]

    async def exec_fallback_async(self, prompt: str, exc: Exception) -> str | None:
        return None

    async def post_async(self, shared: dict, prep_res: Any, answers: list) -> str:
        valid = [a for a in answers if a is not None]
        shared["answers"] = answers
        shared["majority"] = max(sorted(set(valid)), key=valid.count)
        return "decided"


def majority_vote() -> AsyncFlow:
    return AsyncFlow(start=Vote(max_retries=2))


def workflow() -> AsyncFlow:
    outline = Outline()
    outline >> WriteSections() >> Style()
    return AsyncFlow(start=outline)


SCENARIOS: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "sequence": (sequence, {}),
    "branching": (branching, {}),
    "cycle": (cycle, {}),
    "flow_ends_unknown_action": (flow_ends_unknown_action, {}),
    "flow_as_node": (flow_as_node, {}),
    "action_propagation": (action_propagation, {}),
    "fallback_and_retries": (fallback_and_retries, {}),
    "no_fallback": (no_fallback, {}),
    "async_mixed": (async_mixed, {}),
    "async_fallback": (async_fallback, {}),
    "async_node_in_sync_flow": (async_node_in_sync_flow, {"value": 1}),
    "warns": (warns, {}),
    "batch_node": (batch_node, {"numbers": list(range(10))}),
    "batch_node_none": (batch_node_none, {}),
    "parallel_batch_node": (parallel_batch_node, {"numbers": list(range(12))}),
    "parallel_batch_node_error": (parallel_batch_node_error, {"numbers": [1, -2, 3]}),
    "batch_flow": (batch_flow, {"inputs": {"b": 2, "a": 1, "c": 3}}),
    "nested_batch_flow": (nested_batch_flow, {"inputs": {"x": 1, "y": 2}, "factors": [1, 10]}),
    "async_batch_flow": (async_batch_flow, {"inputs": {"b": 2, "a": 5, "c": 1}}),
    "parallel_batch_flow": (parallel_batch_flow, {"inputs": {"b": 2, "a": 5, "c": 1}}),
    "params_flow": (params_flow, {}),
    "copies_of_nodes": (copies_of_nodes, {}),
    "async_nested_routing": (async_nested_routing, {}),
    "top_level_successors": (top_level_successors, {}),
    "async_top_level_successors": (async_top_level_successors, {"value": 2}),
    "async_batch_none": (async_batch_none, {}),
    "parallel_empty": (parallel_empty, {"numbers": []}),
    "failing_prep": (failing_prep, {}),
    "cookbook_majority_vote": (majority_vote, {"question": "2+2", "attempts": 5}),
    "cookbook_translate": (translate, {"text": "hello big world",
                                       "languages": ["German", "French", "Korean", "Spanish"]}),
    "cookbook_agent": (agent, {"question": "why is the sky blue"}),
    "cookbook_map_reduce": (map_reduce, {}),
    "cookbook_workflow": (workflow, {"topic": "tea"}),
}

GRAPHS: list[FlowGraph] = [flow_graph(make(), name=f"pfs_{name}")
                           for name, (make, _) in SCENARIOS.items()]
BY_NAME = dict(zip(SCENARIOS, GRAPHS, strict=True))
