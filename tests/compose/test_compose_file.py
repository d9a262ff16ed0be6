"""docker-compose.yml and the Dockerfile: valid, durable, scalable, and made of real commands.

No Docker engine runs here, so Debian's docker-compose validates and interpolates
the file (it needs no engine for `config`), and each role's command and health
check are then run as local processes against the session's Redis, with only
the container's listening address and port swapped for a free loopback port. The
"sentinel" profile's replica and three sentinels are run the same way beside a
primary of their own, agree on it, and fail over to the replica.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

import celeryconfig
from taskrelay.embedded_redis import EmbeddedRedis
from taskrelay.processes import Child
from tasks import redis_urls
from tasks.celery_ext.liveness import live_consumers
from tasks.connections import make_client
from tests.support import REPO_ROOT, free_port, log_tail, stop, wait_until

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ROLES = ("web", "worker", "relay-worker", "scheduler", "flower")
# The ports the roles listen on inside their containers.
WEB_PORT = 5000
FLOWER_PORT = 5555
# A Redis database of this module's own, so that only these roles share its queues.
REDIS_DB = 9
COMPOSE_TIMEOUT_S = 60
HEALTHCHECK_TIMEOUT_S = 60
START_TIMEOUT_S = 90


def docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        # A developer's machine may lack it; CI installs Debian's package.
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is required in CI (Debian package docker-compose)")
        pytest.skip("docker-compose is not installed")
    # Variables from the test's own environment would win over the env file.
    env = {k: v for k, v in os.environ.items() if k not in _variables_of(env_file)}
    env.pop("FLOWER_BASIC_AUTH", None)
    return subprocess.run(
        [
            binary,
            "--project-directory",
            str(REPO_ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=COMPOSE_TIMEOUT_S,
        env=env,
        check=False,
    )


def _variables_of(env_file: Path) -> set[str]:
    lines = env_file.read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it with .env.example."""
    done = docker_compose("config", env_file=ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_the_compose_file_validates_with_the_example_environment() -> None:
    done = docker_compose("config", "-q", env_file=ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_start_flower_without_credentials(tmp_path: Path) -> None:
    without = tmp_path / "env"
    without.write_text(
        "\n".join(
            line
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith("FLOWER_BASIC_AUTH=")
        )
    )
    done = docker_compose("config", "-q", env_file=without)
    assert done.returncode != 0
    assert "FLOWER_BASIC_AUTH" in done.stderr


def test_every_role_runs_from_one_image_with_an_exec_form_command(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(ROLES) <= set(services)
    images = {services[role]["image"] for role in ROLES}
    assert len(images) == 1
    for role in ROLES:
        assert isinstance(services[role]["command"], list), role
        assert services[role]["command"][0] in ("gunicorn", "celery", "python"), role


def test_roles_are_configured_only_through_environment_variables(
    compose: dict[str, Any],
) -> None:
    example = _variables_of(ENV_EXAMPLE)
    source = COMPOSE_FILE.read_text()
    for role in ROLES:
        service = compose["services"][role]
        assert "volumes" not in service and "env_file" not in service, role
        assert service["environment"]["REDIS_URL"], role
    # Every variable the file reads is documented in .env.example.
    for name in set(re.findall(r"\$\{([A-Z0-9_]+)", source)):
        assert name in example, f"{name} is missing from .env.example"


def test_workers_scale_because_no_service_fixes_a_name_and_workers_publish_no_port(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert "container_name" not in service, name
    for role in ("worker", "relay-worker", "scheduler"):
        assert "ports" not in compose["services"][role]


def test_the_published_ports_are_on_loopback_by_default(compose: dict[str, Any]) -> None:
    for role in ("web", "flower"):
        for port in compose["services"][role]["ports"]:
            assert str(port).startswith("127.0.0.1:"), port
    assert "ports" not in compose["services"]["redis"]


def test_workers_may_finish_their_longest_task_before_they_are_killed(
    compose: dict[str, Any],
) -> None:
    for role in ("worker", "relay-worker"):
        grace = duration_s(compose["services"][role]["stop_grace_period"])
        assert grace > celeryconfig.task_time_limit, role


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_redis_is_durable_and_never_evicts(compose: dict[str, Any]) -> None:
    redis_service = compose["services"]["redis"]
    command = " ".join(redis_service["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(volume.endswith(":/data:rw") for volume in redis_service["volumes"])
    assert "redis-data" in compose["volumes"]
    for role in ROLES:
        depends = compose["services"][role]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"


def test_the_image_is_slim_runs_as_a_non_root_user_and_uses_exec_form() -> None:
    instructions = _dockerfile_instructions()
    bases = [args for op, args in instructions if op == "FROM"]
    assert bases and all("slim" in base for base in bases)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for op, args in instructions:
        if op in ("CMD", "ENTRYPOINT"):
            assert isinstance(json.loads(args), list), f"{op} is not in exec form"
    assert any(op == "RUN" and "pip install" in args for op, args in instructions)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            op, _, args = stripped.partition(" ")
            found.append((op.upper(), args.strip()))
    return found


# The roles themselves, started from the resolved compose file.


def local_argv(command: list[str]) -> list[str]:
    """The container's command for this machine: its scripts come from this Python's bin."""
    script = Path(sys.executable).parent / command[0]
    assert script.exists(), f"{command[0]} is not installed beside {sys.executable}"
    return [str(script), *command[1:]]


class Stack:
    """The compose roles running as local processes against one Redis database."""

    def __init__(self, compose: dict[str, Any], redis_url: str, log_dir: Path) -> None:
        self.compose = compose
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.ports = {WEB_PORT: free_port(), FLOWER_PORT: free_port()}
        self.hostname = socket.gethostname()
        self.children: dict[str, Child] = {}

    def environment(self, role: str) -> dict[str, str]:
        env = {k: str(v) for k, v in self.compose["services"][role]["environment"].items()}
        # What a container reaches as redis:6379 is the session's Redis here.
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            if env.get(name):
                env[name] = self.redis_url
        if "TASKRELAY_WEB_BIND" in env:
            env["TASKRELAY_WEB_BIND"] = f"127.0.0.1:{self.ports[WEB_PORT]}"
        # Celery's %h and the health checks' $HOSTNAME name the same host, as in a container.
        env["HOSTNAME"] = self.hostname
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def localize(self, text: str) -> str:
        """Listen and connect on loopback and this stack's free ports."""
        text = text.replace("0.0.0.0", "127.0.0.1")
        for inside, here in self.ports.items():
            text = re.sub(rf"(?<=[:=]){inside}\b", str(here), text)
        return text

    def start(self, role: str) -> Child:
        command = [self.localize(arg) for arg in self.compose["services"][role]["command"]]
        child = Child(
            f"compose-{role}",
            local_argv(command),
            self.log_dir / f"compose-{role}-{os.getpid()}.log",
            self.environment(role),
        )
        child.start()
        self.children[role] = child
        return child

    def healthy(self, role: str) -> subprocess.CompletedProcess[str]:
        """Run the role's health check as Docker would: healthy once it passes within retries."""
        retries = int(self.compose["services"][role]["healthcheck"].get("retries", 3))
        for _ in range(retries):
            done = self.healthcheck(role)
            if done.returncode == 0:
                break
        return done

    def healthcheck(self, role: str) -> subprocess.CompletedProcess[str]:
        kind, *test = self.compose["services"][role]["healthcheck"]["test"]
        # `config` prints $$ as written; the container's shell sees a single $.
        test = [self.localize(part.replace("$$", "$")) for part in test]
        if kind == "CMD-SHELL":
            argv = ["sh", "-c", test[0]]
        else:
            argv = local_argv(test) if test[0] != "python" else [sys.executable, *test[1:]]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=HEALTHCHECK_TIMEOUT_S,
            env={**os.environ, **self.environment(role), "PATH": _path_with_venv()},
            check=False,
        )

    def stop(self) -> None:
        for child in self.children.values():
            stop(child)


def _path_with_venv() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="module")
def stack(compose: dict[str, Any], redis_url: str, log_dir: Path) -> Iterator[Stack]:
    url = re.sub(r"/\d+$", f"/{REDIS_DB}", redis_url)
    client = make_client(url)
    client.flushdb()
    running = Stack(compose, url, log_dir)
    try:
        for role in ROLES:
            running.start(role)
        yield running
    finally:
        running.stop()
        client.flushdb()
        client.close()


def wait_running(stack: Stack, role: str, probe: Any, what: str) -> Any:
    child = stack.children[role]

    def alive_probe() -> Any:
        if child.exit_code() is not None:
            raise AssertionError(f"{role} exited:\n{log_tail(child.log_path)}")
        return probe()

    return wait_until(alive_probe, timeout_s=START_TIMEOUT_S, what=what)


def get(url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, **kwargs)
    except httpx.HTTPError:
        return None


def test_the_web_command_serves_the_api(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.ports[WEB_PORT]}"
    response = wait_running(
        stack, "web", lambda: get(f"{base}/healthz"), "the web role to answer /healthz"
    )
    assert response.status_code == 200
    done = stack.healthy("web")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("role", "queue"), [("worker", "tasks"), ("relay-worker", "relay")])
def test_the_worker_commands_consume_their_queues(stack: Stack, role: str, queue: str) -> None:
    node = f"{queue if queue == 'relay' else 'worker'}@{stack.hostname}"
    client = make_client(stack.redis_url)
    try:
        wait_running(
            stack,
            role,
            lambda: node in live_consumers(client, queue),
            f"{node} to consume {queue}",
        )
    finally:
        client.close()
    done = stack.healthy(role)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_task_submitted_to_the_web_role_runs_on_the_worker_role(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.ports[WEB_PORT]}"
    wait_running(stack, "web", lambda: get(f"{base}/healthz"), "the web role")
    created = httpx.post(f"{base}/api/tasks", json={"task": "consume", "args": [5]}, timeout=5)
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]

    def finished() -> dict[str, Any] | None:
        response = get(f"{base}/api/tasks/{task_id}")
        doc = response.json() if response is not None else None
        return doc if doc and doc["state"] == "SUCCESS" else None

    doc = wait_running(stack, "worker", finished, f"task {task_id} to succeed")
    assert doc["result"] == {"consumed": 5}
    assert doc["worker"] == f"worker@{stack.hostname}"


def test_the_flower_command_always_asks_for_credentials(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.ports[FLOWER_PORT]}"
    response = wait_running(
        stack, "flower", lambda: get(f"{base}/healthcheck"), "Flower to answer /healthcheck"
    )
    assert response.status_code == 200
    assert httpx.get(f"{base}/", timeout=5).status_code == 401
    user, password = stack.environment("flower")["FLOWER_BASIC_AUTH"].split(":", 1)
    assert httpx.get(f"{base}/", auth=(user, password), timeout=5).status_code == 200
    done = stack.healthy("flower")
    assert done.returncode == 0, done.stderr


def test_compose_runs_two_schedulers_and_the_scheduler_command_fires_each_slot_once(
    stack: Stack, compose: dict[str, Any]
) -> None:
    assert compose["services"]["scheduler"]["deploy"]["replicas"] == 2
    base = f"http://127.0.0.1:{stack.ports[WEB_PORT]}"
    wait_running(stack, "web", lambda: get(f"{base}/healthz"), "the web role")
    created = httpx.post(
        f"{base}/api/schedules",
        json={"name": "compose-tick", "task": "consume", "args": [3], "every_s": 1},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    runs_url = f"{base}/api/schedules/compose-tick/runs"

    def two_succeeded() -> list[dict[str, Any]] | None:
        response = get(runs_url)
        runs = response.json()["runs"] if response is not None else []
        done = [run for run in runs if run["state"] == "SUCCESS"]
        return runs if len(done) >= 2 else None

    runs = wait_running(stack, "scheduler", two_succeeded, "two runs of the schedule to succeed")
    slots = [run["slot"] for run in runs]
    assert len(slots) == len(set(slots))
    assert httpx.delete(f"{base}/api/schedules/compose-tick", timeout=5).status_code == 204
    done = stack.healthy("scheduler")
    assert done.returncode == 0, done.stdout + done.stderr


# The "sentinel" profile: one replica of the redis service and three sentinels.

SENTINEL_PROFILE = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")
SENTINEL_NAMES = ("sentinel-1", "sentinel-2", "sentinel-3")
SENTINEL_PORT = 26379
SENTINELS = ",".join(f"{name}:{SENTINEL_PORT}" for name in SENTINEL_NAMES)
# What the sentinels need to agree on a primary, a replica and each other, and to
# finish a planned failover, on a loaded machine.
SENTINEL_TIMEOUT_S = 45


@pytest.fixture(scope="module")
def sentinel_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.env.example with the sentinels named, as its comment says to do."""
    path = tmp_path_factory.mktemp("compose-sentinel") / "env"
    path.write_text(f"{ENV_EXAMPLE.read_text()}\nREDIS_SENTINELS={SENTINELS}\n")
    return path


@pytest.fixture(scope="module")
def sentinel_compose(sentinel_env: Path) -> dict[str, Any]:
    done = docker_compose("--profile", "sentinel", "config", env_file=sentinel_env)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def _sentinel_script(service: dict[str, Any]) -> str:
    kind, flag, script = service["command"]
    assert (kind, flag) == ("sh", "-c")
    text: str = script
    return text


def test_the_sentinel_profile_validates_with_a_replica_and_three_sentinels(
    sentinel_env: Path, sentinel_compose: dict[str, Any]
) -> None:
    done = docker_compose("--profile", "sentinel", "config", "-q", env_file=sentinel_env)
    assert done.returncode == 0, done.stderr
    services = sentinel_compose["services"]
    for name in SENTINEL_PROFILE:
        assert services[name]["profiles"] == ["sentinel"], name
    # The redis service is the primary in either case; the roles still wait for it.
    assert "profiles" not in services["redis"]
    for role in ROLES:
        assert services[role]["depends_on"]["redis"]["condition"] == "service_healthy"
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica
    assert "--appendonly yes" in replica and "--maxmemory-policy noeviction" in replica
    master_name = services["web"]["environment"]["REDIS_MASTER_NAME"]
    volumes = set()
    for name in SENTINEL_NAMES:
        sentinel = services[name]
        assert sentinel["environment"] == {
            "REDIS_MASTER_NAME": master_name,
            "SENTINEL_HOSTNAME": name,
        }
        script = _sentinel_script(sentinel)
        # A quorum of two of the three: one sentinel alone never fails a primary over.
        assert "sentinel monitor $$REDIS_MASTER_NAME redis 6379 2" in script
        assert f"'port {SENTINEL_PORT}'" in script
        # Written once: a restarted sentinel keeps the primary it learned.
        assert script.startswith("[ -f /data/sentinel.conf ] ||")
        volumes.update(sentinel["volumes"])
    assert len(volumes) == len(SENTINEL_NAMES)


def test_with_redis_sentinels_set_every_role_asks_the_profiles_sentinels(
    sentinel_compose: dict[str, Any],
) -> None:
    for role in ROLES:
        env = sentinel_compose["services"][role]["environment"]
        assert env["REDIS_SENTINELS"] == SENTINELS, role
        url = redis_urls.from_environment(env, celeryconfig.DEFAULT_REDIS_URL)
        assert redis_urls.is_sentinel(url), (role, url)
        assert f"/{env['REDIS_MASTER_NAME']}/" in url
        for name in SENTINEL_NAMES:
            assert f"{name}:{SENTINEL_PORT}" in url


def test_without_redis_sentinels_the_roles_use_redis_url(compose: dict[str, Any]) -> None:
    for role in ROLES:
        env = compose["services"][role]["environment"]
        assert env.get("REDIS_SENTINELS", "") == ""
        url = redis_urls.from_environment(env, celeryconfig.DEFAULT_REDIS_URL)
        assert url == env["REDIS_URL"]


class SentinelGroup:
    """The profile's replica and sentinels run as local processes beside a primary.

    The container's names and ports become loopback and free ports, its /data a
    directory of each process's own, and redis-server the tests' server binary.
    """

    def __init__(self, compose: dict[str, Any], primary_port: int, binary: str, root: Path) -> None:
        self.services = compose["services"]
        self.primary_port = primary_port
        self.binary = binary
        self.root = root
        self.replica_port = free_port()
        self.sentinel_ports = {name: free_port() for name in SENTINEL_NAMES}
        self.children: list[Child] = []

    def start(self) -> None:
        self.children.append(self._replica())
        # Synced first: a sentinel reads a replica's INFO when it finds it, then only
        # every 10 s, and promotes no replica whose link it last saw down.
        replica = redis.Redis(port=self.replica_port, socket_timeout=2, decode_responses=True)
        try:
            wait_until(
                lambda: _linked(replica),
                timeout_s=SENTINEL_TIMEOUT_S,
                what="the profile's replica to sync with the primary",
            )
        finally:
            replica.close()
        for name in SENTINEL_NAMES:
            self.children.append(self._sentinel(name))

    def _replica(self) -> Child:
        here = {"redis": "127.0.0.1", "redis-replica": "127.0.0.1"}
        here.update({"6379": str(self.primary_port), "redis-server": self.binary})
        argv = [here.get(arg, arg) for arg in self.services["redis-replica"]["command"]]
        data = self.root / "redis-replica"
        data.mkdir()
        argv += ["--port", str(self.replica_port), "--bind", "127.0.0.1", "--dir", str(data)]
        child = Child("redis-replica", argv, self.root / "redis-replica.log")
        child.start()
        return child

    def _sentinel(self, name: str) -> Child:
        data = self.root / name
        data.mkdir()
        script = (
            _sentinel_script(self.services[name])
            .replace("$$", "$")
            .replace("/data", str(data))
            .replace("redis 6379", f"127.0.0.1 {self.primary_port}")
            .replace(f"port {SENTINEL_PORT}", f"port {self.sentinel_ports[name]}")
            .replace("exec redis-server", f"exec {self.binary}")
        )
        env = {**self.services[name]["environment"], "SENTINEL_HOSTNAME": "127.0.0.1"}
        child = Child(name, ["sh", "-c", script], self.root / f"{name}.log", env)
        child.start()
        return child

    def healthcheck(self, name: str, cli: str) -> subprocess.CompletedProcess[str]:
        kind, test = self.services[name]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        command = (
            test.replace("$$", "$")
            .replace("redis-cli", cli)
            .replace(f"-p {SENTINEL_PORT}", f"-p {self.sentinel_ports[name]}")
        )
        return subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=HEALTHCHECK_TIMEOUT_S,
            env={**os.environ, **self.services[name]["environment"]},
            check=False,
        )

    def stop(self) -> None:
        for child in self.children:
            stop(child)


def _cli() -> str:
    found = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-cli is required in CI to run the sentinels' health check")
        pytest.skip("no redis-cli or valkey-cli on PATH")
    return found


def _linked(replica: redis.Redis) -> bool:
    try:
        return replica.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False


def _ready_replicas(replicas: list[dict[str, Any]]) -> int:
    """Replicas a sentinel would promote: linked to the primary, answering, not down."""
    return sum(
        1
        for replica in replicas
        if replica.get("master-link-status") == "ok"
        and replica.get("is_slave")
        and not (replica.get("is_sdown") or replica.get("is_disconnected"))
    )


def test_the_sentinel_profiles_commands_make_a_group_that_fails_over(
    sentinel_compose: dict[str, Any],
    redis_binary: str,
    tmp_path: Path,
) -> None:
    cli = _cli()
    master_name = sentinel_compose["services"]["web"]["environment"]["REDIS_MASTER_NAME"]
    primary = EmbeddedRedis(
        port=free_port(), data_dir=tmp_path / "redis", durable=False, binary=redis_binary
    )
    primary.start()
    group = SentinelGroup(sentinel_compose, primary.port, redis_binary, tmp_path)
    clients: list[redis.Redis] = []
    try:
        group.start()
        for port in group.sentinel_ports.values():
            clients.append(redis.Redis(port=port, socket_timeout=2, decode_responses=True))

        def agreed_on(port: int, *, with_replica: bool = True) -> bool:
            for child in group.children:
                if child.exit_code() is not None:
                    raise AssertionError(f"{child.name} exited:\n{log_tail(child.log_path)}")
            try:
                return all(
                    client.sentinel_get_master_addr_by_name(master_name) == ("127.0.0.1", port)
                    and len(client.sentinel_sentinels(master_name)) == 2
                    and (
                        not with_replica
                        or _ready_replicas(client.sentinel_slaves(master_name)) == 1
                    )
                    for client in clients
                )
            except redis.RedisError:
                return False

        wait_until(
            lambda: agreed_on(primary.port),
            timeout_s=SENTINEL_TIMEOUT_S,
            what="the three sentinels to see the primary, its replica and each other",
        )
        for name in SENTINEL_NAMES:
            done = group.healthcheck(name, cli)
            assert done.returncode == 0, done.stdout + done.stderr
        # A planned switch: the replica the profile runs can take the primary's place.
        assert clients[0].sentinel_failover(master_name)
        wait_until(
            lambda: agreed_on(group.replica_port, with_replica=False),
            timeout_s=SENTINEL_TIMEOUT_S,
            what="the sentinels to promote the replica",
        )
    finally:
        for client in clients:
            client.close()
        group.stop()
        primary.stop()
