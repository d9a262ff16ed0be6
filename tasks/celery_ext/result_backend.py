"""Celery's Redis result backend, with its "never overwrite SUCCESS" rule made atomic.

Celery stores a state by reading the current meta, then writing the new one if the
old was not SUCCESS: two round trips, and a window in which a late RETRY from an
earlier attempt can overwrite the SUCCESS of the next. Here one Lua script does the
check, the write and the PUBLISH that live task events follow, in one round trip.

A task may also name commands that belong with the state it ends in (its record's
final state, its metrics, its dead letter): they run in the same script, only if the
state was stored, so nobody ever sees FAILURE without its dead letter, and a
failure that lost the race to a SUCCESS stored elsewhere leaves no dead letter.
A command may also be one of the task index's Lua steps (tasks/task_index.py),
named by its first word.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol

from celery import states
from celery.backends.base import BackendStoreError
from celery.backends.redis import RedisBackend

from tasks import json_text, redis_packing, task_index
from tasks.celery_ext import result_pipe
from tasks.text import as_text

# Defines guarded_set(key, meta, ttl) for a script to call: stores the meta for ttl
# seconds (0: forever) and publishes it, unless the key holds a SUCCESS already.
# Returns whether it stored. Also the start record's (tasks/records.py).
GUARDED_SET_FUNCTION = """
local function guarded_set(key, meta, ttl)
    local current = redis.call('GET', key)
    if current then
        local ok, decoded = pcall(cjson.decode, current)
        if ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS' then
            return false
        end
    end
    ttl = tonumber(ttl)
    if ttl > 0 then
        redis.call('SET', key, meta, 'EX', ttl)
    else
        redis.call('SET', key, meta)
    end
    redis.call('PUBLISH', key, meta)
    return true
end
"""

# KEYS[1]: the result key. ARGV[1]: the encoded meta; ARGV[2]: seconds to keep it
# (0: forever); ARGV[3]: the commands to run once it is stored, one JSON array of
# them, each an array of strings: a Redis command, or a task index step.
# Returns 1 if stored, 0 if a SUCCESS was there already.
GUARDED_SET = (
    task_index.LUA_STEPS
    + GUARDED_SET_FUNCTION
    + """
if not guarded_set(KEYS[1], ARGV[1], ARGV[2]) then
    return 0
end
for _, command in ipairs(cjson.decode(ARGV[3])) do
    local step = STEPS[command[1]]
    if step then
        step(unpack(command, 2))
    else
        redis.call(unpack(command))
    end
end
return 1
"""
)

# The content type of the json serializer, the one this project configures for results.
JSON_CONTENT_TYPE = "application/json"

BACKEND_PATH = "tasks.celery_ext.result_backend:GuardedRedisBackend"
PUBLISH_ONLY_BACKEND_PATH = "tasks.celery_ext.result_backend:PublishOnlyRedisBackend"

# One Redis command, as its words: ["HSET", key, field, value].
Command = list[str]


class StoredStateCommands(Protocol):
    """A task that has commands to run, atomically, with a state stored for it."""

    def commands_with_state(
        self, task_id: str, state: str, result: Any, traceback: Any, request: Any
    ) -> list[Command]: ...


class GuardedRedisBackend(RedisBackend):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guarded_set_script: Any = None
        redis_packing.add_packer(self.connparams)

    def encoded_meta(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None
    ) -> str:
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = as_text(task_id)
        encoded: str = (
            # orjson's text where it reads back as the serializer's (tasks/json_text.py).
            json_text.dumps(meta, otherwise=self.encode)
            if self.content_type == JSON_CONTENT_TYPE
            else self.encode(meta)
        )
        if len(encoded) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        return encoded

    def ttl_for(self, state: str) -> int:
        expires = self.failure_expires if state == states.FAILURE else self.expires
        return int(expires or 0)

    def guarded_set_script(self) -> Any:
        if self._guarded_set_script is None:
            self._guarded_set_script = self.client.register_script(GUARDED_SET)
        return self._guarded_set_script

    def guarded_set_words(
        self, task_id: str, encoded: str, state: str, then: Sequence[Command]
    ) -> list[Any]:
        """The script's key count, key and arguments, as EVALSHA takes them."""
        # One JSON text for all the commands: a task's end carries about nine.
        commands = json_text.dumps(then)
        return [1, self.get_key_for_task(task_id), encoded, self.ttl_for(state), commands]

    def guarded_set(
        self,
        task_id: str,
        encoded: str,
        state: str,
        client: Any = None,
        then: Sequence[Command] = (),
    ) -> Any:
        """Store a meta unless SUCCESS is stored already, then run ``then``; pipelines too."""
        _, key, *args = self.guarded_set_words(task_id, encoded, state, then)
        return self.guarded_set_script()(keys=[key], args=args, client=client or self.client)

    def _commands_with_state(
        self, task_id: str, state: str, result: Any, traceback: Any, request: Any
    ) -> list[Command]:
        task = self.app.tasks.get(getattr(request, "task", None) or "")
        if not hasattr(task, "commands_with_state"):
            return []
        tracked: StoredStateCommands = task
        return tracked.commands_with_state(task_id, state, result, traceback, request)

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        encoded = self.encoded_meta(task_id, result, state, traceback, request)
        then = self._commands_with_state(task_id, state, result, traceback, request)
        pipe = result_pipe.active()
        if pipe is not None and pipe.takes(state, request):
            pipe.send(result_pipe.Sent(task_id, encoded, state, then))
            return result
        self.ensure(partial(self.guarded_set, then=then), (task_id, encoded, state))
        return result


class PublishOnlyRedisBackend(GuardedRedisBackend):
    """For processes that send tasks and read results by key, never by AsyncResult.get().

    Celery's Redis backend subscribes to every sent task's result channel so that
    ``.get()`` can wait on it; a process that never reads that subscription only
    grows an unread buffer in Redis until Redis drops the connection.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None
