"""The supervisor's restart policy: doubling delays, a reset after a healthy run, crash loops,
and the exits that do not count towards one."""

from __future__ import annotations

from taskrelay.supervisor import History, Policy
from taskrelay.up import killed_with_its_task
from tasks.celery_ext.keeper import EXIT_TASK_WOULD_NOT_STOP

POLICY = Policy(
    first_delay_s=0.5,
    max_delay_s=10.0,
    stable_run_s=30.0,
    crash_loop_exits=5,
    crash_loop_window_s=60.0,
)


def exit_after(history: History, run_s: float) -> float | None:
    """The role ran run_s seconds since its last start, then exited; restart it when told."""
    exited_at = history.started_at + run_s
    delay_s = history.exited(exited_at)
    if delay_s is not None:
        history.started_at = exited_at + delay_s
    return delay_s


def test_quick_exits_double_the_delay_up_to_the_cap() -> None:
    history = History(POLICY)
    # Each run 20 s: never healthy, never 5 exits within 60 s.
    delays = [exit_after(history, 20.0) for _ in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert history.restarts == 7


def test_a_role_that_ran_long_enough_restarts_after_the_first_delay_again() -> None:
    history = History(POLICY)
    assert [exit_after(history, 20.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert exit_after(history, 45.0) == 0.5
    assert exit_after(history, 20.0) == 1.0


def test_the_fifth_exit_within_a_minute_is_a_crash_loop() -> None:
    history = History(POLICY)
    assert [exit_after(history, 1.0) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert exit_after(history, 1.0) is None
    assert history.restarts == 4


def test_exits_older_than_the_window_do_not_count_towards_a_crash_loop() -> None:
    history = History(POLICY)
    for _ in range(4):
        assert exit_after(history, 1.0) is not None
    # Everything so far lies more than a minute back.
    assert exit_after(history, 61.0) == 0.5


def test_exits_that_were_not_the_roles_failure_never_make_a_crash_loop() -> None:
    history = History(POLICY)
    delays = [history.exited(float(second), counts_towards_loop=False) for second in range(8)]
    assert None not in delays
    assert history.restarts == 8
    # Its own exits still count, from zero.
    assert [history.exited(10.0 + second) for second in range(4)] != [None] * 4
    assert history.exited(15.0) is None


def test_a_task_worker_killed_with_its_task_is_not_its_failure() -> None:
    assert killed_with_its_task("worker-1", -9)  # SIGKILL: a crash, the OOM killer
    assert killed_with_its_task("worker-2", -11)  # SIGSEGV in a task's C extension
    assert killed_with_its_task("worker-1", EXIT_TASK_WOULD_NOT_STOP)
    assert not killed_with_its_task("worker-1", 1)  # it could not start
    assert not killed_with_its_task("web", -9)
    assert not killed_with_its_task("relay", -9)
