"""Break a running system the way an operator meets it, and check that no accepted task is lost.

    .venv/bin/python scripts/fault_drill.py                  # 6,000 POSTs from 6 clients
    .venv/bin/python scripts/fault_drill.py --tasks 20000

Runs `taskrelay up` on free ports with its own Redis and a throw-away var directory,
then POSTs no-op tasks over keep-alive connections while, one second apart, it
SIGKILLs a web worker, SIGKILLs a task worker and stops Redis (SIGTERM; `taskrelay up`
restarts every role). Once `/readyz` answers again it reads every accepted task until
SUCCESS, stops the system with Ctrl-C's SIGINT, and looks for processes left behind.

Prints what the clients saw (accepted, refused with their statuses, connections cut
by the killed web worker) and exits 1 if an accepted task did not succeed or anything
outlived the system. A 503 is an answer, not a loss: it says nothing was enqueued.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from taskrelay import throwaway_system
from taskrelay.bench.httpclient import Connection, Request
from taskrelay.bench.task_client import SEND_ERRORS

HOST = "127.0.0.1"
SETTLE_TIMEOUT_S = 300.0
FAULT_SPACING_S = 1.0
ACCEPTED = (200, 202)


@dataclass
class Seen:
    """What the clients saw of their POSTs."""

    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    cut: int = 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000, help="tasks to POST in all")
    parser.add_argument("--clients", type=int, default=6, help="keep-alive connections")
    args = parser.parse_args()
    with throwaway_system.running("taskrelay-fault-drill-") as system:
        web_port = system.web_port
        seen = asyncio.run(
            submit_under_faults(web_port, system.process.pid, args.tasks, args.clients)
        )
        print(
            f"accepted {len(seen.accepted)}, refused {sum(seen.refused.values())} "
            f"{dict(seen.refused)}, connections cut {seen.cut}"
        )
        system.wait_ready()
        unfinished = asyncio.run(read_until_success(web_port, seen.accepted))
        print(f"accepted and not SUCCESS within {SETTLE_TIMEOUT_S:g} s: {len(unfinished)}")
    left = system.left_behind()
    exit_code = system.process.returncode
    print(f"taskrelay up exited with {exit_code}; processes left behind: {left}")
    return 0 if not unfinished and not left and exit_code == 0 else 1


async def submit_under_faults(web_port: int, up_pid: int, tasks: int, clients: int) -> Seen:
    seen = Seen()
    shares = [tasks // clients + (1 if n < tasks % clients else 0) for n in range(clients)]
    submitters = [submit(web_port, share, seen) for share in shares]
    await asyncio.gather(inject_faults(up_pid), *submitters)
    return seen


async def submit(web_port: int, count: int, seen: Seen) -> None:
    connection = Connection(HOST, web_port)
    request = Request.build(HOST, web_port, "POST", "/api/tasks", {"task": "noop"})
    try:
        for _ in range(count):
            try:
                status, body = await connection.send(request.raw)
            except SEND_ERRORS:
                seen.cut += 1  # the request died with its web worker: not accepted
                continue
            if status in ACCEPTED:
                seen.accepted.append(json.loads(body)["id"])
            else:
                seen.refused[status] += 1
    finally:
        await connection.close()


async def inject_faults(up_pid: int) -> None:
    """A web worker, a task worker, then Redis, one second apart."""
    faults: list[tuple[str, Callable[[psutil.Process], bool], signal.Signals]] = [
        ("a web worker", _is_web_worker, signal.SIGKILL),
        ("a task worker", lambda process: "tasks-1@" in _command(process), signal.SIGKILL),
        ("Redis", lambda process: "redis-server" in _command(process), signal.SIGTERM),
    ]
    for what, matches, sig in faults:
        await asyncio.sleep(FAULT_SPACING_S)
        victim = _find(up_pid, matches)
        if victim is None:
            raise SystemExit(f"found no process of {what} to stop")
        victim.send_signal(sig)
        print(f"{sig.name} to {what} (pid {victim.pid})")


def _is_web_worker(process: psutil.Process) -> bool:
    # gunicorn's workers are forks of its master, so both name gunicorn.
    parent = process.parent()
    return "gunicorn" in _command(process) and parent is not None and "gunicorn" in _command(parent)


def _command(process: psutil.Process) -> str:
    return " ".join(process.cmdline())


def _find(up_pid: int, matches: Callable[[psutil.Process], bool]) -> psutil.Process | None:
    for process in psutil.Process(up_pid).children(recursive=True):
        try:
            if matches(process):
                return process
        except psutil.Error:
            continue  # it ended meanwhile
    return None


async def read_until_success(web_port: int, task_ids: list[str]) -> set[str]:
    """The accepted tasks not SUCCESS by the deadline, each read again every second."""
    pending = set(task_ids)
    connection = Connection(HOST, web_port)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    try:
        while pending and time.monotonic() < deadline:
            for task_id in list(pending):
                request = Request.build(HOST, web_port, "GET", f"/api/tasks/{task_id}")
                try:
                    status, body = await connection.send(request.raw)
                except SEND_ERRORS:
                    break  # read again on the next pass
                if status == 200 and json.loads(body)["state"] == "SUCCESS":
                    pending.discard(task_id)
            if pending:
                await asyncio.sleep(1)
    finally:
        await connection.close()
    return pending


if __name__ == "__main__":
    sys.exit(main())
