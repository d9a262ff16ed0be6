"""taskrelay's prefork pool (tasks/celery_ext/pool.py) stops at once when a warm shutdown
comes right after a job was handed to a child, before the child's acknowledgement was read.

The consumer's close flushes the pool, which drops such a job from the pool's cache; the
child runs it anyway and, before it exits, waits up to 30 s for its result to be read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.asynchronous import Hub

from tasks.celery_ext.pool import TaskPool

# A child's wait for its result to be read is 300 polls of 0.1 s; a stop reads it
# within a poll of the pool's shutdown loop (0.5 s).
STOP_BOUND_S = 10.0
TURNS_TIMEOUT_S = 10.0


def pid() -> int:
    return os.getpid()


@pytest.fixture
def hub() -> Iterator[Hub]:
    loop = Hub()
    yield loop
    loop.close()


@pytest.fixture
def pool(hub: Hub) -> Iterator[Any]:
    """The pool a task worker runs, of one child, on an event loop of its own."""
    started = TaskPool.Pool(processes=1, threads=False, synack=False)
    started.register_with_event_loop(hub)
    yield started
    if started._pool:  # the test failed before the stop
        started.terminate()


def turn_until(hub: Hub, condition: Callable[[], bool], what: str) -> None:
    loop = hub.create_loop()
    deadline = time.monotonic() + TURNS_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        next(loop)


def test_a_warm_shutdown_right_after_a_job_was_handed_to_a_child_is_not_held_up(
    hub: Hub, pool: Any
) -> None:
    job = pool.apply_async(pid, (), {})
    turn_until(
        hub,
        lambda: job._write_to is not None and not pool._active_writes,
        "the job to be written to the child",
    )
    (child,) = pool._pool
    # The child took the job and acknowledged it; the event loop has not read that yet.
    assert child.outq._reader.poll(TURNS_TIMEOUT_S), "the child did not acknowledge the job"
    assert not job._accepted

    began = time.monotonic()
    # What Celery's warm shutdown does: the consumer's close flushes the pool, whose
    # stop then closes and joins it (celery.concurrency.prefork.TaskPool.on_stop).
    pool.flush()
    pool.close()
    pool.join()
    took = time.monotonic() - began

    assert not pool._pool
    assert took < STOP_BOUND_S, f"the pool took {took:.1f} s to stop"
