"""Tasks that kill their process, under `taskrelay up` with the inline pool: each takes
a worker down at most once, and still nothing is lost and nothing stops: the supervisor
restarts the worker without counting it towards a crash loop, the message comes back
when its lease runs out, its later deliveries run in forked children, and the poison
limit ends it in the dead letters (docs/reliability.md)."""

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
# Three deliveries each that crash: the first waits for its lease and a restarted worker.
POISON_TIMEOUT_S = 150
# Enough crashing tasks at once for more exits of one worker within a minute than a
# crash loop's five: counted as crash loops, these stopped the whole system.
POISON_TASKS = 12


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


def test_tasks_that_kill_their_workers_are_dead_lettered_and_the_system_runs_on(
    inline_system: Up,
) -> None:
    with httpx.Client(base_url=inline_system.base_url, timeout=10) as http:
        poison = [submit(http, "crash_worker") for _ in range(POISON_TASKS)]
        for path in poison:
            done = wait_for_state(http, path, "FAILURE", timeout_s=POISON_TIMEOUT_S)
            assert done["dead_letter"] is True
            assert done["error"]["type"] == "PoisonTaskError"
        restarts = inline_system.restarts()
        # The first delivery of each took its worker down, the later ones a child: a
        # worker's death may count a delivery against several prefetched tasks at once.
        assert 1 <= restarts["worker-1"] + restarts["worker-2"] <= POISON_TASKS, restarts
        assert inline_system.process.poll() is None, inline_system.output()[-2000:]
        healthy = submit(http, "consume", number=1)
        done = wait_for_state(http, healthy, "SUCCESS", timeout_s=30)
        assert done["result"] == {"consumed": 1}
