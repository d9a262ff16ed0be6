"""The thread that keeps an inline worker alive while its task runs.

The inline pool (tasks/celery_ext/inline_pool.py) runs each task in the worker's
main thread, where the event loop runs too; while a task runs, the loop's timers
wait. The keeper is one thread that covers for them for as long as a task runs:

- the loop's duties: every repeating step (lease renewal, the liveness beacon)
  and Flower's heartbeat registers here too, and the keeper runs each one at its
  interval while a task runs, so a long task loses neither its messages' leases nor
  its worker's place in ``/readyz``, ``GET /api/workers`` and Flower;
- the task's limits, as the prefork pool's timer enforces them on a child: at the soft
  time limit ``SoftTimeLimitExceeded`` is raised in the task, at the hard one
  ``TimeLimitExceeded``; a task revoked with its record's durable revoke while it runs
  is ended as ``terminate`` would end it. The keeper asks the main thread to raise by
  a signal (``interrupt``), which also cuts short a sleep or a blocking read;
- a task that ignores all that (it swallowed the exception, or it is stuck in C
  code that never returns to Python) takes its worker process down ``KILL_GRACE_S``
  later, as the prefork pool would SIGKILL its child. Whoever runs the worker starts
  it again (``taskrelay up``'s supervisor, compose's restart policy), and its
  messages are redelivered once their leases run out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded

logger = logging.getLogger(__name__)

# How often the keeper looks at the running task.
TICK_S = 0.25
# How often it reads the running task's durable revoke, once the task has run this long.
REVOKE_CHECK_S = 1.0
# How long a task may go on after it was told to stop before its process exits.
KILL_GRACE_S = 10.0
# The exit status of a worker whose task would not stop (EX_SOFTWARE).
EXIT_TASK_WOULD_NOT_STOP = 70


class TerminatedOnRevoke(Ignore):  # type: ignore[misc]
    """Raised in a running task that was revoked: Celery ignores it, so nothing is
    stored over the REVOKED that the revoke wrote, and its message is acknowledged."""


@dataclass
class Duty:
    """A job of the event loop that the keeper also runs while a task runs."""

    interval_s: float
    run: Callable[[], None]


@dataclass
class Job:
    """The task the main thread is running, and what the keeper has told it."""

    task_id: str | None
    started: float
    # When the limits fall due; each is cleared once the task has been told of it.
    soft_at: float | None
    hard_at: float | None
    # The exception that the main thread raises in the task at its next signal.
    pending: BaseException | None = None
    # Between the task's prerun and postrun signals: the task's own code is running.
    in_body: bool = False
    terminated: bool = False
    must_end_by: float | None = None
    duties_run_at: dict[int, float] = field(default_factory=dict)
    revoke_checked_at: float = 0.0


class Keeper:
    """Covers the loop's duties and enforces the running task's limits, from one thread."""

    def __init__(
        self,
        interrupt: Callable[[], None],
        is_revoked: Callable[[str], bool],
        *,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        self._interrupt = interrupt
        self._is_revoked = is_revoked
        self._exit_process = exit_process
        self._duties: dict[int, Duty] = {}
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop's duties --

    def cover(self, interval_s: float, run: Callable[[], None]) -> int:
        """Run ``run`` every ``interval_s`` while a task runs; returns a handle."""
        duty = Duty(interval_s, run)
        with self._lock:
            self._duties[id(duty)] = duty
        return id(duty)

    def uncover(self, handle: int) -> None:
        with self._lock:
            self._duties.pop(handle, None)

    # -- the running task, told by the main thread --

    def begin(self, task_id: str | None, soft_s: float | None, hard_s: float | None) -> Job:
        now = time.monotonic()
        job = Job(
            task_id=task_id,
            started=now,
            soft_at=now + soft_s if soft_s else None,
            hard_at=now + hard_s if hard_s else None,
        )
        self._job = job
        return job

    def end(self, job: Job) -> None:
        if self._job is job:
            self._job = None

    # -- the thread --

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name="taskrelay-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stopped.wait(TICK_S):
            job = self._job
            if job is None:
                continue
            try:
                self.tick(job, time.monotonic())
            except Exception:
                logger.warning("the keeper's check of the running task failed", exc_info=True)

    def tick(self, job: Job, now: float) -> None:
        """One look at the running task: its duties due, its limits, its revoke."""
        self._run_duties(job, now)
        self._enforce_limits(job, now)

    def _run_duties(self, job: Job, now: float) -> None:
        with self._lock:
            duties = list(self._duties.items())
        for handle, duty in duties:
            # The loop last ran it at most one interval before the task began: half an
            # interval into the task, then every interval, keeps every gap under 1.5.
            last = job.duties_run_at.get(handle, job.started - duty.interval_s / 2)
            if now - last >= duty.interval_s:
                job.duties_run_at[handle] = now
                try:
                    duty.run()
                except Exception:
                    logger.warning("a worker duty failed while a task ran", exc_info=True)

    def _enforce_limits(self, job: Job, now: float) -> None:
        if job.soft_at is not None and now >= job.soft_at:
            job.soft_at = None
            self._tell(job, SoftTimeLimitExceeded(), now)
        if job.hard_at is not None and now >= job.hard_at:
            limit_s, job.hard_at = job.hard_at - job.started, None
            self._tell(job, TimeLimitExceeded(limit_s), now)
        if (
            job.task_id is not None
            and not job.terminated
            and now - job.started >= REVOKE_CHECK_S
            and now - job.revoke_checked_at >= REVOKE_CHECK_S
        ):
            job.revoke_checked_at = now
            if self._is_revoked(job.task_id):
                self._terminate(job, now)
        if job.must_end_by is not None and now >= job.must_end_by and self._job is job:
            logger.critical(
                "task %s did not stop %.0f s after it was told to; its worker process exits",
                job.task_id,
                KILL_GRACE_S,
            )
            self._exit_process(EXIT_TASK_WOULD_NOT_STOP)

    def end_if_running(self, task_ids: Collection[str]) -> bool:
        """A revoke with ``terminate`` for one of ``task_ids``: end the running task now.

        Called from the remote-control thread, so that ``terminate`` ends a running task
        as soon as the prefork pool's would, not at the next read of its durable revoke.
        """
        job = self._job
        if job is None or job.task_id not in task_ids or job.terminated:
            return False
        self._terminate(job, time.monotonic())
        return True

    def _terminate(self, job: Job, now: float) -> None:
        job.terminated = True
        self._tell(job, TerminatedOnRevoke("revoked while running"), now)

    def _tell(self, job: Job, error: BaseException, now: float) -> None:
        """Have the main thread raise ``error`` in the task; the hard kind has a deadline."""
        job.pending = error
        if not isinstance(error, SoftTimeLimitExceeded) and job.must_end_by is None:
            job.must_end_by = now + KILL_GRACE_S
        self._interrupt()

    def take_pending(self) -> BaseException | None:
        """In the main thread's signal handler: what to raise in the task, if anything.

        Only while the task's own code runs: raised in Celery's code around it (the
        result being stored, the acknowledgement), it would break the worker instead.
        """
        job = self._job
        if job is None or not job.in_body or job.pending is None:
            return None
        error, job.pending = job.pending, None
        return error

    def mark_body(self, task_id: str | None, running: bool) -> None:
        job = self._job
        if job is not None and job.task_id == task_id:
            job.in_body = running
            if running and job.pending is not None:
                self._interrupt()  # told before its code began: raise it now
