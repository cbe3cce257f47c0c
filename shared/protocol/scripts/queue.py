"""The Lua scripts on the job queue and the node limits. Those on the queue touch arq's keys,
as arq's own transactions do; a node limit is one key, shared by every worker."""

from arqgraph.protocol.scripts import parts

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

ENQUEUE_JOBS_SCRIPT = parts.ENQUEUE + """
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

TAKE_JOBS_SCRIPT = parts.LOAD + parts.TAKE + """
-- `claim` of many tasks of one step at once (their claims hash and writes hash), each task
-- once: a read of their outcomes, a read of their attempts, a write of their new attempts.
-- Only a task started before (a retry) has ended starts and failures to read: they are read
-- for those tasks alone, not for the first starts of a fan-out.
local function claim_many(claims, writes, tasks)
  local asked, out = {}, {}
  for i, task in ipairs(tasks) do
    asked[#asked + 1], asked[#asked + 2] = task, 'resume:' .. task
    out[i] = {0}
  end
  local posted, open, names = chunked('HMGET', {writes}, asked), {}, {}
  for i, task in ipairs(tasks) do
    if not posted[2 * i - 1] then open[#open + 1], names[#names + 1] = i, task end
  end
  if #open == 0 then return out end
  local attempts, again, fields, set = chunked('HMGET', {claims}, names), {}, {}, {}
  for n, task in ipairs(names) do
    if attempts[n] then
      again[#again + 1], fields[#fields + 1], fields[#fields + 2] = n, task .. ':ended',
        task .. ':failures'
    end
  end
  local ended = {}  -- n -> {ended starts, failures} of a task started before
  if #again > 0 then
    local got = chunked('HMGET', {claims}, fields)
    for m, n in ipairs(again) do ended[n] = {got[2 * m - 1], got[2 * m]} end
  end
  for n, i in ipairs(open) do
    local attempt, before = tonumber(attempts[n] or '0') + 1, ended[n] or {}
    set[#set + 1], set[#set + 2] = names[n], tostring(attempt)
    out[i] = {attempt, math.max(0, attempt - 1 - tonumber(before[1] or '0')),
              tonumber(before[2] or '0'), posted[2 * i]}
  end
  chunked('HSET', {claims}, set)
  return out
end

-- KEYS: 1 the arq queue, then for each group of jobs the keys of `load` for their tasks (their
-- run hash, its checkpoints hash, their step's claims hash and writes hash; for a group that
-- loads nothing, any four keys: they are not read).
-- ARGV: 1 now (ms), 2 the lease (ms), 3 how many jobs to take at most, 4 the worker's token
-- (see `take`), 5 arq's in-progress key prefix, 6 its job key prefix, 7 its try counter
-- prefix, 8 how many graphs' tasks are claimed later (their nodes have limits), those graphs;
-- then for each group the arguments of `load` (its checkpoint id, '' to load nothing; the
-- run's version and the checkpoint the caller has) and how many jobs it has, then for each
-- job its id and the id of its task ('' to claim nothing).
-- arq's pick-up and start (see `take`) of many jobs in one round trip, where arq makes two per
-- job, with the start of each one's task (the load of its run and the claim of its attempt),
-- where a worker would make a round trip of its own for it. The jobs of one step in a row
-- are a group: what they share is sent once, and their arq keys are made here from their
-- ids (Redis pays for each key and argument a script is sent). A run whose jobs are taken
-- together is sent once, with its first; the tasks of one step are claimed together.
-- Returns, for each job taken, 11 values: its id, score, job ('' when it expired), try, then
-- the reply of `load` laid flat: 1 when loaded, 0 when the run is gone, false when not asked
-- for or the job expired; the run's fields and its checkpoint (false for each when not sent);
-- then the claim's 4 values (false for each when none was made; only its first, 0, when the
-- task has an outcome). Flat, for Redis pays for each table of a reply. The try of a
-- job whose task is claimed here is the claim's attempt (each start of the job claims its
-- task once: they count the same), so arq's try counter is not kept for it too.
local taken, now, most = {}, tonumber(ARGV[1]), tonumber(ARGV[3])
local limited, a = {}, 9 + tonumber(ARGV[8])
for i = 9, a - 1 do limited[ARGV[i]] = true end
local ids, holds, bodies, of, tasked = {}, {}, {}, {}, {}  -- of: each job's group
local groups = 0
while a <= #ARGV do
  local group = {k = 2 + 4 * groups, a = a}
  groups = groups + 1
  a = a + 4
  for _ = 1, tonumber(ARGV[a - 1]) do
    local j = #ids + 1
    ids[j], holds[j], bodies[j] = ARGV[a], ARGV[5] .. ARGV[a], ARGV[6] .. ARGV[a]
    of[j], tasked[j] = group, ARGV[a + 1]
    a = a + 2
  end
end
local picked, scores, jobs = take(KEYS[1], ids, holds, bodies, now, ARGV[2], ARGV[4], most)
local seen = {}  -- run key -> its fields (see `run_of`)
local tasks, steps, order = {}, {}, {}  -- the task each job claims; the jobs of each step
for n, j in ipairs(picked) do
  local k, ga = of[j].k, of[j].a
  if jobs[n] and ARGV[ga] ~= '' then
    local task = tasked[j]
    if task ~= '' and tonumber(ARGV[8]) > 0 and limited[run_of(KEYS[k], seen)[6] or ''] then
      task = ''
    end
    tasks[n] = task
    if claimable(k, ARGV[ga], task, seen) then
      local claims = KEYS[k + 2]
      if not steps[claims] then
        steps[claims] = {writes = KEYS[k + 3], tasks = {}, of = {}}
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
  local k, ga = of[j].k, of[j].a
  local started = false
  if tasks[n] then
    local run = KEYS[k]
    local known = sent[run] or {ARGV[ga + 1], ARGV[ga + 2]}
    local id, version
    started, id, version = load(k, ARGV[ga], tasks[n], known[1], known[2], seen,
                                claimed[n] or false)
    if started then sent[run] = {version, id} else started = 0 end
  end
  local loaded, made = type(started) == 'table', {}
  if loaded then made = started[3] or {} end
  taken[#taken + 1] = ids[j]
  taken[#taken + 1] = scores[n]
  taken[#taken + 1] = jobs[n] or ''
  taken[#taken + 1] = (made[1] or 0) > 0 and made[1] or count_try(ARGV[7] .. ids[j])
  taken[#taken + 1] = loaded and 1 or started
  taken[#taken + 1] = loaded and started[1]
  taken[#taken + 1] = loaded and started[2]
  for i = 1, 4 do taken[#taken + 1] = made[i] or false end
end
return taken
"""

FINISH_JOB_SCRIPT = parts.FINISH_JOB + """
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
