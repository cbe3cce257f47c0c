"""Class-based nodes in the act-operator style the seed documents use: subclass `BaseNode` (sync)
or `AsyncBaseNode` and implement `execute`.

    class Search(AsyncBaseNode):
        async def execute(self, state, config):
            self.log("searching", thread=self.get_thread_id(config))
            return {"results": await search(state["query"])}

    builder.add_node("search", Search(verbose=True))

The classes behave as act-operator's (`casts/base_node.py` of the project template in its
released package; compared by tests/test_class_nodes_faithful.py): the constructor takes keyword
arguments and reads `verbose`; `name` is the class name; `execute` is checked when the class is
defined (sync or async as the base, `state` first, then only `config` and `runtime`); calling the
instance passes what `execute` names; it must return a dict (a `Command` too, here, to route);
with `verbose`, the call and `log` write DEBUG lines to the `arqgraph.nodes` logger. Any object
whose `__call__` takes `(state, config=..., runtime=...)` works as a node too (projects that keep
their own copy of such a base class): the worker injects by name.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from arqgraph.types import Command

LOGGER = logging.getLogger(__name__)
EXTRA_PARAMETERS = ("config", "runtime")


def _check_execute(cls: type[Any], is_async: bool) -> None:
    """A TypeError naming the class if it has no `execute` or one not of an allowed shape."""
    where = f"{cls.__qualname__}.execute"
    execute = inspect.getattr_static(cls, "execute", None)
    if execute is None:
        raise TypeError(f"{cls.__qualname__} must implement an execute() method")
    if isinstance(execute, staticmethod | classmethod):
        raise TypeError(f"{where} must be an instance method")
    if inspect.iscoroutinefunction(execute) != is_async:
        kind = "async def" if is_async else "def"
        base = "AsyncBaseNode" if is_async else "BaseNode"
        raise TypeError(f"{where} must be `{kind} execute(...)` in a subclass of {base}")
    params = list(inspect.signature(execute).parameters.values())[1:]  # after self
    if not params or params[0].name != "state":
        raise TypeError(f"{where} must take `state` as its first parameter")
    unknown = [p.name for p in params[1:] if p.name not in EXTRA_PARAMETERS]
    if unknown:
        raise TypeError(f"{where} may take only `config` and `runtime` after `state`, "
                        f"not {unknown}")


class _NodeHelpers:
    """What both node classes share: the constructor, logging and the config helpers."""

    is_async = False
    execute: Callable[..., Any]

    def __init__(self, **kwargs: Any) -> None:
        self.name = type(self).__name__
        self.verbose = kwargs.get("verbose", False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__ and not inspect.isabstract(cls):
            _check_execute(cls, cls.is_async)

    def log(self, message: str, **context: Any) -> None:
        """With `verbose`: `message` as a DEBUG line under the node's name, then one line per
        `context` item."""
        if not self.verbose:
            return
        LOGGER.debug("[%s] %s", self.name, message)
        for key, value in context.items():
            LOGGER.debug("  %s: %r", key, value)

    def get_thread_id(self, config: Mapping[str, Any] | None = None) -> str | None:
        """The run's thread id as its config gives it (a str when given as one, as LangGraph
        passes it on), or None outside a thread."""
        if not config:
            return None
        configurable = config.get("configurable")
        return configurable.get("thread_id") if configurable else None

    def get_tags(self, config: Mapping[str, Any] | None = None) -> list[str]:
        """The run's tags from its config ([] without)."""
        if not config:
            return []
        return config.get("tags", [])  # type: ignore[no-any-return]

    def _arguments(self, config: Any, runtime: Any) -> dict[str, Any]:
        """What `execute` names; logs the call's start when verbose."""
        if self.verbose:
            LOGGER.debug("[%s] Executing", self.name)
        params = inspect.signature(self.execute).parameters
        given = {"config": config, "runtime": runtime}
        return {name: given[name] for name in EXTRA_PARAMETERS if name in params}

    def _checked(self, result: Any) -> Any:
        """`execute` returns the node's update: a dict (or a Command to route as well)."""
        if not isinstance(result, Mapping | Command):
            raise TypeError(f"{self.name}.execute() must return a dict of state updates, "
                            f"got {type(result).__name__}")
        if self.verbose:
            LOGGER.debug("[%s] Completed", self.name)
        return result


class BaseNode(_NodeHelpers):
    """A sync node as a class. Subclasses implement `execute(state[, config][, runtime])`."""

    def __call__(self, state: Any, config: Any = None, runtime: Any = None) -> Any:
        return self._checked(self.execute(state, **self._arguments(config, runtime)))


class AsyncBaseNode(_NodeHelpers):
    """An async node as a class. Subclasses implement `async def execute(state[, ...])`."""

    is_async = True
    execute: Callable[..., Awaitable[Any]]

    async def __call__(self, state: Any, config: Any = None, runtime: Any = None) -> Any:
        return self._checked(await self.execute(state, **self._arguments(config, runtime)))
