"""The base class of taskrelay's tasks: start record, durable revoke, poison
detection, dead letters and metrics, each in a round trip the task makes anyway:
the revoke and poison checks in the fetch that took the message (or, where it made
none, a start script of their own), the start record with the first state stored
after it (tasks/celery_ext/deferred_start.py), the end in the script that stores
the final state."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task, states
from celery.exceptions import Ignore

from tasks import deadletters, delayed, metrics, records, task_index
from tasks.celery_ext import deferred_start, settings_once, start_check
from tasks.celery_ext.result_backend import Command, GuardedRedisBackend
from tasks.connections import run_pipelined, shared_client
from tasks.errors import PoisonTaskError
from tasks.names import public_name
from tasks.workflows import hooks as workflow_hooks

# An attempt started more often than this killed (or lost) its worker each time
# before; it is dead-lettered instead of being handed to yet another worker.
MAX_DELIVERIES_PER_ATTEMPT = 3
# A retry never runs sooner than this, in seconds: an attempt scheduled at once
# could finish before this one has stored RETRY, and RETRY would then hide its
# SUCCESS. Full jitter alone may draw a zero countdown.
MIN_RETRY_COUNTDOWN_S = 1.0
# The states a worker stores that move a task in the indexes (STARTED goes with
# the start record instead, in records.mark_started).
INDEXED_STATES = frozenset(
    {records.PROGRESS, records.RETRY, records.SUCCESS, records.FAILURE, records.REVOKED}
)
_ERROR_STATES = frozenset({records.RETRY, records.FAILURE})


class TrackedTask(Task):  # type: ignore[misc]
    """Records when a task starts, refuses revoked and poison ones, dead-letters failures."""

    abstract = True

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        request = self.request
        request.taskrelay_started_at = time.monotonic()
        started_at = datetime.now(UTC)
        checked = start_check.of_request(request)
        # Deferred: the fetch checked the task, and its record goes with its next state.
        deferred = checked is not None and isinstance(self.backend, GuardedRedisBackend)
        if checked is None:
            start = self._write_start(task_id, request, started_at, count_delivery=True)
        else:
            start = records.Start(revoked=checked.revoked, deliveries=checked.deliveries)
            if not deferred:  # another result backend: the record and STARTED go now
                written = self._write_start(task_id, request, started_at, count_delivery=False)
                start = replace(start, revoked=start.revoked or written.revoked)
        # Celery's own revoke list lives in worker memory and is gone when every
        # worker restarts; the Redis set survives, so a revoke is durable.
        if start.revoked:
            self.backend.mark_as_revoked(task_id, "revoked", request=request)
            workflow_hooks.step_ended(self.app, request, states.REVOKED)
            raise Ignore()
        if start.deliveries > MAX_DELIVERIES_PER_ATTEMPT:
            self._bury_poison(task_id, args, kwargs, start.deliveries - 1)
        if deferred:
            pending = deferred_start.PendingStart(
                partial(self._write_start, task_id, request, started_at, count_delivery=False)
            )
            request.taskrelay_pending_start = (pending, started_at)
            deferred_start.defer(pending)

    def _write_start(
        self, task_id: str, request: Any, started_at: datetime, *, count_delivery: bool
    ) -> records.Start:
        """The start record and STARTED, alone, in one round trip (any thread)."""
        hostname = request.hostname or ""
        return records.mark_started(
            self._redis(),
            task_id,
            hostname,
            request.retries,
            self._started_meta(task_id, hostname, request),
            name=public_name(self.name),
            count_delivery=count_delivery,
            started_at=started_at,
        )

    def _started_meta(
        self, task_id: str, hostname: str, request: Any
    ) -> records.StartedMeta | None:
        """STARTED, stored with the start record (celeryconfig turns Celery's own off).

        On another result backend STARTED is stored the usual way, on its own.
        """
        state_meta = {"pid": os.getpid(), "hostname": hostname}
        if not isinstance(self.backend, GuardedRedisBackend):
            self.backend.store_result(task_id, state_meta, states.STARTED, request=request)
            return None
        return records.StartedMeta(
            key=self.backend.get_key_for_task(task_id),
            encoded=self.backend.encoded_meta(task_id, state_meta, states.STARTED, request=request),
            ttl_s=self.backend.ttl_for(states.STARTED),
        )

    def _claim_deferred_start(
        self, task_id: str, request: Any, *, moved_on: bool = False
    ) -> list[Command]:
        """The start record, if it is still to be written: then with the caller's state
        (``moved_on``: whose index step follows it)."""
        pending_start = getattr(request, "taskrelay_pending_start", None)
        if pending_start is None:
            return []
        pending, started_at = pending_start
        if not pending.claim():
            return []
        return records.started_commands(
            task_id,
            getattr(request, "hostname", None) or "",
            int(getattr(request, "retries", 0) or 0),
            started_at,
            name=public_name(self.name),
            moved_on=moved_on,
        )

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's retry, counted against the cap on delayed tasks until it starts.

        The retried message waits in a worker's memory until it is due, as a
        countdown submitted over HTTP does (tasks/delayed.py). It is counted once
        sent, with one ZADD, and past the cap too: failing a running task would
        cost more than the one message it holds (docs/decisions.md).
        """
        if countdown is not None:
            countdown = max(countdown, MIN_RETRY_COUNTDOWN_S)
        elif eta is None:
            countdown = self.default_retry_delay
        sent = super().retry(args, kwargs, exc, False, eta, countdown, max_retries, **options)
        now_s = time.time()
        due_s = eta.timestamp() if eta is not None else now_s + (countdown or 0)
        # An eager retry sent nothing; a retry due now waits nowhere.
        if not self.request.is_eager and due_s > now_s:
            delayed.count_sent(self._redis(), self.request.id, due_s)
        if throw:
            raise sent
        return sent

    def _bury_poison(
        self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], lost: int
    ) -> None:
        error = PoisonTaskError(f"the task was started {lost} times and its worker died each time")
        self.backend.mark_as_failure(task_id, error, traceback=None, request=self.request)
        if not _ending_stored(self.request):
            self._write(self._dead_letter_commands(task_id, args, kwargs, error, traceback=""))
        workflow_hooks.step_ended(self.app, self.request, states.FAILURE)
        raise Ignore()

    def commands_with_state(
        self, task_id: str, state: str, result: Any, traceback: Any, request: Any
    ) -> list[Command]:
        """What the result backend stores atomically with a state (see result_backend).

        The task's move in the indexes (every state); its final state in its record,
        its metrics and, for FAILURE, its dead letter go in the script that stores
        the state: one round trip, and never a FAILURE without its dead letter.
        """
        index_step = self._index_commands(task_id, state, result, request)
        moved = self._claim_deferred_start(task_id, request, moved_on=bool(index_step))
        moved += index_step
        commands = self._ending_commands(task_id, state, request)
        if not commands:
            return moved
        commands = moved + commands
        if state == states.FAILURE:
            commands += self._dead_letter_commands(
                task_id, request.args, request.kwargs, result, traceback or ""
            )
        # A workflow step's result or failure, for its workflow (tasks/workflows/).
        for_workflow = workflow_hooks.commands_with_state(request, state, result)
        if for_workflow:
            # step_ended reads them back at once, on another connection: this end
            # must be stored before the store returns (tasks/celery_ext/result_pipe.py).
            request.taskrelay_end_read_after = True
        commands += for_workflow
        request.taskrelay_ending_stored = True
        return commands

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        # Without GuardedRedisBackend (another result backend, or results ignored)
        # the dead letter did not go with FAILURE; it is written here instead. A
        # host cut off from Redis may fail a task that meanwhile ran again and
        # succeeded elsewhere: that one is no dead letter.
        if _ending_stored(self.request) or self._succeeded_elsewhere(task_id):
            return
        self._write(self._dead_letter_commands(task_id, args, kwargs, exc, str(einfo)))

    def _succeeded_elsewhere(self, task_id: str) -> bool:
        if not isinstance(self.backend, GuardedRedisBackend):
            return False
        meta = records.parse_meta(self.backend.get(self.backend.get_key_for_task(task_id)))
        return meta is not None and meta.get("status") == states.SUCCESS

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo | None,
    ) -> None:
        # A start no stored state took (results not stored, say) is written now.
        commands = self._claim_deferred_start(task_id, self.request)
        if not _ending_stored(self.request):
            commands += self._ending_commands(task_id, status, self.request)
            commands += workflow_hooks.commands_with_state(self.request, status, retval)
        self._write(commands)
        # A workflow step settles its workflow and sends the steps it made ready.
        workflow_hooks.step_ended(self.app, self.request, status)

    def _index_commands(self, task_id: str, state: str, result: Any, request: Any) -> list[Command]:
        """The task index's step for a stored state: its sets, history, event and stats."""
        if state not in INDEXED_STATES:
            return []
        started_at = getattr(request, "taskrelay_started_at", None)
        run_s = None
        if state in records.TERMINAL_STATES and started_at is not None:
            run_s = time.monotonic() - started_at
        return [
            task_index.moved_command(
                task_id,
                public_name(self.name),
                state,
                retries=int(getattr(request, "retries", 0) or 0),
                worker=getattr(request, "hostname", None) or None,
                error=records.error_of(result) if state in _ERROR_STATES else None,
                progress=records.progress_of(result) if state == records.PROGRESS else None,
                run_s=run_s,
            )
        ]

    def _ending_commands(self, task_id: str, state: str, request: Any) -> list[Command]:
        """The record's final state and the metrics of an attempt that ended in ``state``."""
        event = metrics.EVENT_OF_STATE.get(state)
        started_at = getattr(request, "taskrelay_started_at", None)
        if event is None or started_at is None:
            return []
        name = public_name(self.name)
        commands: list[Command] = [metrics.count_command(name, event)]
        commands += metrics.runtime_commands(name, time.monotonic() - started_at)
        if state in records.TERMINAL_STATES:
            commands.append(records.finished_command(task_id, state))
        return commands

    def _dead_letter_commands(
        self,
        task_id: str,
        args: Any,
        kwargs: Any,
        error: Any,
        traceback: str,
    ) -> list[Command]:
        entry = {
            "id": task_id,
            "task": public_name(self.name),
            "args": list(args or ()),
            "kwargs": dict(kwargs or {}),
            "error": records.error_of(error),
            "traceback": traceback,
            "retries": self.request.retries,
            "failed_at": records.utc_now_iso(),
        }
        return deadletters.add_commands(task_id, entry)

    def _write(self, commands: list[Command]) -> None:
        run_pipelined(self._redis(), commands)

    def _redis(self) -> Any:
        return shared_client(settings_once.get(self.app, "taskrelay_redis_url"))


def _ending_stored(request: Any) -> bool:
    """Whether the result backend already wrote how this attempt ended, with its state."""
    return bool(getattr(request, "taskrelay_ending_stored", False))
