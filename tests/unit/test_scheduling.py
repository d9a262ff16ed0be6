"""Children started under a policy run under it, threads included; the parent keeps its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taskrelay import scheduling
from taskrelay.up import build_children
from tests.support import up_options

pytestmark = pytest.mark.skipif(not scheduling.AVAILABLE, reason="SCHED_BATCH is Linux's")

# Prints the policy of the child's main thread and of a thread it starts.
REPORT_POLICIES = """
import os, threading
seen = [os.sched_getscheduler(0)]
thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
thread.start()
thread.join()
print(*seen)
"""


def child_policies() -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", REPORT_POLICIES], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [int(word) for word in done.stdout.split()]


def test_a_child_started_under_batch_runs_under_it_and_so_do_its_threads() -> None:
    before = os.sched_getscheduler(0)
    with scheduling.for_children(scheduling.BATCH):
        policies = child_policies()
    assert policies == [os.SCHED_BATCH, os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == before


def test_normal_leaves_children_on_the_parents_policy() -> None:
    with scheduling.for_children(scheduling.NORMAL):
        policies = child_policies()
    assert policies == [os.sched_getscheduler(0)] * 2


def test_only_the_starting_thread_switches_and_only_for_the_start() -> None:
    seen_elsewhere: list[int] = []
    entered, checked = threading.Event(), threading.Event()

    def other_thread() -> None:
        assert entered.wait(timeout=10)
        seen_elsewhere.append(os.sched_getscheduler(0))
        checked.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with scheduling.for_children(scheduling.BATCH):
        assert scheduling.policy_of(0) == scheduling.BATCH
        entered.set()
        assert checked.wait(timeout=10)
    thread.join(timeout=10)
    assert seen_elsewhere == [os.SCHED_OTHER]
    assert scheduling.policy_of(0) == scheduling.NORMAL


def test_a_failed_start_still_restores_the_parents_policy() -> None:
    with pytest.raises(FileNotFoundError), scheduling.for_children(scheduling.BATCH):
        subprocess.run(["/nonexistent/taskrelay-test-binary"], check=True)
    assert scheduling.policy_of(0) == scheduling.NORMAL


@pytest.mark.parametrize("policy", scheduling.POLICIES)
def test_taskrelay_up_starts_every_role_but_the_web_under_its_policy(
    tmp_path: Path, policy: scheduling.Policy
) -> None:
    options = up_options(tmp_path, scheduling_policy=policy)
    children = {
        c.name: c.scheduling_policy for c in build_children(options, "redis://x:1/0", "a:b")
    }
    assert children.pop("web") == scheduling.NORMAL
    assert set(children) == {"worker-1", "worker-2", "relay", "flower", "scheduler"}
    assert set(children.values()) == {policy}
