"""Large values kept once: a state key whose packed value is BLOB_MIN bytes or more is kept
in its thread's blobs hash (`blobs_key`) under the digest of its bytes, and checkpoints and
"values" events hold a `BlobRef` to it instead of a copy, as LangGraph's savers keep each
channel's value once per version instead of once per checkpoint. The digest names the
content, so a value that stays the same from step to step (a document the nodes only read)
is kept once for the whole thread, whichever process wrote it first; and a blob, never
changed once written, can be written before the commit that refers to it (a commit refused
leaves only a blob that expires with its thread)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from arqgraph.core import codec
from arqgraph.core.codec import BlobRef
from arqgraph.core.pregel import TaskOutcome
from arqgraph.errors import CorruptDataError, SerializationError

BLOB_MIN = 16 * 1024  # bytes: smaller values stay inline (a reference would cost a read)


def _surely_small(value: Any) -> bool:
    """Values whose size is plain without packing them (most state keys)."""
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str | bytes) and len(value) < BLOB_MIN // 4


def _kept(value: Any, blobs: dict[str, bytes], where: str) -> Any:
    """`value`, or its `BlobRef` when it is large (its packed bytes added to `blobs`)."""
    if _surely_small(value) or isinstance(value, BlobRef):
        return value
    try:
        packed = codec.packb(value)
    except SerializationError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    if len(packed) < BLOB_MIN:
        return value
    blob_id = hashlib.blake2b(packed, digest_size=16).hexdigest()
    blobs[blob_id] = packed
    return BlobRef(blob_id)


def split(values: Mapping[str, Any], blobs: dict[str, bytes], where: str = "state"
          ) -> dict[str, Any]:
    """`values` with each large one replaced by its `BlobRef`, its packed bytes added to
    `blobs` (id -> bytes). An unserializable value raises, naming its key (`where` first)."""
    return {key: _kept(value, blobs, f"{where} key {key!r}") for key, value in values.items()}


def split_arg(arg: Any, blobs: dict[str, bytes]) -> Any:
    """A Send's argument kept as `split` keeps values: a dict's large values each (the same
    document sent to every task of a fan-out is then kept once), another large one whole."""
    if isinstance(arg, dict):
        return split(arg, blobs, "Send argument")
    return _kept(arg, blobs, "Send argument")


def refs(values: Mapping[str, Any] | None) -> set[str]:
    """The ids of the blobs `values` refer to."""
    return {v.id for v in (values or {}).values() if isinstance(v, BlobRef)}


def resolve(values: Mapping[str, Any], blobs: Mapping[str, bytes | None]) -> dict[str, Any]:
    """`values` with each `BlobRef` replaced by the value it refers to (in `blobs`); a blob
    that is missing (expired or deleted with its thread) raises CorruptDataError."""
    out = dict(values)
    for key, value in values.items():
        if isinstance(value, BlobRef):
            packed = blobs.get(value.id)
            if packed is None:
                raise CorruptDataError(f"the value of state key {key!r} (blob {value.id}) is "
                                       "gone from its thread's blobs")
            out[key] = codec.unpackb(packed)
    return out


def all_refs(values: Iterable[Mapping[str, Any] | None]) -> set[str]:
    """The ids of the blobs any of `values` refer to."""
    return set().union(*(refs(v) for v in values))


def arg_refs(arg: Any) -> set[str]:
    """The ids of the blobs a task's argument refers to (see `split_arg`)."""
    if isinstance(arg, BlobRef):
        return {arg.id}
    return refs(arg) if isinstance(arg, dict) else set()


def resolve_arg(arg: Any, blobs: Mapping[str, bytes | None]) -> Any:
    """A task's argument with the values it refers to put back (see `resolve`)."""
    if isinstance(arg, BlobRef):
        return resolve({"Send argument": arg}, blobs)["Send argument"]
    return resolve(arg, blobs) if isinstance(arg, dict) and refs(arg) else arg


def outcome_refs(outcome: TaskOutcome) -> set[str]:
    """The ids of the blobs a decoded outcome refers to (see `encode_outcome`)."""
    return refs(outcome.writes).union(*(arg_refs(s.arg) for s in outcome.sends))


def outcome_with_blobs(outcome: TaskOutcome, blobs: Mapping[str, bytes | None]) -> TaskOutcome:
    """The outcome with the values it refers to put back (`blobs`: id -> packed value)."""
    if not outcome_refs(outcome):
        return outcome
    writes = resolve(outcome.writes, blobs) if outcome.writes else outcome.writes
    sends = []
    for send in outcome.sends:
        fields = codec.send_fields(send)
        fields[1] = resolve_arg(fields[1], blobs)
        sends.append(codec.sent(*fields))
    return replace(outcome, writes=writes, sends=tuple(sends))
