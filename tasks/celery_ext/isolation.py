# billiard is untyped.
# mypy: disable-error-code="no-untyped-call"
"""One call run in a forked child of the worker, its return value read back.

The inline pool (tasks/celery_ext/inline_pool.py) runs a task in its worker's own
process, so a task that crashes its interpreter takes the worker with it. A task
whose attempt comes back after that (the fetch counted more than one delivery) may
be the one that did it, so it runs here instead: in a child forked for it alone, as
the prefork pool would run it, so that it costs a child, not the worker, each time
it crashes again until the poison limit buries it.

billiard's process (Celery's own) does the fork, so the child runs the after-fork
hooks that Celery and kombu register (a fresh producer pool, new logging locks)
before the call.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import billiard

# How long the parent waits for a child that closed its pipe to be reaped.
REAP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Died:
    """A child that ended without handing back its return value."""

    how: str


def run_forked(call: Callable[[], Any], on_started: Callable[[int], None]) -> Any:
    """``call()`` in a forked child: its return value (pickled back), or ``Died``."""
    read_end, write_end = os.pipe()
    child = billiard.get_context("fork").Process(
        target=_child_main, args=(call, read_end, write_end), name="taskrelay-isolated"
    )
    try:
        child.start()
    finally:
        os.close(write_end)
    try:
        on_started(child.pid)
        payload = _read_to_end(read_end)
    finally:
        os.close(read_end)
        # The pipe closes as the child exits; a child still alive here was left
        # by an exception in this process (a cold shutdown) and goes with it.
        child.join(REAP_TIMEOUT_S)
        if child.exitcode is None:
            child.kill()
            child.join(REAP_TIMEOUT_S)
    if child.exitcode != 0 or not payload:
        return Died(_describe(child.exitcode))
    # Written by this process's own fork, through a pipe no one else holds.
    return pickle.loads(payload)  # noqa: S301


def _child_main(call: Callable[[], Any], read_end: int, write_end: int) -> None:
    os.close(read_end)
    # As Celery's prefork children: a terminal's Ctrl-C is the worker's to handle,
    # and the worker's own handlers of the rest are not this process's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    payload = pickle.dumps(call())
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(payload)


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"
