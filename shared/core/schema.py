"""State schemas: which keys a graph has, how each folds its writes, and how nodes see the state.

A schema is a TypedDict, a dataclass or a pydantic model, as in LangGraph. Keys annotated
`Annotated[T, reducer]` fold writes with `reducer(old, new)`; other keys keep the last value.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pydantic
import typing_extensions

from arqgraph.errors import InvalidInputError
from arqgraph.managed import ManagedValue
from arqgraph.types import object_fields

SchemaKind = Literal["typeddict", "pydantic", "dataclass", "root"]
ROOT = "__root__"
"""The one channel of a graph whose state is a single value (`StateGraph(list[str])`,
`StateGraph(Annotated[list, operator.add])`): nodes get and return the value itself."""
_MISSING = object()


@dataclass(frozen=True)
class Channel:
    """One state key: its reducer (None means last value wins) and its starting value."""

    key: str
    reducer: Callable[[Any, Any], Any] | None = None
    start_type: type | None = None

    def start_value(self) -> Any:
        """A reducer key starts as its type's empty value (`[]` for a list), as in LangGraph."""
        if self.reducer is None or self.start_type is None:
            return _MISSING
        try:
            return self.start_type()
        except Exception:
            return _MISSING


def _start_type(annotation: Any) -> type | None:
    base = get_origin(annotation) or annotation
    if base is typing.Annotated:
        base = get_origin(get_args(annotation)[0]) or get_args(annotation)[0]
    aliases: dict[Any, type] = {
        typing.Sequence: list,
        typing.MutableSequence: list,
        set: set,
        typing.MutableSet: set,
        typing.Mapping: dict,
        typing.MutableMapping: dict,
    }
    import collections.abc as abc

    aliases.update({abc.Sequence: list, abc.MutableSequence: list, abc.Set: set, abc.Mapping: dict})
    base = aliases.get(base, base)
    return base if isinstance(base, type) else None


def _reducer_of(annotation: Any) -> Callable[[Any, Any], Any] | None:
    """The reducer of `Annotated[T, ..., reducer]`: its last metadata, when callable, which
    must take two values (old, new), as LangGraph requires."""
    if get_origin(annotation) is not typing.Annotated:
        return None
    meta = get_args(annotation)[-1]
    if not callable(meta):
        return None
    try:
        params = inspect.signature(meta).parameters.values()
    except (TypeError, ValueError):  # (no signature to check)
        return typing.cast(Callable[[Any, Any], Any], meta)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if sum(p.kind in kinds for p in params) != 2:
        raise ValueError(
            f"Invalid reducer signature. Expected (a, b) -> c. Got {inspect.signature(meta)}"
        )
    return typing.cast(Callable[[Any, Any], Any], meta)


_QUALIFIERS = {typing.Required, typing.NotRequired, typing_extensions.Required,
               typing_extensions.NotRequired, typing_extensions.ReadOnly}


def _unqualified(annotation: Any) -> Any:
    """`T` of a TypedDict key's `NotRequired[T]` (`Required`, `ReadOnly`): the key's type,
    its reducer or manager inside."""
    while get_origin(annotation) in _QUALIFIERS:
        annotation = get_args(annotation)[0]
    return annotation


def _managed_of(annotation: Any) -> type[ManagedValue] | None:
    """The manager of a managed key (`RemainingSteps`, `IsLastStep`), or None."""
    if get_origin(annotation) is typing.Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, type) and issubclass(meta, ManagedValue):
                return meta
    return None


def schema_kind(cls: Any) -> SchemaKind:
    """What a state schema is; a type without annotations of its own (`list[str]`, `int`,
    `Annotated[list, operator.add]`) is one value, the root, as in LangGraph."""
    if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        return "pydantic"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if isinstance(cls, type) and issubclass(cls, dict) and hasattr(cls, "__annotations__"):
        return "typeddict"
    if isinstance(cls, type) or get_origin(cls) is not None:
        return "root"
    raise TypeError(
        f"state schema must be a TypedDict, a dataclass, a pydantic model or a type, got {cls!r}"
    )


@dataclass(frozen=True)
class StateSchema:
    """A state class read once into the channels the superstep algorithm folds."""

    cls: type
    kind: SchemaKind
    channels: dict[str, Channel]
    managed: dict[str, type[ManagedValue]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, schema: type, *more: type) -> StateSchema:
        """The keys of `schema`, and those of `more` schemas that it lacks: a graph's channels
        are every key of its state, input, output and node input schemas, as in LangGraph.
        The state's class (`cls`, `kind`) is `schema`'s."""
        kind = schema_kind(schema)
        channels: dict[str, Channel] = {}
        managed: dict[str, type[ManagedValue]] = {}
        for one in (schema, *more):
            if schema_kind(one) == "root":
                channels.setdefault(ROOT, Channel(ROOT, _reducer_of(one), _start_type(one)))
                continue
            for key, qualified in get_type_hints(one, include_extras=True).items():
                hint = _unqualified(qualified)
                if key in channels or key in managed:
                    continue
                if manager := _managed_of(hint):
                    managed[key] = manager
                else:
                    channels[key] = Channel(key, _reducer_of(hint), _start_type(hint))
        return cls(schema, kind, channels, managed)

    def start_values(self) -> dict[str, Any]:
        values = {k: c.start_value() for k, c in self.channels.items()}
        return {k: v for k, v in values.items() if v is not _MISSING}

    def input_writes(self, data: Any) -> dict[str, Any]:
        """The writes a graph input makes: validated for pydantic schemas, keys filtered."""
        if data is None:
            return {}
        if (fields := object_fields(data)) is not None:  # (read as LangGraph reads one)
            return {k: v for k, v in fields.items() if k in self.channels}
        if self.kind == "pydantic":
            try:
                self.validate_input(data)
            except pydantic.ValidationError as exc:
                raise InvalidInputError(_describe_validation_error(self.cls, exc)) from None
            # Like LangGraph: validate the input, then write it as given.
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"input for {self.cls.__name__} must be a dict, got {type(data).__name__}"
            )
        return {k: v for k, v in data.items() if k in self.channels}

    def validate_input(self, data: Any) -> None:
        """Validate a pydantic state's input as its first node reads it, each key through its
        reducer first: `("user", "hi")` given for `add_messages` is a message by then, as in
        LangGraph (where the node's read validates). A reducer's key not given reads as its
        start value (`[]` for a list), as LangGraph's aggregate channels do."""
        if not isinstance(data, Mapping):
            self.cls.model_validate(data)  # type: ignore[attr-defined]
            return
        reduced = dict(data)
        for key, channel in self.channels.items():
            if channel.reducer is None or (start := channel.start_value()) is _MISSING:
                continue
            if key not in data:
                reduced[key] = start
                continue
            try:
                reduced[key] = channel.reducer(start, data[key])
            except Exception:  # noqa: BLE001 - the run raises it where the reducer runs
                pass
        self.cls.model_validate(reduced)  # type: ignore[attr-defined]

    def node_input(self, values: Mapping[str, Any], step: int = 0, stop: int = 0) -> Any:
        """The state as a node receives it in superstep `step`: a dict, or an instance of the
        state class, with its managed values (`stop`: see `arqgraph.managed.ManagedValue`)."""
        if self.kind == "root":
            return values.get(ROOT)
        present = {k: v for k, v in values.items() if k in self.channels}
        for key, manager in self.managed.items():
            present[key] = manager.get(step, stop)
        if self.kind == "typeddict":
            return present
        if self.kind == "pydantic":
            return self.cls.model_validate(present)  # type: ignore[attr-defined]
        return self.cls(**present)

    def output(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: values[k] for k in self.channels if k in values}

    def state_writes(self, writes: Mapping[str, Any] | None) -> dict[str, Any]:
        """The part of an update that lands in the state (what `updates` events show): writes
        to keys of no channel are dropped, as `apply_writes` drops them."""
        return {k: v for k, v in (writes or {}).items() if k in self.channels}


def _describe_validation_error(cls: type, exc: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"field {'.'.join(str(p) for p in err['loc']) or '<root>'!r}: {err['msg']}"
        for err in exc.errors()
    )
    count = exc.error_count()
    return (
        f"{count} validation error{'s' if count > 1 else ''} for {cls.__name__}\n"
        f"input does not fit the state schema: {problems}"
    )


def coerce_context(context_schema: type | None, context: Any) -> Any:
    """A run's context as its nodes get it: a dict given for a dataclass or pydantic
    `context_schema` becomes an instance (a pydantic one validated), as in LangGraph."""
    if context is None or context_schema is None or not isinstance(context, dict):
        return context
    if dataclasses.is_dataclass(context_schema) or (
        isinstance(context_schema, type) and issubclass(context_schema, pydantic.BaseModel)
    ):
        return context_schema(**context)
    return context


def check_input(schema: StateSchema, data: Any) -> None:
    """Validate a graph input against a pydantic input schema where the caller invokes the
    graph, raising pydantic's own ValidationError there, as LangGraph does (the orchestrator
    validates again for producers that submit by name)."""
    if schema.kind == "pydantic" and isinstance(data, Mapping):
        schema.validate_input(data)
