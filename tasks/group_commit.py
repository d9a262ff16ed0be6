"""Pipelines of one process that are ready together, run in one round trip.

Under gevent a web process serves many requests at once, and each ends in a round
trip of its own: a ``POST /api/tasks`` in a MULTI/EXEC (tasks/celery_ext/
atomic_publish.py), a ``GET /api/tasks/<id>`` in a pipeline of three reads. Each is
a pooled connection lent and given back, a write and a read, in the web and in
Redis. Here a pipeline that finds another of its kind on the wire waits for it;
those that gathered meanwhile then go as one, run by the first of them (the leader)
on its own pipeline, and each gets back the replies to its own commands. A
pipeline that finds the wire free runs at once, so a lone request waits for
nothing, and the busier the process, the more requests share a round trip (group
commit, as a database's log writer does it).

Transactions go with transactions, in one MULTI/EXEC, which keeps every promise of
one per task: each task's record commits with its message, as all of them commit
together. What fails a transaction fails all that share it, as it would have failed
each alone: Redis unreachable, a reply that never came (each sender then learns
that delivery is uncertain), or a transaction refused whole (``EXECABORT``: out of
memory, a read-only replica). Replies stay each sender's own: a command that fails
inside EXEC fails its sender only, and a script call that Redis answers NOSCRIPT is
run again by the sender that queued it (tasks/scripts.py).

A pipeline that holds a connection of its own (durable accept runs ``WAIT`` on the
connection that wrote, webapp/durable_accept.py) or WATCHes keys is not grouped.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Hashable
from typing import Any

from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# How long a transaction waits for the ones ahead of it: the one on the wire, then
# its own. Each is bounded by the client's connect and read timeouts (the web's are
# 1 s each, tasks/connections.py); this only ends a wait that something broke.
WAIT_FOR_LEADER_S = 10.0


class NothingSent(RedisConnectionError):
    """Redis could not be reached before the transaction was written: it did not run."""


class GroupedExecute:
    """Stands in for a publish pipeline's ``execute()``: runs it with the others that
    are ready together, through the group of its Redis server.

    It holds its pipeline weakly, so that the two hold no reference cycle.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = weakref.ref(pipeline)

    def __call__(self, raise_on_error: bool = True) -> list[Any]:
        pipeline = self._pipeline()
        if pipeline is None:
            raise RuntimeError("the pipeline of this execute() is gone")
        return execute(pipeline, raise_on_error)


# The groups of each connection pool; pools that reach the same server share them.
_groups_of_pool: weakref.WeakKeyDictionary[Any, dict[bool, GroupCommit]] = (
    weakref.WeakKeyDictionary()
)
_groups_of_server: dict[Hashable, dict[bool, GroupCommit]] = {}
_groups_lock = threading.Lock()


def group_for(pipeline: Pipeline) -> GroupCommit:
    """The group of the pipeline's Redis server (and database), for its kind: MULTI/EXEC
    transactions go with transactions, plain pipelines with plain pipelines."""
    pool = pipeline.connection_pool
    groups = _groups_of_pool.get(pool)
    if groups is None:
        # kombu makes a pool per channel, and a process has several channels to one server.
        settings = pool.connection_kwargs.items()
        server = (
            type(pool),
            getattr(pool, "service_name", None),  # a Sentinel pool's server is its service
            frozenset((k, v) for k, v in settings if isinstance(v, str | int | float | None)),
        )
        with _groups_lock:
            groups = _groups_of_server.setdefault(
                server, {True: GroupCommit(), False: GroupCommit()}
            )
            _groups_of_pool[pool] = groups
    return groups[bool(pipeline.transaction)]


def execute(pipeline: Pipeline, raise_on_error: bool = True) -> list[Any]:
    """Run the pipeline with those of this process that are ready at the same time."""
    return group_for(pipeline).execute(pipeline, raise_on_error)


class _Pending:
    """One sender's pipeline, waiting to be run; then its replies, or what failed."""

    __slots__ = ("error", "leads", "pipeline", "ready", "replies")

    def __init__(self, pipeline: Pipeline, *, leads: bool) -> None:
        self.pipeline = pipeline
        # Only a sender that waits needs to be woken.
        self.ready: threading.Event | None = None if leads else threading.Event()
        self.leads = leads
        self.replies: list[Any] | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs the pipelines handed to ``execute`` at once, or with those that wait beside them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Pending] = []
        self._on_the_wire = False

    def execute(self, pipeline: Pipeline, raise_on_error: bool = True) -> list[Any]:
        """The pipeline's replies, as its own ``execute()`` would give them."""
        if pipeline.connection is not None or pipeline.watching:
            return Pipeline.execute(pipeline, raise_on_error)
        with self._lock:
            pending = _Pending(pipeline, leads=not self._on_the_wire)
            self._waiting.append(pending)
            self._on_the_wire = True
        if pending.ready is not None and not pending.ready.wait(WAIT_FOR_LEADER_S):
            self._give_up(pending)
        if pending.leads:
            self._run_waiting()
        return _outcome(pending, raise_on_error)

    def _give_up(self, pending: _Pending) -> None:
        with self._lock:
            if pending in self._waiting:
                self._waiting.remove(pending)
                raise NothingSent("no transaction before this one finished in time; not sent")
            if pending.leads:
                return  # handed the lead as the wait ended: run it after all
        raise RedisTimeoutError("the transaction carrying this one did not finish in time")

    def _run_waiting(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            _run_together(group)
        finally:
            with self._lock:
                if self._waiting:
                    # The next leader runs what gathered while this group was on the wire.
                    following = self._waiting[0]
                    following.leads = True
                    following.ready.set()  # type: ignore[union-attr]  # it waits
                else:
                    self._on_the_wire = False
            for pending in group:
                if pending.ready is not None:
                    pending.ready.set()


def _run_together(group: list[_Pending]) -> None:
    """One MULTI/EXEC of every pipeline's commands on the first one; replies handed back."""
    carrier = group[0].pipeline
    sizes = [len(carrier.command_stack)]
    for pending in group[1:]:
        sizes.append(len(pending.pipeline.command_stack))
        carrier.command_stack.extend(pending.pipeline.command_stack)
        carrier.scripts.update(pending.pipeline.scripts)  # redis-py's, loaded before MULTI
        pending.pipeline.reset()
    try:
        try:
            # Connected before a byte is written: an unreachable Redis ran nothing.
            carrier.connection = carrier.connection_pool.get_connection()
        except RedisConnectionError as error:
            carrier.reset()
            raise NothingSent(str(error)) from error
        replies = Pipeline.execute(carrier, raise_on_error=False)
    except BaseException as error:
        for pending in group:
            pending.error = error
        raise
    start = 0
    for pending, size in zip(group, sizes, strict=True):
        pending.replies = replies[start : start + size]
        start += size


def _outcome(pending: _Pending, raise_on_error: bool) -> list[Any]:
    if pending.error is not None:
        # Raised in each sender's own copy, so that their tracebacks stay apart.
        raise copy.copy(pending.error) from pending.error
    if pending.replies is None:
        raise RedisTimeoutError("the transaction carrying this one ended without replies")
    if raise_on_error:
        for reply in pending.replies:
            if isinstance(reply, Exception):
                raise reply
    return pending.replies
