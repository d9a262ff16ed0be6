"""Keeps the roles of ``taskrelay up`` running: restart with backoff, give up on a crash loop.

A role that exits (web, a task worker, the relay worker, Flower, the embedded
Redis) is started again after a delay that doubles while it keeps failing, as
supervisord, systemd and Kubernetes do; only a crash loop, a role exiting too
often in a short time, stops the whole system. An exit that was not the role's own
failure (a task worker killed along with a task that crashed it) is restarted the same
way but does not count towards a crash loop. The restart counts are published
through a callback, best effort: Redis may be the role that is restarting.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from taskrelay.errors import SetupError

# The first restart waits this long; each quick exit after it doubles the wait, up to the cap.
RESTART_DELAY_FIRST_S = 0.5
RESTART_DELAY_MAX_S = 10.0
# A role that ran this long before it exited was healthy: its next restart waits the first delay.
STABLE_RUN_S = 30.0
# This many exits of one role within the window is a crash loop: restarting cannot help.
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_S = 60.0
# How often unpublished restart counts are offered again while Redis cannot take them.
PUBLISH_RETRY_INTERVAL_S = 2.0
# The longest pause between two looks at the roles.
WATCH_INTERVAL_S = 0.5


class Role(Protocol):
    """A process the supervisor keeps running (processes.Child, the embedded Redis)."""

    @property
    def name(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    def start(self) -> None: ...

    def exit_code(self) -> int | None:
        """None while running, else how it ended (negative: the signal that killed it)."""

    def kill_leftovers(self) -> None:
        """SIGKILL what the role's exited main process left behind (pool children, workers)."""


class CrashLoop(Exception):
    """A role exited CRASH_LOOP_EXITS times within CRASH_LOOP_WINDOW_S."""


@dataclass(frozen=True)
class Policy:
    first_delay_s: float = RESTART_DELAY_FIRST_S
    max_delay_s: float = RESTART_DELAY_MAX_S
    stable_run_s: float = STABLE_RUN_S
    crash_loop_exits: int = CRASH_LOOP_EXITS
    crash_loop_window_s: float = CRASH_LOOP_WINDOW_S


@dataclass
class History:
    """One role's recent exits and the delay its next restart will wait."""

    policy: Policy
    started_at: float = 0.0
    restarts: int = 0
    next_delay_s: float = 0.0
    restart_at: float | None = None
    exits: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.next_delay_s = self.policy.first_delay_s

    def exited(self, now: float, *, counts_towards_loop: bool = True) -> float | None:
        """Record an exit; the delay before the restart, or None for a crash loop."""
        if counts_towards_loop:
            self.exits.append(now)
        while self.exits and self.exits[0] <= now - self.policy.crash_loop_window_s:
            self.exits.popleft()
        if len(self.exits) >= self.policy.crash_loop_exits:
            return None
        if now - self.started_at >= self.policy.stable_run_s:
            self.next_delay_s = self.policy.first_delay_s
        delay_s = self.next_delay_s
        self.next_delay_s = min(delay_s * 2, self.policy.max_delay_s)
        self.restart_at = now + delay_s
        self.restarts += 1
        return delay_s


class Supervisor:
    """Starts the roles, then on each tick restarts the ones that exited when their delay is up.

    One thread (the one that runs ``taskrelay up``) calls every method.
    """

    def __init__(
        self,
        roles: Sequence[Role],
        say: Callable[[str], None],
        publish: Callable[[Mapping[str, int]], bool],
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        not_its_failure: Callable[[str, int], bool] = lambda name, code: False,
    ) -> None:
        """``not_its_failure(name, exit_code)``: the exit was caused from outside the
        role, and is left out of the crash-loop count."""
        self.roles = list(roles)
        self.not_its_failure = not_its_failure
        self.say = say
        self.publish = publish
        self.clock = clock
        policy = policy or Policy()
        self.history = {role.name: History(policy) for role in self.roles}
        self._unpublished = True
        self._next_publish_try = clock()

    @property
    def restarts(self) -> dict[str, int]:
        return {name: history.restarts for name, history in self.history.items()}

    def start_all(self) -> None:
        """Start each role in order (Redis first, when it is one); publish the zero counts."""
        for role in self.roles:
            role.start()
            self.history[role.name].started_at = self.clock()
        self._offer_counts()

    def tick(self) -> float:
        """Handle exits and due restarts; the seconds until the next tick is needed.

        Raises CrashLoop when a role has exited too often to try again.
        """
        for role in self.roles:
            history = self.history[role.name]
            if history.restart_at is None:
                code = role.exit_code()
                if code is not None:
                    counted = not self.not_its_failure(role.name, code)
                    self._on_exit(role, history, f"exited with {code}", counted=counted)
            elif self.clock() >= history.restart_at:
                self._restart(role, history)
        self._offer_counts()
        return self._until_next_tick()

    def _on_exit(self, role: Role, history: History, how: str, *, counted: bool = True) -> None:
        role.kill_leftovers()
        delay_s = history.exited(self.clock(), counts_towards_loop=counted)
        policy = history.policy
        if delay_s is None:
            raise CrashLoop(
                f"{role.name} {how}: {policy.crash_loop_exits} exits within "
                f"{policy.crash_loop_window_s:g} s, a crash loop; stopping everything "
                f"(see {role.log_path})"
            )
        self.say(
            f"{role.name} {how}; restarting in {delay_s:g} s "
            f"(restart {history.restarts}; see {role.log_path})"
        )
        self._publish_soon()

    def _restart(self, role: Role, history: History) -> None:
        history.restart_at = None
        history.started_at = self.clock()
        try:
            role.start()
        except (SetupError, OSError) as error:
            self._on_exit(role, history, f"could not start ({error})")
            return
        if self._unpublished:
            # Redis itself may be what just came back: try the counts at once.
            self._publish_soon()

    def _publish_soon(self) -> None:
        self._unpublished = True
        self._next_publish_try = self.clock()

    def _offer_counts(self) -> None:
        """Publish changed counts; after a failed try, wait a little before the next one."""
        now = self.clock()
        if not self._unpublished or now < self._next_publish_try:
            return
        if self.publish(self.restarts):
            self._unpublished = False
        else:
            self._next_publish_try = now + PUBLISH_RETRY_INTERVAL_S

    def _until_next_tick(self) -> float:
        now = self.clock()
        due = [h.restart_at - now for h in self.history.values() if h.restart_at is not None]
        return max(0.0, min([WATCH_INTERVAL_S, *due]))
