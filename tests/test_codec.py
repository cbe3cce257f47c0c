"""msgpack codec: exact round trips for state values, clear errors for the rest, never pickle."""

import datetime as dt
import enum
import pickle
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pydantic
import pytest

from arqgraph.core.codec import pack_values, packb, unpackb
from arqgraph.errors import SerializationError


class Color(enum.Enum):
    RED = "red"


class Point(pydantic.BaseModel):
    x: int
    tags: list[str] = []


@dataclass
class Box:
    items: tuple
    seen: set = field(default_factory=set)


VALUES = {
    "tuple": (1, (2, 3)),
    "set": {1, 2},
    "frozenset": frozenset({"a"}),
    "datetime": dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.UTC),
    "naive": dt.datetime(2026, 1, 1, 0, 0, 1, 5),
    "date": dt.date(2026, 11, 21),
    "time": dt.time(23, 59),
    "timedelta": dt.timedelta(days=2, microseconds=7),
    "uuid": uuid.UUID(int=7),
    "decimal": Decimal("1.10"),
    "enum": Color.RED,
    "model": Point(x=1, tags=["a"]),
    "dataclass": Box((1, 2), {3}),
    "bytes": b"\x00\xff",
    "nested": {"list": [Point(x=2)], 3: None, "bool": True},
}


@pytest.mark.parametrize("key", VALUES)
def test_values_round_trip_exactly_with_their_types(key):
    value = VALUES[key]
    back = unpackb(packb(value))
    assert back == value
    assert type(back) is type(value)


def test_an_unsupported_value_names_its_key_and_type():
    with pytest.raises(SerializationError, match=r"state key 'bad'.*builtins.object"):
        pack_values({"good": 1, "bad": object()})


def test_garbage_and_pickle_bytes_are_rejected_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    for data in (payload, b"\xc1\xc1\xc1", b""):
        with pytest.raises(SerializationError):
            unpackb(data)
    assert not marker.exists()


def test_a_payload_naming_a_non_model_class_is_refused():
    import msgpack

    forged = msgpack.ExtType(8, packb(["os:system", {"x": 1}, []]))
    with pytest.raises(SerializationError, match="not a BaseModel"):
        unpackb(msgpack.packb(forged))


def test_a_task_outcome_round_trips_and_its_sends_need_no_extension_type():
    """A fan-out's outcome carries one Send per task: each is a plain msgpack pair on the wire
    (no extension type to rebuild 10,000 times), and its argument keeps its exact types."""
    import msgpack

    from arqgraph.core.pregel import TaskOutcome
    from arqgraph.protocol import decode_outcome, encode_outcome
    from arqgraph.types import Send

    outcome = TaskOutcome("0:plan", "plan", writes={"n": 2}, goto=("next",),
                          sends=(Send("work", {"i": 1, "at": (1, 2)}), Send("work", [3])))
    data = encode_outcome(outcome)
    sends = msgpack.unpackb(data, raw=False)["sends"]
    assert [type(pair) for pair in sends] == [list, list]
    assert decode_outcome(data) == outcome


def test_sends_and_subclasses_of_builtin_types_cross():
    """A Send kept in state crosses as a Send; a value of a subclass of str, int, float, bytes,
    dict or list (LangChain's text accessor, an OrderedDict) crosses as its base type."""
    from collections import OrderedDict, defaultdict

    from arqgraph.types import Send

    class Text(str):
        def __call__(self) -> str:
            return str(self)

    value = {"send": [Send("node", {"a": (1, 2)})], "text": Text("hi"),
             "ordered": OrderedDict(b=1, a=2), "default": defaultdict(list, k=[1]), "flag": True}
    back = unpackb(packb(value))
    assert back["send"] == [Send("node", {"a": (1, 2)})]
    assert type(back["text"]) is str and back["text"] == "hi"
    assert type(back["ordered"]) is dict and list(back["ordered"]) == ["b", "a"]
    assert back["default"] == {"k": [1]} and back["flag"] is True
