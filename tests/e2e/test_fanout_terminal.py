"""The terminal subscriber and publisher: `taskrelay subscribe` and `taskrelay publish`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.fanout_support import TerminalSubscriber, fresh_channel

pytestmark = pytest.mark.usefixtures("relay_worker")


def cli_publish(web: str, channel: str, data: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "taskrelay.cli", "publish", channel, data, "--url", web],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_a_terminal_subscriber_prints_what_is_published_like_the_article(
    web: str, redis_url: str, tmp_path: Path
) -> None:
    channel = fresh_channel("terminal")
    subscriber = TerminalSubscriber([channel], redis_url, tmp_path / "subscriber.log")
    try:
        subscriber.wait_subscribed()
        cli_publish(web, channel, "7")
        cli_publish(web, channel, "hello")
        cli_publish(web, channel, '{"a": [1, 2]}')
        assert subscriber.take(3) == ["Task get 7", "Task get hello", 'Task get {"a": [1, 2]}']
    finally:
        subscriber.stop()


def test_a_terminal_subscriber_resumes_from_an_id_and_follows_a_pattern(
    web: str, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = cli_publish(web, f"{prefix}.a", "1")
    second = cli_publish(web, f"{prefix}.a", "2")
    subscriber = TerminalSubscriber(
        ["--pattern", f"{prefix}.*", "--from", first, "--json"],
        redis_url,
        tmp_path / "subscriber.log",
    )
    try:
        subscriber.wait_subscribed()
        [replayed] = subscriber.take(1)
        assert json.loads(replayed)["id"] == second
        cli_publish(web, f"{prefix}.b.c", "deeper: no match")
        third = cli_publish(web, f"{prefix}.b", "3")
        assert [json.loads(line)["id"] for line in subscriber.take(1)] == [third]
    finally:
        subscriber.stop()


def test_a_bad_channel_on_the_command_line_is_refused(redis_url: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "taskrelay.cli", "subscribe", "celery-task-meta-x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 2
    assert "reserved" in completed.stderr
