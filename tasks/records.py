"""Task records: what was submitted, and the one public view of a task's state.

The web writes a record when it accepts a task; the worker adds when it started
and whether it ended in the dead letters. The public state joins that record
with Celery's result meta, read as raw JSON so that nothing in the backend is
ever turned back into a Python object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from tasks import defaults, group_commit, json_text, keys, task_index
from tasks.celery_ext.result_backend import GUARDED_SET_FUNCTION, Command
from tasks.scripts import Script
from tasks.text import as_text

QUEUED = "QUEUED"
STARTED = "STARTED"
PROGRESS = "PROGRESS"
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
STATES = (QUEUED, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE, REVOKED)
TERMINAL_STATES = frozenset({SUCCESS, FAILURE, REVOKED})

# Celery's PENDING means "nothing known"; with a record it means accepted, not
# started. Every other Celery state keeps its name.
_FROM_CELERY = {"PENDING": QUEUED, "RECEIVED": QUEUED}

# A worker's start of a task, in one call. KEYS: 1 the record, 2 the revoked set, 3 the
# delayed tasks' set, 4 the result key (unused without a STARTED meta). ARGV: 1 started
# at, 2 worker, 3 the deliveries field of this attempt ('' when the fetch counted the
# delivery already), 4 the record's TTL, 5 the task id, 6 the STARTED meta ('' for
# none), 7 its TTL, 8 the index step (JSON; '' for none).
# Returns {deliveries of this attempt (0 when not counted), 1 if revoked else 0}.
_START = Script(
    task_index.LUA_STEPS
    + GUARDED_SET_FUNCTION
    + """
local revoked = redis.call('ZSCORE', KEYS[2], ARGV[5])
-- A revoked task does not run: it has no start time, nor a worker that ran it.
if not revoked then
    redis.call('HSET', KEYS[1], 'started_at', ARGV[1], 'worker', ARGV[2])
end
local deliveries = 0
if ARGV[3] ~= '' then
    deliveries = redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
-- A started countdown/eta task no longer counts against the cap (tasks/delayed.py).
redis.call('ZREM', KEYS[3], ARGV[5])
-- With the STARTED meta, the index moves only if it was stored (never over SUCCESS).
-- A revoked task is not shown STARTED: its start may be written after the revoke's
-- REVOKED (the write of a start deferred past its revoke), and it does not run on.
local stored = not revoked and (ARGV[6] == '' or guarded_set(KEYS[4], ARGV[6], ARGV[7]))
if stored and ARGV[8] ~= '' then
    local step = cjson.decode(ARGV[8])
    STEPS[step[1]](unpack(step, 2))
end
return {deliveries, revoked and 1 or 0}
"""
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


def save_submission(
    pipe: redis.client.Pipeline,
    task_id: str,
    *,
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    submitted_at: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Queue the commands that record an accepted task on a pipeline; return the record."""
    record_key = keys.task_record(task_id)
    fields: dict[str, str] = {
        "task": task,
        "args": json_text.dumps(args),
        "kwargs": json_text.dumps(kwargs),
        "submitted_at": submitted_at,
        **(extra or {}),
    }
    pipe.hset(record_key, mapping=fields)  # type: ignore[arg-type]
    pipe.expire(record_key, defaults.TASK_RECORD_TTL_S)
    # QUEUED in the indexes, its first history entry, its event and the accepted-tasks
    # counter, in one step.
    task_index.queue_step(
        pipe, task_index.submitted_command(task_id, task, datetime.fromisoformat(submitted_at))
    )
    return fields


def forget_submission(client: redis.Redis, task_id: str) -> None:
    """Undo save_submission, for a task whose message could not be sent."""
    name = client.hget(keys.task_record(task_id), "task")
    with client.pipeline() as pipe:
        pipe.delete(keys.task_record(task_id))
        for command in task_index.forget_commands(task_id, None if name is None else as_text(name)):
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        pipe.execute()


@dataclass(frozen=True)
class Start:
    revoked: bool
    # How many times this attempt (this retry number) has been started; more
    # than once means a worker died or lost its connection while running it.
    deliveries: int


@dataclass(frozen=True)
class StartedMeta:
    """Celery's STARTED result meta, to be stored with the start record."""

    key: str
    encoded: str
    ttl_s: int


def mark_started(
    client: redis.Redis,
    task_id: str,
    worker: str,
    attempt: int,
    started_meta: StartedMeta | None = None,
    *,
    name: str | None = None,
    count_delivery: bool = True,
    started_at: datetime | None = None,
) -> Start:
    """Record that a worker started the task (and its STARTED state), in one round trip.

    With its public ``name``, the task also moves to STARTED in the indexes: with
    the STARTED meta, so only if that was stored (never over SUCCESS). Without
    ``count_delivery`` (the fetch counted it) the delivery is not counted again.
    """
    started_at = started_at or datetime.now(UTC)
    index_step = (
        ""
        if name is None
        else json_text.dumps(
            task_index.moved_command(
                task_id, name, STARTED, retries=attempt, worker=worker, at=started_at
            )
        )
    )
    meta = started_meta or StartedMeta(key="", encoded="", ttl_s=0)
    with client.pipeline(transaction=False) as pipe:
        _START.queue(
            pipe,
            4,
            keys.task_record(task_id),
            keys.REVOKED,
            keys.DELAYED_TASKS,
            meta.key or keys.task_record(task_id),
            started_at.isoformat(),
            worker,
            keys.deliveries_field(attempt) if count_delivery else "",
            defaults.TASK_RECORD_TTL_S,
            task_id,
            meta.encoded,
            meta.ttl_s,
            index_step,
        )
        [(deliveries, revoked)] = pipe.execute()
    return Start(revoked=bool(revoked), deliveries=int(deliveries))


def started_commands(
    task_id: str,
    worker: str,
    attempt: int,
    started_at: datetime,
    *,
    name: str,
    moved_on: bool = False,
) -> list[Command]:
    """A start already checked at the fetch, written with the first state stored after it.

    What mark_started writes but the delivery count, the revoke check and the
    STARTED meta: the state stored with it replaces that meta anyway. ``moved_on``:
    that state's own step follows in the same script, so the start's step passes
    through the state sets (task_index.moved_command).
    """
    return [
        ["HSET", keys.task_record(task_id), "started_at", started_at.isoformat(), "worker", worker],
        ["EXPIRE", keys.task_record(task_id), str(defaults.TASK_RECORD_TTL_S)],
        task_index.moved_command(
            task_id, name, STARTED, retries=attempt, worker=worker, at=started_at, passing=moved_on
        ),
    ]


def may_be_running(state: str, record: dict[str, str]) -> bool:
    """Whether a worker may be running the task now: a revoke should then terminate it.

    A task a fetch took reads QUEUED for its first moments of running
    (tasks/celery_ext/deferred_start.py), but its delivery is counted already.
    """
    if state in (STARTED, PROGRESS, RETRY):
        return True
    return state == QUEUED and any(
        field.startswith(keys.DELIVERIES_FIELD_PREFIX) and value not in ("", "0")
        for field, value in record.items()
    )


def finished_command(task_id: str, state: str) -> list[str]:
    """Keep the final state in the record too: results may expire before records."""
    return ["HSET", keys.task_record(task_id), "state", state, "finished_at", utc_now_iso()]


def revoke(client: redis.Redis, task_id: str, name: str | None = None) -> None:
    """Remember a revoke durably, so that no worker, even a new one, runs the task.

    With its public ``name``, the task also moves to REVOKED in the indexes.
    """
    now = datetime.now(UTC).timestamp()
    with client.pipeline(transaction=False) as pipe:
        if name is not None:
            task_index.queue_step(pipe, task_index.moved_command(task_id, name, REVOKED))
        pipe.zadd(keys.REVOKED, {task_id: now})
        pipe.zrem(keys.DELAYED_TASKS, task_id)
        # A task older than its record cannot arrive any more; forget its revoke.
        pipe.zremrangebyscore(keys.REVOKED, 0, now - defaults.TASK_RECORD_TTL_S)
        pipe.execute()


def is_revoked(client: redis.Redis, task_id: str) -> bool:
    """Whether a revoke of the task is remembered (``revoke``)."""
    return client.zscore(keys.REVOKED, task_id) is not None


def read_raw(
    client: redis.Redis, results: redis.Redis, task_ids: list[str]
) -> list[tuple[dict[str, str], bytes | str | None]]:
    """Fetch records and raw result metas for many tasks in as few round trips as possible."""
    if results is client:
        with client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(keys.task_record(task_id))
                pipe.get(keys.celery_result(task_id))
            replies = pipe.execute()
        return [(_decode_hash(replies[i]), replies[i + 1]) for i in range(0, len(replies), 2)]
    with client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hgetall(keys.task_record(task_id))
        records = pipe.execute()
    metas = results.mget([keys.celery_result(t) for t in task_ids]) if task_ids else []
    return [(_decode_hash(r), m) for r, m in zip(records, metas, strict=True)]


@dataclass(frozen=True)
class RawTask:
    """One task as stored: its record, its raw result meta and its raw history entries."""

    record: dict[str, str]
    meta: bytes | str | None
    history: list[Any]


def read_one_raw(client: redis.Redis, results: redis.Redis, task_id: str) -> RawTask:
    """Record, result meta and history of one task: one round trip when results share Redis."""
    if results is not client:
        [(record, meta)] = read_raw(client, results, [task_id])
        return RawTask(record, meta, client.lrange(keys.task_history(task_id), 0, -1))
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.task_record(task_id))
        pipe.get(keys.celery_result(task_id))
        pipe.lrange(keys.task_history(task_id), 0, -1)
        # Reads of other requests that are ready at the same time share the round trip.
        record, meta, history = group_commit.execute(pipe)
    return RawTask(_decode_hash(record), meta, history)


def parse_history(raw_entries: list[Any]) -> list[dict[str, Any]]:
    """History entries as stored (JSON objects); anything else is skipped."""
    entries = []
    for raw in raw_entries:
        entry = _json_field(raw, None)
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def parse_meta(raw: bytes | str | None) -> dict[str, Any] | None:
    """Decode a raw Celery result meta; anything that is not a JSON object is ignored."""
    if raw is None:
        return None
    try:
        meta = json_text.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def document(task_id: str, record: dict[str, str], meta: dict[str, Any] | None) -> dict[str, Any]:
    """The public view of one task (GET /api/tasks/<id>)."""
    result_expired = meta is None and record.get("state") in TERMINAL_STATES
    if meta is None:
        # No result: not started yet, or finished and its result expired since.
        meta = {"status": record.get("state"), "date_done": record.get("finished_at")}
    state = _public_state(meta.get("status"))
    result = meta.get("result")
    return {
        "id": task_id,
        "task": record.get("task"),
        "state": state,
        "progress": progress_of(result) if state == PROGRESS else None,
        "result": result if state == SUCCESS else None,
        "error": _error(result, meta.get("traceback")) if state in (RETRY, FAILURE) else None,
        "retries": _int(meta.get("retries")),
        "dead_letter": record.get("dead_letter") == "1",
        "submitted_at": record.get("submitted_at"),
        "started_at": record.get("started_at"),
        "finished_at": meta.get("date_done") if state in TERMINAL_STATES else None,
        "worker": record.get("worker") or meta.get("worker"),
        "args": _json_field(record.get("args"), []),
        "kwargs": _json_field(record.get("kwargs"), {}),
        "replay_of": record.get("replay_of"),
        "result_expired": result_expired,
    }


def _public_state(celery_state: Any) -> str:
    if not isinstance(celery_state, str):
        return QUEUED
    state = _FROM_CELERY.get(celery_state, celery_state)
    return state if state in STATES else QUEUED


def progress_of(result: Any) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    return {
        "current": result.get("current"),
        "total": result.get("total"),
        "message": result.get("message"),
    }


def error_of(result: Any) -> dict[str, str]:
    """Type and message of a failure, from an exception or from its stored form."""
    if isinstance(result, BaseException):
        return {"type": type(result).__name__, "message": str(result)}
    if not isinstance(result, dict):
        return {"type": "Error", "message": str(result)}
    message = result.get("exc_message")
    if isinstance(message, list | tuple):
        message = " ".join(str(part) for part in message)
    return {"type": str(result.get("exc_type", "Error")), "message": str(message or "")}


def _error(result: Any, traceback: Any) -> dict[str, Any]:
    return {**error_of(result), "traceback": traceback if isinstance(traceback, str) else None}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _json_field(raw: bytes | str | None, fallback: Any) -> Any:
    if raw is None:
        return fallback
    try:
        return json_text.loads(raw)
    except ValueError:
        return fallback


def _decode_hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}
