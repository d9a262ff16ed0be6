"""The end-to-end client: N tasks POSTed by C clients, then every id read with GET until SUCCESS.

The same client drives every subject, so the figures differ only by the server.
Each client is one keep-alive connection of httpclient.py (reconnecting when a
server closes it, as gunicorn's sync workers do after every answer). A task still
running is read again, no sooner than REREAD_AFTER_S after its last read, so the
reads never crowd out the work they wait for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from taskrelay.bench.httpclient import Connection, Request

SUCCESS = "SUCCESS"
FAILED_STATES = frozenset({"FAILURE", "REVOKED"})
ACCEPTED = 202
REREAD_AFTER_S = 0.05
SEND_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError)

# The GET that reads one task's state, by its id.
ReadRequest = Callable[[str], Request]


@dataclass(frozen=True)
class TaskLoad:
    tasks: int
    clients: int


@dataclass
class Outcome:
    """What the client saw; times are ``time.perf_counter()`` readings."""

    ids: list[str] = field(default_factory=list)
    submit_latencies_s: list[float] = field(default_factory=list)
    rejected: int = 0
    first_post_at: float | None = None
    last_success_at: float | None = None
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def span_s(self) -> float:
        if self.first_post_at is None or self.last_success_at is None:
            return 0.0
        return self.last_success_at - self.first_post_at


def submit_and_confirm(
    submit: Request,
    read: ReadRequest,
    load: TaskLoad,
    deadline_s: float,
) -> Outcome:
    """POST ``load.tasks`` tasks, then GET each until SUCCESS; give up after deadline_s.

    Tasks that failed, or had not succeeded by the deadline, are listed in the outcome.
    """
    return asyncio.run(_submit_and_confirm(submit, read, load, deadline_s))


async def _submit_and_confirm(
    submit: Request, read: ReadRequest, load: TaskLoad, deadline_s: float
) -> Outcome:
    outcome = Outcome()
    deadline = time.perf_counter() + deadline_s
    connections = [Connection(submit.host, submit.port) for _ in range(load.clients)]
    try:
        # One iterator shared by the clients: each POST takes the next ticket.
        tickets = iter(range(load.tasks))
        await asyncio.gather(
            *(_post_all(c, submit, tickets, outcome, deadline) for c in connections)
        )
        pending = deque((task_id, 0.0) for task_id in outcome.ids)
        await asyncio.gather(*(_read_all(c, read, pending, outcome, deadline) for c in connections))
        outcome.unfinished = [task_id for task_id, _ in pending]
    finally:
        for connection in connections:
            await connection.close()
    return outcome


async def _post_all(
    connection: Connection,
    submit: Request,
    tickets: Iterator[int],
    outcome: Outcome,
    deadline: float,
) -> None:
    for _ in tickets:
        sent = time.perf_counter()
        if sent > deadline:
            break
        if outcome.first_post_at is None:
            outcome.first_post_at = sent
        try:
            status, body = await connection.send(submit.raw)
        except SEND_ERRORS:
            outcome.rejected += 1
            continue
        if status != ACCEPTED:
            outcome.rejected += 1
            continue
        outcome.submit_latencies_s.append(time.perf_counter() - sent)
        outcome.ids.append(str(json.loads(body)["id"]))


async def _read_all(
    connection: Connection,
    read: ReadRequest,
    pending: deque[tuple[str, float]],
    outcome: Outcome,
    deadline: float,
) -> None:
    while pending and time.perf_counter() < deadline:
        task_id, not_before = pending.popleft()
        wait_s = min(not_before, deadline) - time.perf_counter()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        try:
            status, body = await connection.send(read(task_id).raw)
        except SEND_ERRORS:
            status, body = 0, b""
        state = str(json.loads(body).get("state")) if status == 200 else ""
        if state == SUCCESS:
            outcome.succeeded += 1
            outcome.last_success_at = time.perf_counter()
        elif state in FAILED_STATES:
            outcome.failed.append(task_id)
        else:
            pending.append((task_id, time.perf_counter() + REREAD_AFTER_S))
