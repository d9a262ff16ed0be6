"""A task that kills its process, under `taskrelay up` with the inline pool: it takes its
worker down each time rather than a pool child, and still nothing is lost and nothing
stops: the supervisor restarts the worker, the message comes back when its lease runs
out, and the poison limit ends it in the dead letters (docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.test_supervisor import (
    Up,
    start_up,
    stop_up,
    submit,
    wait_for_state,
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Short leases: each crash's message comes back within seconds.
VISIBILITY_TIMEOUT_S = 4
# Three deliveries that crash, each waiting for its lease and a restarted worker.
POISON_TIMEOUT_S = 120


@pytest.fixture
def inline_system(tmp_path: Path) -> Iterator[Up]:
    up = start_up(
        tmp_path,
        env={
            "TASKRELAY_WORKER_POOL": "inline",
            "TASKRELAY_TASK_MODULES": "tests.faults.fault_tasks",
            "TASKRELAY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        },
    )
    try:
        wait_ready(up)
        yield up
    finally:
        stop_up(up)


def test_a_task_that_kills_its_worker_is_dead_lettered_and_the_system_runs_on(
    inline_system: Up,
) -> None:
    with httpx.Client(base_url=inline_system.base_url, timeout=10) as http:
        poison = submit(http, "crash_worker")
        done = wait_for_state(http, poison, "FAILURE", timeout_s=POISON_TIMEOUT_S)
        assert done["dead_letter"] is True
        assert done["error"]["type"] == "PoisonTaskError"
        restarts = inline_system.restarts()
        assert restarts["worker-1"] + restarts["worker-2"] >= 1, restarts
        assert inline_system.process.poll() is None
        healthy = submit(http, "consume", number=1)
        assert wait_for_state(http, healthy, "SUCCESS", timeout_s=30)["result"] == {"consumed": 1}
