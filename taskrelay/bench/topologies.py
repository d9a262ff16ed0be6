"""Whole systems for the end-to-end scenario: the 20-line template, and ``taskrelay up``.

taskrelay's children are the ones ``taskrelay up`` builds (taskrelay/up.py), so the
benchmark follows any change to that topology, its scheduling policies included; its
Redis is one of its own, started as ``taskrelay up`` starts its embedded one (durable,
under the same policy) but without password or memory bound, and the web's rate limit
is off because the whole load comes from one address. The template gets a Redis of its
own without persistence, as its tutorial runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import redis

from taskrelay import up
from taskrelay.bench import tuned as tuned_settings
from taskrelay.bench.errors import BenchError
from taskrelay.bench.servers import BENCH_WEB_ENV, FLOWER_AUTH, HOST, served_as_taskrelays_web
from taskrelay.bench.stack import READY_TIMEOUT_S, Stack, python_module, wait_until
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from taskrelay.waiting import free_port
from tasks import queues
from tasks.celery_ext.liveness import live_consumers

# Named, not imported: importing the template builds its Flask and Celery apps.
TEMPLATE_MODULE = "taskrelay.bench.baseline_template"
# As the template's README serves it: four sync workers.
TEMPLATE_WEB_WORKERS = 4
FLOWER_NAME = up.FLOWER_ROLE
WEB_NAME = up.WEB_ROLE


@dataclass
class System:
    """A started system: the port its web answers on, its processes, its own Redis if any."""

    web_port: int
    children: list[Child]
    redis_url: str
    own_redis: EmbeddedRedis | None = None
    # The Redis serving this system, whose CPU counts as the system's (cpu.py).
    redis_pid: int | None = None
    flower_port: int | None = None
    notes: list[str] = field(default_factory=list)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=30)

    def check_alive(self, stack: Stack) -> None:
        for child in self.children:
            stack.check_alive(child)

    def stop(self, stack: Stack) -> None:
        stack.stop(*self.children)
        self.children = []
        if self.own_redis is not None:
            stack.stop_redis(self.own_redis)
            self.own_redis = None


def start_template(stack: Stack, *, tuned: bool = False) -> System:
    """The template's Redis (no persistence), its gunicorn and its Celery worker.

    Tuned, the same code is served and run with the settings of tuned.py instead.
    """
    server = stack.start_redis("template-redis", durable=False)
    env = redis_env(server.url)
    port = free_port()
    prefix = "tuned" if tuned else "template"
    system = System(port, [], server.url, own_redis=server, redis_pid=server.pid)
    try:
        web_argv = _template_web_argv(port, tuned=tuned)
        system.children.append(stack.start(f"{prefix}-web-{port}", web_argv, env))
        if tuned:
            argvs = tuned_settings.worker_argvs(f"{TEMPLATE_MODULE}:celery", "%h")
            for number, argv in enumerate(argvs, 1):
                # A number unique in the run ends each name, so cpu.py sums them as one role.
                system.children.append(stack.start(f"tuned-worker-{port}{number}", argv, env))
        else:
            worker_argv = python_module("celery", "-A", f"{TEMPLATE_MODULE}:celery", "worker")
            system.children.append(stack.start(f"template-worker-{port}", worker_argv, env))
        stack.wait_http(system.children[0], f"http://{HOST}:{port}/api/tasks/ready-check")
    except BaseException:
        system.stop(stack)
        raise
    return system


def start_template_web(stack: Stack) -> tuple[Child, int]:
    """The template's web alone, served as taskrelay's web is, sending into the run's Redis."""
    port = free_port()
    child = stack.start(
        f"template-web-{port}", _template_web_argv(port, tuned=True), redis_env(stack.url)
    )
    stack.wait_http(child, f"http://{HOST}:{port}/api/tasks/ready-check")
    return child, port


def redis_env(redis_url: str) -> dict[str, str]:
    """Every Redis URL a child might read, pointing at one Redis (the run's has its own)."""
    # Celery prefers the last two to the URLs the template passes it.
    return dict.fromkeys(("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"), redis_url)


def _template_web_argv(port: int, *, tuned: bool) -> list[str]:
    """As its tutorial serves it (sync workers); tuned, as taskrelay's web is served."""
    if tuned:
        return served_as_taskrelays_web(f"{TEMPLATE_MODULE}:app", port)
    return python_module(
        "gunicorn",
        "-w",
        str(TEMPLATE_WEB_WORKERS),
        "--bind",
        f"{HOST}:{port}",
        f"{TEMPLATE_MODULE}:app",
    )


def start_taskrelay_up(stack: Stack, *, workers: int, flower: bool) -> System:
    """The children ``taskrelay up --concurrency workers`` starts, Flower among them or not,
    and a Redis of their own, run as ``taskrelay up`` runs its embedded one."""
    web_port, flower_port = free_port(), free_port()
    options = up.UpOptions(
        var_dir=stack.root / f"up-{web_port}",
        web_port=web_port,
        flower_port=flower_port,
        redis_port=0,  # unused: the system's Redis is given
        redis_url=None,
        worker_concurrency=workers,
    )
    server = stack.start_redis(
        f"up-redis-{web_port}", durable=True, scheduling_policy=options.scheduling_policy
    )
    system = System(
        web_port,
        [],
        server.url,
        own_redis=server,
        flower_port=flower_port if flower else None,
        redis_pid=server.pid,
    )
    user, password = FLOWER_AUTH
    children = up.build_children(options, server.url, f"{user}:{password}")
    if not flower:
        children = [child for child in children if child.name != FLOWER_NAME]
    try:
        for child in children:
            child.env = {**BENCH_WEB_ENV, **child.env, **redis_env(server.url)}
            system.children.append(stack.start_child(child))
        _wait_consuming(stack, system, workers)
        # The workers may be consuming before gunicorn listens (an inline worker starts
        # no pool child); the load must not begin against a closed port.
        web_child = next(c for c in system.children if c.name == WEB_NAME)
        stack.wait_http(web_child, f"http://{HOST}:{web_port}/healthz")
        if flower:
            flower_child = next(c for c in system.children if c.name == FLOWER_NAME)
            stack.wait_http(
                flower_child, f"http://{HOST}:{flower_port}/healthcheck", auth=FLOWER_AUTH
            )
    except BaseException:
        system.stop(stack)
        raise
    return system


def _wait_consuming(stack: Stack, system: System, workers: int) -> None:
    """Until every task worker and the relay worker beat for their queues."""
    client = system.client()
    try:

        def consuming() -> bool:
            system.check_alive(stack)
            tasks = live_consumers(client, queues.TASK_QUEUE)
            relays = live_consumers(client, queues.RELAY_QUEUE)
            return len(tasks) >= workers and len(relays) >= 1

        wait_until(
            consuming, timeout_s=READY_TIMEOUT_S, what="taskrelay's workers to consume their queues"
        )
    finally:
        client.close()


def flower_knows(system: System, task_id: str) -> bool:
    """Whether Flower has seen events of the task: proof that it turned task events on."""
    if system.flower_port is None:
        raise BenchError("this system runs no Flower")
    url = f"http://{HOST}:{system.flower_port}/api/task/info/{task_id}"
    try:
        return httpx.get(url, auth=FLOWER_AUTH, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def process_ids(system: System) -> dict[str, int]:
    """Each process of the system by name, its Redis among them."""
    found = {child.name: child.pid for child in system.children if child.pid is not None}
    if system.redis_pid is not None:
        found["redis"] = system.redis_pid
    return found
