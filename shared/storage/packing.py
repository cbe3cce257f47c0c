"""Redis commands packed by hiredis, in C, on the asyncio connections every process uses.

redis-py parses replies with hiredis when it is installed, but its asyncio connections pack
commands in Python: 20 to 30 us a command, a good share of a server's or a worker's CPU per
run, against a few us with `hiredis.pack_command` (which redis-py's sync connections use).
The packed bytes are the same; an argument redis-py refuses (None, a bool) is refused alike.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from redis.exceptions import DataError

hiredis: Any
try:
    import hiredis
except ImportError:  # (without it, redis-py's own packing)
    hiredis = None


@cache
def packed_by_hiredis(cls: Any) -> Any:
    """`cls`, a redis-py asyncio connection class, packing its commands with hiredis."""
    if hiredis is None or not hasattr(hiredis, "pack_command"):
        return cls

    class Packed(cls):  # type: ignore[valid-type, misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            if isinstance(args[0], str):  # ("CONFIG GET" is two words on the wire)
                args = (*args[0].encode().split(), *args[1:])
            elif b" " in args[0]:
                args = (*args[0].split(), *args[1:])
            try:
                return [hiredis.pack_command(args)]
            except TypeError as exc:
                raise DataError(str(exc)) from exc

    Packed.__name__ = Packed.__qualname__ = f"HiredisPacked{cls.__name__}"
    return Packed


def pack_with_hiredis(redis: Any) -> None:
    """Make `redis`'s connections, those to come and those open, pack with hiredis."""
    pool = getattr(redis, "connection_pool", None)
    if pool is None or hiredis is None:
        return
    pool.connection_class = packed_by_hiredis(pool.connection_class)
    for connection in [*getattr(pool, "_available_connections", ()),
                       *getattr(pool, "_in_use_connections", ())]:
        connection.__class__ = packed_by_hiredis(connection.__class__)
