"""Task counters and runtime histograms, kept in Redis so that every web process and
every worker adds to one set of figures, and any web process can report them.

Writes ride on round trips that happen anyway (the submission record's pipeline,
the script that stores a task's final state), so counting adds none of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tasks import histogram, keys
from tasks.text import as_text

# Upper bounds of the runtime histogram's buckets, in seconds.
RUNTIME_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
SUBMITTED = "submitted"
SUCCEEDED = "succeeded"
FAILED = "failed"
RETRIED = "retried"
REVOKED = "revoked"

# Celery's final states, as the events they count.
EVENT_OF_STATE = {"SUCCESS": SUCCEEDED, "FAILURE": FAILED, "RETRY": RETRIED, "REVOKED": REVOKED}


def count_command(task: str, event: str) -> list[str]:
    return ["HINCRBY", keys.METRICS_TASK_EVENTS, f"{task}|{event}", "1"]


def runtime_commands(task: str, seconds: float) -> list[list[str]]:
    bucket = histogram.bucket_of(RUNTIME_BUCKETS_S, seconds)
    return [
        ["HINCRBY", keys.METRICS_TASK_RUNTIME, f"{task}|{bucket}", "1"],
        ["HINCRBYFLOAT", keys.METRICS_TASK_RUNTIME, f"{task}|sum", repr(seconds)],
    ]


@dataclass
class Runtime:
    """One task's histogram: counts per bucket (not cumulative) and the sum."""

    buckets: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        return histogram.cumulative(RUNTIME_BUCKETS_S, self.buckets)


@dataclass
class Snapshot:
    events: dict[tuple[str, str], int]
    runtimes: dict[str, Runtime]


def read(client: Any) -> Snapshot:
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS_TASK_EVENTS)
        pipe.hgetall(keys.METRICS_TASK_RUNTIME)
        raw_events, raw_runtimes = pipe.execute()
    events: dict[tuple[str, str], int] = {}
    for name, value in raw_events.items():
        task, _, event = as_text(name).rpartition("|")
        events[(task, event)] = int(value)
    runtimes: dict[str, Runtime] = defaultdict(Runtime)
    for name, value in raw_runtimes.items():
        task, _, bucket = as_text(name).rpartition("|")
        if bucket == "sum":
            runtimes[task].total_s = float(value)
        else:
            runtimes[task].buckets[bucket] = int(value)
    return Snapshot(events=events, runtimes=dict(runtimes))
