"""The parts several Lua scripts share: Lua functions that the scripts of `runs` and `queue`
put before their own bodies, so that Redis runs each script as one piece."""

from arqgraph.protocol.keys import EVENTS_KEPT

CHUNKED = """
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

ENQUEUE = CHUNKED + """
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

TAKE = CHUNKED + """
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
  local queued = chunked('ZMSCORE', {queue}, ids)
  local moved, seen, keys = {}, {}, {}
  for j = 1, #ids do
    if #picked >= most then break end
    local score = queued[j]
    if score and tonumber(score) <= now and not seen[ids[j]]
        and redis.call('SET', holds[j], holder, 'PX', lease, 'NX') then  -- (not held elsewhere)
      seen[ids[j]] = true
      picked[#picked + 1], scores[#scores + 1], keys[#keys + 1] = j, score, bodies[j]
      moved[#moved + 1], moved[#moved + 2] = now + tonumber(lease), ids[j]
    end
  end
  if #picked == 0 then return picked, scores, jobs end
  chunked('ZADD', {queue, 'XX'}, moved)
  return picked, scores, chunked('MGET', {}, keys)
end

-- arq's count of a job's tries (its try counter, kept a day), for a job taken by `take`.
-- `key`: the job's try counter.
local function count_try(key)
  local tries = redis.call('INCR', key)
  redis.call('EXPIRE', key, 88400)
  return tries
end
"""

FINISH_JOB = """
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

RETIRE = """
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

EMIT = f"""
-- Appends an event to a run's stream, which keeps its last {EVENTS_KEPT} events (see
-- arqgraph.protocol.keys.EVENTS_KEPT; '~': Redis trims whole blocks of entries).
local function emit(stream, mode, data)
  redis.call('XADD', stream, 'MAXLEN', '~', {EVENTS_KEPT}, '*', 'mode', mode, 'data', data)
end
"""

PRUNE = """
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

COMMIT = RETIRE + ENQUEUE + EMIT + PRUNE + """
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

CLAIM = """
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

LOAD = CLAIM + """
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
