"""`taskrelay up` keeps running when one of its roles dies, and stops only on a crash loop.

Each test drives a real `taskrelay up` on free ports (as tests/e2e/test_quickstart.py
does), SIGKILLs a role's main process and watches the supervisor restart it while
the API keeps answering.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil
import pytest

from taskrelay import roles, scheduling
from taskrelay.supervisor import CRASH_LOOP_EXITS, CRASH_LOOP_WINDOW_S
from tests.faults.helpers import Stopwatch
from tests.support import REPO_ROOT, free_port, log_tail, wait_until

# The first test pays for starting the shared system; none takes longer than this.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

READY_BANNER = "ready; press Ctrl-C to stop"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 30.0
# How long the processes of a stopped system may take to be gone.
GONE_TIMEOUT_S = 10.0
API_POLL_INTERVAL_S = 0.1
# Celery's line, once per start, in a worker's log.
WORKER_READY_LINE = " ready."
# In the command line of the web's main process (the gunicorn master) only.
WEB_MARKER = "-m gunicorn"


@dataclass
class Up:
    """One `taskrelay up` process and where to reach and read it."""

    process: subprocess.Popen[bytes]
    base_url: str
    flower_url: str
    log_path: Path
    var_dir: Path
    seen: set[psutil.Process] = field(default_factory=set)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def role_pid(self, marker: str) -> int | None:
        """The main process of the role whose command line contains marker."""
        for child in psutil.Process(self.process.pid).children():
            try:
                if marker in " ".join(child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    def remember_processes(self) -> None:
        """Note every process below `taskrelay up`, to check later that none outlives it."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen.update(psutil.Process(self.process.pid).children(recursive=True))

    def restarts(self) -> dict[str, int]:
        doc = httpx.get(f"{self.base_url}/readyz", timeout=10).json()
        counts: dict[str, int] = doc["supervisor"]["restarts"]
        return counts

    def role_log(self, name: str) -> str:
        return (self.var_dir / "log" / f"{name}.log").read_text(errors="replace")


def start_up(
    tmp_path: Path, *, flower_port: int | None = None, env: dict[str, str] | None = None
) -> Up:
    web_port = free_port()
    flower_port = flower_port or free_port()
    var_dir = tmp_path / "var"
    log_path = tmp_path / "up.log"
    argv = [
        str(Path(sys.executable).with_name("taskrelay")), "up",
        "--web-port", str(web_port), "--flower-port", str(flower_port),
        "--redis-port", str(free_port()), "--var-dir", str(var_dir), "--concurrency", "2",
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"} | (env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Up(
        process,
        f"http://127.0.0.1:{web_port}",
        f"http://127.0.0.1:{flower_port}",
        log_path,
        var_dir,
    )


def stop_up(up: Up) -> None:
    """Ctrl-C, as a terminal sends it; then nothing it started may be left."""
    up.remember_processes()
    if up.process.poll() is None:
        os.killpg(up.process.pid, signal.SIGINT)
    up.process.wait(timeout=STOP_TIMEOUT_S)
    assert_all_gone(up)


def assert_all_gone(up: Up) -> None:
    try:
        wait_until(
            lambda: not any(process.is_running() for process in up.seen),
            timeout_s=GONE_TIMEOUT_S,
            what="every process of the system to exit",
        )
    except AssertionError:
        left = [process for process in up.seen if process.is_running()]
        raise AssertionError(f"still running: {left}") from None


def wait_ready(up: Up) -> None:
    def announced_ready() -> bool:
        if up.process.poll() is not None:
            raise AssertionError(f"taskrelay up exited:\n{log_tail(up.log_path)}")
        up.remember_processes()
        return READY_BANNER in up.output()

    wait_until(announced_ready, timeout_s=START_TIMEOUT_S, interval_s=0.2, what="the system")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One supervised system, ready, shared by the tests that kill its roles."""
    up = start_up(tmp_path_factory.mktemp("supervised"))
    try:
        wait_ready(up)
        yield up
    finally:
        stop_up(up)
    assert "stopped" in up.output(), log_tail(up.log_path)


class ApiWatch:
    """Polls one API URL from a thread for as long as it is open; counts what failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="api-watch", daemon=True)

    def __enter__(self) -> ApiWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)

    def _poll(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(API_POLL_INTERVAL_S):
                try:
                    response = http.get(self.url)
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                if response.status_code == 200:
                    self.answered += 1
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")


def submit(http: httpx.Client, task: str, **kwargs: Any) -> str:
    response = http.post("/api/tasks", json={"task": task, "kwargs": kwargs})
    assert response.status_code == 202, response.text
    location: str = response.headers["Location"]
    return location


def wait_for_state(http: httpx.Client, path: str, state: str, timeout_s: float) -> dict[str, Any]:
    return wait_until(
        lambda: (doc := http.get(path).json())["state"] == state and doc,
        timeout_s=timeout_s,
        interval_s=0.2,
        what=f"{path} to reach {state}",
    )


def wait_restarted(up: Up, role: str, before: dict[str, int], how: str = "exited with -9") -> None:
    """The supervisor said it restarts the role, and /readyz counts one more restart."""
    wait_until(
        lambda: f"{role} {how}; restarting in" in up.output(),
        timeout_s=RESTART_TIMEOUT_S,
        what=f"taskrelay up to say it restarts {role}",
    )
    wait_until(
        lambda: up.restarts().get(role) == before[role] + 1,
        timeout_s=RESTART_TIMEOUT_S,
        interval_s=0.2,
        what=f"/readyz to count the restart of {role}",
    )


def wait_new_main_process(up: Up, marker: str, old_pid: int) -> int:
    return wait_until(
        lambda: (pid := up.role_pid(marker)) not in (None, old_pid) and pid,
        timeout_s=RESTART_TIMEOUT_S,
        what=f"a new process for {marker}",
    )


def policies_below(pid: int) -> set[str]:
    """The scheduling policy of every thread of a process and of all it started."""
    process = psutil.Process(pid)
    found = set()
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            found.update(scheduling.policy_of(thread.id) for thread in member.threads())
    return found


def assert_batch(up: Up, marker: str) -> None:
    pid = up.role_pid(marker)
    assert pid is not None, marker
    assert policies_below(pid) == {scheduling.BATCH}, marker


def restart_metric(up: Up, role: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{up.base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "taskrelay_role_restarts_total" and sample.labels["role"] == role:
                return float(sample.value)
    return None


def test_a_role_that_keeps_exiting_stops_everything_with_a_message_and_a_nonzero_exit(
    tmp_path: Path,
) -> None:
    # Flower cannot bind a port that is taken: it exits at once, every time.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = start_up(tmp_path, flower_port=taken.getsockname()[1])
        try:

            def exited() -> bool:
                up.remember_processes()
                return up.process.poll() is not None

            wait_until(exited, timeout_s=120, interval_s=0.2, what="taskrelay up to give up")
        finally:
            stop_up(up)
    output = up.output()
    assert up.process.returncode == 1, output
    assert "flower exited with 1; restarting in 0.5 s (restart 1;" in output
    assert "flower exited with 1; restarting in 4 s (restart 4;" in output
    assert "flower exited with 1: 5 exits within 60 s, a crash loop; stopping everything" in output
    assert output.rstrip().endswith("stopped"), output[-2000:]
    assert len(up.seen) >= 5  # Redis, web, two workers and the relay worker were there


def test_a_sigkilled_web_comes_back_and_a_web_killed_each_time_it_returns_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up = start_up(tmp_path)
    try:
        wait_ready(up)
        first = up.role_pid(WEB_MARKER)
        assert first is not None
        kills = Stopwatch()
        orphans = kill_serving_master(up, first)
        # One crash: restarted, and the new master serves and counts the restart.
        wait_until(
            lambda: web_restarts(up) == 1,
            timeout_s=RESTART_TIMEOUT_S,
            interval_s=0.2,
            what="the restarted web to count its restart",
        )
        master = wait_new_main_process(up, WEB_MARKER, first)
        assert not any(orphan.is_running() for orphan in orphans), "the old workers still serve"
        # Then killed each time it is back, until the supervisor gives up.
        for kill in range(2, CRASH_LOOP_EXITS + 1):
            kill_serving_master(up, master)
            if kill < CRASH_LOOP_EXITS:
                master = wait_new_main_process(up, WEB_MARKER, master)
        up.process.wait(timeout=CRASH_LOOP_WINDOW_S)
        gone_after_s = kills.seconds()
    finally:
        stop_up(up)
    output = up.output()
    with capsys.disabled():
        print(f"\n[measure] web SIGKILLed {CRASH_LOOP_EXITS} times: up gone in {gone_after_s} s")
    assert up.process.returncode == 1, output
    assert "web exited with -9; restarting in 0.5 s (restart 1;" in output
    assert (
        f"web exited with -9: {CRASH_LOOP_EXITS} exits within {CRASH_LOOP_WINDOW_S:g} s, "
        "a crash loop; stopping everything" in output
    ), output[-2000:]
    assert output.rstrip().endswith("stopped"), output[-2000:]
    assert gone_after_s < CRASH_LOOP_WINDOW_S


def kill_serving_master(up: Up, master: int) -> list[psutil.Process]:
    """SIGKILL a web master once it has forked its workers; the workers it leaves behind."""
    workers = wait_until(
        lambda: psutil.Process(master).children(),
        timeout_s=RESTART_TIMEOUT_S,
        what="the web master's workers",
    )
    up.remember_processes()
    os.kill(master, signal.SIGKILL)
    return workers


def web_restarts(up: Up) -> int | None:
    """The web's restart count in /readyz; None while no web answers."""
    try:
        return up.restarts().get("web")
    except httpx.HTTPError:
        return None


@pytest.mark.skipif(not scheduling.AVAILABLE, reason="SCHED_BATCH is Linux's")
def test_every_role_but_the_web_runs_under_sched_batch_in_all_its_threads(system: Up) -> None:
    web = system.role_pid(WEB_MARKER)
    assert web is not None
    # The gunicorn master, its workers and all their threads keep the default policy.
    assert policies_below(web) == {scheduling.NORMAL}
    for marker in ("redis-server", "tasks-1@%h", "tasks-2@%h", "-Q relay", " flower "):
        assert_batch(system, marker)
    assert_batch(system, roles.SCHEDULER_MODULE)
    # taskrelay up itself is left as it was started.
    assert scheduling.policy_of(system.process.pid) == scheduling.NORMAL


def test_a_sigkilled_task_worker_restarts_while_the_api_answers_and_a_task_elsewhere_finishes(
    system: Up,
) -> None:
    before = system.restarts()
    with httpx.Client(base_url=system.base_url, timeout=10) as http:
        task = submit(http, "long_task", steps=16, delay_s=0.5)
        running = wait_for_state(http, task, "PROGRESS", timeout_s=30)
        # The task runs on one worker; the other one dies.
        number = "2" if running["worker"].startswith("tasks-1@") else "1"
        victim, marker = f"worker-{number}", f"tasks-{number}@%h"
        old_pid = system.role_pid(marker)
        assert old_pid is not None
        with ApiWatch(f"{system.base_url}{task}") as watch:
            os.kill(old_pid, signal.SIGKILL)
            wait_restarted(system, victim, before)
            wait_new_main_process(system, marker, old_pid)
            wait_until(
                lambda: system.role_log(victim).count(WORKER_READY_LINE) == 2,
                timeout_s=RESTART_TIMEOUT_S,
                what=f"the restarted {victim} to be ready",
            )
            if scheduling.AVAILABLE:  # restarted by the supervisor's thread: the same
                assert_batch(system, marker)
            done = wait_for_state(http, task, "SUCCESS", timeout_s=60)
    assert done["result"] == {"steps": 16}
    assert done["worker"] == running["worker"] and done["retries"] == 0
    assert watch.failures == [] and watch.answered > 0, watch.failures[:5]
    assert restart_metric(system, victim) == before[victim] + 1


def test_sigkilled_flower_and_relay_worker_restart_and_the_api_never_goes_down(
    system: Up,
) -> None:
    before = system.restarts()
    with httpx.Client(base_url=system.base_url, timeout=10) as http:
        task = submit(http, "consume", number=7)
        wait_for_state(http, task, "SUCCESS", timeout_s=30)
        flower_pid, relay_pid = system.role_pid(" flower "), system.role_pid("-Q relay")
        assert flower_pid is not None and relay_pid is not None
        with ApiWatch(f"{system.base_url}{task}") as watch:
            os.kill(flower_pid, signal.SIGKILL)
            os.kill(relay_pid, signal.SIGKILL)
            wait_restarted(system, "flower", before)
            wait_restarted(system, "relay", before)
            wait_new_main_process(system, " flower ", flower_pid)
            wait_new_main_process(system, "-Q relay", relay_pid)
            # Flower answers again (asking for its credentials).
            wait_until(
                lambda: _answers(system.flower_url),
                timeout_s=RESTART_TIMEOUT_S,
                what="Flower to answer",
            )
            # The restarted relay worker relays a new message to the channel's history.
            channel = f"supervised.{uuid.uuid4().hex[:8]}"
            published = http.post(f"/api/channels/{channel}/messages", json={"data": "again"})
            assert published.status_code == 202, published.text
            wait_until(
                lambda: http.get(f"/api/channels/{channel}/messages").json()["messages"],
                timeout_s=RESTART_TIMEOUT_S,
                interval_s=0.2,
                what="the message to be relayed",
            )
    assert watch.failures == [] and watch.answered > 0, watch.failures[:5]
    assert restart_metric(system, "flower") == before["flower"] + 1
    assert restart_metric(system, "relay") == before["relay"] + 1


def test_a_sigkilled_embedded_redis_comes_back_on_its_port_with_its_data(system: Up) -> None:
    before = system.restarts()
    with httpx.Client(base_url=system.base_url, timeout=10) as http:
        task = submit(http, "consume", number=11)
        wait_for_state(http, task, "SUCCESS", timeout_s=30)
        task_id = task.rsplit("/", 1)[1].encode()
        # Written to the append-only file, it survives the kill of the process.
        wait_until(
            lambda: any(
                task_id in path.read_bytes() for path in (system.var_dir / "redis").rglob("*.aof")
            ),
            what="the task to reach the append-only file",
        )
        redis_pid = system.role_pid("redis-server")
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGKILL)
        wait_restarted(system, "redis", before)
        if scheduling.AVAILABLE:
            assert_batch(system, "redis-server")
        assert wait_for_state(http, task, "SUCCESS", timeout_s=10)["result"] == {"consumed": 11}
        # Web and workers reconnected by themselves.
        again = submit(http, "consume", number=12)
        assert wait_for_state(http, again, "SUCCESS", timeout_s=60)["result"] == {"consumed": 12}
    assert httpx.get(f"{system.base_url}/readyz", timeout=10).status_code == 200


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def test_workers_holding_countdown_and_prefetched_tasks_outlive_a_graceful_redis_restart(
    system: Up,
) -> None:
    before = system.restarts()
    with httpx.Client(base_url=system.base_url, timeout=10) as http:
        # Held unacknowledged by the workers: countdowns, and more tasks than they run at once.
        held = [
            http.post(
                "/api/tasks",
                json={"task": "consume", "kwargs": {"number": n}, "countdown": 4},
            )
            for n in range(4)
        ]
        running = [submit(http, "long_task", steps=4, delay_s=0.5) for _ in range(4)]
        assert {reply.status_code for reply in held} == {202}
        redis_pid = system.role_pid("redis-server")
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGTERM)  # graceful: the append-only file is complete
        wait_restarted(system, "redis", before, how="exited with 0")
        paths = [reply.headers["Location"] for reply in held] + running
        # Held messages come back by the visibility timeout (30 s) at the latest.
        for path in paths:
            assert wait_for_state(http, path, "SUCCESS", timeout_s=90)
    after = system.restarts()
    workers = [role for role in after if role.startswith("worker")]
    assert workers and all(after[role] == before.get(role, 0) for role in workers), after
    assert "Unrecoverable error" not in "".join(
        path.read_text(errors="replace") for path in (system.var_dir / "log").glob("worker-*.log")
    )
