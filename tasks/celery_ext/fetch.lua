-- Acknowledge, then take up to a limit of messages off a consumer's queues and file
-- them as in flight, in one atomic step (tasks/celery_ext/fetch.py builds the call).
--
-- KEYS[1]              unacked: hash, delivery tag -> JSON [message, exchange, routing key]
-- KEYS[2]              unacked_index: sorted set, delivery tag -> delivery time
-- KEYS[3 .. 2+Q]       the wake key of each of the Q queues (a sorted set of one member)
-- KEYS[3+Q .. 2+Q+Q*P] the queues' lists, priority step first: step 1 of queues 1..Q,
--                      then step 2 of queues 1..Q, ... (kombu's BRPOP order)
-- ARGV[1]              delivery time, seconds since the epoch (the unacked_index score)
-- ARGV[2]              how many messages to take at most (at least 1)
-- ARGV[3]              Q, the number of queues
-- ARGV[4]              the wake key's member
-- ARGV[5]              the task records' key prefix, '' for no start checks (below)
-- ARGV[6]              the durable revoke set (sorted set of task ids)
-- ARGV[7]              the name prefix of taskrelay's own tasks, checked even without
--                      a record ('' for none; see below)
-- ARGV[8]              the seconds a record created by a check is kept
-- ARGV[9 ..]           delivery tags of acknowledged messages: their records go first
--
-- Returns {more, queue number, message, start check, queue number, message, start
-- check, ...}. more is 1 when a list still holds messages; the wake key of its queue
-- is then set again, so that the next blocked consumer wakes up and takes them; the
-- wake key of an empty queue goes.
--
-- The start check of a task due now is what its worker would otherwise ask Redis for
-- before it runs the task: the delivery is counted against its attempt in the task's
-- record (tasks/records.py), and the revoke set is read. It is
-- "deliveries:revoked:attempt:task id" (revoked 1 or 0; the last two name what was
-- checked, so that a copy of the header in a later message, a retry's, says nothing
-- about that one), '' for a message without one: a task with a countdown or eta,
-- which may be held and handed back many times before it starts, a task that is not
-- taskrelay's own and has no record, or a message that is not a task. A task of
-- taskrelay's own sent with Celery's API has no record until this check starts one
-- (its worker would start it at the task's start otherwise); tasks of other kinds
-- (the relay's, Celery's built-in ones) are left alone: nothing of theirs reads it.
-- The record and revoke keys are named in ARGV, not KEYS: taskrelay runs on one
-- Redis, never a cluster.
--
-- The records are written exactly as kombu's QoS.append writes them, so kombu's
-- restore_visible, restore_by_tag and the lease renewal work on them unchanged. A
-- message that is not kombu's JSON (no delivery tag) is returned without a record:
-- the consumer cannot acknowledge or restore it anyway.

local unacked, index = KEYS[1], KEYS[2]
local now = ARGV[1]
local limit = tonumber(ARGV[2])
local queues = tonumber(ARGV[3])
local wake_member = ARGV[4]
local record_prefix, revoked_set = ARGV[5], ARGV[6]
local own_prefix, record_ttl = ARGV[7], ARGV[8]
local FIRST_ACK = 9
local first_list = 3 + queues
local steps = (#KEYS - first_list + 1) / queues

-- unpack() has a stack limit; acknowledgements go in slices of this many.
local ACK_SLICE = 1000
for first = FIRST_ACK, #ARGV, ACK_SLICE do
  local last = math.min(first + ACK_SLICE - 1, #ARGV)
  redis.call('ZREM', index, unpack(ARGV, first, last))
  redis.call('HDEL', unacked, unpack(ARGV, first, last))
end

local reply = {0}
local records, scores = {}, {}
local taken = 0

local function is_own(task)
  return own_prefix ~= '' and type(task) == 'string'
    and string.sub(task, 1, #own_prefix) == own_prefix
end

local function start_check(decoded)
  local headers = decoded['headers']
  if record_prefix == '' or type(headers) ~= 'table' or type(headers['id']) ~= 'string' then
    return ''
  end
  -- cjson reads JSON null as cjson.null, not nil.
  if headers['eta'] ~= nil and headers['eta'] ~= cjson.null then
    return ''
  end
  local record_key = record_prefix .. headers['id']
  local started_here = redis.call('EXISTS', record_key) == 0
  if started_here and not is_own(headers['task']) then
    return ''
  end
  local attempt = tonumber(headers['retries']) or 0
  local deliveries = redis.call('HINCRBY', record_key, 'deliveries:' .. attempt, 1)
  if started_here then
    redis.call('EXPIRE', record_key, record_ttl)
  end
  local revoked = redis.call('ZSCORE', revoked_set, headers['id']) and 1 or 0
  return deliveries .. ':' .. revoked .. ':' .. attempt .. ':' .. headers['id']
end

-- Files the message as in flight; returns its start check.
local function record(message)
  local ok, decoded = pcall(cjson.decode, message)
  if not ok or type(decoded) ~= 'table' then
    return ''
  end
  local properties = decoded['properties']
  if type(properties) ~= 'table' or type(properties['delivery_tag']) ~= 'string' then
    return ''
  end
  local info = properties['delivery_info']
  local exchange, routing_key = nil, nil
  if type(info) == 'table' then
    exchange, routing_key = info['exchange'], info['routing_key']
  end
  -- The message goes in as it came, not re-encoded: cjson would turn [] into {}.
  local tag = properties['delivery_tag']
  records[#records + 1] = tag
  records[#records + 1] = '[' .. message .. ',' .. cjson.encode(exchange) .. ','
    .. cjson.encode(routing_key) .. ']'
  scores[#scores + 1] = now
  scores[#scores + 1] = tag
  return start_check(decoded)
end

local function take(queue, message)
  taken = taken + 1
  reply[#reply + 1] = queue
  reply[#reply + 1] = message
  reply[#reply + 1] = record(message)
end

local function list_of(queue, step)
  return KEYS[first_list + step * queues + queue - 1]
end

if queues == 1 then
  -- One queue: take what is left of the limit from each step's list in turn.
  for step = 0, steps - 1 do
    if taken >= limit then
      break
    end
    local popped = redis.call('RPOP', list_of(1, step), limit - taken)
    if popped then
      for _, message in ipairs(popped) do
        take(1, message)
      end
    end
  end
else
  -- Several queues: one message at a time, as kombu's repeated BRPOP takes them:
  -- the first non-empty list by step, then by queue in round-robin order, the
  -- queue just taken from moving to the end (the consumer rotates its cycle alike).
  local order = {}
  for queue = 1, queues do
    order[queue] = queue
  end
  local function pop_one()
    for step = 0, steps - 1 do
      for position = 1, #order do
        local queue = order[position]
        local message = redis.call('RPOP', list_of(queue, step))
        if message then
          table.remove(order, position)
          order[#order + 1] = queue
          return queue, message
        end
      end
    end
    return nil, nil
  end
  while taken < limit do
    local queue, message = pop_one()
    if not queue then
      break
    end
    take(queue, message)
  end
end

if #records > 0 then
  redis.call('HSET', unacked, unpack(records))
  redis.call('ZADD', index, unpack(scores))
end

-- A wake key stands for "this queue may hold messages": set again where messages
-- remain, gone where the queue is empty (an idle queue leaves no key behind).
for queue = 1, queues do
  local lists = {}
  for step = 0, steps - 1 do
    lists[#lists + 1] = list_of(queue, step)
  end
  if redis.call('EXISTS', unpack(lists)) > 0 then
    redis.call('ZADD', KEYS[2 + queue], 0, wake_member)
    reply[1] = 1
  else
    redis.call('DEL', KEYS[2 + queue])
  end
end

return reply
