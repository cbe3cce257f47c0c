"""The superstep algorithm alone: no Redis, no workers, no user node code."""

import operator
from typing import Annotated, TypedDict

import pytest

from arqgraph.core.pregel import (
    END,
    START,
    Checkpoint,
    GraphSpec,
    Task,
    TaskOutcome,
    apply_writes,
    exceeds_recursion_limit,
    first_checkpoint,
    given_outcome,
    next_checkpoint,
    ordered,
    update_checkpoint,
)
from arqgraph.core.schema import StateSchema
from arqgraph.errors import InvalidUpdateError
from arqgraph.types import Send


class State(TypedDict):
    plain: int
    log: Annotated[list, operator.add]


SCHEMA = StateSchema.of(State)


def spec(edges=None, joins=()):
    nodes = {n for e in (edges or {}).items() for n in (e[0], *e[1])} - {START, END}
    nodes |= {n for sources, t in joins for n in (*sources, t)}
    return GraphSpec(SCHEMA, frozenset(nodes), edges or {}, tuple(joins))


def done(task, writes=None, goto=(), sends=()):
    return TaskOutcome(task.id, task.node, writes, tuple(goto), tuple(sends))


def run_step(graph, cp, results):
    return next_checkpoint(graph, cp, {o.task_id: o for o in results})


def test_reducer_keys_start_empty_and_plain_keys_absent():
    cp = first_checkpoint(SCHEMA, {})
    assert cp.values == {"log": []}
    assert cp.step == -1 and [t.node for t in cp.tasks] == [START]


def test_writes_fold_in_node_name_order_then_send_order():
    tasks = [Task("0:b", "b"), Task("0:send:1:x", "x", 1), Task("0:a", "a"), Task("0:send:0:x", "x", 0)]
    cp = Checkpoint(0, {"log": []}, tuple(tasks))
    outcomes = [done(t, {"log": [t.id]}) for t in tasks]
    nxt = run_step(spec({"a": ("x",), "b": ("x",)}), cp, outcomes)
    assert nxt.values["log"] == ["0:a", "0:b", "0:send:0:x", "0:send:1:x"]


def test_two_writes_to_a_plain_key_in_one_step_raise():
    a, b = Task("0:a", "a"), Task("0:b", "b")
    with pytest.raises(InvalidUpdateError, match="At key 'plain'"):
        apply_writes(SCHEMA, {}, [done(a, {"plain": 1}), done(b, {"plain": 2})])


def test_keys_outside_the_schema_are_dropped():
    assert apply_writes(SCHEMA, {}, [done(Task("0:a", "a"), {"plain": 1, "nope": 2})]) == {
        "plain": 1
    }


def test_several_edges_into_a_node_in_one_step_run_it_once():
    graph = spec({START: ("a", "b"), "a": ("c",), "b": ("c",)})
    cp = run_step(graph, first_checkpoint(SCHEMA, {"plain": 0}), [
        given_outcome(first_checkpoint(SCHEMA, {"plain": 0}).tasks[0])
    ])
    assert [t.node for t in cp.tasks] == ["a", "b"]
    cp = run_step(graph, cp, [done(t) for t in cp.tasks])
    assert [t.node for t in cp.tasks] == ["c"]


def test_join_waits_for_sources_finishing_in_different_steps_then_resets():
    """As LangGraph's barrier: the sources seen stay until the target runs, so a step that
    does not run it (an update of a stopped run) triggers it again."""
    graph = spec({START: ("a", "b1"), "b1": ("b2",)}, joins=[(("a", "b2"), "c")])
    cp = Checkpoint(0, {"log": []}, (Task("0:a", "a"), Task("0:b1", "b1")))
    cp = run_step(graph, cp, [done(t) for t in cp.tasks])
    assert [t.node for t in cp.tasks] == ["b2"]  # a has finished, the barrier holds c back
    assert cp.seen == {"c": ("a",)}
    cp = run_step(graph, cp, [done(t) for t in cp.tasks])
    assert [t.node for t in cp.tasks] == ["c"]
    assert cp.seen == {"c": ("a", "b2")}
    updated = run_step(graph, update_checkpoint(cp, [("a", {"log": ["edit"]})]),
                       [done(Task(f"{cp.step}:update:a", "a", arg={"log": ["edit"]},
                                  update=True))])
    assert [t.node for t in updated.tasks] == ["c"]
    cp = run_step(graph, cp, [done(t) for t in cp.tasks])
    assert cp.tasks == () and cp.seen == {}


def test_goto_and_sends_add_tasks_and_end_is_dropped():
    graph = spec({"a": ()})
    cp = Checkpoint(0, {"log": []}, (Task("0:a", "a"),))
    out = done(cp.tasks[0], goto=["b", END], sends=[Send("x", {"i": 1}), Send("x", {"i": 2})])
    nxt = run_step(graph, cp, [out])
    # Listed as LangGraph lists them: Sends first; applied in sort_key order: pulls first.
    assert [(t.node, t.send_index, t.arg) for t in nxt.tasks] == [
        ("x", 0, {"i": 1}), ("x", 1, {"i": 2}), ("b", None, None)
    ]
    assert [t.node for t in ordered(nxt.tasks)] == ["b", "x", "x"]
    assert len({t.id for t in nxt.tasks}) == 3


def test_pull_tasks_listed_in_the_order_nodes_were_added():
    graph = GraphSpec(SCHEMA, frozenset({"a", "zeta", "alpha"}), {"a": ("zeta", "alpha")},
                      order=("a", "zeta", "alpha"))
    cp = Checkpoint(0, {"log": []}, (Task("0:a", "a"),))
    nxt = run_step(graph, cp, [done(cp.tasks[0])])
    assert [t.node for t in nxt.tasks] == ["zeta", "alpha"]
    assert [t.node for t in ordered(nxt.tasks)] == ["alpha", "zeta"]


def test_empty_input_still_starts_the_graph_but_writes_nothing():
    cp = first_checkpoint(SCHEMA, {})
    nxt = run_step(spec({START: ("a",)}), cp, [given_outcome(cp.tasks[0])])
    assert [t.node for t in nxt.tasks] == ["a"]
    assert not nxt.wrote and not nxt.step_wrote


def test_recursion_limit_boundary_matches_langgraph():
    # Two supersteps (0 and 1) need recursion_limit 3: LangGraph checks the limit before it
    # looks for the tasks of step 2, so a run that would end there still fails at limit 2.
    after_two_steps = Checkpoint(2, {}, ())
    assert exceeds_recursion_limit(after_two_steps, 2)
    assert not exceeds_recursion_limit(after_two_steps, 3)


def test_same_inputs_give_the_same_checkpoint():
    graph = spec({START: ("a",), "a": ("b",)})
    cp = Checkpoint(0, {"log": []}, (Task("0:a", "a"),))
    outcomes = [done(cp.tasks[0], {"log": [1], "plain": 3})]
    assert run_step(graph, cp, outcomes) == run_step(graph, cp, outcomes)
