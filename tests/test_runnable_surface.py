"""The Runnable surface of graphs and entrypoints beside `invoke`: `batch`, `abatch` and their
`as_completed` forms, named tasks of methods, partials and callable objects, and the
entrypoint's checks. Each compared with LangGraph's answer for the same program."""

import asyncio
import functools
import importlib
import operator
from types import ModuleType
from typing import Annotated, Any, TypedDict

import pytest

APIS = ["langgraph", "arqgraph"]


def _api(root: str) -> tuple[ModuleType, ModuleType]:
    return importlib.import_module(f"{root}.graph"), importlib.import_module(f"{root}.func")


class Count(TypedDict):
    x: int


def _counter(root: str) -> Any:
    graph, _ = _api(root)

    def inc(state: Count) -> dict[str, int]:
        if state["x"] < 0:
            raise ValueError(f"negative {state['x']}")
        return {"x": state["x"] + 1}

    builder = graph.StateGraph(Count)
    builder.add_node("inc", inc)
    builder.add_edge(graph.START, "inc")
    return builder.compile()


def _batches(root: str) -> dict[str, Any]:
    app = _counter(root)
    inputs = [{"x": 3}, {"x": 1}, {"x": 5}]

    async def run_async() -> dict[str, Any]:
        return {
            "abatch": await app.abatch(inputs, {"max_concurrency": 2}),
            "abatch_errors": [repr(v) if isinstance(v, Exception) else v for v in
                              await app.abatch([{"x": 1}, {"x": -1}], return_exceptions=True)],
            "as_completed": sorted([pair async for pair in app.abatch_as_completed(
                inputs, [{"configurable": {"n": i}} for i in range(3)])]),
        }

    out = {
        "batch": app.batch(inputs),
        "batch_configs": app.batch(inputs, [{"recursion_limit": 5}] * 3),
        "batch_errors": [repr(v) if isinstance(v, Exception) else v for v in
                         app.batch([{"x": -2}, {"x": 2}], return_exceptions=True)],
        "batch_as_completed": sorted(app.batch_as_completed(inputs)),
        **asyncio.run(run_async()),
    }
    with pytest.raises(ValueError, match="negative"):
        app.batch([{"x": 1}, {"x": -1}])
    with pytest.raises(ValueError):
        app.batch(inputs, [{}, {}])  # (a config per input, or one for all)
    return out


def test_batch_matches_langgraph() -> None:
    assert _batches("arqgraph") == _batches("langgraph")


def _named_tasks(root: str) -> list[Any]:
    _, func = _api(root)

    class Greeter:
        def hello(self, value: str) -> str:
            return value + "hello"

        def __call__(self, value: str) -> str:
            return value + "|called"

    def suffix(tail: str, value: str) -> str:
        return f"{value}|{tail}"

    greeter = Greeter()
    first = func.task(greeter.hello, name="first_hello")
    second = func.task(greeter.hello, name="second_hello")
    unnamed_partial = func.task(functools.partial(suffix, "p"))
    named_partial = func.task(functools.partial(suffix, "q"), name="q_suffix")
    callable_object = func.task(greeter, name="called")

    @func.entrypoint()
    def flow(value: str) -> str:
        text = first(value).result()
        second(value).result()
        text = unnamed_partial(text).result()
        text = named_partial(text).result()
        return callable_object(text).result()

    return list(flow.stream("", stream_mode="updates"))


def test_named_tasks_of_methods_partials_and_objects() -> None:
    expected = _named_tasks("langgraph")
    assert [next(iter(u)) for u in expected][:2] == ["first_hello", "second_hello"]
    assert _named_tasks("arqgraph") == expected


@pytest.mark.parametrize("root", APIS)
def test_entrypoint_refuses_generators(root: str) -> None:
    _, func = _api(root)
    with pytest.raises(NotImplementedError):
        @func.entrypoint()
        def numbers(value: int) -> Any:
            yield value

    with pytest.raises(NotImplementedError):
        @func.entrypoint()
        async def more(value: int) -> Any:
            yield value


def _final_schemas(root: str) -> list[dict[str, Any]]:
    _, func = _api(root)

    @func.entrypoint()
    def bare(value: Any, *, previous: Any) -> func.entrypoint.final:
        return func.entrypoint.final(value=1, save=2)

    @func.entrypoint()
    def typed(value: Any, *, previous: Any) -> func.entrypoint.final[list[str], int]:
        return func.entrypoint.final(value=["a"], save=2)

    return [bare.get_output_jsonschema(), typed.get_output_jsonschema()]


def test_entrypoint_final_output_schema_is_the_values() -> None:
    assert _final_schemas("arqgraph") == _final_schemas("langgraph")


def _updated_entrypoint(root: str) -> list[Any]:
    func = importlib.import_module(f"{root}.func")
    saver = importlib.import_module(f"{root}.checkpoint.memory").InMemorySaver()
    seen: list[Any] = []

    @func.entrypoint(checkpointer=saver)
    def keeper(value: Any, *, previous: Any) -> Any:
        seen.append(previous)
        return {"previous": previous, "current": value}

    config = {"configurable": {"thread_id": "t"}}
    keeper.update_state(config, {"a": "-1"})
    out = [keeper.invoke({"a": "1"}, config), keeper.get_state(config).values]
    keeper.update_state(config, {"a": "3"})
    out += [list(keeper.stream({"a": "2"}, config)), seen]
    return out


def test_entrypoint_update_state_sets_its_value_and_previous() -> None:
    assert _updated_entrypoint("arqgraph") == _updated_entrypoint("langgraph")


def _builder_keys(root: str) -> tuple[set[str], set[str]]:
    graph = importlib.import_module(f"{root}.graph")
    managed = importlib.import_module(f"{root}.managed")

    class State(TypedDict):
        text: str
        remaining_steps: managed.RemainingSteps

    class Input(TypedDict):
        question: str

    class Private(TypedDict):
        scratch: int

    def node(state: Private) -> dict[str, Any]:
        return {}

    builder = graph.StateGraph(State, input_schema=Input)
    builder.add_node("node", node)
    return set(builder.channels), set(builder.managed)


def test_builder_lists_channels_and_managed_values() -> None:
    assert _builder_keys("arqgraph") == _builder_keys("langgraph")


def _limited_fan_out(root: str) -> tuple[Any, int]:
    graph, types = _api(root)[0], importlib.import_module(f"{root}.types")
    running = [0, 0]  # (now, most at once)

    async def item(value: int) -> dict[str, Any]:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.01)
        running[0] -= 1
        return {"x": value}

    class Summed(TypedDict):
        x: Annotated[int, operator.add]

    builder = graph.StateGraph(Summed)
    builder.add_node("item", item)
    builder.add_conditional_edges(graph.START, lambda s: [types.Send("item", i) for i in
                                                          range(12)], ["item"])
    app = builder.compile()
    return asyncio.run(app.ainvoke({"x": 0}, {"max_concurrency": 2})), running[1]


def test_run_max_concurrency_bounds_its_tasks() -> None:
    expected, _ = _limited_fan_out("langgraph")
    output, most = _limited_fan_out("arqgraph")
    assert output == expected == {"x": sum(range(12))}
    assert 1 <= most <= 2


@pytest.mark.parametrize("root", APIS)
def test_builder_nodes_show_their_function_and_copy(root: str) -> None:
    """Code that reads a builder's node finds its function where LangGraph keeps it, and a
    node copies with changed fields, as LangGraph's nodes do."""
    graph, _ = _api(root)

    class Counted:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, state: Count) -> dict[str, int]:
            self.calls += 1
            return {"x": state["x"] + 1}

    async def later(state: Count) -> dict[str, int]:
        return {"x": state["x"] * 2}

    builder = graph.StateGraph(Count)
    builder.add_node("inc", Counted())
    builder.add_node("double", later)
    builder.add_edge(graph.START, "inc")
    builder.add_edge("inc", "double")
    app = builder.compile()
    assert asyncio.run(app.ainvoke({"x": 1})) == {"x": 4}
    assert builder.nodes["inc"].runnable.func.calls == 1
    assert builder.nodes["double"].runnable.afunc is later
    assert builder.nodes["double"].runnable.func is None
    copied = app.nodes["inc"].copy({})
    assert copied is not app.nodes["inc"]
