"""CPU time that each role of a system spent during a load, in milliseconds per task,
and how many of the machine's cores were busy meanwhile.

Throughput on a shared 2-core machine moves by tens of percent from one minute to
the next; the CPU a system spends per task barely does, and it says where the time
goes (web, workers, Redis, Flower). Processes are read with their children, so a
gunicorn master counts its workers and a Celery worker its pool.

A rate is the CPU a task costs only while the cores are all busy: cores left idle
(every process waiting on another) are rate lost without CPU spent. So a load also
reads the machine's own counters, for the cores busy over it.
"""

from __future__ import annotations

import re
import resource
import time
from typing import Any

import psutil

# "worker-2", "template-web-40123" -> "worker", "template-web".
_NUMBERED = re.compile(r"-\d+$")


def role(name: str) -> str:
    return _NUMBERED.sub("", name)


def snapshot(pids_by_name: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far, user and system, of each named process tree, summed by role."""
    seconds: dict[str, float] = {}
    for name, pid in pids_by_name.items():
        seconds[role(name)] = seconds.get(role(name), 0.0) + _tree_seconds(pid)
    return seconds


def own_seconds() -> float:
    """CPU seconds so far of this process and of the children it waited for (``wrk``):
    the benchmark's load generator, which runs here."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def machine() -> Any:
    """The machine's CPU time so far, by kind, summed over its cores (``/proc/stat``)."""
    return psutil.cpu_times()


def busy_cores(before: Any, after: Any) -> float | None:
    """How many cores were busy on average between two readings of ``machine()``, to two
    decimals."""
    spent: dict[str, float] = {
        field: getattr(after, field) - getattr(before, field) for field in after._fields
    }
    # Linux counts a guest's time in user and nice too.
    total = sum(spent.values()) - spent.get("guest", 0.0) - spent.get("guest_nice", 0.0)
    if total <= 0:
        return None
    waiting = spent["idle"] + spent.get("iowait", 0.0)
    return round((total - waiting) / total * (psutil.cpu_count() or 1), 2)


def per_task_ms(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / tasks for name in after}
    return {"total": sum(spent.values()), **dict(sorted(spent.items(), key=lambda kv: -kv[1]))}


def describe(spent: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in spent.items())


def _tree_seconds(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue  # a pool child that ended between the two reads
        total += times.user + times.system
    return total
