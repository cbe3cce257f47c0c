"""Lua scripts. Those on runs touch the keys of one thread (a thread's keys share its hash tag,
see `arqgraph.protocol`), besides the graph's inbox and active set they notify and the jobs a
commit enqueues; those on the queue touch arq's keys, as arq's own transactions do."""

from arqgraph.protocol.keys import EVENTS_KEPT

_CHUNKED = """
-- `cmd` with the words `head`, then `items`, in calls of at most 1000 items (Lua unpacks no more
-- than ~8000 values): the replies, one list. A batch's reads and writes of one key are one
-- command each, not one per job: Redis pays much of its cost per command.
local function chunked(cmd, head, items)
  local out = {}
  for first = 1, #items, 1000 do
    local words = {unpack(head)}
    for i = first, math.min(first + 999, #items) do words[#words + 1] = items[i] end
    local got = redis.call(cmd, unpack(words))
    if type(got) == 'table' then
      for i = 1, #got do out[#out + 1] = got[i] end
    end
  end
  return out
end
"""

_ENQUEUE = _CHUNKED + """
-- Enqueues jobs as arq's enqueue_job does for one (skipping a job that exists or has a result:
-- deterministic ids make a re-enqueue a no-op), for many at once, and appends each job added to
-- the queue's ready list, which wakes an idle worker. From KEYS[k]: the arq queue, its ready
-- list, the step's writes hash, then per job its arq job key and result key (to the last key).
-- From ARGV[a]: the score (ms), how long a job key lives (ms), how many outcomes the step waits
-- for ('' to leave it; set once: the step's later enqueues, or a repeated one, leave the count
-- of outcomes still to come as the posts left it), '1' to keep the first job off the ready
-- list (the worker whose post enqueues it takes it in the same call, see
-- POST_OUTCOME_SCRIPT), then per job its id and its arq-serialized body. `new`: the jobs
-- are those of a checkpoint saved in the same script (see `commit`), which nobody can have
-- enqueued or run yet: they are not looked for. `held_for`: the lease (ms) of the first job
-- when it is kept off the ready list, queued already held for it (as `take` would move it).
-- Returns how many jobs were added, and the first job's body when it was added by this call
-- (so no other process has seen it yet).
local function enqueue(k, a, new, held_for)
  if ARGV[a + 2] ~= '' then redis.call('HSETNX', KEYS[k + 2], '__left', ARGV[a + 2]) end
  local added, ready, fresh, queued = 0, {}, false, {}
  local count, results = (#KEYS - k - 2) / 2, {}
  if not new and count > 0 then  -- (their results, read at once)
    local keys = {}
    for j = 0, count - 1 do keys[j + 1] = KEYS[k + 4 + 2 * j] end
    results = chunked('MGET', {}, keys)
  end
  for j = 0, count - 1 do
    if not results[j + 1]
        and redis.call('SET', KEYS[k + 3 + 2 * j], ARGV[a + 5 + 2 * j], 'PX', ARGV[a + 1], 'NX') then
      local id, score = ARGV[a + 4 + 2 * j], ARGV[a]
      if j == 0 and held_for and ARGV[a + 3] == '1' then score = tonumber(score) + held_for end
      queued[#queued + 1], queued[#queued + 2] = score, id
      added = added + 1
      if j > 0 or ARGV[a + 3] ~= '1' then ready[#ready + 1] = id end
      if j == 0 then fresh = ARGV[a + 5] end
    end
  end
  if #queued > 0 then chunked('ZADD', {KEYS[k]}, queued) end
  if #ready > 0 then chunked('RPUSH', {KEYS[k + 1]}, ready) end
  return added, fresh
end
"""

_TAKE = _CHUNKED + """
-- arq's pick-up of jobs (a WATCH/MULTI per job in arq) and their start (the MULTI of its
-- run_job: read the job, count the try, keep the counter a day), for many jobs at once: a job
-- is taken when it is still queued, due, and not in progress elsewhere; its in-progress key
-- then holds it for the lease, and its queue score moves to the lease's end (renewed with the
-- lease, see RENEW_LEASES_SCRIPT): a held job is not due, so the sweep reads due jobs only,
-- however many are held, and a job whose lease lapsed (its worker died) comes due as it
-- lapses. `ids`: the jobs' ids; `holds`, `bodies`: their in-progress keys and job keys. The
-- in-progress key holds `holder`, the taking worker's token (arq's holds '1'): a worker ends or
-- gives back only a job it still holds (see FINISH_JOB_SCRIPT). At most `most` are taken, in
-- the order given (an id given twice is taken once). Returns the indexes of the jobs taken,
-- their scores (as they were queued) and their jobs (false when expired). Their tries are
-- counted apart (`count_try`), unless their tasks' claims count them.
local function take(queue, ids, holds, bodies, now, lease, holder, most)
  local picked, scores, jobs = {}, {}, {}
  if #ids == 0 or most <= 0 then return picked, scores, jobs end
  local queued, held = chunked('ZMSCORE', {queue}, ids), chunked('MGET', {}, holds)
  local moved, seen, keys = {}, {}, {}
  for j = 1, #ids do
    if #picked >= most then break end
    local score = queued[j]
    if score and tonumber(score) <= now and not held[j] and not seen[ids[j]] then
      seen[ids[j]] = true
      redis.call('SET', holds[j], holder, 'PX', lease)
      picked[#picked + 1], scores[#scores + 1], keys[#keys + 1] = j, score, bodies[j]
      moved[#moved + 1], moved[#moved + 2] = now + tonumber(lease), ids[j]
    end
  end
  if #picked == 0 then return picked, scores, jobs end
  chunked('ZADD', {queue, 'XX'}, moved)
  return picked, scores, chunked('MGET', {}, keys)
end

-- arq's count of a job's tries (its try counter, kept a day), for a job taken by `take`.
-- KEYS[k]: the job's try counter.
local function count_try(k)
  local tries = redis.call('INCR', KEYS[k])
  redis.call('EXPIRE', KEYS[k], 88400)
  return tries
end
"""

_FINISH_JOB = """
-- arq's finish_job for a job that ended, its MULTI/EXEC as a function: the ends of the many jobs
-- a worker finishes at once then go to Redis together (see arqgraph.storage.batch), or with the outcome
-- of the job's task (POST_OUTCOME_SCRIPT). From KEYS[k]: the job's in-progress key, its try
-- counter, its job key, the queue, its result key. From ARGV[a]: the job id, its result
-- (arq-serialized; '' for none), how long the result is kept (ms). (arq also takes the job out
-- of its abort set: arqgraph's workers never abort arq jobs, so the set holds none of theirs.)
-- A job whose task's outcome is posted keeps no result: nobody reads it. The orchestrator
-- enqueues only tasks without an outcome, and a job enqueued again all the same runs nothing:
-- its take's claim finds the outcome.
local function finish_job(k, a)
  redis.call('DEL', KEYS[k], KEYS[k + 1], KEYS[k + 2])
  redis.call('ZREM', KEYS[k + 3], ARGV[a])
  if ARGV[a + 1] ~= '' then redis.call('SET', KEYS[k + 4], ARGV[a + 1], 'PX', ARGV[a + 2]) end
end
"""

_RETIRE = """
-- Retires a finished run whose run hash, events stream, thread hash, checkpoints hash and
-- history list are KEYS[k] to KEYS[k + 4]: they expire in `seconds` (its set of child runs
-- and of the blobs its events refer to, the stream's key and ':children' or ':blobs', with the
-- stream; the thread's, with its checkpoints' blobs (their key and ':blobs', and ':blobs:runs'),
-- the thread's pruned namespaces (its key and ':orphans') and each checkpoint's writes and
-- claims, found by their key prefixes, unless the thread is kept until deleted); the client
-- awaiting the run (its `ends`
-- list, if any) is told; last, the run leaves its graph's `active` set.
local function retire(k, active, ends, seconds, run_id, writes, claims, ends_kept)
  redis.call('EXPIRE', KEYS[k], seconds)
  redis.call('EXPIRE', KEYS[k + 1], seconds)
  redis.call('EXPIRE', KEYS[k + 1] .. ':children', seconds)
  redis.call('EXPIRE', KEYS[k + 1] .. ':blobs', seconds)
  if redis.call('HGET', KEYS[k + 2], 'keep') ~= '1' then
    for i = k + 2, k + 4 do redis.call('EXPIRE', KEYS[i], seconds) end
    redis.call('EXPIRE', KEYS[k + 3] .. ':blobs', seconds)
    redis.call('EXPIRE', KEYS[k + 3] .. ':blobs:runs', seconds)
    redis.call('EXPIRE', KEYS[k + 2] .. ':orphans', seconds)
    for _, id in ipairs(redis.call('HKEYS', KEYS[k + 3])) do
      redis.call('EXPIRE', writes .. id, seconds)
      redis.call('EXPIRE', claims .. id, seconds)
    end
  end
  if ends then
    redis.call('RPUSH', ends, run_id)
    redis.call('EXPIRE', ends, ends_kept)
  end
  redis.call('SREM', active, run_id)
end
"""

_EMIT = f"""
-- Appends an event to a run's stream, which keeps its last {EVENTS_KEPT} events (see
-- arqgraph.protocol.keys.EVENTS_KEPT; '~': Redis trims whole blocks of entries).
local function emit(stream, mode, data)
  redis.call('XADD', stream, 'MAXLEN', '~', {EVENTS_KEPT}, '*', 'mode', mode, 'data', data)
end
"""

_PRUNE = """
-- Keeps the thread's history to its newest `depth` checkpoints: each older one leaves the
-- history list and the checkpoints hash, with its step's writes and claims (found by their
-- key prefixes). The thread hash counts them (`pruned`), so that a checkpoint id the thread
-- lacks is known as pruned, not unknown. The namespaces of the subgraphs their steps ran
-- (their writes' `child:` fields) go to the thread's `:orphans` set; those threads, and the
-- large values only the pruned checkpoints referred to, are deleted once the run ends (see
-- arqgraph.storage.history).
local function prune(thread, checkpoints, history, depth, writes, claims)
  local old = redis.call('LRANGE', history, depth, -1)
  if #old == 0 then return end
  redis.call('LTRIM', history, 0, depth - 1)
  for _, id in ipairs(old) do
    redis.call('HDEL', checkpoints, id)
    for _, field in ipairs(redis.call('HKEYS', writes .. id)) do
      if string.sub(field, 1, 6) == 'child:' then
        redis.call('SADD', thread .. ':orphans', redis.call('HGET', writes .. id, field))
      end
    end
    redis.call('DEL', writes .. id, claims .. id)
  end
  redis.call('HINCRBY', thread, 'pruned', #old)
end
"""

_COMMIT = _RETIRE + _ENQUEUE + _EMIT + _PRUNE + """
-- A run's commit. KEYS from KEYS[k], numbered from 1 here: 1 run hash, 2 events stream, 3 thread
--       hash, 4 checkpoints hash, 5 history list, 6 writes hash of the checkpoint being resumed
--       (any key of the thread if none); when the run ends, 7 its graph's active set and 8 the
--       ends list of the client awaiting it (none if no client does); when it enqueues the jobs
--       of its new step, from 7 on the keys of `enqueue`
-- ARGV from ARGV[a], likewise: 1 expected version and checkpoint id ('<version>:<id>'), 2
--       number of run field pairs, 3 id of a
--       checkpoint to save ('' for none), 4 its blob, 5 '1' to list it in the history as the
--       thread's latest, 6 how many seconds the run's keys live once it ends ('' when the run
--       does not end), 7 run id, 8 number of outcomes to set aside (tasks to run again),
--       9 number of writes field pairs to set, 10 the thread's writes key and 11 its claims key
--       without their checkpoint id, 12 how many seconds an ends list outlives its last entry,
--       13 number of event pairs, 14 how many checkpoints the thread's history keeps ('' for
--       every one: see `prune`); then run field pairs, task ids of outcomes to set aside,
--       writes field pairs to set, event (mode, data) pairs, and the arguments of `enqueue`
--       when it enqueues jobs (the last keys and arguments of the call). Returns 1 when
--       committed, else 0; and second, the body of the first job it enqueued, when it
--       enqueued that job (see `enqueue`).
-- Nothing happens unless the run's version and checkpoint are still the expected ones: the
-- compare-and-set that lets several orchestrators (and the workers that move runs on, see
-- arqgraph.storage.moves) serve one Redis. (The checkpoint id, which never repeats, fences a
-- commit planned before a failover that lost the last writes: the run's version may come
-- round again there, on another checkpoint.) Nor, unless the run ends, once a cancel or a
-- drain was asked for: the run stays at its step, for the orchestrator's move to end it there
-- (each sets a field, not a version). A run that ends frees its thread and is retired in the
-- same step (see `retire`), and a new step's jobs are enqueued with it: no process can die
-- between a commit and what must follow it. `uncancelled`: not once a cancel was asked for,
-- even when the run ends (a worker's end of a run leaves a cancelled one to the orchestrator).
-- `held_for`: see `enqueue`.
local function commit(k, a, uncancelled, held_for)
  local version, id = string.match(ARGV[a], '^(%d+):(.*)$')
  local run = redis.call('HMGET', KEYS[k], 'version', 'checkpoint_id', 'cancel', 'drain', 'status')
  if run[1] ~= version or (run[2] or '') ~= id then return 0 end
  if run[3] and (uncancelled or ARGV[a + 5] == '') then return 0 end
  if ARGV[a + 5] == '' and run[4] and run[5] == 'running' then return 0 end
  local set, status = {'version', tostring(tonumber(version) + 1)}, run[5]
  local i = a + 14
  for _ = 1, tonumber(ARGV[a + 1]) do
    set[#set + 1], set[#set + 2] = ARGV[i], ARGV[i + 1]
    if ARGV[i] == 'status' then status = ARGV[i + 1] end
    i = i + 2
  end
  if ARGV[a + 2] ~= '' then set[#set + 1], set[#set + 2] = 'checkpoint_id', ARGV[a + 2] end
  redis.call('HSET', KEYS[k], unpack(set))
  -- the (maybe large) input is read only to start the run: its first checkpoint holds it now
  if run[5] == 'pending' and status ~= 'pending' then redis.call('HDEL', KEYS[k], 'input') end
  if ARGV[a + 2] ~= '' then
    redis.call('HSET', KEYS[k + 3], ARGV[a + 2], ARGV[a + 3])
    if ARGV[a + 4] == '1' then
      redis.call('LPUSH', KEYS[k + 4], ARGV[a + 2])
      redis.call('HSET', KEYS[k + 2], 'latest', ARGV[a + 2])
    end
  end
  for _ = 1, tonumber(ARGV[a + 7]) do  -- an outcome to run again is kept as a prior, for history
    local task, old = ARGV[i], redis.call('HGET', KEYS[k + 5], ARGV[i])
    if old then
      local n = redis.call('HINCRBY', KEYS[k + 5], 'priors:' .. task, 1)
      redis.call('HSET', KEYS[k + 5], 'prior:' .. task .. ':' .. n, old)
      redis.call('HDEL', KEYS[k + 5], task)
      redis.call('HINCRBY', KEYS[k + 5], '__left', 1)
      -- the attempt that posted it ended (see `claim`): its claims, by the writes' checkpoint id
      local claims = ARGV[a + 10] .. string.sub(KEYS[k + 5], #ARGV[a + 9] + 1)
      if redis.call('HEXISTS', claims, task) == 1 then
        redis.call('HINCRBY', claims, task .. ':ended', 1)
      end
    end
    i = i + 1
  end
  for _ = 1, tonumber(ARGV[a + 8]) do
    redis.call('HSET', KEYS[k + 5], ARGV[i], ARGV[i + 1]); i = i + 2
  end
  for _ = 1, tonumber(ARGV[a + 12]) do
    emit(KEYS[k + 1], ARGV[i], ARGV[i + 1]); i = i + 2
  end
  if ARGV[a + 2] ~= '' and ARGV[a + 4] == '1' and ARGV[a + 13] ~= '' then
    prune(KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], tonumber(ARGV[a + 13]), ARGV[a + 9],
          ARGV[a + 10])
  end
  local added, fresh = 0, false
  if i <= #ARGV then  -- (the new checkpoint's jobs)
    added, fresh = enqueue(k + 6, i, true, held_for)
  end
  if ARGV[a + 5] ~= '' then
    if redis.call('HGET', KEYS[k + 2], 'run') == ARGV[a + 6] then
      redis.call('HDEL', KEYS[k + 2], 'run')
    end
    retire(k, KEYS[k + 6], KEYS[k + 7], ARGV[a + 5], ARGV[a + 6], ARGV[a + 9], ARGV[a + 10],
           ARGV[a + 11])
  end
  return 1, fresh
end
"""

COMMIT_SCRIPT = _COMMIT + """
-- KEYS and ARGV as `commit`'s from the first.
return (commit(1, 1))
"""

CREATE_RUN_SCRIPT = """
-- KEYS: 1 thread hash, 2 run hash; ARGV: 1 run id, 2 thread id, 3 '1' to keep the thread
-- until deleted, then run field pairs. Returns '' when created, else the id of the run the
-- thread is busy with (one run at a time per thread): the run's own when it exists already
-- (a submit retried with its run id creates nothing).
if redis.call('EXISTS', KEYS[2]) == 1 then return ARGV[1] end
local busy = redis.call('HGET', KEYS[1], 'run')
if busy then return busy end
local thread = {'thread_id', ARGV[2], 'run', ARGV[1]}
if ARGV[3] == '1' then thread[5], thread[6] = 'keep', '1' end
redis.call('HSET', KEYS[1], unpack(thread))
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
return ''
"""

_CLAIM = """
-- Starts a new attempt of a task: returns {attempt, lost starts, failures, resume values or
-- false}, or {0} when the task already has an outcome. A start is lost unless it ended:
-- handed back or failed (END_ATTEMPT_SCRIPT), or posted an outcome that was set aside to run
-- the task again (`commit`); '<task>:ended' counts those, so a post counts nothing.
local function claim(claims, writes, task)
  local posted = redis.call('HMGET', writes, task, 'resume:' .. task)  -- (its outcome, resume)
  if posted[1] then return {0} end
  local attempt = redis.call('HINCRBY', claims, task, 1)
  local ended = redis.call('HMGET', claims, task .. ':ended', task .. ':failures')
  local lost = math.max(0, attempt - 1 - tonumber(ended[1] or '0'))
  return {attempt, lost, tonumber(ended[2] or '0'), posted[2]}
end
"""

_LOAD = _CLAIM + """
-- Reads a run for a process that keeps what it read (see `arqgraph.storage.cache`), and starts the
-- attempt of one of its tasks in the same call. KEYS[k]: the run hash, its checkpoints hash,
-- the claims hash and writes hash of the task's step. The task (its checkpoint id and id, ''
-- to start none) is claimed only while the run is running that step and is not being
-- cancelled. `known_version` and `known_id`: the run's version and the checkpoint the caller
-- has already ('' for none): they are not sent again. Returns false when the run is gone, else
-- {run fields or false when the caller has this version of the run on this checkpoint (and it
-- is not being cancelled), its current checkpoint or false when the caller has it (or there is
-- none), the task's claim or false}, then the run's checkpoint id and version. The run's
-- `input` is among the fields only while the run is pending. `seen`: the fields of the runs read earlier in
-- the same script (see `run_of`): a run whose tasks are started together is read once.
local function run_of(key, seen)
  local run = seen[key]
  if not run then
    run = redis.call('HMGET', key, 'version', 'status', 'checkpoint_id', 'cancel', 'drain', 'graph')
    seen[key] = run
  end
  return run
end

-- Whether a task of the run is claimed as it is loaded (see `load`).
local function claimable(k, checkpoint, task, seen)
  local run = run_of(KEYS[k], seen)
  return task ~= '' and run[1] and run[2] == 'running' and (run[3] or '') == checkpoint
    and not run[4]
end

-- `made`: the task's claim made already, or false for none (the take claims many at once);
-- nil to make it here.
local function load(k, checkpoint, task, known_version, known_id, seen, made)
  local run = run_of(KEYS[k], seen)
  local version = run[1]
  if not version then return false end
  local status, id = run[2], run[3] or ''
  local cancel, drain = run[4] ~= false, run[5] ~= false
  local claimed = false
  if made ~= nil then
    claimed = made
  elseif claimable(k, checkpoint, task, seen) then
    claimed = claim(KEYS[k + 2], KEYS[k + 3], task)
  end
  local fields = false  -- (a rolled-back Redis can show a version again on another checkpoint)
  if version ~= known_version or id ~= known_id or cancel or drain then
    local all = redis.call('HGETALL', KEYS[k])
    fields = {}
    for i = 1, #all, 2 do
      if all[i] ~= 'input' or status == 'pending' then  -- the (maybe large) input starts the run
        fields[#fields + 1] = all[i]
        fields[#fields + 1] = all[i + 1]
      end
    end
  end
  local blob = false
  if id ~= '' and id ~= known_id then blob = redis.call('HGET', KEYS[k + 1], id) end
  return {fields, blob, claimed}, id, version
end
"""

LOAD_RUN_SCRIPT = _LOAD + """
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

POST_OUTCOME_SCRIPT = _FINISH_JOB + _COMMIT + """
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

POST_OUTCOMES_SCRIPT = _CHUNKED + _EMIT + """
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

CLAIM_SCRIPT = _CLAIM + """
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

# -- node limits (one key each, shared by every worker) ---------------------------------------

ACQUIRE_SLOT_SCRIPT = """
-- KEYS[1] slots sorted set; ARGV: job id, limit, lease ms. Returns 1 when the job holds a slot
-- (now or already), 0 when the limit is reached. Times are Redis's own, the same for all.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
"""

RENEW_SLOT_SCRIPT = """
-- KEYS[1] slots sorted set; ARGV: job id, lease ms. Extends a held slot's lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""

RATE_SCRIPT = """
-- KEYS[1] rate hash; ARGV: job id, milliseconds between two starts. Returns how many ms the job
-- must still wait (0: start now). Starts are at least an interval apart (`last`, Redis's clock):
-- a job that must wait reserves a start time (`at:<job>`, queued after `tat`); one picked up too
-- early or too late for it (a stalled worker) takes the next free time instead of bunching up.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[2])
local field = 'at:' .. ARGV[1]
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1e18')
local at = tonumber(redis.call('HGET', KEYS[1], field) or '-1')
if at >= 0 and (at < now - interval or now < last + interval - 1) then at = -1 end
if at < 0 then
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
  at = math.max(now, tat, last + interval)
  redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', at + interval))
end
redis.call('PEXPIRE', KEYS[1], 86400000)
if at <= now then
  redis.call('HDEL', KEYS[1], field)
  redis.call('HSET', KEYS[1], 'last', string.format('%.3f', now))
  return 0
end
redis.call('HSET', KEYS[1], field, string.format('%.3f', at))
return math.ceil(at - now)
"""

POST_CALL_SCRIPT = _EMIT + """
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

ENQUEUE_JOBS_SCRIPT = _ENQUEUE + """
-- KEYS and ARGV as `enqueue`'s (below) from the first. Returns how many jobs were added.
return (enqueue(1, 1))
"""

RENEW_LEASES_SCRIPT = """
-- KEYS: 1 the arq queue, then the in-progress keys of a worker's running jobs. ARGV: 1 the lease
-- (ms), 2 when the renewed leases end (ms, the queue's clock), then the jobs' ids. Renews each
-- lease still held, and moves its job's queue score to the lease's end with it (see `take`); a
-- lease already given up (its job ended, or went back to the queue) is left alone.
for i = 2, #KEYS do
  if redis.call('PEXPIRE', KEYS[i], ARGV[1]) == 1 then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i + 1])
  end
end
return 0
"""

REQUEUE_JOB_SCRIPT = """
-- KEYS: 1 the arq queue, 2 its ready list, 3 the job's in-progress key. ARGV: 1 the job id,
-- 2 when it is due again (ms), 3 '1' to list it as ready, 4 the worker's token. A job a worker
-- held goes back to the queue (if still there): not held, due then (the take moved its score
-- to the lease's end). Unless another worker holds it now (this one's lease ran out and the
-- job was taken again): that one's run of it goes on. Returns 1 when given back, else 0.
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
if ARGV[3] == '1' and redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
"""

DUE_JOBS_SCRIPT = """
-- KEYS: 1 the arq queue, 2 its ready list. ARGV: 1 now (ms), 2 how many due jobs to look at,
-- 3 how many jobs the sweep may take, 4 at most while the ready list is not empty, 5 arq's
-- in-progress key prefix. The sweep's read of the queue, in one call. Returns when the first
-- job deferred to the future comes due (its score, '' if none), how many jobs to take, then the
-- ids of the oldest due jobs that no worker holds, twice as many (workers sweeping at once
-- would otherwise go for the same ones; the take skips those gone). A job held is left out
-- here, not sent back to the take script (a 10,000-task fan-out keeps hundreds in progress);
-- and while jobs are listed as ready the workers' pops take them, so the sweep then takes only
-- a few of the oldest (a retry come due, an entry lost with a dead worker) and does not race
-- the pops for the rest (a list holding only stale ids caps one sweep so, until the next pop).
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')  -- (an idle queue: this only)
if #first == 0 then return {'', 0} end
if tonumber(first[2]) > tonumber(ARGV[1]) then return {first[2], 0} end
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local found = {later[2] or '', 0}
local most = tonumber(ARGV[3])
if most <= 0 then return found end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then
    if found[2] == 0 then  -- the first: is the ready list empty?
      if redis.call('LLEN', KEYS[2]) > 0 then most = math.min(most, tonumber(ARGV[4])) end
      found[2] = most
    end
    found[#found + 1] = id
    if #found - 2 >= 2 * most then break end
  end
end
return found
"""

TAKE_JOBS_SCRIPT = _LOAD + _TAKE + """
-- `claim` of many tasks of one step at once (their claims hash and writes hash), each task
-- once: a read of their outcomes, a read of their claims, a write of their new attempts.
local function claim_many(claims, writes, tasks)
  local asked, out = {}, {}
  for i, task in ipairs(tasks) do
    asked[#asked + 1], asked[#asked + 2] = task, 'resume:' .. task
    out[i] = {0}
  end
  local posted, open, fields = chunked('HMGET', {writes}, asked), {}, {}
  for i, task in ipairs(tasks) do
    if not posted[2 * i - 1] then
      open[#open + 1] = i
      fields[#fields + 1], fields[#fields + 2], fields[#fields + 3] =
        task, task .. ':ended', task .. ':failures'
    end
  end
  if #open == 0 then return out end
  local got, set = chunked('HMGET', {claims}, fields), {}
  for n, i in ipairs(open) do
    local attempt = tonumber(got[3 * n - 2] or '0') + 1
    set[#set + 1], set[#set + 2] = tasks[i], tostring(attempt)
    out[i] = {attempt, math.max(0, attempt - 1 - tonumber(got[3 * n - 1] or '0')),
              tonumber(got[3 * n] or '0'), posted[2 * i]}
  end
  chunked('HSET', {claims}, set)
  return out
end

-- KEYS: 1 the arq queue, then for each job its arq in-progress key, job key and try counter,
-- and the keys of `load` for its task.
-- ARGV: 1 now (ms), 2 the lease (ms), 3 how many jobs to take at most, 4 the worker's token
-- (see `take`), 5 how many graphs' tasks
-- are claimed later (their nodes have limits), those graphs, then for each job its id and the
-- arguments of `load` for its task (its checkpoint id, '' to load nothing; its id, '' to claim
-- nothing; the run's version and the checkpoint the caller has).
-- arq's pick-up and start (see `take`) of many jobs in one round trip, where arq makes two per
-- job, with the start of each one's task (the load of its run and the claim of its attempt),
-- where a worker would make a round trip of its own for it. A run whose jobs are taken
-- together is sent once, with its first; the tasks of one step are claimed together.
-- Returns, for each job taken, its id, score, job ('' when it expired), try, and the reply of
-- `load` (0 when the run is gone; false when not asked for, or the job expired). The try of a
-- job whose task is claimed here is the claim's attempt (each start of the job claims its
-- task once: they count the same), so arq's try counter is not kept for it too.
local taken, now, most = {}, tonumber(ARGV[1]), tonumber(ARGV[3])
local limited, first = {}, 6 + tonumber(ARGV[5])
for i = 6, first - 1 do limited[ARGV[i]] = true end
local ids, holds, bodies = {}, {}, {}
for j = 1, (#ARGV - first + 1) / 5 do
  local k = 2 + 7 * (j - 1)
  ids[j], holds[j], bodies[j] = ARGV[first + 5 * (j - 1)], KEYS[k], KEYS[k + 1]
end
local picked, scores, jobs = take(KEYS[1], ids, holds, bodies, now, ARGV[2], ARGV[4], most)
local seen = {}  -- run key -> its fields (see `run_of`)
local tasks, steps, order = {}, {}, {}  -- the task each job claims; the jobs of each step
for n, j in ipairs(picked) do
  local a, k = first + 5 * (j - 1), 2 + 7 * (j - 1)
  if jobs[n] and ARGV[a + 1] ~= '' then
    local task = ARGV[a + 2]
    if task ~= '' and first > 6 and limited[run_of(KEYS[k + 3], seen)[6] or ''] then
      task = ''
    end
    tasks[n] = task
    if claimable(k + 3, ARGV[a + 1], task, seen) then
      local claims = KEYS[k + 5]
      if not steps[claims] then
        steps[claims] = {writes = KEYS[k + 6], tasks = {}, of = {}}
        order[#order + 1] = claims
      end
      local step = steps[claims]
      step.tasks[#step.tasks + 1], step.of[#step.of + 1] = task, n
    end
  end
end
local claimed = {}  -- the claim of each job's task (n -> claim)
for _, claims in ipairs(order) do
  local step = steps[claims]
  for i, made in ipairs(claim_many(claims, step.writes, step.tasks)) do
    claimed[step.of[i]] = made
  end
end
local sent = {}  -- run key -> {version, checkpoint id} sent with an earlier job
for n, j in ipairs(picked) do
  local a, k = first + 5 * (j - 1), 2 + 7 * (j - 1)
  local started = false
  if tasks[n] then
    local run = KEYS[k + 3]
    local known = sent[run] or {ARGV[a + 3], ARGV[a + 4]}
    local id, version
    started, id, version = load(k + 3, ARGV[a + 1], tasks[n], known[1], known[2], seen,
                                claimed[n] or false)
    if started then sent[run] = {version, id} else started = 0 end
  end
  local made = type(started) == 'table' and started[3]
  taken[#taken + 1] = ARGV[a]
  taken[#taken + 1] = scores[n]
  taken[#taken + 1] = jobs[n] or ''
  taken[#taken + 1] = made and made[1] > 0 and made[1] or count_try(k + 2)
  taken[#taken + 1] = started
end
return taken
"""

FINISH_JOB_SCRIPT = _FINISH_JOB + """
-- KEYS and ARGV as `finish_job`'s from the first, then ARGV[4] the worker's token and ARGV[5] how
-- the job ended without its task's outcome (the post of an outcome ends its job itself):
-- 'done' as arq ends a job, its result kept (an enqueue of the job meanwhile is a no-op, see
-- `enqueue`); 'redrive' when its worker took it for stale, having started no attempt of its
-- task: it ends without a result, for its run's re-drive to enqueue it again at once (arq's
-- result used to hold the run a minute); 'fenced' when a newer attempt owns its task: as 'done',
-- but a job whose hold lapsed stays queued, due, for the next take to run the task again (the
-- worker that took it again died: its re-drive waits for no result). Whatever the end, a job
-- another worker holds now (this one's lease ran out and the job was taken again) is left to
-- it, else its run of the job would lose its job while it runs. Returns 1 when ended, else 0.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[4] then return 0 end
if ARGV[5] == 'fenced' and not holder then return 0 end
finish_job(1, 1)
if ARGV[5] == 'redrive' then redis.call('DEL', KEYS[5]) end
return 1
"""

RETIRE_SCRIPT = _RETIRE + """
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
