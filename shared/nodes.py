"""Class-based nodes: subclass `BaseNode` (sync) or `AsyncBaseNode` and implement `execute`.

    class Search(AsyncBaseNode):
        async def execute(self, state, config):
            self.log("searching", thread=self.get_thread_id(config))
            return {"results": await search(state["query"])}

    builder.add_node("search", Search())

`execute(state)`, `execute(state, config)`, `execute(state, runtime)` and
`execute(state, config, runtime)` are the shapes allowed, checked when the class is defined so a
typo fails at import, not on a worker in production. Calling the instance passes what `execute`
names. Any object whose `__call__` takes `(state, config=..., runtime=...)` works as a node too
(projects that keep their own copy of such a base class): the worker injects by parameter name.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

from arqgraph.types import Command

EXTRA_PARAMETERS = ("config", "runtime")


def _check_execute(cls: type[Any], execute: Any) -> tuple[str, ...]:
    """The extra parameters `execute` asks for; a TypeError naming the class if its shape is
    not one of the allowed ones."""
    where = f"{cls.__qualname__}.execute"
    if inspect.iscoroutinefunction(execute) != cls.is_async:
        kind = "async def" if cls.is_async else "def"
        base = "AsyncBaseNode" if cls.is_async else "BaseNode"
        raise TypeError(f"{where} must be `{kind} execute(...)` in a subclass of {base}")
    params = list(inspect.signature(execute).parameters.values())[1:]  # after self
    if not params or params[0].name != "state":
        raise TypeError(f"{where} must take `state` as its first parameter")
    extra = tuple(p.name for p in params[1:])
    unknown = [name for name in extra if name not in EXTRA_PARAMETERS]
    if unknown or len(set(extra)) != len(extra):
        raise TypeError(
            f"{where} may take only `config` and `runtime` after `state`, not {unknown or extra}"
        )
    return extra


class BaseNode:
    """A sync node as a class. Subclasses implement `execute(state[, config][, runtime])`."""

    is_async = False

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is not None:
            cls._wanted = _check_execute(cls, execute)

    _wanted: tuple[str, ...] = ()

    def execute(self, state: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement execute(state)")

    def __call__(self, state: Any, config: Any = None, runtime: Any = None) -> Any:
        return self._checked(self.execute(state, **self._extra(config, runtime)))

    def _extra(self, config: Any, runtime: Any) -> dict[str, Any]:
        given = {"config": config, "runtime": runtime}
        return {name: given[name] for name in self._wanted}

    def _checked(self, result: Any) -> Any:
        """`execute` returns the node's update: a dict (or a Command to route as well)."""
        if isinstance(result, Mapping | Command):
            return result
        raise TypeError(
            f"{type(self).__name__}.execute must return a dict of state updates, "
            f"got {type(result).__name__}"
        )

    def log(self, message: str, **context: Any) -> None:
        """Log `message` under the node's name, with `context` as key=value pairs."""
        details = " ".join(f"{k}={v!r}" for k, v in context.items())
        logging.getLogger(f"arqgraph.node.{self.name}").info(
            "%s%s", message, f" ({details})" if details else ""
        )

    @staticmethod
    def get_thread_id(config: Any) -> str | None:
        """The run's thread id from its config, or None outside a thread."""
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        return None if thread_id is None else str(thread_id)


class AsyncBaseNode(BaseNode):
    """An async node as a class. Subclasses implement `async def execute(state[, ...])`."""

    is_async = True

    async def execute(self, state: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(f"{type(self).__name__} must implement execute(state)")

    async def __call__(  # type: ignore[override]
        self, state: Any, config: Any = None, runtime: Any = None
    ) -> Any:
        return self._checked(await self.execute(state, **self._extra(config, runtime)))
