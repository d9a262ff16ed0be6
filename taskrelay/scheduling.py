"""The Linux scheduling policy of the roles ``taskrelay up`` starts.

Every task crosses the roles several times: the web writes to Redis, Redis wakes a
task worker, the worker writes its result, and so on. With Linux's default policy a
process woken by such a write preempts the writer on the spot when the cores are
busy, and both pay for the switch and for each other's cold caches. Under
``SCHED_BATCH`` a woken process waits for the running one to block or use up its
time slice, and is otherwise scheduled as usual (same fairness, same nice value).

``taskrelay up`` runs Redis, the task and relay workers, the scheduler and Flower so,
and leaves the web on the default policy: the web is what answers people, and it is
woken by their requests. Measured end to end (docs/benchmarks.md): about a tenth
less CPU a task; the web is preempted and Redis woken about half as often.

The policy goes to a child the way Linux hands it down: a process forked by a thread
takes that thread's policy, and keeps it through ``exec`` and in every thread and
child it starts itself (gunicorn's workers, Redis's background threads). So the
thread that starts a child switches to the policy for the moment of the ``fork`` and
back: nothing in the child runs before it has the policy, and nothing else in the
parent changes. Where the policy does not exist (not Linux) or may not be set, a
child starts with the parent's policy, as it would without this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal

logger = logging.getLogger(__name__)

Policy = Literal["batch", "normal"]
BATCH: Final = "batch"
NORMAL: Final = "normal"
POLICIES: Final = (BATCH, NORMAL)

# os.sched_setscheduler's pid 0: the calling thread, not the whole process.
_THIS_THREAD = 0
# Linux's SCHED_BATCH; None where the operating system has no such policy.
_SCHED_BATCH: int | None = getattr(os, "SCHED_BATCH", None)
# Whether children can be started under BATCH here at all.
AVAILABLE = _SCHED_BATCH is not None


@contextmanager
def for_children(policy: Policy) -> Iterator[None]:
    """Processes started inside run under ``policy``; the calling thread's own is restored."""
    if policy == NORMAL or _SCHED_BATCH is None:
        yield
        return
    try:
        previous = os.sched_getscheduler(_THIS_THREAD), os.sched_getparam(_THIS_THREAD)
        os.sched_setscheduler(_THIS_THREAD, _SCHED_BATCH, os.sched_param(0))
    except OSError as error:
        logger.warning(
            "cannot start children under SCHED_BATCH (%s): starting them as usual", error
        )
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(_THIS_THREAD, *previous)


def policy_of(pid: int) -> str:
    """The policy a process or thread runs under, by name: ``batch``, ``normal`` or another."""
    policy = os.sched_getscheduler(pid)
    if policy == _SCHED_BATCH:
        return BATCH
    if policy == os.SCHED_OTHER:
        return NORMAL
    return str(policy)
