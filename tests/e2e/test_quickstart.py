"""The README's start command, run from a clean checkout as a newcomer would run it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import REPO_ROOT, free_port, log_tail, wait_until

# A fresh checkout installs everything into its own virtual environment first.
INSTALL_AND_START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 120


def readme_command(name: str) -> list[str]:
    """The quick-start command whose comment mentions `name`, as the README gives it."""
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.S)
    assert block, "the quick start has no shell block"
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("#")
        if name in comment:
            return command.split()
    raise AssertionError(f"no quick-start command mentions {name!r}")


def processes_mentioning(path: Path) -> list[str]:
    """Processes whose command line or working directory lies under path."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


@pytest.mark.slow
def test_the_readme_start_command_runs_the_system_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO_ROOT), str(checkout)], check=True, timeout=120
    )
    web_port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        TASKRELAY_WEB_PORT=str(web_port),
        TASKRELAY_FLOWER_PORT=str(free_port()),
        TASKRELAY_REDIS_PORT=str(free_port()),
    )
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        system = subprocess.Popen(
            readme_command("whole system"),
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{web_port}"
    try:

        def announced_ready() -> bool:
            # `make up` polls /readyz itself and only then prints its banner, so the
            # banner (not our own /readyz poll, which can win that race) is the signal.
            if system.poll() is not None:
                raise AssertionError(f"`make up` exited:\n{log_tail(log_path)}")
            return "ready; press Ctrl-C to stop" in log_path.read_text()

        wait_until(
            announced_ready,
            timeout_s=INSTALL_AND_START_TIMEOUT_S,
            interval_s=1,
            what="`make up` to say it is ready",
        )
        assert httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200

        response = httpx.post(
            f"{base_url}/api/tasks", json={"task": "consume", "args": [42]}, timeout=10
        )
        assert response.status_code == 202
        task_url = f"{base_url}/api/tasks/{response.json()['id']}"
        done = wait_until(
            lambda: (doc := httpx.get(task_url, timeout=5).json())["state"] == "SUCCESS" and doc,
            what="the task to succeed",
        )
        assert done["result"] == {"consumed": 42}
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(system.pid, signal.SIGINT)
        system.wait(timeout=STOP_TIMEOUT_S)
    output = log_path.read_text()
    assert "stopped" in output, output[-2000:]
    try:
        wait_until(
            lambda: not processes_mentioning(checkout), timeout_s=10, what="every process to exit"
        )
    except AssertionError:
        raise AssertionError(f"still running: {processes_mentioning(checkout)}") from None
