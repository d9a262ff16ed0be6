"""Your own tasks, as a user runs them: taskrelay and the example installed from wheels.

Nothing here imports the checkout: taskrelay is built as a wheel and installed, with
the example project beside it, into a fresh virtual environment, and that
environment's ``taskrelay up --tasks`` runs the system from a directory of its own.
So the wheel must hold everything the roles need at run time, and the example must
work as its README says.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_quickstart import processes_mentioning
from tests.support import REPO_ROOT, free_port, log_tail, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLE_DIR = REPO_ROOT / "examples" / "thumbnails"
EXAMPLE_MODULE = "thumbnails.jobs"
EXAMPLE_TASKS = {"thumbnail_size", "placeholder", "thumbnail_batch"}
BUILT_IN_TASKS = {"consume", "long_task", "flaky", "always_fails", "noop"}
# A build reads sources only: never a virtual environment, data, caches or old builds.
NOT_BUILD_INPUTS = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "bench-results",
    "test-artifacts",
)
# Dependencies come from pip's cache once it holds them; a cold cache downloads them.
INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 120
READY_BANNER = "ready; press Ctrl-C to stop"
# Prints where the modules the roles import come from.
WHERE_FROM = (
    "import celeryconfig, tasks, webapp, thumbnails\n"
    "print(*(m.__file__ for m in (celeryconfig, tasks, webapp, thumbnails)))"
)
# Settings of the machine or of the test run that a fresh user's shell would not have.
INHERITED_SETTINGS = ("TASKRELAY_", "CELERY_", "FLOWER_", "REDIS_URL", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class UserVenv:
    """A fresh virtual environment with taskrelay and the example installed from wheels."""

    root: Path
    home: Path  # the user's working directory: outside the checkout, so nothing shadows it

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_SETTINGS)}
        return {**env, **extra}


def run(argv: list[str], *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> UserVenv:
    tmp = tmp_path_factory.mktemp("own-tasks")
    # Built from copies: an in-tree build would write build/ and *.egg-info into the
    # checkout that others are working in.
    source = tmp / "taskrelay-src"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_BUILD_INPUTS)
    wheels = tmp / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
         str(source), str(source / EXAMPLE_DIR.relative_to(REPO_ROOT))],
        cwd=tmp,
        timeout_s=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    (taskrelay_wheel,) = wheels.glob("taskrelay-*.whl")
    (example_wheel,) = wheels.glob("thumbnails_example-*.whl")
    venv = UserVenv(tmp / "venv", tmp / "home")
    venv.home.mkdir()
    run([sys.executable, "-m", "venv", str(venv.root)], cwd=tmp, timeout_s=120)
    pip = [venv.bin("python"), "-m", "pip", "install", "--quiet"]
    run([*pip, str(taskrelay_wheel)], cwd=tmp, timeout_s=INSTALL_TIMEOUT_S)
    # Its one dependency, taskrelay, is the wheel just installed: nothing to resolve.
    run([*pip, "--no-deps", str(example_wheel)], cwd=tmp, timeout_s=INSTALL_TIMEOUT_S)
    return venv


@dataclass
class RunningSystem:
    base_url: str
    log_path: Path
    var_dir: Path


@pytest.fixture
def own_system(user_venv: UserVenv, tmp_path: Path) -> Iterator[RunningSystem]:
    """The installed ``taskrelay up --tasks thumbnails.jobs`` on free ports, ready."""
    web_port = free_port()
    log_path = tmp_path / "up.log"
    var_dir = tmp_path / "var"
    argv = [
        user_venv.bin("taskrelay"), "up", "--tasks", EXAMPLE_MODULE,
        "--web-port", str(web_port), "--flower-port", str(free_port()),
        "--redis-port", str(free_port()), "--var-dir", str(var_dir),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        system = subprocess.Popen(
            argv,
            cwd=user_venv.home,
            env=user_venv.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def announced_ready() -> bool:
            if system.poll() is not None:
                raise AssertionError(f"taskrelay up exited:\n{log_tail(log_path)}")
            return READY_BANNER in log_path.read_text()

        wait_until(announced_ready, timeout_s=START_TIMEOUT_S, interval_s=0.5, what="the system")
        yield RunningSystem(f"http://127.0.0.1:{web_port}", log_path, var_dir)
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group (if it
        # is still there: a failed start stops everything and exits by itself).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(system.pid, signal.SIGINT)
        system.wait(timeout=STOP_TIMEOUT_S)
    assert "stopped" in log_path.read_text(), log_tail(log_path)
    try:
        wait_until(
            lambda: not processes_mentioning(user_venv.root),
            timeout_s=10,
            what="every process of the system to exit",
        )
    except AssertionError:
        raise AssertionError(f"still running: {processes_mentioning(user_venv.root)}") from None


def role_logs(var_dir: Path) -> str:
    """The end of every role's log: what went wrong in the installed system."""
    logs = sorted((var_dir / "log").glob("*.log"))
    return "\n".join(f"--- {path.name}\n{log_tail(path, 15)}" for path in logs)


def test_the_installed_system_runs_the_examples_tasks_beside_its_own(
    user_venv: UserVenv, own_system: RunningSystem
) -> None:
    url = own_system.base_url
    with httpx.Client(base_url=url, timeout=10) as http:
        names = {spec["name"] for spec in http.get("/api/registry").json()["tasks"]}
        assert names >= EXAMPLE_TASKS
        assert names >= BUILT_IN_TASKS

        submitted = http.post(
            "/api/tasks",
            json={"task": "thumbnail_size", "args": [4000, 3000], "kwargs": {"max_side": 128}},
        )
        assert submitted.status_code == 202, submitted.text
        task_path = f"/api/tasks/{submitted.json()['id']}"
        try:
            done = wait_until(
                lambda: (doc := http.get(task_path).json())["state"] == "SUCCESS" and doc,
                what="the example's task to succeed",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{role_logs(own_system.var_dir)}") from None
        assert done["result"] == {"width": 128, "height": 96}

        # The example's bounds are checked by the web before anything is queued.
        refused = http.post("/api/tasks", json={"task": "thumbnail_size", "args": [4000, 3000, 8]})
        assert refused.status_code == 400
        assert refused.json()["error"]["field"] == "max_side"

        # The dashboard's template and static files came with the wheel.
        page = http.get("/")
        assert page.status_code == 200
        assert "thumbnail_batch" in page.text
        assert http.get("/static/dashboard.js").status_code == 200

    # The installed command line, as the example's README uses it.
    out = run(
        [user_venv.bin("taskrelay"), "submit", "placeholder", "cat.png", "--wait", "--url", url],
        cwd=user_venv.home,
        env=user_venv.env(),
        timeout_s=60,
    )
    assert '"state": "SUCCESS"' in out
    assert '"image_id": "cat.png"' in out

    # The roles' interpreter, in the user's directory, imports the installed copy.
    where = run(
        [user_venv.bin("python"), "-c", WHERE_FROM],
        cwd=user_venv.home,
        env=user_venv.env(),
        timeout_s=60,
    )
    assert all(path.startswith(str(user_venv.root)) for path in where.split()), where


# A module of the user's beside the working directory, as the roles would find it,
# whose task takes a name that one of ours has.
CLASHING_MODULE = """
from tasks.declare import http_task


@http_task()
def consume(number: int) -> int:
    \"\"\"Not the built-in consume.\"\"\"
    return number
"""


@pytest.mark.parametrize(
    ("modules", "words"),
    [
        ("thumbnails.jobs,tasks.mine", "'tasks.mine' is inside taskrelay's own package 'tasks'"),
        ("thumbnails.jobs,no_such_pkg.jobs", "task module 'no_such_pkg.jobs' was not found"),
        (
            "thumbnails.jobs,clashing_jobs",
            "task 'consume' from clashing_jobs clashes with 'consume' from tasks.jobs; rename one",
        ),
    ],
    ids=["inside-our-packages", "not-installed", "name-taken"],
)
def test_task_modules_that_cannot_run_are_refused_before_anything_starts(
    user_venv: UserVenv, tmp_path: Path, modules: str, words: str
) -> None:
    (tmp_path / "clashing_jobs.py").write_text(CLASHING_MODULE)
    var_dir = tmp_path / "var"
    done = subprocess.run(
        [user_venv.bin("taskrelay"), "up", "--tasks", modules,
         "--web-port", str(free_port()), "--flower-port", str(free_port()),
         "--redis-port", str(free_port()), "--var-dir", str(var_dir)],
        cwd=tmp_path,
        env=user_venv.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout
    assert words in done.stderr
    assert not var_dir.exists()
    assert not processes_mentioning(user_venv.root)
