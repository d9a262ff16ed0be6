"""Starting the servers a scenario measures: taskrelay's web and workers, the article's app."""

from __future__ import annotations

from taskrelay import roles
from taskrelay.bench import baseline_article
from taskrelay.bench.drain import WorkerSetup
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, free_port, wait_until
from taskrelay.processes import Child
from tasks.liveness import live_consumers

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


def start_taskrelay_worker(stack: Stack, queue: str, setup: WorkerSetup) -> Child:
    """A taskrelay worker, returned once its liveness beacon shows it consumes the queue."""
    node = f"{queue}-{free_port()}@bench"
    argv = setup.argv(node)
    argv[argv.index("-Q") + 1] = queue
    child = stack.start(node, argv, setup.environment(stack.root))
    client = stack.client()
    try:

        def consuming() -> bool:
            stack.check_alive(child)
            return node in live_consumers(client, queue)

        wait_until(consuming, timeout_s=READY_TIMEOUT_S, what=f"{node} to consume {queue}")
    finally:
        client.close()
    return child
