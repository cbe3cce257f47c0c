"""How a run's input is recorded, whoever submits it: a producer, or a worker starting a
subgraph's child run. A Command given as input splits into its resume value and what its
`update` and `goto` change where the run starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arqgraph.core import codec
from arqgraph.core.schema import ROOT
from arqgraph.errors import InvalidInputError
from arqgraph.storage.runs import NO_RESUME
from arqgraph.types import Command, object_fields


def run_input(
    input: Any, entrypoint: bool, root: bool, threaded: bool, same_process: bool = False
) -> tuple[str, Any, Any]:
    """What a run is submitted with: its kind, its input as the run records it, and its resume
    value (NO_RESUME for none). Checks the input crosses the wire, naming the key that does not,
    and, unless the graph runs in this process (`same_process`: the embedded default), that
    other processes can rebuild it."""
    kind, resume = "input", NO_RESUME
    if isinstance(input, Command):
        resume = input.resume if input.resume is not None else NO_RESUME
        kind, input = "resume", _command_input(input, root)
    elif input is None and threaded:
        kind = "resume"
    elif entrypoint:
        input = {"input": input}  # an entrypoint takes any value: its state's `input`
    elif root:
        input = {ROOT: input}  # a one-value state takes any value
    else:
        input = _fields_of_local(input)
    try:
        if not same_process:
            codec.check_portable(input, "input")  # fail here, naming the key, not on a worker
        elif isinstance(input, dict):
            codec.pack_values(input, where="input")
    except codec.TooDeepError as exc:
        raise InvalidInputError(str(exc)) from None
    return kind, input, resume


def check_config(config: Mapping[str, Any] | None) -> None:
    """Refuse a run config whose `recursion_limit` is not a number of supersteps (at least 1),
    at submit: not on the orchestrator, after the run was recorded."""
    limit = (config or {}).get("recursion_limit")
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 1:
        raise InvalidInputError(f"config['recursion_limit'] must be a number of "
                                f"supersteps, at least 1; got {limit!r}")


def _fields_of_local(input: Any) -> Any:
    """A state given as an instance of a class defined inside a function, which no other
    process can rebuild, as the fields the graph reads of it (as LangGraph reads them: a
    dataclass's fields, a pydantic model's fields set)."""
    if "<locals>" not in type(input).__qualname__:
        return input
    fields = object_fields(input)
    return input if fields is None else fields


def _command_input(command: Command[Any], root: bool) -> dict[str, Any] | None:
    """What a Command given as input carries besides `resume`: its `update` (as writes) and
    the nodes of its `goto`, which the orchestrator applies where the run starts."""
    if command.graph is not None:
        raise ValueError("a Command given as input cannot address another graph (graph=...)")
    goto = command.goto_targets()
    if any(not isinstance(node, str) for node in goto):
        raise ValueError("a Command given as input may go to nodes by name, not with Send")
    if root and command.update is not None:
        update = {ROOT: command.update}
    else:
        update = dict(command.update_items())
    if not update and not goto:
        return None
    codec.pack_values(update, where="Command update")  # fail here, naming the key
    return {"update": update, "goto": [str(node) for node in goto]}
