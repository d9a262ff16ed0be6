"""A task's start record, written with the first state stored after it, or a moment later.

Once the fetch has checked a task (tasks/celery_ext/start_check.py), what is left of
its start is the record: its start time and worker, and its move to STARTED in the
indexes. A task that ends (or reports progress) within ``WRITE_AFTER_S`` writes it in
the same script as that state, a round trip less per task, and the start's step then
passes through the state sets, which that state's step moves at once (STARTED is still
told in the history, the event stream and the wait-time stat); one still running then has
it written by a thread of the worker process, so a long task reads STARTED while it
runs. Exactly one of the two writes it, and the state that follows waits for a write
under way, so STARTED never lands after it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from celery.signals import worker_process_shutdown, worker_shutdown

logger = logging.getLogger(__name__)

# How long a start may wait for the state after it before it is written alone.
WRITE_AFTER_S = 0.1
# How long stopping waits for the thread to end.
STOP_TIMEOUT_S = 5.0


class PendingStart:
    """One task's unwritten start: claimed once, by its next state or by the thread."""

    def __init__(self, write_alone: Callable[[], object]) -> None:
        self._write_alone = write_alone
        self._lock = threading.Lock()
        self._claimed = False
        self.due = time.monotonic() + WRITE_AFTER_S

    @property
    def claimed(self) -> bool:
        """Whether its write is taken; read without the lock, so only as a hint that a
        False may turn True meanwhile (never the reverse)."""
        return self._claimed

    def claim(self) -> bool:
        """Whether the caller writes the start with its state (True once, for the first).

        A write alone under way holds the lock: the caller's state then waits for it.
        """
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def write_alone_unless_claimed(self) -> None:
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
            self._write_alone()


class _Writer:
    """The process's thread that writes the starts no state claimed in time.

    Starts are due in the order they were made (one delay for all), so a deque
    kept in that order is enough. The thread waits only for the oldest start not yet
    claimed: those claimed before it are dropped without waiting for them to come
    due. With nothing left to wait for it lingers one delay before it sleeps until a
    start wakes it: a quick task's start is claimed before the thread could look at
    it, and waking it for each would cost a system call and a turn of the
    interpreter lock with the task's thread. A worker whose tasks end within the
    delay wakes it about once per ``WRITE_AFTER_S``, not once per task.
    """

    def __init__(self) -> None:
        self._due: deque[PendingStart] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        # True while the thread sleeps until woken: only then does a new start wake it.
        self._asleep = False
        self._thread = threading.Thread(target=self._run, name="deferred-start", daemon=True)
        self._thread.start()

    def add(self, pending: PendingStart) -> None:
        with self._wake:
            self._due.append(pending)
            if self._asleep:
                self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(STOP_TIMEOUT_S)

    def _next_due(self) -> PendingStart | None:
        """The next start once it is due; None when stopping."""
        with self._wake:
            lingered = False
            while not self._stopping:
                while self._due and self._due[0].claimed:
                    self._due.popleft()
                if self._due:
                    lingered = False
                    wait_s = self._due[0].due - time.monotonic()
                    if wait_s <= 0:
                        return self._due.popleft()
                    self._wake.wait(wait_s)
                elif not lingered:
                    # A start added meanwhile is due no sooner than this ends.
                    lingered = True
                    self._wake.wait(WRITE_AFTER_S)
                else:
                    self._asleep = True
                    try:
                        self._wake.wait()
                    finally:
                        self._asleep = False
                    lingered = False  # woken by a start, which may be claimed by now
            return None

    def _run(self) -> None:
        while (pending := self._next_due()) is not None:
            _write(pending)
        # Stopping: what a running task has not claimed is written now, not lost.
        with self._wake:
            left, self._due = list(self._due), deque()
        for pending in left:
            _write(pending)


def _write(pending: PendingStart) -> None:
    try:
        pending.write_alone_unless_claimed()
    except Exception:
        # The state that follows is still stored; only STARTED is missing.
        logger.warning("could not write a task's start record", exc_info=True)


_writer: _Writer | None = None
_writer_pid = 0
_writer_lock = threading.Lock()


def defer(pending: PendingStart) -> None:
    """Have ``pending`` written alone once it is due, unless its next state claims it."""
    global _writer, _writer_pid
    with _writer_lock:
        # A pool child is forked without its parent's threads: each process has its own.
        if _writer is None or _writer_pid != os.getpid():
            _writer, _writer_pid = _Writer(), os.getpid()
        writer = _writer
    writer.add(pending)


def stop() -> None:
    """Stop this process's thread, writing the starts it still holds."""
    global _writer
    with _writer_lock:
        writer, _writer = (_writer if _writer_pid == os.getpid() else None), None
    if writer is not None:
        writer.stop()


def _stop_on_shutdown(**_: object) -> None:
    stop()


# A pool child says it is about to exit; a worker running tasks in its own process
# (the solo pool) says it stops.
worker_process_shutdown.connect(_stop_on_shutdown, weak=False)
worker_shutdown.connect(_stop_on_shutdown, weak=False)
