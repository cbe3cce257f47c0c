"""msgpack with exact round trips for the values graphs keep in state. Never pickle.

Natively: None, bool, int, float, str, bytes, list, dict (and their subclasses, as the base
type: a `str` subclass arrives as a `str`). Through extension types: tuple, set, frozenset,
datetime/date/time/timedelta, UUID, Decimal, Enum, `Send`, dataclasses and pydantic models
(rebuilt from their import path and fields, without running validators), and `BlobRef`, which
stands for a large value kept apart (see `arqgraph.protocol.blobs`). Anything else fails with a
`SerializationError` that names the key and the type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import uuid
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

import msgpack
import pydantic

from arqgraph.errors import SerializationError
from arqgraph.types import Send, TimeoutPolicy

TUPLE, SET, FROZENSET, DATETIME, DATE, TIME, TIMEDELTA = 1, 2, 3, 4, 5, 6, 7
PYDANTIC, DATACLASS, UUID, DECIMAL, ENUM, SEND, BLOB = 8, 9, 10, 11, 12, 13, 14


@dataclasses.dataclass(frozen=True)
class BlobRef:
    """Where a large value was kept apart (by the digest of its packed bytes), in place of
    the value: a checkpoint or an event holds the reference, the store the value once."""

    id: str


class _Unsupported(TypeError):
    def __init__(self, obj: Any) -> None:
        super().__init__(f"{type(obj).__module__}.{type(obj).__qualname__}")
        self.type_name = f"{type(obj).__module__}.{type(obj).__qualname__}"


_LOCAL: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()
"""Classes defined inside functions, by their path: no other process can import them, but the
one that made them (the embedded default's, whose orchestrator and worker share it) can find
them here. Their path names the class object, so two of the same name are not confused."""


_PORTABLE: ContextVar[str] = ContextVar("arqgraph_portable", default="")
"""Set (to what is packed) while `check_portable` packs it: a class defined inside a function
then fails the packing, naming it."""


def _path(cls: type) -> str:
    path = f"{cls.__module__}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__:
        if _PORTABLE.get():
            raise SerializationError(
                f"{_PORTABLE.get()} holds an instance of {cls.__qualname__}, a class defined "
                "inside a function: no other process can rebuild it; define it at module level "
                "(or give a dict)")
        path = f"{path}@{id(cls):x}"
        _LOCAL[path] = cls
    return path


def _resolve(path: str) -> Any:
    if "@" in path:
        local = _LOCAL.get(path)
        if local is None:
            raise SerializationError(
                f"cannot rebuild a {path.partition('@')[0]}: it is defined inside a function, "
                "so only the process that defined it can rebuild it (the embedded default "
                "can); define it at module level to run it on a cluster"
            )
        return local
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SerializationError(f"cannot rebuild a {path}: not importable here ({exc})") from None
    return obj


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, BlobRef):
        return msgpack.ExtType(BLOB, obj.id.encode())
    if isinstance(obj, enum.Enum):
        return msgpack.ExtType(ENUM, packb([_path(type(obj)), obj.value]))
    if isinstance(obj, tuple):
        return msgpack.ExtType(TUPLE, packb(list(obj)))
    if isinstance(obj, frozenset):
        return msgpack.ExtType(FROZENSET, packb(list(obj)))
    if isinstance(obj, set):
        return msgpack.ExtType(SET, packb(list(obj)))
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(DATE, obj.isoformat().encode())
    if isinstance(obj, dt.time):
        return msgpack.ExtType(TIME, obj.isoformat().encode())
    if isinstance(obj, dt.timedelta):
        return msgpack.ExtType(TIMEDELTA, packb([obj.days, obj.seconds, obj.microseconds]))
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(UUID, obj.bytes)
    if isinstance(obj, Decimal):
        return msgpack.ExtType(DECIMAL, str(obj).encode())
    if isinstance(obj, pydantic.BaseModel):
        fields = dict(obj.__dict__)
        fields.update(obj.__pydantic_extra__ or {})
        body = [_path(type(obj)), fields, sorted(obj.model_fields_set)]
        return msgpack.ExtType(PYDANTIC, packb(body))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return msgpack.ExtType(DATACLASS, packb([_path(type(obj)), fields]))
    if isinstance(obj, Send):
        return msgpack.ExtType(SEND, packb(send_fields(obj)))
    base: Any
    for base in (str, int, float, bytes, dict, list):  # a subclass of one: as the base type
        if isinstance(obj, base) and not isinstance(obj, bool):
            return base(obj)  # type: ignore[no-any-return]
    raise _Unsupported(obj)


def send_fields(send: Send) -> list[Any]:
    """A Send as plain values: its node, its argument and, when it has one, its timeout
    policy (run timeout, idle timeout, refresh_on)."""
    policy = send.timeout
    if policy is None:
        return [send.node, send.arg]
    return [send.node, send.arg, [policy.run_timeout, policy.idle_timeout, policy.refresh_on]]


def sent(node: str, arg: Any, timeout: list[Any] | None = None) -> Send:
    """The Send `send_fields` gave."""
    return Send(node, arg, None if timeout is None else TimeoutPolicy(*timeout))


def _ext_hook(code: int, data: bytes) -> Any:
    if code == TUPLE:
        return tuple(unpackb(data))
    if code == SET:
        return set(unpackb(data))
    if code == FROZENSET:
        return frozenset(unpackb(data))
    if code == DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == DATE:
        return dt.date.fromisoformat(data.decode())
    if code == TIME:
        return dt.time.fromisoformat(data.decode())
    if code == TIMEDELTA:
        days, seconds, micros = unpackb(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == UUID:
        return uuid.UUID(bytes=data)
    if code == DECIMAL:
        return Decimal(data.decode())
    if code == ENUM:
        path, value = unpackb(data)
        return _checked(path, enum.Enum)(value)
    if code == PYDANTIC:
        path, fields, fields_set = unpackb(data)
        cls = _checked(path, pydantic.BaseModel)
        return cls.model_construct(_fields_set=set(fields_set), **fields)
    if code == SEND:
        return sent(*unpackb(data))
    if code == BLOB:
        return BlobRef(data.decode())
    if code == DATACLASS:
        path, fields = unpackb(data)
        cls = _resolve(path)
        if not dataclasses.is_dataclass(cls):
            raise SerializationError(f"{path} is not a dataclass")
        init = {f.name: fields[f.name] for f in dataclasses.fields(cls) if f.init and f.name in fields}
        instance = cls(**init)  # type: ignore[operator]
        for name, value in fields.items():
            if name not in init:
                object.__setattr__(instance, name, value)
        return instance
    raise SerializationError(f"unknown msgpack extension type {code}")


def _checked(path: str, base: type) -> Any:
    cls = _resolve(path)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SerializationError(f"{path} is not a {base.__name__}")
    return cls


MAX_DEPTH = 511  # msgpack's limit of nested containers (its packer's DEFAULT_RECURSE_LIMIT)


class TooDeepError(SerializationError):
    """A value nests containers deeper than msgpack can encode (`MAX_DEPTH`)."""


def packb(obj: Any) -> bytes:
    """Encode any supported value; raises SerializationError naming the unsupported type."""
    try:
        return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)
    except _Unsupported as exc:
        raise SerializationError(f"cannot serialize a value of type {exc.type_name}") from None
    except ValueError as exc:  # msgpack's "recursion limit exceeded"
        if "recursion limit" not in str(exc):
            raise
        raise TooDeepError(f"nested more than {MAX_DEPTH} levels deep (msgpack's limit)") from None


def unpackb(data: bytes) -> Any:
    """Decode bytes made by `packb`. Garbage raises SerializationError, never anything worse."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"not a valid arqgraph msgpack payload: {exc}") from None


def check_portable(value: Any, what: str) -> None:
    """Raise SerializationError if `value` (`what`, for the message) cannot be rebuilt by
    another process: a value msgpack cannot encode, or an instance of a class defined inside
    a function (which only the process that defined it can rebuild)."""
    token = _PORTABLE.set(what)
    try:
        if isinstance(value, Mapping):
            pack_values(value, where=what)
        else:
            packb(value)
    finally:
        _PORTABLE.reset(token)


def pack_values(values: Mapping[str, Any], where: str = "state") -> bytes:
    """Encode a mapping of state keys; an error names the key that failed and its type."""
    try:
        return packb(dict(values))
    except SerializationError:
        for key, value in values.items():
            try:
                packb(value)
            except SerializationError as exc:
                raise type(exc)(f"{where} key {key!r}: {exc}") from None
        raise
