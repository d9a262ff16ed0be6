"""The scheduler role: in `taskrelay up`, its command line, and its documented takeover bound."""

from __future__ import annotations

from pathlib import Path

from taskrelay import roles
from taskrelay.up import build_children
from tasks.schedules.scheduler import Settings
from tests.support import up_options

# The ceiling on how long a standby may take to take over, in seconds.
TAKEOVER_CEILING_S = 10.0


def test_taskrelay_up_runs_one_scheduler_with_the_same_environment_as_the_workers(
    tmp_path: Path,
) -> None:
    options = up_options(tmp_path, task_modules="examples_pkg.jobs")
    children = {child.name: child for child in build_children(options, "redis://x:1/0", "a:b")}
    scheduler = children["scheduler"]
    assert list(scheduler.argv) == roles.scheduler_argv()
    assert list(scheduler.argv)[1:] == ["-m", "tasks.schedules"]
    assert scheduler.env == children["worker-1"].env
    assert scheduler.env["TASKRELAY_TASK_MODULES"] == "examples_pkg.jobs"


def test_the_default_takeover_bound_is_the_lease_plus_one_poll_and_within_ten_seconds() -> None:
    settings = Settings()
    assert settings.takeover_bound_s == settings.lease_s + settings.standby_poll_s == 7.0
    assert settings.takeover_bound_s <= TAKEOVER_CEILING_S
    assert settings.misfire_grace_s > settings.takeover_bound_s  # a takeover loses no slot


def test_the_lease_and_the_grace_are_read_from_the_environment() -> None:
    settings = Settings.from_environment(
        {"TASKRELAY_SCHEDULER_LEASE_S": "1.5", "TASKRELAY_SCHEDULE_MISFIRE_GRACE_S": "20"}
    )
    assert (settings.lease_s, settings.misfire_grace_s) == (1.5, 20.0)
    assert settings.renew_every_s == 0.5 and settings.standby_poll_s == 0.5
