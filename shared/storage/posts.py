"""The posts of outcomes that a worker's tasks make in one turn of its loop, as one call of
POST_OUTCOMES_SCRIPT (see `Batch.gathered` and `RunStore.post_outcome`).

Each post is made as a call of POST_OUTCOME_SCRIPT would be; packed together, what the posts of
one step share (its keys, the inbox note) is sent once, and arq's keys of each post's job are
made by the script from the job's id. Redis pays for each key and argument a script is sent, so
a post costs it a third of the elements it would alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq.constants import job_key_prefix, retry_key_prefix

from arqgraph import protocol


def pack_posts(calls: Sequence[tuple[list[Any], list[Any]]]) -> tuple[list[Any], list[Any]] | None:
    """POST_OUTCOMES_SCRIPT's keys and arguments for these calls of POST_OUTCOME_SCRIPT, in this
    order: the posts of one step in a row share its keys and note. None when one of them cannot
    go so: it commits or takes a job, keeps arq's result of its job, or ends a job of another
    queue (a worker's posts never do: they then go one by one)."""
    queue: Any = None
    keys: list[Any] = [None]  # (the queue, once known)
    args: list[Any] = [protocol.LEASE_KEY_PREFIX, retry_key_prefix, job_key_prefix, 0]
    shared: tuple[Any, ...] | None = None
    count = 0  # where the count of posts of the last group is
    for call_keys, call_args in calls:
        task, outcome, attempt, note, events, job_end, commit, take, failed, sole = call_args[:10]
        if commit or take:
            return None
        pairs = call_args[10:10 + 2 * int(events)]
        job = ""
        if job_end:
            job, result = call_args[10 + len(pairs)], call_args[11 + len(pairs)]
            queue = queue or call_keys[7]
            if result or call_keys[4:8] != [protocol.lease_key(job), retry_key_prefix + job,
                                            job_key_prefix + job, queue]:
                return None
        if (*call_keys[:4], note) != shared:
            shared = (*call_keys[:4], note)
            keys += call_keys[:4]
            args[3] += 1
            args += [note, 0]
            count = len(args) - 1
        args[count] += 1
        args += [task, outcome, attempt, ("f" if failed else "") + ("s" if sole else ""), job,
                 int(events), *pairs]
    keys[0] = queue or keys[1]
    return keys, args
