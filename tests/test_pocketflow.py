"""PocketFlow flows on arqgraph (embedded here; on processes in tests/test_cluster.py), each
compared with the same flow run by the real `pocketflow` package in this process."""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from arqgraph.errors import SerializationError
from tests.graphs import pocketflow_graphs as flows

LIMIT = 20.0


@pytest.fixture(autouse=True)
def fast() -> Iterator[None]:
    flows.SCALE, flows.EVENTS[:] = 0.05, []
    yield
    flows.SCALE = 1.0


async def reference(make: Callable[[], Any], shared: dict[str, Any]) -> dict[str, Any]:
    """The same flow on real PocketFlow, in this process."""
    store = copy.deepcopy(shared)
    flow = make()
    if hasattr(flow, "run_async"):
        await flow.run_async(store)
    else:
        await asyncio.to_thread(flow.run, store)
    return store


CASES = [
    pytest.param(flows.recipes, flows.make_recipe_flow, {"user_ingredient": "tofu"}, id="recipes"),
    pytest.param(flows.agent, flows.make_agent_flow, {"question": "why?"}, id="agent-loop"),
    pytest.param(flows.nested_batch, flows.make_nested_batch_flow, {"files": ["a", "b"]},
                 id="nested-batch-flow"),
    pytest.param(flows.branches, flows.make_branches_flow, {}, id="parallel-batch-flow"),
    pytest.param(flows.flaky, flows.make_flaky_flow, {"fails": 2}, id="retries"),
    pytest.param(flows.flaky, flows.make_flaky_flow, {"fails": 5}, id="fallback"),
]


@pytest.mark.parametrize(("graph", "make", "shared"), CASES)
async def test_final_store_equals_pocketflow(
    graph: Any, make: Callable[[], Any], shared: dict[str, Any]
) -> None:
    expected = await reference(make, shared)
    flows.EVENTS.clear()
    assert await asyncio.wait_for(graph.ainvoke(shared), LIMIT) == expected


async def test_documented_results() -> None:
    assert await flows.recipes.ainvoke({"user_ingredient": "chicken"}) == {
        "user_ingredient": "chicken", "recipes": ["Pizza", "Pasta", "Salad"],
        "ingredient": "chicken", "suggestion": "Pizza"}
    agent = await flows.agent.ainvoke({"question": "why?"})
    assert agent["trace"] == ["decide:search", "search", "decide:search", "search",
                              "decide:answer", "answer"]
    assert agent["answer"] == "answer from 2 results"
    nested = await flows.nested_batch.ainvoke({"files": ["a", "b"]})
    assert nested["loaded"] == ["A/0", "A/1", "B/0", "B/1"]


async def test_parallel_batch_node_runs_its_items_at_once_and_posts_them_in_order() -> None:
    result = await asyncio.wait_for(flows.parallel_squares.ainvoke({"numbers": list(range(8))}),
                                    LIMIT)
    assert result["squares"] == [n * n for n in range(8)]
    assert result["all_overlap"], "the 8 execs did not all run at the same time"


async def test_parallel_batch_flow_branches_advance_on_their_own() -> None:
    result = await asyncio.wait_for(flows.branches.ainvoke({}), LIMIT)
    assert result == {"slow": ["first", "second"], "fast": ["first", "second"]}
    # the fast branch finished both steps while the slow one was still in its first
    assert flows.EVENTS.index("fast:second") < flows.EVENTS.index("slow:second")


async def test_only_exec_is_retried_with_cur_retry_per_attempt() -> None:
    result = await asyncio.wait_for(flows.flaky.ainvoke({"fails": 2}), LIMIT)
    assert result["result"] == "ok after 2" and flows.EVENTS == ["try 0", "try 1", "try 2"]
    flows.EVENTS.clear()
    result = await asyncio.wait_for(flows.flaky.ainvoke({"fails": 9}), LIMIT)
    assert result["result"] == "fallback after attempt 2 failed"


async def test_store_changes_stream_as_custom_events() -> None:
    events = [e async for e in flows.recipes.astream({"user_ingredient": "kale"},
                                                     stream_mode="custom")]
    assert events == [
        {"node": "FetchRecipes", "set": {"recipes": ["Pizza", "Pasta", "Salad"],
                                         "ingredient": "kale"}, "deleted": []},
        {"node": "SuggestRecipe", "set": {"suggestion": "Pizza"}, "deleted": []},
        {"action": "done"},
    ]


async def test_a_final_store_that_cannot_cross_the_network_names_the_key() -> None:
    with pytest.raises(SerializationError, match="final shared store .* key 'handle'"):
        await asyncio.wait_for(flows.unsendable.ainvoke({}), LIMIT)


def test_invoke_raises_the_flows_warnings_in_the_caller_too() -> None:
    from tests.graphs.pocketflow_scenarios import BY_NAME

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        final = BY_NAME["warns"].invoke({})
    assert final == {"value": 9, "trail": ["put 9"]}
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "value is 9"), (DeprecationWarning, "this node is old"),
        (UserWarning, "Flow ends: 'nowhere' not found in ['elsewhere']")]


async def test_a_store_value_that_cannot_cross_the_network_fails_the_run_naming_it() -> None:
    """exec returns what msgpack cannot encode and post stores it: as in PocketFlow nothing
    fails inside the flow, but its final store cannot go back to the caller, so the run ends
    with an error naming the key, never waiting."""
    with pytest.raises(SerializationError, match="key 'result'"):
        await asyncio.wait_for(flows.junk_exec.ainvoke({"fallback": False}), LIMIT)
