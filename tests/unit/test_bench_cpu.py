"""The benchmark's reading of the machine's busy cores, from two readings of its counters."""

from __future__ import annotations

import time
from collections import namedtuple

import psutil
import pytest

from taskrelay.bench import cpu

# The fields psutil.cpu_times() has on Linux, in its order.
Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
START = Times(100.0, 1.0, 20.0, 500.0, 2.0, 0.5, 0.5, 0.0, 3.0, 0.0)


def later(**spent: float) -> Times:
    return START._replace(**{name: getattr(START, name) + value for name, value in spent.items()})


def test_busy_cores_are_the_share_of_time_not_idle_nor_waiting_on_io_times_the_cores() -> None:
    # 3 + 1 busy, 3 idle and 1 waiting on I/O: half the time, of every core.
    after = later(user=3.0, system=1.0, idle=3.0, iowait=1.0)
    assert cpu.busy_cores(START, after) == pytest.approx(0.5 * (psutil.cpu_count() or 1))


def test_a_guests_time_is_not_counted_twice() -> None:
    # Linux counts a guest's time inside user as well: 2 busy, 2 idle.
    after = later(user=2.0, guest=2.0, idle=2.0)
    assert cpu.busy_cores(START, after) == pytest.approx(0.5 * (psutil.cpu_count() or 1))


def test_no_time_between_the_readings_gives_no_figure() -> None:
    assert cpu.busy_cores(START, START) is None


def test_the_machines_own_counters_read_as_a_share_of_its_cores() -> None:
    before = cpu.machine()
    # The kernel's counters move in ticks (10 ms); spin until one has passed.
    deadline = time.monotonic() + 5.0
    while (busy := cpu.busy_cores(before, cpu.machine())) is None:
        assert time.monotonic() < deadline, "the machine's CPU counters did not move in 5 s"
    assert 0.0 <= busy <= (psutil.cpu_count() or 1)
