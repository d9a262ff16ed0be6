"""The keeper's decisions (tasks/celery_ext/keeper.py), tick by tick on a clock the test
sets: when it runs the loop's duties, and what it tells a running task and when."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from tasks.celery_ext.keeper import (
    EXIT_TASK_WOULD_NOT_STOP,
    KILL_GRACE_S,
    REVOKE_CHECK_S,
    Keeper,
    TerminatedOnRevoke,
)


class Recorder:
    """What the keeper asked of the process: interrupts, revoke reads, an exit."""

    def __init__(self, revoked: frozenset[str] = frozenset()) -> None:
        self.interrupts = 0
        self.revoke_reads: list[str] = []
        self.exits: list[int] = []
        self.revoked = revoked

    def interrupt(self) -> None:
        self.interrupts += 1

    def is_revoked(self, task_id: str) -> bool:
        self.revoke_reads.append(task_id)
        return task_id in self.revoked

    def exit(self, status: int) -> None:
        self.exits.append(status)


def keeper_for(recorder: Recorder) -> Keeper:
    return Keeper(recorder.interrupt, recorder.is_revoked, exit_process=recorder.exit)


def test_a_duty_runs_half_an_interval_into_a_task_then_every_interval() -> None:
    recorder = Recorder()
    keeper = keeper_for(recorder)
    runs: list[float] = []
    keeper.cover(2.0, lambda: runs.append(clock))
    job = keeper.begin("t", None, None)
    for clock in (0.5, 0.99, 1.0, 2.5, 3.0, 4.9, 5.0):
        keeper.tick(job, job.started + clock)
    assert runs == [1.0, 3.0, 5.0]


def test_an_uncovered_duty_no_longer_runs() -> None:
    keeper = keeper_for(Recorder())
    runs: list[int] = []
    handle = keeper.cover(1.0, lambda: runs.append(1))
    keeper.uncover(handle)
    job = keeper.begin("t", None, None)
    keeper.tick(job, job.started + 10)
    assert runs == []


def test_a_failing_duty_does_not_stop_the_others() -> None:
    keeper = keeper_for(Recorder())
    runs: list[str] = []

    def broken() -> None:
        raise ConnectionError("redis is restarting")

    keeper.cover(1.0, broken)
    keeper.cover(1.0, lambda: runs.append("beacon"))
    job = keeper.begin("t", None, None)
    keeper.tick(job, job.started + 1)
    assert runs == ["beacon"]


def test_the_soft_then_the_hard_limit_are_raised_in_the_task_only_while_its_code_runs() -> None:
    recorder = Recorder()
    keeper = keeper_for(recorder)
    job = keeper.begin("t", soft_s=1.0, hard_s=3.0)
    keeper.tick(job, job.started + 1.0)
    assert recorder.interrupts == 1
    assert keeper.take_pending() is None  # the task's code has not begun: nothing raised
    keeper.mark_body("t", running=True)
    assert recorder.interrupts == 2  # begun with an error pending: asked again
    assert isinstance(keeper.take_pending(), SoftTimeLimitExceeded)
    assert keeper.take_pending() is None  # raised once
    keeper.tick(job, job.started + 2.0)
    assert recorder.interrupts == 2
    keeper.tick(job, job.started + 3.0)
    hard = keeper.take_pending()
    assert isinstance(hard, TimeLimitExceeded)
    assert recorder.exits == []


def test_a_task_that_does_not_stop_after_its_hard_limit_takes_its_process_down() -> None:
    recorder = Recorder()
    keeper = keeper_for(recorder)
    job = keeper.begin("t", soft_s=None, hard_s=1.0)
    keeper.mark_body("t", running=True)
    keeper.tick(job, job.started + 1.0)
    keeper.tick(job, job.started + 1.0 + KILL_GRACE_S - 0.1)
    assert recorder.exits == []
    keeper.tick(job, job.started + 1.0 + KILL_GRACE_S)
    assert recorder.exits == [EXIT_TASK_WOULD_NOT_STOP]


def test_a_task_that_ended_in_time_is_not_killed() -> None:
    recorder = Recorder()
    keeper = keeper_for(recorder)
    job = keeper.begin("t", soft_s=None, hard_s=1.0)
    keeper.tick(job, job.started + 1.0)
    keeper.end(job)
    keeper.tick(job, job.started + 1.0 + KILL_GRACE_S)
    assert recorder.exits == []
    assert keeper.take_pending() is None


def test_a_revoked_task_is_told_once_its_revoke_is_read() -> None:
    recorder = Recorder(revoked=frozenset({"doomed"}))
    keeper = keeper_for(recorder)
    job = keeper.begin("doomed", None, None)
    keeper.mark_body("doomed", running=True)
    keeper.tick(job, job.started + REVOKE_CHECK_S / 2)
    assert recorder.revoke_reads == []  # a short task costs no read
    keeper.tick(job, job.started + REVOKE_CHECK_S)
    assert recorder.revoke_reads == ["doomed"]
    assert isinstance(keeper.take_pending(), TerminatedOnRevoke)
    assert job.terminated
    keeper.tick(job, job.started + 3 * REVOKE_CHECK_S)
    assert recorder.revoke_reads == ["doomed"]  # once revoked, not read again


def test_a_task_not_revoked_is_read_again_each_interval_and_left_alone() -> None:
    recorder = Recorder()
    keeper = keeper_for(recorder)
    job = keeper.begin("fine", None, None)
    keeper.mark_body("fine", running=True)
    for step in range(1, 5):
        keeper.tick(job, job.started + step * REVOKE_CHECK_S)
    assert recorder.revoke_reads == ["fine"] * 4
    assert recorder.interrupts == 0
    assert keeper.take_pending() is None
