"""The failover tier's figures, printed in the terminal summary of every run (no -s needed)."""

from __future__ import annotations

from typing import Any

import pytest

# One line per server kind and phase, filled by the tests as they measure.
FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("failover figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
