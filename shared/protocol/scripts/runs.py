"""The Lua scripts on runs. Each touches the keys of one thread (a thread's keys share its hash
tag, see `arqgraph.protocol`), besides the graph's inbox and active set it notifies and the
jobs a commit enqueues."""

from arqgraph.protocol.scripts import parts

COMMIT_SCRIPT = parts.COMMIT + """
-- KEYS and ARGV as `commit`'s from the first.
return (commit(1, 1))
"""

CREATE_RUN_SCRIPT = """
-- KEYS: 1 thread hash, 2 run hash, 3 the graph's active set, 4 its inbox; ARGV: 1 run id,
-- 2 thread id, 3 '1' to keep the thread until deleted, 4 the inbox note, then run field pairs.
-- Returns '' when created (the run listed as active and its orchestrators told, in the same
-- call: a submit is one round trip), else the id of the run the thread is busy with (one run
-- at a time per thread): the run's own when it exists already (a submit retried with its run
-- id creates nothing).
if redis.call('EXISTS', KEYS[2]) == 1 then return ARGV[1] end
local busy = redis.call('HGET', KEYS[1], 'run')
if busy then return busy end
local thread = {'thread_id', ARGV[2], 'run', ARGV[1]}
if ARGV[3] == '1' then thread[5], thread[6] = 'keep', '1' end
redis.call('HSET', KEYS[1], unpack(thread))
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], ARGV[4])
return ''
"""

LOAD_RUN_SCRIPT = parts.LOAD + """
-- KEYS: those of `load`. ARGV: 1 the task's checkpoint id and 2 its id ('' to start none),
-- 3 the run's version the caller has read already ('' for none), 4 the id of the checkpoint the
-- caller has already ('' for none), then ids of tasks of that checkpoint whose outcomes to
-- read. Returns `load`'s reply, with the outcomes asked for (each false when missing) fourth,
-- or false there when the run is on another checkpoint: a worker reads the run and starts its
-- task in one round trip, and the orchestrator reads a run and its step's outcomes in one.
local loaded, id = load(1, ARGV[1], ARGV[2], ARGV[3], ARGV[4], {})
if not loaded or id == '' or id ~= ARGV[4] or #ARGV == 4 then return loaded end
local outcomes = {}  -- (HMGETs of at most 1000 fields: Lua unpacks no more than ~8000 values)
for first = 5, #ARGV, 1000 do
  local got = redis.call('HMGET', KEYS[4], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  for i = 1, #got do outcomes[#outcomes + 1] = got[i] end
end
loaded[4] = outcomes
return loaded
"""

POST_OUTCOME_SCRIPT = parts.FINISH_JOB + parts.COMMIT + """
-- KEYS[1] writes hash, KEYS[2] events stream, KEYS[3] claims hash, KEYS[4] the graph's inbox,
-- then the keys of `finish_job` for the job that ran the task (none to leave the job to arq),
-- then, to take the (first) job the commit enqueues, the queue, that job's in-progress key and
-- the claims hash of its step (none to take no job), then the keys of a `commit` to make once
-- the step has all its outcomes (none for no commit).
-- ARGV task id, outcome, attempt ('' for none), the inbox note, number of event pairs, '1' when
-- the job's end follows, '1' when a commit follows, '1' when a take follows, '1' when the
-- outcome is a failure (the orchestrator is told at once: the run fails, its step's other
-- nodes are cancelled, as in LangGraph), '1' when the task is its step's only one (its
-- outcome completes the step: nothing is counted), the event pairs,
-- then the arguments of `finish_job`, then those of the take (the job's id, now (ms), the lease
-- (ms), its task's id, the worker's token), then those of `commit`.
-- Returns 1 when recorded and the step has all its outcomes now (the note is pushed to the
-- orchestrators' inbox), 3 when so and the commit that came with it was made (the run moved on
-- or ended; no note: nothing is left to do for the orchestrator; a commit refused, because the
-- run moved since or a cancel was asked for, which the orchestrator then makes, the note is
-- pushed), 2 when
-- recorded and others are still due, 0 when the task already had an outcome, -1 when a newer
-- attempt owns the task (this poster is stale: its lease ran out and the task was started
-- again). With a take, 3 is {3, the job's score, the job, its try, the claim of its task (see
-- `claim`)} when the job was taken: only a job that the commit has just enqueued, which no
-- other process can have seen, so that its take is arq's start of a new job (held for the
-- lease, its first try) and its task's claim the first attempt of a task of a new checkpoint.
-- `__left` (set with the jobs of a step of more than one task) is how many outcomes the step
-- still waits for: each post counts it down, and the one that takes it to 0 completes the
-- step (as does each post of a step without a count). A recorded outcome ends its job too: one
-- round trip where arq would make another to finish the job once the node has returned; the
-- worker that ran a step's only task moves the run on in the same round trip (see
-- arqgraph.storage.moves), and takes the next step's job (kept off the ready list by the
-- commit's enqueue), which it runs next: no other worker need wake up and read the run.
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[3] then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local i, k = 11, 5
for _ = 1, tonumber(ARGV[5]) do
  emit(KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
if ARGV[6] == '1' then
  finish_job(k, i)
  k, i = k + 5, i + 3
end
local held, h = nil, i
if ARGV[8] == '1' then
  held = k
  k, i = k + 3, i + 5
end
local complete = ARGV[10] == '1'
if not complete then complete = redis.call('HINCRBY', KEYS[1], '__left', -1) <= 0 end
if complete then
  if ARGV[7] == '1' then
    local done, fresh = commit(k, i, true, held and tonumber(ARGV[h + 2]))
    if done == 1 then
      if not held or not fresh then return 3 end
      redis.call('SET', KEYS[held + 1], ARGV[h + 4], 'PX', ARGV[h + 2])  -- (held: see `enqueue`)
      redis.call('HSET', KEYS[held + 2], ARGV[h + 3], 1)
      return {3, ARGV[h + 1], fresh, 1, {1, 0, 0, false}}
    end
  end
  redis.call('LPUSH', KEYS[4], ARGV[4])
  return 1
end
if ARGV[9] == '1' then
  redis.call('LPUSH', KEYS[4], ARGV[4])
  return 1
end
return 2
"""

POST_OUTCOMES_SCRIPT = parts.CHUNKED + parts.EMIT + """
-- The posts of many outcomes in one call, each as POST_OUTCOME_SCRIPT's without a commit and
-- without a take (the posts of the tasks of steps of many tasks: a fan-out's), with the same
-- replies, as if they were made one after the other. A worker's tasks that end together post
-- together: a step's outcomes are checked, recorded and counted with one command each, not one
-- per task, and their jobs end with one DEL and one ZREM. What the posts of one step share is
-- sent once, and their jobs' keys are made here from the jobs' ids (see `finish_job`; a
-- posted job keeps no result): Redis pays for each key and argument a script is sent.
-- KEYS: 1 the queue, then for each group of posts of one step its writes hash, events stream,
-- claims hash and graph's inbox.
-- ARGV: 1 arq's in-progress key prefix, 2 its try counter prefix, 3 its job key prefix, 4 how
-- many groups; then for each group its inbox note and how many posts it has, then for each
-- post its task id, outcome, attempt ('' for none), flags ('f' when the outcome is a failure,
-- 's' when the task is its step's only one), the id of the job that ran it ('' to leave the
-- job to arq), how many event pairs, the event pairs.
-- Returns each post's reply, in order.
local posts, steps, order, a = {}, {}, {}, 5
for g = 1, tonumber(ARGV[4]) do
  local k, note, count = 2 + 4 * (g - 1), ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, count do
    local p = #posts + 1
    posts[p] = {k = k, a = a, note = note}
    a = a + 6 + 2 * tonumber(ARGV[a + 5])
    local claims = KEYS[k + 2]
    if not steps[claims] then
      steps[claims] = {writes = KEYS[k], posts = {}}
      order[#order + 1] = claims
    end
    local step = steps[claims]
    step.posts[#step.posts + 1] = p
  end
end
local replies, recorded = {}, {}
for _, claims in ipairs(order) do  -- each step: its owners and outcomes read, its new written
  local step, tasks = steps[claims], {}
  for i, p in ipairs(step.posts) do tasks[i] = ARGV[posts[p].a] end
  local owners = chunked('HMGET', {claims}, tasks)
  local had = chunked('HMGET', {step.writes}, tasks)
  local set, counted, taken = {}, {}, {}
  for i, p in ipairs(step.posts) do
    local at = posts[p].a
    if ARGV[at + 2] ~= '' and owners[i] ~= ARGV[at + 2] then
      replies[p] = -1
    elseif had[i] or taken[tasks[i]] then
      replies[p] = 0
    else
      taken[tasks[i]], recorded[p] = true, true
      set[#set + 1], set[#set + 2] = tasks[i], ARGV[at + 1]
      if string.find(ARGV[at + 3], 's', 1, true) then replies[p] = 1
      else counted[#counted + 1] = p end
    end
  end
  if #set > 0 then chunked('HSET', {step.writes}, set) end
  if #counted > 0 then  -- (the count each post would have left, one after the other)
    local left = redis.call('HINCRBY', step.writes, '__left', -#counted) + #counted
    for i, p in ipairs(counted) do
      local failed = string.find(ARGV[posts[p].a + 3], 'f', 1, true)
      if left - i <= 0 or failed then replies[p] = 1 else replies[p] = 2 end
    end
  end
end
local gone, ended, notes, inboxes = {}, {}, {}, {}
for p, post in ipairs(posts) do  -- in order: each recorded post's events, its job's end, its note
  if recorded[p] then
    local i = post.a + 6
    for _ = 1, tonumber(ARGV[post.a + 5]) do
      emit(KEYS[post.k + 1], ARGV[i], ARGV[i + 1]); i = i + 2
    end
    local job = ARGV[post.a + 4]
    if job ~= '' then  -- (`finish_job`, for all the jobs at once)
      gone[#gone + 1], gone[#gone + 2], gone[#gone + 3] = ARGV[1] .. job, ARGV[2] .. job,
        ARGV[3] .. job
      ended[#ended + 1] = job
    end
    if replies[p] == 1 then
      local inbox = KEYS[post.k + 3]
      if not notes[inbox] then notes[inbox] = {}; inboxes[#inboxes + 1] = inbox end
      notes[inbox][#notes[inbox] + 1] = post.note
    end
  end
end
if #gone > 0 then chunked('DEL', {}, gone) end
if #ended > 0 then chunked('ZREM', {KEYS[1]}, ended) end
for _, inbox in ipairs(inboxes) do chunked('LPUSH', {inbox}, notes[inbox]) end
return replies
"""

CLAIM_SCRIPT = parts.CLAIM + """
-- KEYS[1] claims hash, KEYS[2] writes hash; ARGV[1] task id
return claim(KEYS[1], KEYS[2], ARGV[1])
"""

END_ATTEMPT_SCRIPT = """
-- KEYS[1] claims hash; ARGV[1] task id, ARGV[2] attempt, ARGV[3] 1 if the attempt failed
-- An attempt that ends without an outcome (handed back, or failed and to be retried) is not
-- lost; a failed one counts toward the retry policy. Only the owning attempt may say so.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':ended', 1)
return redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':failures', tonumber(ARGV[3]))
"""

POST_CALL_SCRIPT = parts.EMIT + """
-- KEYS: 1 writes hash, 2 events stream, 3 claims hash, 4 done list
-- ARGV: call id, result blob, attempt, then event pairs. Records a task call's result unless
-- one is there (or a newer attempt owns the call), then wakes whoever awaits it.
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[3] then return -1 end
if redis.call('HSETNX', KEYS[1], 'fn:' .. ARGV[1], ARGV[2]) == 0 then return 0 end
for i = 4, #ARGV, 2 do
  emit(KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('LPUSH', KEYS[4], '1')
redis.call('EXPIRE', KEYS[4], 3600)
return 1
"""

RETIRE_SCRIPT = parts.RETIRE + """
-- KEYS: 1 run hash, 2 events stream, 3 thread hash, 4 checkpoints hash, 5 history list, 6 the
-- graph's set of active runs, 7 the ends list of the client awaiting the run (none if no client
-- does). ARGV: 1 seconds, 2 run id, 3 the thread's writes key and 4 its claims key, each
-- without its checkpoint id, 5 how many seconds an ends list outlives its last entry.
-- Retires a run that ended but is still active (it ended before runs were retired as they
-- ended, by the commit script): see `retire`.
retire(1, KEYS[6], KEYS[7], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
"""

COLLECT_BLOBS_SCRIPT = """
-- KEYS: 1 the thread hash, 2 its blobs hash. ARGV: 1 the thread's latest checkpoint id as the
-- caller read it, then ids of blobs to delete. The blobs the caller found unreferenced (see
-- arqgraph.storage.history) go, unless a run took the thread since it looked (its blobs may be
-- written before the commits that refer to them): returns how many went, or -1.
if redis.call('HGET', KEYS[1], 'run') or redis.call('HGET', KEYS[1], 'latest') ~= ARGV[1] then
  return -1
end
local gone = 0
for first = 2, #ARGV, 1000 do
  gone = gone + redis.call('HDEL', KEYS[2], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
return gone
"""
