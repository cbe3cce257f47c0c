"""Redis commands packed by hiredis (`arqgraph.storage.packing`): the same bytes as redis-py's
own packing, the same refusals, on every connection of a client."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from arqgraph.storage import packing

pytest.importorskip("hiredis")

COMMANDS = [
    ("HGET", "arqgraph:graphs", "chat"),
    ("CONFIG GET", "maxmemory"),  # (two words on the wire)
    (b"CLIENT SETNAME", b"me"),
    ("EVALSHA", "a" * 40, 2, "k:{t}", "r:{t}", b"\x81\xa1x\x01", 1.5, 1e-07, -3, 10**20, "é"),
    ("SET", "big", b"x" * 100_000),  # (past redis-py's buffer cutoff: chunked there)
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_hiredis_packs_the_bytes_redis_py_packs(command: tuple[object, ...]) -> None:
    ours = packing.packed_by_hiredis(Connection)()
    assert b"".join(ours.pack_command(*command)) == b"".join(
        Connection().pack_command(*command))


def test_hiredis_refuses_what_redis_py_refuses() -> None:
    ours = packing.packed_by_hiredis(Connection)()
    for bad in (None, True):
        with pytest.raises(DataError):
            Connection().pack_command("SET", "k", bad)
        with pytest.raises(DataError):
            ours.pack_command("SET", "k", bad)


def test_a_client_s_connections_pack_with_hiredis() -> None:
    redis = Redis(host="127.0.0.1", port=1)  # (never connected here)
    packing.pack_with_hiredis(redis)
    connection = redis.connection_pool.make_connection()
    assert isinstance(connection, Connection)
    assert type(connection).pack_command is not Connection.pack_command
