# celery's worker modules are untyped.
# mypy: disable-error-code="no-untyped-call"
"""Remote control that a worker answers while its inline pool runs a task.

Celery reads the remote-control mailbox (``celery inspect``, ``celery control``,
Flower's worker page) on the worker's event loop. Under the inline pool the loop
waits while a task runs, so a busy worker answered nothing until its task ended:
Flower showed no active task for it, and ``celery inspect active`` timed out.

Here the mailbox is read by a thread of its own, on a connection of its own, as
Celery does for its green pools (``gPidbox``). The questions (Celery's *inspect*
commands: ``ping``, ``active``, ``stats``, ...) are answered from that thread at
once; they only read the worker's state. The commands that change the worker
(Celery's *control* commands: ``revoke``, ``rate_limit``, ``enable_events``,
``shutdown``, ...) are handed to the event loop, which runs them as it always did,
between tasks; a pipe wakes it, so an idle worker answers them at once. A revoke with
``terminate`` does not wait for the loop: the thread has the keeper end the running
task at once if it is one the revoke names (tasks/celery_ext/keeper.py), as the prefork
pool signals its child.

The thread's connection is its own, so it can break alone (a network blip, a
``CLIENT KILL``): Celery's loop then raises and its thread ends, and nothing answers
remote control until the consumer next restarts. The thread connects again instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from typing import Any

from celery.worker import control, pidbox
from celery.worker.consumer import control as control_step
from celery.worker.consumer.consumer import Consumer

CELERYS_STEP = "celery.worker.consumer.control:Control"
OUR_STEP = f"{__name__}:Control"

# How long stopping waits for the mailbox thread, whose read waits at most 1 s.
THREAD_STOP_TIMEOUT_S = 5.0
# How long the mailbox thread waits before it connects again after losing Redis.
RECONNECT_DELAY_S = 1.0

logger = logging.getLogger(__name__)


def changes_the_worker(method: object) -> bool:
    """Whether a mailbox command is one of Celery's control (not inspect) commands."""
    meta = control.Panel.meta.get(method) if isinstance(method, str) else None
    return meta is not None and meta.type == "control"


class ThreadedMailbox(pidbox.gPidbox):  # type: ignore[misc]
    """Celery's mailbox loop in a thread; commands that change the worker run on its loop."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__(consumer)
        self._thread: threading.Thread | None = None
        self._for_the_loop: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._hub: Any = None

    def start(self, c: Consumer) -> None:
        if c.hub is not None and self._hub is None:
            self._hub = c.hub
            self._hub.add_reader(self._wake_read, self._run_handed_commands)
        self._thread = threading.Thread(
            target=self.loop, args=(c,), name="remote-control", daemon=True
        )
        self._thread.start()

    def loop(self, c: Consumer) -> None:
        """Celery's mailbox loop, entered again after its connection broke, until stopped."""
        while True:
            try:
                super().loop(c)
                return  # stopped, or the consumer's own connection is gone
            except c.connection_errors as error:
                shutdown = self._node_shutdown
                if shutdown is None or shutdown.is_set():
                    return
                logger.warning(
                    "remote control lost its connection (%r); connecting again in %s s",
                    error,
                    RECONNECT_DELAY_S,
                )
                if shutdown.wait(RECONNECT_DELAY_S):
                    return

    def on_stop(self) -> None:
        super().on_stop()  # tells the loop to end and waits for it
        if self._thread is not None:
            self._thread.join(THREAD_STOP_TIMEOUT_S)
            self._thread = None

    def shutdown(self, c: Consumer) -> None:
        super().shutdown(c)
        if self._hub is not None:
            self._hub.remove_reader(self._wake_read)
            self._hub = None
        os.close(self._wake_read)
        os.close(self._wake_write)

    def on_message(self, body: Any, message: Any) -> None:
        method = body.get("method") if isinstance(body, dict) else None
        if self._hub is None or not changes_the_worker(method):
            super().on_message(body, message)
            return
        # A terminate cannot wait for the loop: the task it ends is what holds it.
        ids = _terminated_task_ids(method, body.get("arguments"))
        end_running_task = getattr(self.c.pool, "end_running_task", None)
        if ids and end_running_task is not None:
            end_running_task(ids)
        self._for_the_loop.put((body, message))
        # A full pipe holds wake-ups enough already.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def _run_handed_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass
        while True:
            try:
                body, message = self._for_the_loop.get_nowait()
            except queue.Empty:
                return
            # Celery's own handling, on the loop, as its mailbox would have run it.
            pidbox.Pidbox.on_message(self, body, message)


def _terminated_task_ids(method: object, arguments: Any) -> list[str]:
    """The ids that a ``revoke(terminate=True)`` or ``terminate`` command ends."""
    if not isinstance(arguments, dict) or method not in ("revoke", "terminate"):
        return []
    if method == "revoke" and not arguments.get("terminate"):
        return []
    ids = arguments.get("task_id")
    if isinstance(ids, str):
        return [ids]
    return [str(task_id) for task_id in ids] if isinstance(ids, list | tuple) else []


class Control(control_step.Control):  # type: ignore[misc]
    """Celery's remote-control step, with the threaded mailbox under the inline pool."""

    def __init__(self, c: Consumer, **kwargs: Any) -> None:
        if not getattr(c.pool, "answers_remote_control_from_a_thread", False):
            super().__init__(c, **kwargs)
            return
        self.is_green = False
        self.box = ThreadedMailbox(c)
        self.start = self.box.start
        self.stop = self.box.stop
        self.shutdown = self.box.shutdown
        # Celery's Control.__init__ would build its own mailbox; its parent's is enough.
        super(control_step.Control, self).__init__(c, **kwargs)


def in_place_of_celerys(steps: list[str]) -> list[str]:
    """A consumer's steps with this module's remote-control step in place of Celery's."""
    if CELERYS_STEP not in steps:
        raise RuntimeError(f"Celery's consumer no longer has {CELERYS_STEP}")
    return [OUR_STEP if step == CELERYS_STEP else step for step in steps]
