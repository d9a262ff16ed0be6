"""`taskrelay bench` with tiny sizes against real processes: the report's shape, never its speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

Report = dict[str, Any]

SECTIONS = {"drain", "http_submit", "end_to_end", "fanout", "chaos", "schedules", "chord"}
CHAOS_TASKS = 300
E2E_TASKS = 30
E2E_ROUNDS = 2
SCHEDULES = 20
CHORD_STEPS = 10
CHORD_REPEATS = 2
# A killed worker's tasks come back after the visibility timeout: short here, so
# the chaos drain's one kill costs seconds, not the production 30 s.
SMOKE_ENV = {"TASKRELAY_VISIBILITY_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
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
            f"--e2e-tasks={E2E_TASKS}",
            "--e2e-clients=3",
            "--e2e-rate=20",
            "--e2e-duration=1",
            f"--e2e-rounds={E2E_ROUNDS}",
            "--subscribers=3",
            "--messages-per-s=10",
            "--fanout-duration=1",
            f"--chaos-tasks={CHAOS_TASKS}",
            "--chaos-workers=2",
            "--chaos-kills=1",
            f"--schedules={SCHEDULES}",
            "--schedules-duration=3",
            f"--chord-steps={CHORD_STEPS}",
            f"--chord-repeats={CHORD_REPEATS}",
            f"--output={output}",
        ],
        env={**os.environ, **SMOKE_ENV},
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "worker drain" in completed.stdout
    report: Report = json.loads((Path(output) / "bench.json").read_text())
    return report


def test_the_report_has_every_scenario_and_the_machine(bench_report: Report) -> None:
    assert set(bench_report["sections"]) == SECTIONS
    assert bench_report["machine"]["nproc"] >= 1
    assert bench_report["machine"]["redis_version"]


def test_every_measured_subject_has_a_positive_rate(bench_report: Report) -> None:
    for key, section in bench_report["sections"].items():
        if not section["available"]:
            assert section["reason"], key
            continue
        assert section["rows"], key
        for row in section["rows"]:
            assert row["rate"] > 0, (key, row)


def test_the_drain_compares_taskrelay_with_every_baseline(bench_report: Report) -> None:
    subjects = [row["subject"] for row in bench_report["sections"]["drain"]["rows"]]
    assert len(subjects) == 5
    assert "Celery tuned for speed (reference)" in subjects
    assert all(
        value and value > 0 for value in bench_report["sections"]["drain"]["ratios"].values()
    )


def test_latencies_are_reported_where_a_scenario_measures_them(bench_report: Report) -> None:
    for key in ("http_submit", "end_to_end"):
        for row in bench_report["sections"][key]["rows"]:
            assert row["p50_ms"] is not None and row["p50_ms"] <= row["p99_ms"], (key, row)
    for row in bench_report["sections"]["end_to_end"]["rows"]:
        assert row["loss"] == 0


def test_http_submit_sets_the_references_beside_taskrelays_post(bench_report: Report) -> None:
    section = bench_report["sections"]["http_submit"]
    rates = {row["subject"]: row["rate"] for row in section["rows"]}
    floor = "Celery's message alone, in taskrelay's web (reference)"
    assert rates["template POST /api/tasks (reference)"] > 0
    assert rates["taskrelay POST /api/tasks"] > 0
    assert rates[floor] > 0
    assert section["ratios"]["template POST /api/tasks (reference) / article GET /prodcons"] > 0
    assert section["ratios"][f"{floor} / article GET /prodcons"] > 0
    assert not any(row["note"] for row in section["rows"]), "no request may fail"


def test_http_submit_counts_what_a_request_costs_each_process_and_the_cores_busy(
    bench_report: Report,
) -> None:
    section = bench_report["sections"]["http_submit"]
    cores = bench_report["machine"]["nproc"]
    assert section["cpu_per"] == "request"
    for row in section["rows"]:
        spent = row["cpu_ms_per_task"]
        assert set(spent) == {"total", "server", "redis", "load generator"}, row
        # Every request reached the server and was sent by the load generator.
        assert spent["server"] > 0 and spent["load generator"] > 0, row
        assert 0 < row["busy_cores"] <= cores, row


def test_end_to_end_compares_taskrelay_with_and_without_flower_against_the_template(
    bench_report: Report,
) -> None:
    section = bench_report["sections"]["end_to_end"]
    # The throughput rows count what the client saw; the fixed-rate latency row does not.
    throughput = [row for row in section["rows"] if row["counts"]]
    assert len(throughput) == 4
    assert "the template tuned for speed (reference)" in [row["subject"] for row in throughput]
    for row in throughput:
        assert row["counts"] == {"rejected": 0, "failed": 0, "unfinished": 0}, row
        assert 0 < row["busy_cores"] <= bench_report["machine"]["nproc"], row
    assert len(section["ratios"]) == 3
    assert all(value and value > 0 for value in section["ratios"].values())
    # Each subject's ratio is paired with the template round by round.
    by_round = [note for note in section["notes"] if "round by round" in note]
    assert len(by_round) == 3
    for note in by_round:
        ratios = note.split(": ", 1)[1].split(", ")
        assert len(ratios) == E2E_ROUNDS and all(value.endswith("x") for value in ratios), note


def test_the_chaos_drain_runs_on_both_transports_and_accounts_for_every_task(
    bench_report: Report,
) -> None:
    rows = bench_report["sections"]["chaos"]["rows"]
    assert len(rows) == 2
    for row in rows:
        counts = row["counts"]
        assert counts["kills"] == 1, row
        assert counts["finished"] + counts["failed"] + counts["never_finished"] == CHAOS_TASKS
        assert counts["never_finished"] == (
            counts["gone"] + counts["still_queued"] + counts["still_held"]
        )
        assert counts["run_twice"] <= counts["extra_runs"]


def test_every_drain_counts_the_redis_commands_each_task_cost(bench_report: Report) -> None:
    for key in ("drain", "chaos", "end_to_end"):
        for row in bench_report["sections"][key]["rows"]:
            if key == "end_to_end" and not row["counts"]:
                continue  # the fixed-rate latency row counts no commands
            # At least the command that queued the task, and the one that took it.
            assert row["calls_per_task"]["total"] >= 2, (key, row)


def test_the_schedules_fire_every_slot_once_and_their_tasks_run(bench_report: Report) -> None:
    [row] = bench_report["sections"]["schedules"]["rows"]
    counts = row["counts"]
    # Each schedule fires on every whole second from its start to its end: several slots.
    assert counts["slots_expected"] >= 3 * SCHEDULES
    assert counts["fired"] == counts["slots_expected"]
    assert counts["duplicates"] == 0
    assert counts["missed"] == 0
    assert row["loss"] == 0
    assert counts["tasks_succeeded"] == counts["fired"]
    assert 0 <= row["p50_ms"] <= row["p99_ms"]


def test_the_chord_is_timed_through_taskrelay_and_through_the_canvas(bench_report: Report) -> None:
    section = bench_report["sections"]["chord"]
    assert len(section["rows"]) == 2
    for row in section["rows"]:
        assert row["counts"] == {"steps": CHORD_STEPS, "repeats": CHORD_REPEATS}, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
    [ratio] = section["ratios"].values()
    assert ratio and ratio > 0
