"""What a task call tells of itself: its "tasks" events and the run its caller's callbacks
report, as LangGraph tells a call (a task of its own, pushed by the task that made it)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from arqgraph import protocol
from arqgraph.core.calls import TaskFunction
from arqgraph.core.pregel import Task
from arqgraph.interrupts import asked_of
from arqgraph.protocol import RunRecord
from arqgraph.storage.moves import task_event
from arqgraph.storage.namespaces import NAMESPACE_SEPARATOR, below, task_uuid


def made_call(task_id: str) -> tuple[str, int]:
    """The call a call job's task id runs (`<entrypoint task>/fn/<n>`), and after how many
    cancels of it: the id is the call's, then `^<cancels>` and `~<resume round>` when not 0."""
    head, _, tail = task_id.rpartition("/fn/")
    number, _, cancels = tail.partition("~")[0].partition("^")
    return f"{head}/fn/{number}", int(cancels or 0)


PUSH = "__pregel_push"  # (LangGraph's trigger and path head of a task pushed by a task)


def call_start_event(record: RunRecord, checkpoint_id: str, call_id: str, name: str,
                     arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A task call's "tasks" start event, as LangGraph's: its arguments, pushed."""
    return _call_task_event(record, checkpoint_id, call_id, name,
                            input=(tuple(arguments["args"]), dict(arguments["kwargs"])),
                            triggers=(PUSH,))


def call_result_event(record: RunRecord, job: protocol.TaskJob, name: str,
                      result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A task call's "tasks" result event, as LangGraph's: its return value under
    `__return__`, or its error, or the questions it stopped at."""
    asked = [dataclasses.asdict(i) for i in asked_of(result.get("interrupt", []))]
    return _call_task_event(record, job.checkpoint_id, job.task_id, name,
                            error=result.get("error"),
                            result={"__return__": result["value"]} if "value" in result else {},
                            interrupts=asked)


def _call_task_event(record: RunRecord, checkpoint_id: str, call_id: str, name: str,
                     **payload: Any) -> tuple[str, dict[str, Any]]:
    """A "tasks" event of a call, in the step of the entrypoint that made it (a call's job
    names no step of its own)."""
    assert record.checkpoint is not None
    return task_event(Task(call_id, name, send_index=0), record.checkpoint.step,
                      task_uuid(record, checkpoint_id, call_id), **payload)


def call_metadata(record: RunRecord, checkpoint_id: str, call_id: str, name: str
                  ) -> dict[str, Any]:
    """The metadata LangGraph gives a task call's run: its step, node and trigger, its path
    (pushed by the task that called it, from the entrypoint's) and its namespace (below the
    entrypoint task's)."""
    call = made_call(call_id)[0]
    entry, *numbers = call.split("/fn/")
    node = entry.partition(":")[2] or record.graph
    path: tuple[Any, ...] = ("__pregel_pull", node)
    for number in numbers:
        path = (PUSH, path, int(number), True)
    own = (f"{node}:{task_uuid(record, checkpoint_id, entry)}{NAMESPACE_SEPARATOR}"
           f"{name}:{task_uuid(record, checkpoint_id, call)}")
    step = record.checkpoint.step + 1 if record.checkpoint is not None else 0
    return {"ls_integration": "langgraph", "langgraph_step": step, "langgraph_node": name,
            "langgraph_triggers": (PUSH,), "langgraph_path": path,
            "langgraph_checkpoint_ns": below(record, own)}


def call_event(call_id: str, task: TaskFunction, arguments: dict[str, Any],
               result: dict[str, Any]) -> dict[str, Any]:
    """A task call's run for the caller's tracers (see `arqgraph.run_report`): its task's
    name, its arguments by parameter name, and its return value or error."""
    try:
        signature = inspect.signature(task.fn).bind(*arguments["args"], **arguments["kwargs"])
        signature.apply_defaults()
        bound = dict(signature.arguments)
    except TypeError:
        bound = {"args": arguments["args"], "kwargs": arguments["kwargs"]}
    told: dict[str, Any] = {"id": call_id, "name": task.name, "input": bound}
    if "error" in result:
        told["error"] = result["error"]
    else:
        told["output"] = result["value"]
    return told
