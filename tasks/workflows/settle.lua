-- Settles a workflow: decides whether it has ended and then either claims the steps
-- now ready to be sent (mode 'advance') or revokes it (mode 'revoke'). It runs whole,
-- so two steps returning at once, a step delivered twice, or a revoke racing a return
-- can never send a step twice, nor once the workflow has ended.
--
-- A step is finished once its result is in KEYS[2], a hash by step id written in the
-- script that stores the step's SUCCESS (tasks/celery_ext/result_backend.py): the
-- hash holds each finished step once however often it ran, so counting its fields
-- counts distinct finished steps.
--
-- KEYS[1] the workflow's hash (plan, outcome, failed_step, revoked_step, ...)
-- KEYS[2] its results: step id -> result
-- KEYS[3] its dispatched set: the steps sent, or claimed for sending
-- KEYS[4] its pending hash: claimed steps not yet sent -> the step whose return claimed them
-- KEYS[5] the workflow counters, by outcome
-- KEYS[6] the durable revoke set of tasks, scored by time
-- ARGV[1] mode; ARGV[2] now as ISO 8601; ARGV[3] now in Unix seconds; ARGV[4] seconds
-- the workflow's keys (and a revoke) are kept; ARGV[5] the workflow's event channel;
-- ARGV[6] how many steps the workflow has.
-- 'advance': ARGV[7] the step that returned; ARGV[8] JSON [[step, [dep, ...]], ...], the
--   steps waiting on it. Returns {outcome} once the workflow has ended, else
--   {'RUNNING', step, ...}: the steps this caller must send, claimed now or by an
--   earlier delivery of the same step that did not live to send them.
-- 'revoke': ARGV[7], ARGV[8], ... step id, task id of every step. Returns
--   {'ENDED', outcome} when it had ended before, else {'REVOKED', task id, ...}: the
--   steps sent and not finished.
-- Both return {'GONE'} for a workflow that expired, or never was.
local workflow, results, dispatched, pending, metrics, revoked =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local mode, now, now_s, keep_s, channel, total =
    ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])

if redis.call('HEXISTS', workflow, 'plan') == 0 then
    return {'GONE'}
end

local function finish(outcome)
    redis.call('HSET', workflow, 'outcome', outcome, 'finished_at', now)
    redis.call('DEL', pending)
    redis.call('HINCRBY', metrics, outcome, 1)
    redis.call('PUBLISH', channel, outcome)
end

-- How the workflow ended: stored, or decided now from what its steps stored.
local outcome = redis.call('HGET', workflow, 'outcome')
if not outcome then
    if redis.call('HEXISTS', workflow, 'failed_step') == 1 then
        outcome = 'FAILURE'
    elseif redis.call('HEXISTS', workflow, 'revoked_step') == 1 then
        outcome = 'REVOKED'
    elseif redis.call('HLEN', results) >= total then
        outcome = 'SUCCESS'
    end
    if outcome then
        finish(outcome)
    end
end

if mode == 'revoke' then
    if outcome then
        return {'ENDED', outcome}
    end
    finish('REVOKED')
    local reply = {'REVOKED'}
    for i = 7, #ARGV, 2 do
        local step, task_id = ARGV[i], ARGV[i + 1]
        if redis.call('HEXISTS', results, step) == 0 then
            redis.call('ZADD', revoked, now_s, task_id)
            if redis.call('SISMEMBER', dispatched, step) == 1 then
                table.insert(reply, task_id)
            end
        end
    end
    -- A task older than its record cannot arrive any more (tasks/records.py).
    redis.call('ZREMRANGEBYSCORE', revoked, 0, now_s - keep_s)
    return reply
end

if outcome then
    return {outcome}
end
local returned = ARGV[7]
for _, candidate in ipairs(cjson.decode(ARGV[8])) do
    local step, deps = candidate[1], candidate[2]
    local ready = true
    -- Backwards: the steps described last tend to finish last.
    for i = #deps, 1, -1 do
        if redis.call('HEXISTS', results, deps[i]) == 0 then
            ready = false
            break
        end
    end
    if ready and redis.call('SADD', dispatched, step) == 1 then
        redis.call('HSET', pending, step, returned)
    end
end
local reply = {'RUNNING'}
local claims = redis.call('HGETALL', pending)
for i = 1, #claims, 2 do
    if claims[i + 1] == returned then
        table.insert(reply, claims[i])
    end
end
for _, key in ipairs({workflow, results, dispatched, pending}) do
    redis.call('EXPIRE', key, keep_s)
end
return reply
