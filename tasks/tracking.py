"""The base class of taskrelay's tasks: start record, durable revoke, poison
detection, dead letters and metrics, each in a round trip the task makes anyway."""

from __future__ import annotations

import os
import time
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task, states
from celery.exceptions import Ignore

from tasks import deadletters, metrics, records
from tasks.connections import shared_client
from tasks.errors import PoisonTaskError
from tasks.names import public_name
from tasks.result_backend import GuardedRedisBackend

# An attempt started more often than this killed (or lost) its worker each time
# before; it is dead-lettered instead of being handed to yet another worker.
MAX_DELIVERIES_PER_ATTEMPT = 3
# A retry never runs sooner than this, in seconds: an attempt scheduled at once
# could finish before this one has stored RETRY, and RETRY would then hide its
# SUCCESS. Full jitter alone may draw a zero countdown.
MIN_RETRY_COUNTDOWN_S = 1.0


class TrackedTask(Task):  # type: ignore[misc]
    """Records when a task starts, refuses revoked and poison ones, dead-letters failures."""

    abstract = True

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.request.taskrelay_started_at = time.monotonic()
        hostname = self.request.hostname or ""
        start = records.mark_started(
            self._redis(),
            task_id,
            hostname,
            self.request.retries,
            self._started_meta(task_id, hostname),
        )
        # Celery's own revoke list lives in worker memory and is gone when every
        # worker restarts; the Redis set survives, so a revoke is durable.
        if start.revoked:
            self.backend.mark_as_revoked(task_id, "revoked", request=self.request)
            raise Ignore()
        if start.deliveries > MAX_DELIVERIES_PER_ATTEMPT:
            self._bury_poison(task_id, args, kwargs, start.deliveries - 1)

    def _started_meta(self, task_id: str, hostname: str) -> records.StartedMeta | None:
        """STARTED, stored with the start record (celeryconfig turns Celery's own off).

        On another result backend STARTED is stored the usual way, on its own.
        """
        state_meta = {"pid": os.getpid(), "hostname": hostname}
        if not isinstance(self.backend, GuardedRedisBackend):
            self.backend.store_result(task_id, state_meta, states.STARTED, request=self.request)
            return None
        return records.StartedMeta(
            key=self.backend.get_key_for_task(task_id),
            encoded=self.backend.encoded_meta(
                task_id, state_meta, states.STARTED, request=self.request
            ),
            ttl_s=self.backend.ttl_for(states.STARTED),
        )

    def retry(self, *args: Any, countdown: float | None = None, **options: Any) -> Any:
        if countdown is not None:
            countdown = max(countdown, MIN_RETRY_COUNTDOWN_S)
        return super().retry(*args, countdown=countdown, **options)

    def _bury_poison(
        self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], lost: int
    ) -> None:
        error = PoisonTaskError(f"the task was started {lost} times and its worker died each time")
        self._dead_letter(task_id, args, kwargs, error, traceback="")
        self.backend.mark_as_failure(task_id, error, traceback=None, request=self.request)
        raise Ignore()

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        # Called once retries are exhausted (or the error is not retryable):
        # the task will not run again by itself, so it becomes a dead letter.
        # Unless another delivery of it succeeded meanwhile: a host cut off from
        # Redis fails to store the result of a task that ran again elsewhere.
        if self._succeeded_elsewhere(task_id):
            return
        self._dead_letter(task_id, args, kwargs, exc, traceback=str(einfo))

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
        event = metrics.EVENT_OF_STATE.get(status)
        started_at = getattr(self.request, "taskrelay_started_at", None)
        if event is None or started_at is None:
            return
        name = public_name(self.name)
        with self._redis().pipeline(transaction=False) as pipe:
            if status in records.TERMINAL_STATES:
                records.mark_finished(pipe, task_id, status)
            metrics.count(pipe, name, event)
            metrics.observe_runtime(pipe, name, time.monotonic() - started_at)
            pipe.execute()

    def _dead_letter(
        self,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: BaseException,
        traceback: str,
    ) -> None:
        deadletters.add(
            self._redis(),
            task_id,
            {
                "id": task_id,
                "task": public_name(self.name),
                "args": list(args),
                "kwargs": kwargs,
                "error": {"type": type(error).__name__, "message": str(error)},
                "traceback": traceback,
                "retries": self.request.retries,
                "failed_at": records.utc_now_iso(),
            },
        )

    def _redis(self) -> Any:
        return shared_client(self.app.conf.taskrelay_redis_url)
