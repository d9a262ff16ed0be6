"""CPU time that each role of a system spent during a load, in milliseconds per task.

Throughput on a shared 2-core machine moves by tens of percent from one minute to
the next; the CPU a system spends per task barely does, and it says where the time
goes (web, workers, Redis, Flower). Processes are read with their children, so a
gunicorn master counts its workers and a Celery worker its pool.
"""

from __future__ import annotations

import re

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
