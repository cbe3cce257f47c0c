"""`batch` and `abatch` of a compiled graph, as a LangChain Runnable's: one run per input, at
most `max_concurrency` at a time (from the config), outputs in input order.

Each input is its own run, so on a cluster a batch spreads over the pool like any runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol


class _Invokable(Protocol):
    async def ainvoke(self, input: Any, config: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> Any: ...


def config_list(config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                count: int) -> list[Mapping[str, Any] | None]:
    """One config per input: the list given (as long as the inputs), or the one repeated."""
    if isinstance(config, Sequence) and not isinstance(config, Mapping):
        if len(config) != count:
            raise ValueError(f"config must be a list of the same length as inputs, "
                             f"but got {len(config)} configs for {count} inputs")
        return list(config)
    return [config] * count


async def as_completed(
    graph: _Invokable, inputs: Sequence[Any],
    config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, return_exceptions: bool,
    kwargs: dict[str, Any],
) -> AsyncIterator[tuple[int, Any]]:
    """(index, output) of each input's run as it ends; with `return_exceptions`, a run's
    error in place of its output, else the first error raised."""
    configs = config_list(config, len(inputs))
    limit = next((c.get("max_concurrency") for c in configs if c and c.get("max_concurrency")),
                 None)
    gate = asyncio.Semaphore(limit) if limit else None

    async def one(index: int) -> tuple[int, Any]:
        try:
            if gate is None:
                return index, await graph.ainvoke(inputs[index], configs[index], **kwargs)
            async with gate:
                return index, await graph.ainvoke(inputs[index], configs[index], **kwargs)
        except Exception as exc:
            if return_exceptions:
                return index, exc
            raise

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(inputs))]
    try:
        for done in asyncio.as_completed(tasks):
            yield await done
    finally:
        for task in tasks:
            task.cancel()


async def abatch(
    graph: _Invokable, inputs: Sequence[Any],
    config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, return_exceptions: bool,
    kwargs: dict[str, Any],
) -> list[Any]:
    outputs: list[Any] = [None] * len(inputs)
    async for index, output in as_completed(graph, inputs, config, return_exceptions, kwargs):
        outputs[index] = output
    return outputs

