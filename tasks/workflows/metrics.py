"""Workflow counters and the histogram of their step counts, kept in Redis like the
task metrics (tasks/metrics.py), so any web process reports the whole cluster.

Submissions are counted in the MULTI/EXEC that records the workflow; each outcome
once, in ``settle.lua``, by whoever ends the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks import histogram, keys
from tasks.celery_ext.result_backend import Command
from tasks.text import as_text

SUBMITTED = "submitted"
# Upper bounds of the step-count histogram's buckets, in task steps.
STEP_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
_SUM = "sum"


def submitted_commands(step_count: int) -> list[Command]:
    bucket = histogram.bucket_of(STEP_BUCKETS, step_count)
    return [
        ["HINCRBY", keys.METRICS_WORKFLOWS, SUBMITTED, "1"],
        ["HINCRBY", keys.METRICS_WORKFLOW_STEPS, bucket, "1"],
        ["HINCRBY", keys.METRICS_WORKFLOW_STEPS, _SUM, str(step_count)],
    ]


@dataclass
class Snapshot:
    # "submitted", and each outcome (SUCCESS, FAILURE, REVOKED), with its count.
    counts: dict[str, int] = field(default_factory=dict)
    # Workflows by bucket of step count (not cumulative), and the sum of all steps.
    step_buckets: dict[str, int] = field(default_factory=dict)
    steps_total: int = 0

    def cumulative_steps(self) -> list[tuple[str, int]]:
        return histogram.cumulative(STEP_BUCKETS, self.step_buckets)


def read(client: Any) -> Snapshot:
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS_WORKFLOWS)
        pipe.hgetall(keys.METRICS_WORKFLOW_STEPS)
        raw_counts, raw_steps = pipe.execute()
    snapshot = Snapshot(counts={as_text(k): int(v) for k, v in raw_counts.items()})
    for name, value in raw_steps.items():
        if as_text(name) == _SUM:
            snapshot.steps_total = int(value)
        else:
            snapshot.step_buckets[as_text(name)] = int(value)
    return snapshot
