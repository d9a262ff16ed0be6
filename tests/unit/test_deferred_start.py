"""The thread that writes deferred starts (tasks/celery_ext/deferred_start.py), on its own.

A start claimed by its task's next state is never written alone; one left unclaimed
is written once it is due, whether the thread was waiting for an earlier start,
lingering with nothing to wait for, or asleep until woken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tasks.celery_ext import deferred_start
from tests.support import wait_until

WRITTEN_TIMEOUT_S = 5.0


class Starts:
    """Pending starts whose lone writes are noted, in the order they happen."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self._lock = threading.Lock()

    def make(self, number: int) -> deferred_start.PendingStart:
        def write_alone() -> None:
            with self._lock:
                self.written.append(number)

        return deferred_start.PendingStart(write_alone)


@pytest.fixture
def writer() -> Iterator[deferred_start._Writer]:
    thread = deferred_start._Writer()
    yield thread
    thread.stop()


def test_starts_claimed_in_time_are_never_written_alone(
    writer: deferred_start._Writer,
) -> None:
    starts = Starts()
    for number in range(200):
        pending = starts.make(number)
        writer.add(pending)
        assert pending.claim()
    late = starts.make(200)
    writer.add(late)
    wait_until(lambda: starts.written, timeout_s=WRITTEN_TIMEOUT_S, what="the unclaimed start")
    assert starts.written == [200]
    assert not late.claim()  # written alone, so its next state does not write it again


@pytest.mark.parametrize("pause_s", [0.0, 0.05, 3 * deferred_start.WRITE_AFTER_S])
def test_a_start_left_unclaimed_is_written_once_due_whatever_the_thread_was_doing(
    writer: deferred_start._Writer, pause_s: float
) -> None:
    # After a claimed start the thread lingers one delay, then sleeps until woken:
    # the pauses add the next start in each of those phases.
    starts = Starts()
    first = starts.make(1)
    writer.add(first)
    assert first.claim()
    time.sleep(pause_s)
    added_at = time.monotonic()
    writer.add(starts.make(2))
    wait_until(lambda: starts.written, timeout_s=WRITTEN_TIMEOUT_S, what="the unclaimed start")
    assert starts.written == [2]
    assert time.monotonic() - added_at >= deferred_start.WRITE_AFTER_S


def test_stopping_writes_the_starts_still_held() -> None:
    starts = Starts()
    thread = deferred_start._Writer()
    thread.add(starts.make(1))
    thread.stop()
    assert starts.written == [1]
