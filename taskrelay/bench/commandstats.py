"""Redis commands per task, by command, from ``INFO commandstats`` read before and after a run.

These are the figures a change of the transport or of the task path should move,
and unlike rates they do not depend on how busy the machine is. Redis counts every
command it runs, so a command inside a Lua script or a MULTI counts once of its own
(``EVALSHA`` 1 + ``SET`` 1 + ...): these are commands, not round trips. Whatever
else talks to Redis during the run counts too (worker start-up, heartbeats, the
benchmark's own polling); commands below SHOWN_FROM per task are left out of the
table but kept in the total.
"""

from __future__ import annotations

from typing import Any

# Below this many calls per task a command is start-up, a timer or polling, not the task path.
SHOWN_FROM = 0.05
# The benchmark's own reads of the counters, never part of a task's path.
OWN_COMMANDS = frozenset({"info"})
TOTAL = "total"
DIGITS = 2


def snapshot(client: Any) -> dict[str, int]:
    """Calls so far of each command Redis has run, by lower-case name (``client|setname``)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}


def per_task(before: dict[str, int], after: dict[str, int], tasks: int) -> dict[str, float]:
    """Calls per task between two snapshots: the total first, then by command, most first."""
    if tasks <= 0:
        return {}
    calls = {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if name not in OWN_COMMANDS and count > before.get(name, 0)
    }
    shown = {
        name: round(count / tasks, DIGITS)
        for name, count in sorted(calls.items(), key=lambda item: -item[1])
        if count / tasks >= SHOWN_FROM
    }
    return {TOTAL: round(sum(calls.values()) / tasks, DIGITS), **shown}


def describe(calls: dict[str, float]) -> str:
    """``total 14.2: evalsha 1.00, brpop 1.00, ...`` for the table."""
    parts = [f"{name} {value:.2f}" for name, value in calls.items() if name != TOTAL]
    return f"total {calls.get(TOTAL, 0.0):.2f}: " + ", ".join(parts)
