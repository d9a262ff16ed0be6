"""The base class of taskrelay's tasks: started time, durable revoke, dead letters."""

from __future__ import annotations

from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task
from celery.exceptions import Ignore

from tasks import deadletters, records
from tasks.connections import shared_client
from tasks.names import public_name


class TrackedTask(Task):  # type: ignore[misc]
    """Records when a task starts, refuses revoked ones, dead-letters failures."""

    abstract = True

    def before_start(self, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Celery's own revoke list lives in worker memory and is gone when every
        # worker restarts; the Redis set survives, so a revoke is durable.
        if records.mark_started(self._redis(), task_id, self.request.hostname or ""):
            self.backend.mark_as_revoked(task_id, "revoked", request=self.request)
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
        deadletters.add(
            self._redis(),
            task_id,
            {
                "id": task_id,
                "task": public_name(self.name),
                "args": list(args),
                "kwargs": kwargs,
                "error": {"type": type(exc).__name__, "message": str(exc)},
                "traceback": str(einfo),
                "retries": self.request.retries,
                "failed_at": records.utc_now_iso(),
            },
        )

    def _redis(self) -> Any:
        return shared_client(self.app.conf.taskrelay_redis_url)
