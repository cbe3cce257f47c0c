"""Dead letters: data set aside because no process could read it (see `DEAD_LETTERS_KEY`)."""

from __future__ import annotations

from collections.abc import Mapping

import pydantic


class DeadLetter(pydantic.BaseModel):
    """Data set aside because it could not be read (an entry of `DEAD_LETTERS_KEY`): where it
    was (`where`: a key, a queue), why it could not be read, the run it belongs to (when known),
    the raw bytes (`data`, at most `DEAD_LETTER_BYTES` of them) and when (`at`, Unix seconds)."""

    id: str = ""  # the entry's stream id (set when read back)
    where: str
    why: str
    run_id: str = ""
    data: bytes = b""
    at: float


DEAD_LETTER_BYTES = 4096


def encode_dead_letter(letter: DeadLetter) -> dict[str, bytes]:
    return {"where": letter.where.encode(), "why": letter.why.encode(),
            "run_id": letter.run_id.encode(), "data": letter.data[:DEAD_LETTER_BYTES],
            "at": repr(letter.at).encode()}


def decode_dead_letter(entry_id: bytes, fields: Mapping[bytes, bytes]) -> DeadLetter:
    """A dead letter as `encode_dead_letter` wrote it (lenient: it is itself about bad data)."""
    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="backslashreplace")

    try:
        at = float(text(b"at") or 0)
    except ValueError:
        at = 0.0
    return DeadLetter(id=entry_id.decode(errors="backslashreplace"), where=text(b"where"),
                      why=text(b"why"), run_id=text(b"run_id"), data=fields.get(b"data", b""),
                      at=at)
