"""The thread of a web process's one Redis reader that feeds SSE streams (the channel
hub, the task feed): started by the first subscriber, ended once nobody has listened
for a grace, and started again by the next subscriber.

Its owner keeps the subscribers and the lock. A subscriber is counted under that lock
before ``start`` is called, and the reader retires under the same lock only if it is
still idle, so an ending reader never misses someone who is joining.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A reader with no stream left stops after this many seconds, and the next stream
# starts it again: long enough that a page reload finds it still reading
# (setting SSE_READER_IDLE_S).
READER_IDLE_GRACE_S = 30.0
# How long starting again waits for a retired reader's thread to return, in seconds.
JOIN_TIMEOUT_S = 5.0


class IdleReader:
    def __init__(self, name: str, run: Callable[[], None], grace_s: float) -> None:
        self.name = name
        self.grace_s = grace_s
        self._run = run
        self._thread: threading.Thread | None = None
        # The thread ended for want of subscribers (it only returns).
        self.retired = False
        self._alone_since = time.monotonic()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def running(self) -> bool:
        """Whether the thread reads (a retired one is only returning)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self.retired

    def start(self) -> None:
        """Start the thread unless it runs; the owner holds its lock."""
        if self.running():
            return
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        self.retired = False
        # Started lazily, in the process that serves: a thread does not survive a fork.
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def left_alone(self) -> None:
        """The last subscriber left: the grace counts from now."""
        self._alone_since = time.monotonic()

    def idle(self, has_subscribers: bool) -> bool:
        """No subscriber for the grace."""
        return not has_subscribers and time.monotonic() - self._alone_since >= self.grace_s

    def retire(self) -> None:
        """The thread ends; the owner decided so under its lock."""
        self.retired = True

    def join(self, timeout_s: float) -> None:
        """Wait for the thread to end (not from the thread itself)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
