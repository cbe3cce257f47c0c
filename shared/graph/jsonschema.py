"""A graph's input, output and context as pydantic models and JSON schemas, as LangGraph's
`get_input_jsonschema()` & co. give them: what a client of the platform API shows to describe
an assistant, and what tools and UIs read to build a form."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints

import pydantic

from arqgraph.core.schema import ROOT, StateSchema, schema_kind


def _base(hint: Any) -> Any:
    """The type a key is written with: `Annotated[T, reducer]` is T, `Required[T]` T."""
    while get_origin(hint) in (typing.Annotated, Required, NotRequired):
        hint = get_args(hint)[0]
    return hint


def _optional(hint: Any) -> bool:
    origin = get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        return any(a is type(None) or _optional(a) for a in get_args(hint))
    if origin is typing.Annotated:
        return _optional(get_args(hint)[0])
    return hint is None or hint is type(None)


def _default(name: str, hint: Any, schema: type) -> Any:
    """A key's default in the model (`...`: required), as LangGraph's: a TypedDict's optional
    keys and Optional types default to None, a dataclass field to its default."""
    origin = get_origin(hint)
    if name in getattr(schema, "__optional_keys__", ()) and origin is not Required:
        return None
    if origin is Required:
        return ...
    if origin is NotRequired:
        return None
    if dataclasses.is_dataclass(schema):
        for f in dataclasses.fields(schema):
            if f.name == name and f.default is not dataclasses.MISSING:
                return f.default
            if f.name == name and f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return None if _optional(hint) else ...


def json_schema(typ: Any, channels: StateSchema, name: str) -> dict[str, Any]:
    """The JSON schema of a graph's input or output schema `typ`."""
    if isinstance(typ, type) and issubclass(typ, pydantic.BaseModel):
        return typ.model_json_schema()
    if schema_kind(typ) == "typeddict":
        return pydantic.TypeAdapter(typ).json_schema()
    if schema_kind(typ) == "root":
        base: Any = pydantic.RootModel[_base(typ)]  # type: ignore[misc]  # (made at run time)
        root: type[pydantic.BaseModel] = pydantic.create_model(
            name, __base__=base, root=(_base(typ), None))
        return root.model_json_schema()
    hints = get_type_hints(typ, include_extras=True)
    fields: dict[str, Any] = {
        key: (_base(hint), _default(key, hint, typ))
        for key, hint in hints.items() if key in channels.channels and key != ROOT
    }
    model: type[pydantic.BaseModel] = pydantic.create_model(name, **fields)
    return model.model_json_schema()


def input_model(typ: Any, name: str) -> type[pydantic.BaseModel]:
    """A graph's input schema as a pydantic model (LangGraph's get_input_schema): a pydantic
    schema itself, any other the root of a model named for the graph."""
    if isinstance(typ, type) and issubclass(typ, pydantic.BaseModel):
        return typ
    return _root_model(_base(typ) if schema_kind(typ) == "root" else typ, name)


def output_model(typ: Any, name: str) -> type[pydantic.BaseModel]:
    """A graph's output schema as a pydantic model (LangGraph's get_output_schema): a field
    per key, each defaulting to None; a one-value state's value as the root."""
    if schema_kind(typ) == "root":
        return _root_model(_base(typ), name)
    hints = get_type_hints(typ, include_extras=True)
    fields: dict[str, Any] = {k: (_base(h), None) for k, h in hints.items()}
    return pydantic.create_model(name, **fields)


def _root_model(root: Any, name: str) -> type[pydantic.BaseModel]:
    base: Any = pydantic.RootModel[root]  # (a type made at run time)
    return type(name, (base,), {"__module__": __name__})


def context_json_schema(context_schema: Any) -> dict[str, Any] | None:
    if context_schema is None:
        return None
    if isinstance(context_schema, type) and issubclass(context_schema, pydantic.BaseModel):
        return context_schema.model_json_schema()
    if dataclasses.is_dataclass(context_schema) or schema_kind(context_schema) == "typeddict":
        return pydantic.TypeAdapter(context_schema).json_schema()
    raise ValueError(f"Invalid context schema type: {context_schema}. Must be a BaseModel, "
                     "TypedDict or dataclass.")
