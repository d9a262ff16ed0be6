"""Starting taskrelay's Celery workers for a scenario: how they run, and when they consume.

Every scenario that needs task or relay workers starts them here, so a worker
in the benchmark is started one way: ``roles.worker_argv`` plus what a setup
changes from production.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import celeryconfig
from taskrelay import roles
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, wait_until
from taskrelay.processes import Child
from taskrelay.waiting import free_port
from tasks.celery_ext.liveness import live_consumers
from tasks.queues import TASK_QUEUE


@dataclass(frozen=True)
class WorkerSetup:
    """How taskrelay's task workers run; the defaults are the production configuration.

    ``workers`` worker processes, each with a pool of ``concurrency``: ``taskrelay
    up`` runs as many one-child workers as it is asked for tasks at once, so that
    the broker work of a worker's main process is spread over several processes.
    """

    pool: str = "prefork"
    concurrency: int = 1
    workers: int = 2
    prefetch: int | None = None  # None: celeryconfig's own default
    events: bool = False
    gossip_and_mingle: bool = False
    loglevel: str | None = None  # None: the level roles.worker_argv sets
    hiredis: bool = True
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, node: str, queue: str = TASK_QUEUE) -> list[str]:
        argv = roles.worker_argv(
            queue,
            concurrency=self.concurrency,
            node_name=node,
            pool=self.pool,
            gossip_and_mingle=self.gossip_and_mingle,
        )
        argv += list(self.extra_args)
        if self.loglevel is not None:
            argv += ["--loglevel", self.loglevel]
        return argv

    def describe(self) -> str:
        # celeryconfig's worker_pool stands for `--pool prefork` (TASKRELAY_WORKER_POOL).
        pool = (
            self.env.get("TASKRELAY_WORKER_POOL")
            or os.environ.get("TASKRELAY_WORKER_POOL")
            or celeryconfig.DEFAULT_WORKER_POOL
            if self.pool == "prefork"
            else self.pool
        )
        return f"{self.workers} x {pool} x{self.concurrency}"

    def environment(self, root: Path) -> dict[str, str]:
        env = {"TASKRELAY_TASK_EVENTS": "1" if self.events else "0", **self.env}
        if self.prefetch is not None:
            env["TASKRELAY_PREFETCH"] = str(self.prefetch)
        if not self.hiredis:
            env["PYTHONPATH"] = str(hiredis_blocker(root))
        return env


def hiredis_blocker(root: Path) -> Path:
    """A directory whose ``hiredis`` fails to import, so redis-py parses in pure Python."""
    folder = root / "no-hiredis"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hiredis.py").write_text('raise ImportError("hiredis disabled by the benchmark")\n')
    return folder


def start_workers(
    stack: Stack, prefix: str, setup: WorkerSetup, queue: str = TASK_QUEUE
) -> list[Child]:
    """The worker processes of one setup, each with a node name of its own; no waiting."""
    return [start_worker(stack, prefix, setup, queue) for _ in range(setup.workers)]


def start_worker(stack: Stack, prefix: str, setup: WorkerSetup, queue: str = TASK_QUEUE) -> Child:
    node = f"{prefix}-{free_port()}@bench"
    return stack.start(node, setup.argv(node, queue), setup.environment(stack.root))


def start_consuming_workers(stack: Stack, queue: str, setup: WorkerSetup) -> list[Child]:
    """The workers of a setup, returned once every liveness beacon shows it consumes queue."""
    workers = start_workers(stack, queue, setup, queue=queue)
    client = stack.client()
    try:

        def consuming() -> bool:
            live = live_consumers(client, queue)
            for worker in workers:
                stack.check_alive(worker)
            return all(worker.name in live for worker in workers)

        wait_until(consuming, timeout_s=READY_TIMEOUT_S, what=f"the workers to consume {queue}")
    finally:
        client.close()
    return workers
