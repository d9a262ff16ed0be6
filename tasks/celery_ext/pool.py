# kombu is untyped: every call into it would need its own ignore.
# mypy: disable-error-code="no-untyped-call"
"""Celery's prefork pool without the event-loop registrations that change nothing.

Celery's ``AsynPool`` keeps its children's pipes in the worker's kombu hub and asks the
hub again on every turn of the loop and after every message, whatever the hub holds:

- its tick (``on_poll_start``) removes the writer of every idle inqueue whenever there
  is nothing to send or the child is busy, although the last write already removed it:
  one ``epoll_ctl`` DEL failing with ENOENT per child and turn;
- its result reader adds the outqueue's reader again after every message it reads (two
  per task: the child's acknowledgement and the result), although the hub already reads
  that pipe with that very callback: one ``epoll_ctl`` ADD failing with EEXIST each.

Celery's own code still runs, unchanged; the write handlers and the result reader are
only given a view of the hub that leaves out those two calls when they cannot change
anything: a writer removed while the hub holds none for that descriptor, a reader
added with the callback the hub already calls for it. Everything else reaches the hub
as before. A child's pipes and sentinel are registered when it starts and removed when
it exits (``on_process_up``/``on_process_down``, on the hub itself), so a child that is
killed, hits its time limit, is revoked with ``terminate`` or reaches its maximum of
tasks is replaced exactly as in Celery, even when the new pipes get the old numbers.

One change of behaviour, at shutdown: the pool reads its children's results until
every child has exited, where Celery stops reading once its cache is empty. A warm
shutdown right after a job was handed to a child otherwise waited 30 s for that child
(``ResultHandler.on_stop_not_started``).

``worker_pool`` in celeryconfig.py selects this pool wherever a worker asks for
``prefork`` (taskrelay's task workers); the relay worker's solo pool is not affected.
"""

from __future__ import annotations

from typing import Any

from billiard.pool import TERMINATE, WorkersJoined
from celery.concurrency import asynpool, prefork
from kombu.asynchronous import Hub
from kombu.utils.compat import fileno


class _QuietHub:
    """The worker's hub, minus its pipe registrations that cannot change anything.

    The hub's ``readers`` and ``writers`` mirror what its poller watches: the hub puts
    a descriptor in both at once and takes it out of both at once, and nothing else
    registers the pool's pipes.
    """

    def __init__(self, hub: Hub) -> None:
        object.__setattr__(self, "_hub", hub)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Celery sets the hub's consolidate_callback through the handle it is given.
        setattr(self._hub, name, value)

    def remove_writer(self, fd: Any) -> None:
        if fileno(fd) in self._hub.writers:
            self._hub.remove_writer(fd)

    def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
        # A partly read message registers its reader generator instead, so the
        # callback that follows it is always added for real.
        if self._hub.readers.get(fileno(fd)) != (callback, args):
            self._hub.add_reader(fd, callback, *args)


class ResultHandler(asynpool.ResultHandler):  # type: ignore[misc]
    def register_with_event_loop(self, hub: Hub) -> None:
        super().register_with_event_loop(_QuietHub(hub))

    def on_stop_not_started(self) -> None:
        """At shutdown, read the children's outqueues until every child has exited.

        Celery reads them only while its cache holds a job, and the consumer's close
        has just flushed the pool, dropping every job whose acknowledgement the loop has
        not read yet. A job already written to a child is run all the same, and the
        child then waits up to 30 s (billiard's ``_ensure_messages_consumed``) for its
        result to be read before it exits, the warm shutdown waiting with it. This is
        Celery's loop without the condition on the cache.
        """
        outqueues = set(self.fileno_to_outq)
        while outqueues and self._state != TERMINATE:
            if self.check_timeouts is not None:
                self.check_timeouts()
            gone: set[int] = set()
            for fd in outqueues:
                asynpool.iterate_file_descriptors_safely(
                    [fd],
                    self.fileno_to_outq,
                    self._flush_outqueue,
                    gone.add,
                    self.fileno_to_outq,
                    self.on_state_change,
                )
                try:
                    self.join_exited_workers(shutdown=True)
                except WorkersJoined:
                    return
            outqueues -= gone


class AsynPool(asynpool.AsynPool):  # type: ignore[misc]
    ResultHandler = ResultHandler

    def _create_write_handlers(self, hub: Hub, *args: Any, **kwargs: Any) -> Any:
        return super()._create_write_handlers(_QuietHub(hub), *args, **kwargs)


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    Pool = AsynPool
