"""Starting the servers a scenario measures: taskrelay's web, Flower, the article's app,
the HTTP submit scenario's floor."""

from __future__ import annotations

from taskrelay import roles
from taskrelay.bench import baseline_article, floor_web
from taskrelay.bench.stack import Stack
from taskrelay.processes import Child
from taskrelay.waiting import free_port

HOST = "127.0.0.1"
# No rate limit and no per-client share of SSE streams (the load comes from one
# address), and keep-alive comments every second, so a new SSE client gets its
# first bytes soon.
BENCH_WEB_ENV = {
    "TASKRELAY_RATE_LIMIT": "",
    "TASKRELAY_SSE_MAX_STREAMS_PER_CLIENT": "100000",
    "TASKRELAY_SSE_HEARTBEAT_S": "1",
}
FLOWER_AUTH = ("bench", "bench")


def start_taskrelay_web(stack: Stack, env: dict[str, str] | None = None) -> tuple[Child, int]:
    """taskrelay's web under gunicorn, exactly as ``taskrelay up`` runs it."""
    port = free_port()
    child = stack.start(
        f"web-{port}", roles.web_argv(f"{HOST}:{port}"), {**BENCH_WEB_ENV, **(env or {})}
    )
    stack.wait_http(child, f"http://{HOST}:{port}/healthz")
    return child, port


def served_as_taskrelays_web(app: str, port: int) -> list[str]:
    """The command line that serves ``app`` (a gunicorn app spec) as ``taskrelay up``
    serves its web: the same gunicorn configuration and worker class."""
    argv = roles.web_argv(f"{HOST}:{port}")
    argv[-1] = app
    return argv


def start_article_web(stack: Stack, env: dict[str, str] | None = None) -> tuple[Child, int]:
    """The article's Flask app under the same gunicorn configuration as taskrelay's web."""
    return _serve_as_taskrelays_web(
        stack, "article", f"{baseline_article.__name__}:create_app()", env, ready_path="/"
    )


def start_floor_web(stack: Stack, env: dict[str, str] | None = None) -> tuple[Child, int]:
    """taskrelay's web with the POST that sends a task and nothing else
    (floor_web.py), served as taskrelay's web is."""
    env = {**BENCH_WEB_ENV, **(env or {})}
    app = f"{floor_web.__name__}:create_app()"
    return _serve_as_taskrelays_web(stack, "floor-web", app, env, ready_path="/healthz")


def _serve_as_taskrelays_web(
    stack: Stack, name: str, app: str, env: dict[str, str] | None, *, ready_path: str
) -> tuple[Child, int]:
    """Serve ``app`` on a free port as taskrelay's web is served; wait until it answers."""
    port = free_port()
    child = stack.start(f"{name}-{port}", served_as_taskrelays_web(app, port), env)
    stack.wait_http(child, f"http://{HOST}:{port}{ready_path}")
    return child, port


def start_flower(stack: Stack) -> Child:
    """Flower as ``taskrelay up`` runs it, with task events on in the workers it watches."""
    port = free_port()
    user, password = FLOWER_AUTH
    env = {"TASKRELAY_TASK_EVENTS": "1", **roles.flower_env(f"{user}:{password}")}
    child = stack.start("flower", roles.flower_argv(HOST, port), env)
    stack.wait_http(child, f"http://{HOST}:{port}/healthcheck", auth=FLOWER_AUTH)
    return child
