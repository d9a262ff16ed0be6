"""The channels this web process saw admitted, and until when a publish to one needs no cap check.

A publish to a new name is checked against the cap on channels by a script that also
records the message as pending (tasks/channels/index.py): a round trip before the
relay task's MULTI/EXEC. A name already in the index is always admitted, and it
leaves the index only once its expiry has passed, which each relayed message moves
later. So after a publish was admitted, and until shortly before the expiry that
the script answered, a publish to the same channel would be admitted too: its
pending record then rides in the relay task's MULTI/EXEC, one round trip in all.

The margin before the expiry covers other hosts whose clocks run ahead (idle names
are removed by comparing expiries with the remover's clock). An entry lasts at most
``KNOWN_FOR_S``, so a name that Redis lost with its data (a restart without
persistence, a failover to a replica behind) is checked again within that time;
until then, publishes to it may put it back in the index past the cap.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app

EXTENSION_KEY = "taskrelay_admitted_channels"
KNOWN_FOR_S = 60.0
CLOCK_MARGIN_S = 30.0
# Names kept per process; past it the oldest entry goes.
MOST_NAMES = 10_000


class AdmittedChannels:
    def __init__(
        self,
        *,
        known_for_s: float = KNOWN_FOR_S,
        margin_s: float = CLOCK_MARGIN_S,
        most_names: int = MOST_NAMES,
    ) -> None:
        self.known_for_s = known_for_s
        self.margin_s = margin_s
        self.most_names = most_names
        self._until: dict[str, float] = {}  # name -> until when it is known (time.time())
        self._lock = threading.Lock()

    def admitted(self, name: str, expires_s: float, now_s: float) -> None:
        """The cap admitted a publish to ``name`` at ``now_s``; the index keeps the name
        until ``expires_s`` (both ``time.time()`` seconds)."""
        until = min(now_s + self.known_for_s, expires_s - self.margin_s)
        with self._lock:
            if until <= now_s:
                self._until.pop(name, None)
                return
            if name not in self._until and len(self._until) >= self.most_names:
                # Dicts keep their order of insertion: the first entry is the oldest.
                del self._until[next(iter(self._until))]
            self._until[name] = until

    def known(self, name: str, now_s: float) -> bool:
        """Whether a publish to ``name`` at ``now_s`` is sure to be admitted."""
        until = self._until.get(name)
        return until is not None and now_s < until


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = AdmittedChannels()


def current() -> AdmittedChannels:
    admitted: AdmittedChannels = current_app.extensions[EXTENSION_KEY]
    return admitted
