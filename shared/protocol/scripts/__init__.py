"""The protocol's Lua scripts: on runs (`runs`), on the job queue and node limits (`queue`),
and the Lua functions they share (`parts`). Each has a Python twin in
`arqgraph.storage.in_memory.scripts`."""

from arqgraph.protocol.scripts.queue import (
    ACQUIRE_SLOT_SCRIPT,
    DUE_JOBS_SCRIPT,
    ENQUEUE_JOBS_SCRIPT,
    FINISH_JOB_SCRIPT,
    RATE_SCRIPT,
    RENEW_LEASES_SCRIPT,
    RENEW_SLOT_SCRIPT,
    REQUEUE_JOB_SCRIPT,
    TAKE_JOBS_SCRIPT,
)
from arqgraph.protocol.scripts.runs import (
    CLAIM_SCRIPT,
    COLLECT_BLOBS_SCRIPT,
    COMMIT_SCRIPT,
    CREATE_RUN_SCRIPT,
    END_ATTEMPT_SCRIPT,
    LOAD_RUN_SCRIPT,
    POST_CALL_SCRIPT,
    POST_OUTCOME_SCRIPT,
    POST_OUTCOMES_SCRIPT,
    RETIRE_SCRIPT,
)

__all__ = [
    "ACQUIRE_SLOT_SCRIPT",
    "CLAIM_SCRIPT",
    "COLLECT_BLOBS_SCRIPT",
    "COMMIT_SCRIPT",
    "CREATE_RUN_SCRIPT",
    "DUE_JOBS_SCRIPT",
    "END_ATTEMPT_SCRIPT",
    "ENQUEUE_JOBS_SCRIPT",
    "FINISH_JOB_SCRIPT",
    "LOAD_RUN_SCRIPT",
    "POST_CALL_SCRIPT",
    "POST_OUTCOMES_SCRIPT",
    "POST_OUTCOME_SCRIPT",
    "RATE_SCRIPT",
    "RENEW_LEASES_SCRIPT",
    "RENEW_SLOT_SCRIPT",
    "REQUEUE_JOB_SCRIPT",
    "RETIRE_SCRIPT",
    "TAKE_JOBS_SCRIPT",
]
