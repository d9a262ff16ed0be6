# celery's pool and signal modules are untyped.
# mypy: disable-error-code="no-untyped-call"
"""The inline pool: each task runs in the worker's own process, a keeper thread beside it.

The prefork pool hands every task to a child process down a pipe and reads its result
back: for a task of a few milliseconds that hand-over is most of what the worker does
(docs/benchmarks.md). Celery's solo pool runs the task in the main thread instead,
but while it runs, the event loop's timers stop: leases, the liveness beacon and
Flower's heartbeats, and with them the time limits and ``revoke(terminate=True)``.
This pool is Celery's solo pool with those given back by a keeper thread
(tasks/celery_ext/keeper.py): it runs the loop's duties while a task runs, and tells the
main thread, by a signal, to raise the task's time limit or its revoke in the task.

A task that crashes the interpreter or will not stop takes its worker process down,
and the process supervisor starts it again (``taskrelay up``, compose's restart
policy). Its attempt then comes back with a second delivery counted by the fetch,
and an attempt delivered more than once runs in a child forked for it
(tasks/celery_ext/isolation.py): a crashing task takes a worker down once at most,
and a child each time after, until the poison limit buries it. What is not given
back is a memory cap per child; ``TASKRELAY_WORKER_POOL=prefork`` chooses the prefork
pool for task modules that need it (docs/decisions.md).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from time import monotonic
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import bootsteps, signals
from celery.concurrency import solo
from celery.concurrency.base import apply_target
from celery.exceptions import WorkerLostError

from tasks import records
from tasks.celery_ext import isolation, start_check
from tasks.celery_ext.keeper import Keeper
from tasks.connections import shared_client

logger = logging.getLogger(__name__)

# The signal that asks the main thread to raise in its task. Celery's worker uses
# SIGUSR1 (its traceback dump) and the rest of the common ones; SIGUSR2 only when
# CELERY_RDBSIG asks for its remote debugger, which this pool does not support.
INTERRUPT_SIGNAL = signal.SIGUSR2

# From this delivery of an attempt on, it runs in a forked child: the delivery
# before it may have ended with its worker.
ISOLATED_FROM_DELIVERY = 2


class TaskPool(solo.TaskPool):  # type: ignore[misc]
    """Celery's solo pool, with time limits, terminate and a live loop kept by a thread."""

    # Read by tasks/celery_ext/remote_control.py: the mailbox gets a thread of its own.
    answers_remote_control_from_a_thread = True
    # Read by tasks/celery_ext/result_pipe.py.
    runs_tasks_in_the_main_thread = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        requested = args[0] if args else kwargs.get("limit")
        super().__init__(*args, **kwargs)
        if requested and requested > 1:
            logger.warning(
                "the inline pool runs one task at a time; for %s at once, run %s worker "
                "processes (taskrelay up --concurrency, compose --scale worker=N)",
                requested,
                requested,
            )
        self.on_apply = self._apply
        self._main_thread_id = threading.main_thread().ident
        self.keeper = Keeper(self._interrupt_main_thread, self._is_revoked)

    def on_start(self) -> None:
        signal.signal(INTERRUPT_SIGNAL, self._on_interrupt)
        signals.task_prerun.connect(self._on_prerun, weak=False)
        signals.task_postrun.connect(self._on_postrun, weak=False)
        self.keeper.start()

    def on_stop(self) -> None:
        self.keeper.stop()
        signals.task_prerun.disconnect(self._on_prerun)
        signals.task_postrun.disconnect(self._on_postrun)

    on_terminate = on_stop

    def terminate_job(self, pid: int, signum: Any = None) -> None:
        # A revoke reaches the loop only between tasks, when none is running; the
        # keeper ends a running one through its durable revoke instead.
        logger.debug("terminate asked of pid %s with no task running", pid)

    def _apply(
        self,
        target: Any,
        args: Any,
        kwargs: Any,
        *,
        accept_callback: Any = None,
        soft_timeout: float | None = None,
        timeout: float | None = None,
        correlation_id: str | None = None,
        **options: Any,
    ) -> None:
        if _deliveries(accept_callback) >= ISOLATED_FROM_DELIVERY:
            self._apply_in_child(
                target,
                args,
                kwargs,
                accept_callback,
                soft_timeout,
                timeout,
                correlation_id,
                **options,
            )
            return
        job = self.keeper.begin(correlation_id, soft_timeout, timeout)
        try:
            apply_target(target, args, kwargs, accept_callback=accept_callback, **options)
        finally:
            self.keeper.end(job)
        if job.terminated:
            _announce_terminated(accept_callback)

    def _apply_in_child(
        self,
        target: Any,
        args: Any,
        kwargs: Any,
        accept_callback: Any,
        soft_timeout: float | None,
        timeout: float | None,
        correlation_id: str | None,
        *,
        callback: Any = None,
        error_callback: Any = None,
        **_: Any,
    ) -> None:
        """Run the task in a forked child; its result, acknowledgement and events here."""

        def in_the_child() -> tuple[Any, bool]:
            # The parent's keeper runs the loop's duties; this one watches the task.
            self.keeper = Keeper(self._interrupt_main_thread, self._is_revoked)
            self.keeper.start()
            job = self.keeper.begin(correlation_id, soft_timeout, timeout)
            try:
                return target(*args, **kwargs), job.terminated
            finally:
                self.keeper.end(job)
                self.keeper.stop()
                signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)

        def accepted(pid: int) -> None:
            if accept_callback is not None:
                accept_callback(pid, monotonic())

        # No task of the parent's own runs meanwhile: its keeper keeps the duties only.
        waiting = self.keeper.begin(None, None, None)
        try:
            outcome = isolation.run_forked(in_the_child, accepted)
        finally:
            self.keeper.end(waiting)
        if isinstance(outcome, isolation.Died):
            # What the prefork pool reports of a child lost mid-task: with late acks
            # and reject-on-worker-lost, the message goes back and counts a delivery.
            try:
                raise WorkerLostError(f"Worker exited prematurely: {outcome.how}.")
            except WorkerLostError:
                if error_callback is not None:
                    error_callback(ExceptionInfo())
            return
        returned, terminated = outcome
        if callback is not None:
            callback(returned)
        if terminated:
            _announce_terminated(accept_callback)

    def end_running_task(self, task_ids: list[str]) -> None:
        """``revoke(terminate=True)`` from the remote-control thread, while a task runs."""
        self.keeper.end_if_running(task_ids)

    def _interrupt_main_thread(self) -> None:
        if self._main_thread_id is not None:
            signal.pthread_kill(self._main_thread_id, INTERRUPT_SIGNAL)

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        error = self.keeper.take_pending()
        if error is not None:
            raise error

    def _on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        self.keeper.mark_body(task_id, running=True)

    def _on_postrun(self, task_id: str | None = None, **_: Any) -> None:
        self.keeper.mark_body(task_id, running=False)

    def _is_revoked(self, task_id: str) -> bool:
        return records.is_revoked(shared_client(self.app.conf.taskrelay_redis_url), task_id)


def _deliveries(accept_callback: Any) -> int:
    """How many times the fetch counted this attempt delivered (1 if it did not check)."""
    request = getattr(accept_callback, "__self__", None)
    check = start_check.of_fields(getattr(request, "request_dict", None))
    return check.deliveries if check is not None else 1


def _announce_terminated(accept_callback: Any) -> None:
    """Send the ``task-revoked`` event that Celery sends for a terminated task."""
    request = getattr(accept_callback, "__self__", None)
    send_event = getattr(request, "send_event", None)
    if send_event is not None:
        send_event("task-revoked", terminated=True, signum="SIGTERM", expired=False)


class KeptHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Flower's worker heartbeat, sent by the keeper too while a task runs.

    Flower counts a worker offline two heartbeat intervals after its last one.
    """

    requires = {"celery.worker.consumer.heart:Heart"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.handle: int | None = None

    def start(self, consumer: Any) -> None:
        keeper = keeper_of(consumer)
        heart = getattr(consumer, "heart", None)
        if keeper is None or heart is None:
            return
        # Celery's own send, with the fields Flower reads (kombu_internals.py's rule:
        # a private name that moved fails here, at start-up).
        send = heart._send
        self.handle = keeper.cover(heart.interval, lambda: send("worker-heartbeat"))

    def stop(self, consumer: Any) -> None:
        keeper = keeper_of(consumer)
        if keeper is not None and self.handle is not None:
            keeper.uncover(self.handle)
        self.handle = None

    shutdown = stop


def keeper_of(parent: Any) -> Keeper | None:
    """The keeper of a worker (or its consumer) that runs this pool; None otherwise."""
    return getattr(getattr(parent, "pool", None), "keeper", None)
