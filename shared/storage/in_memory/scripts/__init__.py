"""The protocol's Lua scripts (`arqgraph.protocol.scripts`) as Python, over a `Keyspace`.

Each function of `runs` and `queue` is the script of the same name in the protocol's module of
that name, and `parts` holds what they share, as the Lua's `parts` does: read them side by
side. Most follow their script line for line; a script that reads or writes a whole batch of
jobs with one command, as Redis is cheaper that way, has a twin that goes job by job to the
same answers. `K` and `A` are KEYS and ARGV with a None in front, so that the indexes are Lua's. A script
answers what Redis would send back for the Lua value it returns (Lua's false is None, numbers
are ints), and runs under the keyspace's lock, so it is atomic as in Redis. The conformance
tests run the same calls on a real Redis and compare (tests/test_in_memory_store.py).
"""

from __future__ import annotations

import hashlib

from arqgraph.protocol import scripts as lua
from arqgraph.storage.in_memory.scripts.parts import Script
from arqgraph.storage.in_memory.scripts.queue import (
    acquire_slot,
    due_jobs,
    enqueue_jobs,
    finish_job,
    rate,
    renew_leases,
    renew_slot,
    requeue_job,
    take_jobs,
)
from arqgraph.storage.in_memory.scripts.runs import (
    claim,
    collect_blobs,
    commit_script,
    create_run,
    end_attempt,
    load_run,
    post_call,
    post_outcome,
    post_outcomes,
    retire,
)


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


SCRIPTS: dict[str, Script] = {sha(text): python for text, python in [
    (lua.COMMIT_SCRIPT, commit_script), (lua.CREATE_RUN_SCRIPT, create_run),
    (lua.LOAD_RUN_SCRIPT, load_run), (lua.POST_OUTCOME_SCRIPT, post_outcome),
    (lua.POST_OUTCOMES_SCRIPT, post_outcomes),
    (lua.CLAIM_SCRIPT, claim), (lua.END_ATTEMPT_SCRIPT, end_attempt),
    (lua.ACQUIRE_SLOT_SCRIPT, acquire_slot), (lua.RENEW_SLOT_SCRIPT, renew_slot),
    (lua.RATE_SCRIPT, rate), (lua.POST_CALL_SCRIPT, post_call),
    (lua.ENQUEUE_JOBS_SCRIPT, enqueue_jobs), (lua.RENEW_LEASES_SCRIPT, renew_leases),
    (lua.REQUEUE_JOB_SCRIPT, requeue_job), (lua.DUE_JOBS_SCRIPT, due_jobs),
    (lua.TAKE_JOBS_SCRIPT, take_jobs), (lua.FINISH_JOB_SCRIPT, finish_job),
    (lua.RETIRE_SCRIPT, retire), (lua.COLLECT_BLOBS_SCRIPT, collect_blobs),
]}
"""Each script by the SHA1 of its Lua text, as EVALSHA names it."""
