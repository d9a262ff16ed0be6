"""What a scenario measured: rows of figures and the ratios between them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One measured subject: a rate, and latencies and loss where the scenario has them.

    ``calls_per_task``: Redis commands per task over the run (commandstats.py);
    ``cpu_ms_per_task``: CPU each role spent per task over the run (cpu.py), or per
    request where the section says so (``Section.cpu_per``);
    ``busy_cores``: how many of the machine's cores were busy over the run (cpu.py);
    ``counts``: what a scenario counted beside its rate (kills, lost tasks, ...).
    """

    subject: str
    rate: float
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    loss: float | None = None
    note: str = ""
    calls_per_task: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_task: dict[str, float] = field(default_factory=dict)
    busy_cores: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Section:
    """One scenario: its rows, the ratios that matter, or why it could not run."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None
    # What a row's cpu_ms_per_task is counted per: a task, or a request.
    cpu_per: str = "task"

    def row(self, subject: str) -> Row | None:
        return next((row for row in self.rows if row.subject == subject), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "available": self.unavailable is None,
            "reason": self.unavailable,
            "rows": [asdict(row) for row in self.rows],
            "ratios": self.ratios,
            "notes": self.notes,
            "cpu_per": self.cpu_per,
        }
