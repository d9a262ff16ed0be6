"""Starting the servers a scenario measures: taskrelay's web and workers, the article's app."""

from __future__ import annotations

from taskrelay import roles
from taskrelay.bench import baseline_article
from taskrelay.bench.drain import WorkerSetup, start_workers
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, wait_until
from taskrelay.processes import Child
from taskrelay.waiting import free_port
from tasks.celery_ext.liveness import live_consumers

HOST = "127.0.0.1"
# Keep-alive comments every second, so a new SSE client gets its first bytes soon.
BENCH_WEB_ENV = {"TASKRELAY_RATE_LIMIT": "", "TASKRELAY_SSE_HEARTBEAT_S": "1"}


def start_taskrelay_web(stack: Stack, env: dict[str, str] | None = None) -> tuple[Child, int]:
    """taskrelay's web under gunicorn, exactly as ``taskrelay up`` runs it."""
    port = free_port()
    child = stack.start(
        f"web-{port}", roles.web_argv(f"{HOST}:{port}"), {**BENCH_WEB_ENV, **(env or {})}
    )
    stack.wait_http(child, f"http://{HOST}:{port}/healthz")
    return child, port


def start_article_web(stack: Stack, env: dict[str, str] | None = None) -> tuple[Child, int]:
    """The article's Flask app under the same gunicorn configuration as taskrelay's web."""
    port = free_port()
    argv = roles.web_argv(f"{HOST}:{port}")
    argv[-1] = f"{baseline_article.__name__}:create_app()"
    child = stack.start(f"article-{port}", argv, env)
    stack.wait_http(child, f"http://{HOST}:{port}/")
    return child, port


def start_taskrelay_workers(stack: Stack, queue: str, setup: WorkerSetup) -> list[Child]:
    """taskrelay's workers, returned once every liveness beacon shows it consumes the queue."""
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
