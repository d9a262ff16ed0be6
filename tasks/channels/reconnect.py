"""How every channel subscriber rides out a lost Redis: when it gives up a wait, how
long it pauses before it reconnects, and the reconnect loop itself.

The web's hub, its SSE streams and the terminal subscriber all subscribe first,
then catch up from the stream (``cursor.catch_up``), and do both again after a
reconnect; they agree on the timing because it lives here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

logger = logging.getLogger(__name__)

# How long one wait for a pub/sub message lasts; bounds how late a stop is noticed.
POLL_INTERVAL_S = 1.0
# The pause after losing Redis: from the minimum, doubling after every failed
# attempt up to the maximum; a session that ends cleanly starts over at the minimum.
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
# A reader catching up from the stream retries a lost Redis this often, for this
# long, before it gives up (an SSE client then reconnects and resumes with
# Last-Event-ID, so nothing is lost).
CATCH_UP_RETRY_S = 0.5
CATCH_UP_PATIENCE_S = 30.0

# What redis-py raises when Redis is unreachable or restarting.
LOST_REDIS = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass
class Reconnecting:
    """Attempts at a Redis session until ``stopping`` is set, pausing after each loss::

        for attempt in Reconnecting(stopping, "channel hub"):
            with attempt:
                listen()

    A lost Redis is logged and ends the attempt; so do the exceptions in
    ``survive`` (logged with their traceback), for a loop that must keep serving.
    """

    stopping: threading.Event
    who: str
    survive: tuple[type[Exception], ...] = ()
    # A session that lasted this long was working, not failing to connect.
    working_after_s: float = BACKOFF_MAX_S
    delay_s: float = field(default=BACKOFF_MIN_S, init=False)

    def __iter__(self) -> Iterator[contextlib.AbstractContextManager[None]]:
        while not self.stopping.is_set():
            yield self._attempt()
            if self.stopping.wait(self.delay_s):
                return
            self.delay_s = min(self.delay_s * 2, BACKOFF_MAX_S)

    @contextlib.contextmanager
    def _attempt(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except LOST_REDIS as error:
            self._after_a_working_session(started)
            logger.warning(
                "%s lost Redis (%s); reconnecting in %.1f s", self.who, error, self.delay_s
            )
        except self.survive:
            self._after_a_working_session(started)
            logger.exception("%s failed; restarting in %.1f s", self.who, self.delay_s)
        else:
            self.delay_s = BACKOFF_MIN_S

    def _after_a_working_session(self, started: float) -> None:
        # The loss of a working session starts the pauses over at the minimum, so
        # losses hours apart do not add up to the maximum pause.
        if time.monotonic() - started >= self.working_after_s:
            self.delay_s = BACKOFF_MIN_S
