"""`taskrelay bench` with tiny sizes against real processes: the report's shape, never its speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SECTIONS = {"drain", "http_submit", "end_to_end", "fanout"}


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskrelay.cli",
            "bench",
            "--tasks=40",
            "--connections=2",
            "--http-duration=1",
            "--e2e-rate=20",
            "--e2e-duration=1",
            "--subscribers=3",
            "--messages-per-s=10",
            "--fanout-duration=1",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "worker drain" in completed.stdout
    return json.loads((Path(output) / "bench.json").read_text())


def test_the_report_has_every_scenario_and_the_machine(bench_report: dict) -> None:
    assert set(bench_report["sections"]) == SECTIONS
    assert bench_report["machine"]["nproc"] >= 1
    assert bench_report["machine"]["redis_version"]


def test_every_measured_subject_has_a_positive_rate(bench_report: dict) -> None:
    for key, section in bench_report["sections"].items():
        if not section["available"]:
            assert section["reason"], key
            continue
        assert section["rows"], key
        for row in section["rows"]:
            assert row["rate"] > 0, (key, row)


def test_the_drain_compares_taskrelay_with_every_baseline(bench_report: dict) -> None:
    subjects = [row["subject"] for row in bench_report["sections"]["drain"]["rows"]]
    assert len(subjects) == 4
    assert all(
        value and value > 0 for value in bench_report["sections"]["drain"]["ratios"].values()
    )


def test_latencies_are_reported_where_a_scenario_measures_them(bench_report: dict) -> None:
    for key in ("http_submit", "end_to_end"):
        for row in bench_report["sections"][key]["rows"]:
            assert row["p50_ms"] is not None and row["p50_ms"] <= row["p99_ms"], (key, row)
    for row in bench_report["sections"]["end_to_end"]["rows"]:
        assert row["loss"] == 0
