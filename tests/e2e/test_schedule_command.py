"""`taskrelay schedule` against a real gunicorn: add, list, show, pause, resume, run, rm."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from click.testing import CliRunner, Result

from taskrelay.schedule_commands import schedule
from tests.support import wait_until


def invoke(web: str, *args: str) -> Result:
    result = CliRunner().invoke(schedule, [*args, "--url", web])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.usefixtures("task_worker")
def test_a_schedule_goes_through_its_whole_life_from_the_command_line(web: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    schedule_id = invoke(
        web, "add", name, "consume", "9", "--cron", "0 6 * * MON-FRI", "--tz", "Asia/Tokyo"
    ).output.strip()
    assert str(uuid.UUID(schedule_id)) == schedule_id

    listed = invoke(web, "list").output
    line = next(line for line in listed.splitlines() if line.startswith(name))
    assert "cron 0 6 * * MON-FRI Asia/Tokyo" in line and "enabled" in line
    assert "+09:00" in line  # the next fire time, in the schedule's zone

    assert invoke(web, "pause", name).output.strip() == f"paused {name}"
    shown = json.loads(invoke(web, "show", name).output)
    assert shown["enabled"] is False and shown["next_fire_times"] == []
    assert "next " in invoke(web, "resume", name).output

    task_id = invoke(web, "run", name).output.strip()

    def succeeded() -> bool:
        doc = httpx.get(f"{web}/api/tasks/{task_id}", timeout=5).json()
        return doc["state"] == "SUCCESS"

    wait_until(succeeded, what="the task run from the command line to succeed")
    runs = json.loads(invoke(web, "show", schedule_id).output)["runs"]
    assert [run["task_id"] for run in runs] == [task_id]

    assert invoke(web, "rm", name).output.strip() == f"deleted {name}"
    gone = CliRunner().invoke(schedule, ["show", name, "--url", web])
    assert gone.exit_code == 1 and "404" in gone.output


def test_a_refused_schedule_is_reported_in_the_api_s_words(web: str) -> None:
    result = CliRunner().invoke(
        schedule,
        ["add", "bad-zone", "noop", "--cron", "* * * * *", "--tz", "Nowhere/City", "--url", web],
    )
    assert result.exit_code == 1
    assert "400: unknown time zone 'Nowhere/City'" in result.output
    both = CliRunner().invoke(schedule, ["add", "x", "noop", "--url", web])
    assert both.exit_code == 2 and "--cron or --every" in both.output
