"""``taskrelay up``: the whole system in the foreground, kept running, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskrelay import embedded_redis, roles, scheduling, user_tasks
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.errors import SetupError
from taskrelay.processes import Child, EmbeddedRedisRole, stop_together
from taskrelay.supervisor import CrashLoop, Role, Supervisor
from tasks import connections, role_restarts
from tasks.celery_ext.keeper import EXIT_TASK_WOULD_NOT_STOP
from tasks.queues import TASK_QUEUE

READY_TIMEOUT_S = 90.0
READY_POLL_INTERVAL_S = 0.5
# Writing the restart counts gives up this soon; the supervisor tries again later.
RESTARTS_WRITE_TIMEOUT_S = 1.0
# Workers get this long to finish the tasks they hold after SIGTERM (warm
# shutdown); it matches the hard time limit in celeryconfig plus a margin.
WORKER_STOP_TIMEOUT_S = 360.0
FLOWER_USER = "admin"


@dataclass(frozen=True)
class UpOptions:
    var_dir: Path
    web_port: int
    flower_port: int
    redis_port: int
    redis_url: str | None
    worker_concurrency: int
    bind_address: str = "127.0.0.1"
    # The user's task modules (``--tasks``) for every role; None passes the
    # environment's TASKRELAY_TASK_MODULES through as it is.
    task_modules: str | None = None
    # The Linux scheduling policy of every role but the web (taskrelay/scheduling.py).
    scheduling_policy: scheduling.Policy = scheduling.BATCH


# The web's and Flower's role names.
WEB_ROLE = "web"
FLOWER_ROLE = "flower"
# The task workers' role names: worker-1, worker-2, ...
TASK_WORKER_ROLE = "worker-"


def killed_with_its_task(role_name: str, exit_code: int) -> bool:
    """A task worker ended by a signal, or because its task would not stop: the task's
    doing (a crash or an out-of-memory kill under the inline pool), which the poison
    limit deals with, so it is restarted without counting towards a crash loop. A worker
    that exits by itself (it cannot start) still counts."""
    return role_name.startswith(TASK_WORKER_ROLE) and (
        exit_code < 0 or exit_code == EXIT_TASK_WOULD_NOT_STOP
    )


def flower_credentials(var_dir: Path) -> str:
    """FLOWER_BASIC_AUTH, else a generated user:password kept under var/ (mode 600)."""
    configured = os.environ.get("FLOWER_BASIC_AUTH")
    if configured:
        try:
            roles.flower_env(configured)
        except ValueError as error:
            raise SetupError(f"FLOWER_BASIC_AUTH: {error}") from None
        return configured
    path = var_dir / "flower-credentials"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    credentials = f"{FLOWER_USER}:{secrets.token_urlsafe(18)}"
    path.touch(mode=0o600)
    path.write_text(credentials + "\n")
    return credentials


def build_children(options: UpOptions, redis_url: str, flower_auth: str) -> list[Child]:
    logs = options.var_dir / "log"
    env = {
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "TASKRELAY_FLOWER_URL": f"http://{options.bind_address}:{options.flower_port}/",
        # One setting for every role: the web accepts only tasks a worker can run.
        **user_tasks.role_env(options.task_modules),
    }
    children = [
        Child(
            WEB_ROLE,
            roles.web_argv(f"{options.bind_address}:{options.web_port}"),
            logs / "web.log",
            env,
        ),
        # One worker process per task at once, each with one pool child: a worker's
        # main process does the broker work (fetch, unacked record, ack) for all its
        # children, and several of them drain about 1.3x faster than one with as
        # many children (docs/benchmarks.md).
        *(
            Child(
                f"{TASK_WORKER_ROLE}{number}",
                roles.worker_argv(TASK_QUEUE, concurrency=1, node_name=f"{TASK_QUEUE}-{number}@%h"),
                logs / f"{TASK_WORKER_ROLE}{number}.log",
                env,
                stop_timeout_s=WORKER_STOP_TIMEOUT_S,
            )
            for number in range(1, options.worker_concurrency + 1)
        ),
        Child(
            "relay",
            roles.relay_worker_argv(),
            logs / "relay.log",
            env,
            stop_timeout_s=WORKER_STOP_TIMEOUT_S,
        ),
        Child(
            FLOWER_ROLE,
            roles.flower_argv(options.bind_address, options.flower_port),
            logs / "flower.log",
            {**env, **roles.flower_env(flower_auth)},
        ),
        # One scheduler: restarted by the supervisor if it dies, its lease expires and
        # it takes over again; more of them (compose runs two) only shorten that gap.
        Child("scheduler", roles.scheduler_argv(), logs / "scheduler.log", env),
    ]
    # The web, woken by the people it answers, keeps the default policy; the roles
    # that the web's and each other's writes wake do not preempt the writer.
    for child in children:
        if child.name != WEB_ROLE:
            child.scheduling_policy = options.scheduling_policy
    return children


class System:
    """Redis (unless given), then web, workers and Flower, kept running; stopped front first.

    A role that exits is restarted by the supervisor; a crash loop, or a signal,
    stops everything: web and Flower together first (no new work comes in), then
    every worker at once, each finishing the tasks it holds, and Redis last.
    """

    def __init__(self, options: UpOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.supervisor: Supervisor | None = None
        self.stopping = threading.Event()
        self._restarts_client: redis.Redis | None = None

    def run(self) -> int:
        """Start everything, keep it running until a signal or a crash loop, stop everything."""
        modules = user_tasks.check(self.options.task_modules)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        failed = False
        try:
            self._start(modules)
            self._watch()
        except CrashLoop as error:
            self.say(str(error))
            failed = True
        finally:
            self.stop()
            if self._restarts_client is not None:
                self._restarts_client.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _start(self, modules: tuple[str, ...]) -> None:
        options = self.options
        redis_url = options.redis_url
        roles: list[Role] = []
        if redis_url is None:
            # Locked down: a password (in var/, mode 600), no dangerous commands, a memory bound.
            self.redis = embedded_redis.for_up(
                options.redis_port, options.var_dir, options.scheduling_policy
            )
            redis_url = self.redis.url
            roles.append(EmbeddedRedisRole(self.redis))
        flower_auth = flower_credentials(options.var_dir)
        self.children = build_children(options, redis_url, flower_auth)
        self.supervisor = Supervisor(
            [*roles, *self.children],
            self.say,
            lambda counts: self._publish(redis_url, counts),
            not_its_failure=killed_with_its_task,
        )
        self.supervisor.start_all()
        if self.redis is not None:
            self.say(
                f"redis   {_hide_password(redis_url)}  (embedded, data in {self.redis.data_dir})"
            )
        else:
            self.say(f"redis   {_hide_password(redis_url)}  (from REDIS_URL)")
        self._wait_ready(self.supervisor)
        web = f"http://{options.bind_address}:{options.web_port}"
        self.say(f"web     {web}/  (API {web}/api/, OpenAPI {web}/api/openapi.json)")
        # The password stays out of the terminal, which is often a log too.
        user = flower_auth.partition(":")[0]
        where = (
            "FLOWER_BASIC_AUTH" if os.environ.get("FLOWER_BASIC_AUTH") else "var/flower-credentials"
        )
        self.say(
            f"flower  http://{options.bind_address}:{options.flower_port}/  "
            f"(user {user}; password in {where})"
        )
        self.say(f"tasks   {', '.join(('built-in', *modules))}")
        self.say(f"logs    {options.var_dir / 'log'}")
        self.say("ready; press Ctrl-C to stop")

    def _wait_ready(self, supervisor: Supervisor) -> None:
        url = f"http://{self.options.bind_address}:{self.options.web_port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping.is_set():
            supervisor.tick()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(READY_POLL_INTERVAL_S)
        if not self.stopping.is_set():
            raise SetupError(f"the system was not ready within {READY_TIMEOUT_S:g} s ({url})")

    def _watch(self) -> None:
        assert self.supervisor is not None
        wait_s = 0.0
        while not self.stopping.wait(wait_s):
            wait_s = self.supervisor.tick()

    def _publish(self, redis_url: str, restarts: Mapping[str, int]) -> bool:
        """Write the restart counts for the web to show; False when Redis cannot take them."""
        try:
            if self._restarts_client is None:
                # A Sentinel URL too (tasks/connections.py).
                self._restarts_client = connections.make_blocking_client(
                    redis_url,
                    max_connections=1,
                    pool_wait_s=RESTARTS_WRITE_TIMEOUT_S,
                    socket_connect_timeout=RESTARTS_WRITE_TIMEOUT_S,
                    socket_timeout=RESTARTS_WRITE_TIMEOUT_S,
                    # The supervisor tries again later; a retry here would only stall it.
                    retry=Retry(NoBackoff(), 0),
                )
            role_restarts.write(self._restarts_client, restarts)
        except redis.RedisError:
            return False
        return True

    def stop(self) -> None:
        if not self.children and self.redis is None:
            return
        self.say("stopping: web, flower, workers (finishing their tasks), redis")
        # Nothing takes new work once web and Flower are gone; then the workers
        # finish what they hold.
        front = [child for child in self.children if child.name in (WEB_ROLE, FLOWER_ROLE)]
        stop_together(front)
        stop_together([child for child in self.children if child not in front])
        self.children = []
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        self.say("stopped")


def _hide_password(url: str) -> str:
    parsed = httpx.URL(url)
    masked = "***"
    return str(parsed.copy_with(password=masked)) if parsed.password else url
