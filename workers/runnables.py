"""LangChain runnables as nodes and as edges' paths, run as LangGraph runs them.

LangGraph runs a node as one sequence: its runnable's steps (a chain's own steps, flattened),
then its writers, then one step per conditional edge. Each step reports as a child of the
node's run, tagged `seq:step:<n>`. When a streaming handler listens (`astream_events`, the
"messages" mode), the steps stream into each other (`astream`, then `atransform`), so that a
model inside a chain streams its tokens; otherwise each is invoked in turn. A run whose
producer called `invoke` or `stream` runs the steps' sync bodies, in a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from typing import Any

from arqgraph.constants import CONFIG_KEY_SYNC
from arqgraph.core.calls import is_runnable


def steps_of(fn: Any) -> list[Any]:
    """A node's runnable as LangGraph's sequence sees it: a chain's steps, else itself."""
    from langchain_core.runnables import RunnableSequence

    return list(fn.steps) if isinstance(fn, RunnableSequence) else [fn]


def branch_step(node_fn: Any, index: int) -> int:
    """The sequence step of a node's `index`th conditional edge: after the node's own steps
    and its writer. (A plain function node is one step.)"""
    return (len(steps_of(node_fn)) if is_runnable(node_fn) else 1) + 2 + index


def at_step(config: dict[str, Any], step: int) -> dict[str, Any]:
    """`config` for step `step` of the node's sequence: its callbacks tagged so."""
    callbacks: Any = config.get("callbacks")
    if not hasattr(callbacks, "copy") or step == 1:
        return config
    child = callbacks.copy()
    child.remove_tags(["seq:step:1"])
    child.add_tags([f"seq:step:{step}"], inherit=False)
    return {**config, "callbacks": child}


def _streaming(config: dict[str, Any]) -> bool:
    """Whether a streaming handler listens, which makes LangGraph stream a node's steps."""
    from langchain_core.tracers._streaming import _StreamingCallbackHandler

    handlers = getattr(config.get("callbacks"), "handlers", None) or []
    return any(isinstance(h, _StreamingCallbackHandler) for h in handlers)


def _fold(final: Any, chunk: Any, first: bool) -> Any:
    """LangChain's way of joining a stream's chunks: added, or the last when they do not add."""
    if first:
        return chunk
    try:
        return final + chunk
    except TypeError:
        return chunk


async def _astreamed(steps: list[Any], arg: Any, configs: list[Any]) -> Any:
    stream: AsyncIterator[Any] = steps[0].astream(arg, configs[0])
    for step, config in zip(steps[1:], configs[1:], strict=True):
        stream = step.atransform(stream, config)
    final, first = None, True
    async for chunk in stream:
        final, first = _fold(final, chunk, first), False
    return final


def _streamed(steps: list[Any], arg: Any, configs: list[Any]) -> Any:
    stream: Iterator[Any] = steps[0].stream(arg, configs[0])
    for step, config in zip(steps[1:], configs[1:], strict=True):
        stream = step.transform(stream, config)
    final, first = None, True
    for chunk in stream:
        final, first = _fold(final, chunk, first), False
    return final


def _invoked(steps: list[Any], arg: Any, configs: list[Any]) -> Any:
    from langchain_core.runnables.config import set_config_context

    with set_config_context(configs[0]) as context:  # (the first step in its own config)
        arg = context.run(steps[0].invoke, arg, configs[0])
    for step, config in zip(steps[1:], configs[1:], strict=True):
        arg = step.invoke(arg, config)
    return arg


async def _ainvoked(steps: list[Any], arg: Any, configs: list[Any]) -> Any:
    from langchain_core.runnables.config import set_config_context

    with set_config_context(configs[0]) as context:
        arg = await asyncio.create_task(steps[0].ainvoke(arg, configs[0]), context=context)
    for step, config in zip(steps[1:], configs[1:], strict=True):
        arg = await step.ainvoke(arg, config)
    return arg


async def run_runnable(
    fn: Any, arg: Any, config: dict[str, Any], threads: Executor | None, first_step: int = 1,
) -> Any:
    """Run a runnable node (or path, from step `first_step` of its node's sequence) on `arg`
    as LangGraph does, with the node's `config`."""
    from langchain_core.runnables.config import patch_config

    steps = steps_of(fn) if first_step == 1 else [fn]
    configs: list[Any] = []
    step_config: Any = config
    for n in range(first_step, first_step + len(steps)):  # (each from the last, as LangGraph's)
        step_config = patch_config(step_config, callbacks=at_step(config, n).get("callbacks"))
        configs.append(step_config)
    streaming = _streaming(config) and first_step == 1  # (a path is invoked, not streamed)
    if (config.get("configurable") or {}).get(CONFIG_KEY_SYNC):
        return await asyncio.get_running_loop().run_in_executor(
            threads, functools.partial(contextvars.copy_context().run, _run_sync, steps, arg,
                                       configs, streaming))
    if not streaming:
        return await _ainvoked(steps, arg, configs)
    from langchain_core.runnables.config import set_config_context

    with set_config_context(configs[0]) as context:  # (a stream runs in the first step's)
        return await asyncio.create_task(_astreamed(steps, arg, configs), context=context)


def _run_sync(steps: list[Any], arg: Any, configs: list[Any], streaming: bool) -> Any:
    if not streaming:
        return _invoked(steps, arg, configs)
    from langchain_core.runnables.config import set_config_context

    with set_config_context(configs[0]) as context:
        return context.run(_streamed, steps, arg, configs)
