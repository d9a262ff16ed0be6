"""The task indexes: every task by submission time, per name, per state and per
(state, name), plus ids in id order for prefix search; a task's state history and
the stream of state changes; the per-minute figures behind the stats.

All of it is written by two small Lua steps that run inside round trips a task
makes anyway: "submitted" in the submission pipeline, "moved" with every state the
result backend stores (result_backend.GUARDED_SET runs it) and with the start
record. A step reads the task's current index state from its record, so a move
needs no reading round trip and lands in exactly one state set. Every set is
bounded by the record TTL: entries older than it are trimmed by one write in
sixteen, a write renews the set's expiry once less than the TTL is left, and
reads count only the entries still within it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks import defaults, json_text, keys, metrics
from tasks.scripts import Script
from tasks.text import as_text

SUBMITTED_STEP = "taskrelay:task-submitted"
MOVED_STEP = "taskrelay:task-moved"
# Sets are trimmed by the writes of ids ending in this character (uuid4 ids: one
# in sixteen), so that trimming costs little per write; reads skip what is older.
TRIM_SAMPLE = "0"
# Expired ids removed from the time and id-order sets per trimming submission
# (one in sixteen submissions removes up to 64: more than they add).
TRIM_BATCH = 64
# Extra entries read per page, so that ties on the cursor's score rarely need a
# second read.
TIE_SLACK = 8
# A shared index set is given this much more than the record TTL when its expiry is
# renewed, so that it is renewed about once in this many seconds rather than on every
# write (see renew in the steps).
RENEWAL_SLACK_S = 3600
ALL = "all"
# States, as records.STATES (records imports this module, not the other way).
STATES = ("QUEUED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED")

Command = list[str]


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a double-quoted ASCII string reads the same in Lua


_BOUNDS = ", ".join(repr(b) for b in metrics.RUNTIME_BUCKETS_S)
_BOUND_NAMES = ", ".join(_lua_string(str(b)) for b in metrics.RUNTIME_BUCKETS_S)

# Defines STEPS, a table from step name to function, for a script to call. Kept
# short (see _compact): Redis hashes it whenever it is sent whole.
_LUA_STEPS = f"""
local TTL = {defaults.TASK_RECORD_TTL_S}
local RENEWAL_SLACK = {RENEWAL_SLACK_S}
local TRIM_SAMPLE = {_lua_string(TRIM_SAMPLE)}
local RECORD = {_lua_string(keys.task_record(""))}
local ALL = {_lua_string(keys.TASK_INDEX)}
local IDS = {_lua_string(keys.TASK_IDS)}
local BY_NAME = {_lua_string(keys.TASK_NAME_INDEX_PREFIX)}
local BY_STATE = {_lua_string(keys.TASK_STATE_INDEX_PREFIX)}
local BY_STATE_NAME = {_lua_string(keys.TASK_STATE_NAME_INDEX_PREFIX)}
local HISTORY = {_lua_string(keys.TASK_HISTORY_PREFIX)}
local HISTORY_MAX = {defaults.TASK_HISTORY_MAX_ENTRIES}
local EVENTS = {_lua_string(keys.TASK_EVENTS)}
local EVENTS_MAX = {defaults.TASK_EVENTS_MAX_ENTRIES}
local STATS = {_lua_string(keys.TASK_STATS_PREFIX)}
local STATS_BUCKET = {defaults.TASK_STATS_BUCKET_S}
local STATS_TTL = {defaults.TASK_STATS_TTL_S}
local COUNTERS = {_lua_string(keys.METRICS_TASK_EVENTS)}
local SUBMITTED = {_lua_string("|" + metrics.SUBMITTED)}
local BOUNDS = {{{_BOUNDS}}}
local BOUND_NAMES = {{{_BOUND_NAMES}}}

-- Trimming is amortized: done by the writes of ids ending in TRIM_SAMPLE (one in
-- sixteen); reads never count what is older than TTL anyway.
local function trims(id)
    return string.sub(id, -1) == TRIM_SAMPLE
end

-- A shared set must outlive its last write by TTL. Renewed only once less than that
-- is left, to TTL plus RENEWAL_SLACK: a TTL read per write, an EXPIRE (and its line in
-- the append-only file) about once per RENEWAL_SLACK per set.
local function renew(key)
    if redis.call('TTL', key) < TTL then redis.call('EXPIRE', key, TTL + RENEWAL_SLACK) end
end

local function keep(key, score, id, cutoff)
    redis.call('ZADD', key, score, id)
    if trims(id) then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. cutoff) end
    renew(key)
end

local function bucket_of(seconds)
    for i = 1, #BOUNDS do
        if seconds <= BOUNDS[i] then return BOUND_NAMES[i] end
    end
    return '+Inf'
end

local function add_stat(at, field)
    local key = STATS .. string.format('%d', math.floor(at / STATS_BUCKET) * STATS_BUCKET)
    if redis.call('HINCRBY', key, field, 1) == 1 then redis.call('EXPIRE', key, STATS_TTL) end
end

-- The history lives as long as the record: both are given a TTL at submission
-- and again at the start.
local function record_event(id, entry, event, replace_last, renew)
    local history = HISTORY .. id
    if replace_last and redis.call('LLEN', history) > 0 then
        redis.call('LSET', history, -1, entry)
    elseif redis.call('RPUSH', history, entry) > HISTORY_MAX then
        redis.call('LTRIM', history, -HISTORY_MAX, -1)
    end
    if renew then redis.call('EXPIRE', history, TTL) end
    redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAX, '*', 'data', event)
end

local function submitted(id, name, score, entry, event)
    local cutoff = tonumber(score) - TTL
    if trims(id) then
        local expired = redis.call(
            'ZRANGE', ALL, '-inf', '(' .. cutoff, 'BYSCORE', 'LIMIT', 0, {TRIM_BATCH})
        if #expired > 0 then
            redis.call('ZREM', IDS, unpack(expired))
            redis.call('ZREM', ALL, unpack(expired))
        end
    end
    redis.call('ZADD', ALL, score, id)
    renew(ALL)
    redis.call('ZADD', IDS, 0, id)
    renew(IDS)
    keep(BY_NAME .. name, score, id, cutoff)
    -- QUEUED, or the state the task reached before this step ran (see moved).
    local pending = redis.call('HGET', RECORD .. id, 'index_pending')
    local state = pending or 'QUEUED'
    keep(BY_STATE .. state, score, id, cutoff)
    keep(BY_STATE_NAME .. state .. ':' .. name, score, id, cutoff)
    redis.call('HSET', RECORD .. id, 'index_state', state, 'index_score', score)
    if pending then
        -- The stream has told its later states already; QUEUED goes first in its history.
        redis.call('LPUSH', HISTORY .. id, entry)
        redis.call('EXPIRE', HISTORY .. id, TTL)
    else
        record_event(id, entry, event, false, true)
    end
    -- The accepted-tasks counter (tasks/metrics.py) here, not a command of its own
    -- on the submission's MULTI: each costs the web ~90k instructions of redis-py.
    redis.call('HINCRBY', COUNTERS, name .. SUBMITTED, 1)
end

-- A state that passes (``passing`` '1': a start written with the state that follows
-- it in the same script) gets its history entry, event and stats, but leaves the
-- task where it is in the state sets, which the next step moves at once.
local function moved(id, name, state, at, entry, event, run_s, passing)
    local found = redis.call(
        'HMGET', RECORD .. id, 'index_state', 'index_score', 'index_pending', 'task')
    local old, score, pending = found[1], found[2], found[3]
    local now = tonumber(at)
    if not old or not score then
        -- No record (expired, or sent without one); or a record whose submission step
        -- has not run yet: Redis answered it NOSCRIPT inside the submission's MULTI/EXEC,
        -- which sends it again right after, and a worker was quicker. That step indexes
        -- the task in the state kept here; the history and the stream get it now.
        if not found[4] or (pending == 'SUCCESS' and state ~= 'SUCCESS') then return end
        redis.call('HSET', RECORD .. id, 'index_pending', state)
        old = pending
    elseif old == 'SUCCESS' and state ~= 'SUCCESS' then
        return  -- SUCCESS, which nothing overwrites
    elseif old ~= state and passing ~= '1' then
        redis.call('ZREM', BY_STATE .. old, id)
        redis.call('ZREM', BY_STATE_NAME .. old .. ':' .. name, id)
        keep(BY_STATE .. state, score, id, now - TTL)
        keep(BY_STATE_NAME .. state .. ':' .. name, score, id, now - TTL)
        redis.call('HSET', RECORD .. id, 'index_state', state)
    end
    record_event(id, entry, event, old == 'PROGRESS' and state == 'PROGRESS', state == 'STARTED')
    if state == 'STARTED' and old == 'QUEUED' and score then
        add_stat(now, name .. '|wait|' .. bucket_of(now - tonumber(score)))
    elseif state == 'SUCCESS' or state == 'FAILURE' then
        add_stat(now, name .. (state == 'SUCCESS' and '|succeeded' or '|failed'))
        if run_s ~= '' then add_stat(now, name .. '|run|' .. bucket_of(tonumber(run_s))) end
    end
end

local STEPS = {{[{_lua_string(SUBMITTED_STEP)}] = submitted, [{_lua_string(MOVED_STEP)}] = moved}}
"""


def _compact(lua: str) -> str:
    """The script without indentation and blank lines (Lua needs neither)."""
    return "\n".join(line.strip() for line in lua.splitlines() if line.strip())


LUA_STEPS = _compact(_LUA_STEPS)
# One step on its own, for a pipeline: ARGV[1] is the step, the rest its arguments.
STEP_SCRIPT = LUA_STEPS + "\nSTEPS[ARGV[1]](unpack(ARGV, 2))\nreturn 1\n"
STEP = Script(STEP_SCRIPT)


# -- writing (the steps' arguments) --


def submitted_command(task_id: str, name: str, submitted_at: datetime) -> Command:
    """The "submitted" step of a new task: QUEUED in every index it belongs to."""
    entry, event = _entry_and_event(task_id, name, "QUEUED", submitted_at.isoformat())
    return [SUBMITTED_STEP, task_id, name, repr(submitted_at.timestamp()), entry, event]


def moved_command(
    task_id: str,
    name: str,
    state: str,
    *,
    retries: int = 0,
    worker: str | None = None,
    error: dict[str, str] | None = None,
    progress: dict[str, Any] | None = None,
    run_s: float | None = None,
    at: datetime | None = None,
    passing: bool = False,
) -> Command:
    """The "moved" step: the task is now in ``state`` (its run time, when it ended).

    ``at``: when it moved, if not now (a start written with the state that follows it).
    ``passing``: a later step of the same script moves the task on, so this one
    leaves the state sets as they are: no reader could see it there.
    """
    now = at or datetime.now(UTC)
    entry, event = _entry_and_event(
        task_id,
        name,
        state,
        now.isoformat(),
        retries=retries,
        worker=worker,
        error=error,
        progress=progress,
    )
    run = "" if run_s is None else repr(run_s)
    step = [MOVED_STEP, task_id, name, state, repr(now.timestamp()), entry, event, run]
    return [*step, "1"] if passing else step


def queue_step(pipe: Any, command: Command) -> None:
    """Run one step on a pipeline (or a MULTI/EXEC), by digest (tasks/scripts.py)."""
    STEP.queue(pipe, 0, *command)


# json.dumps builds an encoder on every call given options; each task writes six
# entries and events, so one encoder serves them all (the same text) where orjson's
# text would read back otherwise (tasks/json_text.py).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _entry_and_event(
    task_id: str,
    name: str,
    state: str,
    at: str,
    *,
    retries: int = 0,
    worker: str | None = None,
    error: dict[str, str] | None = None,
    progress: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """The history entry and the stream event of one state, as JSON."""
    common = {"state": state, "at": at, "retries": retries, "progress": progress, "worker": worker}
    entry = json_text.dumps({**common, "error": error}, _compact_json)
    event = json_text.dumps({"id": task_id, "task": name, **common}, _compact_json)
    return entry, event


def forget_commands(task_id: str, name: str | None) -> list[Command]:
    """Undo the "submitted" step, for a task whose message could not be sent."""
    commands: list[Command] = [
        ["ZREM", keys.TASK_INDEX, task_id],
        ["ZREM", keys.TASK_IDS, task_id],
        ["ZREM", keys.task_state_index("QUEUED"), task_id],
        ["DEL", keys.task_history(task_id)],
    ]
    if name is not None:
        commands.append(["ZREM", keys.task_name_index(name), task_id])
        commands.append(["ZREM", keys.task_state_name_index("QUEUED", name), task_id])
    return commands


# -- reading --


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: its last task's submission score and id (ties go by id)."""

    score: float
    task_id: str

    def encode(self) -> str:
        raw = f"{self.score!r} {self.task_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor a page handed out, or None if ``text`` is not one."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            score_text, task_id = raw.split(" ", 1)
            score = float(score_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not task_id or len(task_id) > 64 or score != score:  # NaN
            return None
        return cls(score, task_id)


@dataclass(frozen=True)
class Query:
    state: str | None = None
    name: str | None = None
    prefix: str | None = None
    cursor: Cursor | None = None
    limit: int = 50


@dataclass(frozen=True)
class Page:
    task_ids: list[str]
    next_cursor: Cursor | None
    counts: dict[str, int]


def index_key(state: str | None, name: str | None) -> str:
    if state is not None and name is not None:
        return keys.task_state_name_index(state, name)
    if state is not None:
        return keys.task_state_index(state)
    if name is not None:
        return keys.task_name_index(name)
    return keys.TASK_INDEX


def read_page(client: Any, query: Query, now_s: float) -> Page:
    """Newest first from the index the filters name, with the counts, in few round trips."""
    since = repr(now_s - defaults.TASK_RECORD_TTL_S)
    key = index_key(query.state, query.name)
    with client.pipeline(transaction=False) as pipe:
        _queue_counts(pipe, query.name, since)
        if query.prefix is None:
            _queue_range(pipe, key, query.cursor, since, 0, query.limit + 1 + TIE_SLACK)
        else:
            pipe.zrange(
                keys.TASK_IDS,
                f"[{query.prefix}",
                f"({query.prefix}\xff",
                bylex=True,
                offset=0,
                num=defaults.TASK_SEARCH_MAX_MATCHES,
            )
        replies = pipe.execute()
    counts = _counts(replies[: len(STATES) + 1])
    if query.prefix is None:
        rows = _after_cursor(client, key, query, since, replies[-1])
    else:
        rows = _matching(client, key, query, float(since), replies[-1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = Cursor(rows[-1][1], rows[-1][0]) if more and rows else None
    return Page([task_id for task_id, _ in rows], next_cursor, counts)


def read_counts(client: Any, name: str | None, now_s: float) -> dict[str, int]:
    since = repr(now_s - defaults.TASK_RECORD_TTL_S)
    with client.pipeline(transaction=False) as pipe:
        _queue_counts(pipe, name, since)
        return _counts(pipe.execute())


def _queue_counts(pipe: Any, name: str | None, since: str) -> None:
    for state in STATES:
        pipe.zcount(index_key(state, name), since, "+inf")
    pipe.zcount(index_key(None, name), since, "+inf")


def _counts(replies: list[Any]) -> dict[str, int]:
    counts = {state: int(n) for state, n in zip(STATES, replies, strict=False)}
    counts[ALL] = int(replies[len(STATES)])
    return counts


def _queue_range(
    pipe: Any, key: str, cursor: Cursor | None, since: str, offset: int, num: int
) -> None:
    top = "+inf" if cursor is None else repr(cursor.score)
    pipe.zrange(key, top, since, desc=True, byscore=True, offset=offset, num=num, withscores=True)


def _is_after(cursor: Cursor | None, task_id: str, score: float) -> bool:
    """Whether an entry comes after the cursor, newest first (equal scores by id, descending)."""
    if cursor is None:
        return True
    return score < cursor.score or (score == cursor.score and task_id < cursor.task_id)


def _after_cursor(
    client: Any, key: str, query: Query, since: str, first: list[Any]
) -> list[tuple[str, float]]:
    wanted, chunk = query.limit + 1, query.limit + 1 + TIE_SLACK
    rows: list[tuple[str, float]] = []
    offset, reply = 0, first
    while True:
        for member, score in reply:
            task_id = as_text(member)
            if _is_after(query.cursor, task_id, float(score)):
                rows.append((task_id, float(score)))
                if len(rows) == wanted:
                    return rows
        if len(reply) < chunk:
            return rows
        # Many ties on the cursor's score: read on past them.
        offset += chunk
        with client.pipeline(transaction=False) as pipe:
            _queue_range(pipe, key, query.cursor, since, offset, chunk)
            [reply] = pipe.execute()


def _matching(
    client: Any, key: str, query: Query, since: float, matches: list[Any]
) -> list[tuple[str, float]]:
    """Ids with the prefix that are in the filtered index, newest first, after the cursor."""
    task_ids = [as_text(m) for m in matches]
    if not task_ids:
        return []
    scores = client.zmscore(key, task_ids)
    rows = [
        (task_id, float(score))
        for task_id, score in zip(task_ids, scores, strict=True)
        if score is not None and float(score) >= since
    ]
    rows = [row for row in rows if _is_after(query.cursor, row[0], row[1])]
    rows.sort(key=lambda row: (row[1], row[0]), reverse=True)
    return rows[: query.limit + 1]
