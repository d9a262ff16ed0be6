"""The run's report: a table for the terminal, JSON for tools, a PNG plot for people."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from taskrelay.bench import cpu
from taskrelay.bench.commandstats import describe
from taskrelay.bench.results import Section

INSTALL_HINT = (
    "the plot needs matplotlib: pip install 'taskrelay[bench]' (or: pip install matplotlib)"
)


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, memory, CPU model."""
    return {
        "nproc": os.cpu_count(),
        "memory": _first_line(["free", "-h"], line=1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }


def revision() -> str:
    """The commit measured, and whether the code it runs differs from that commit.

    The same figure before and after a change of the transport is only a
    comparison if each says which code it ran; "unknown" outside a git checkout.
    """
    source = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (source / ".git").exists():
        return "unknown"
    commit = _first_line(["git", "-C", str(source), "rev-parse", "--short", "HEAD"])
    changed = _first_line(["git", "-C", str(source), "status", "--porcelain", "--untracked=no"])
    return commit if changed == "unknown" else f"{commit} with uncommitted changes"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _first_line(argv: list[str], line: int = 0) -> str:
    if shutil.which(argv[0]) is None:
        return "unknown"
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    lines = done.stdout.splitlines()
    return " ".join(lines[line].split()) if len(lines) > line else "unknown"


def table(sections: list[Section]) -> str:
    out: list[str] = []
    for section in sections:
        out.append(f"== {section.title}")
        if section.unavailable:
            out.append(f"   {section.unavailable}")
            continue
        out.append(
            f"   {'subject':40} {'rate':>12} {'unit':<13} {'p50 ms':>8} {'p99 ms':>8} {'loss':>6}"
        )
        for row in section.rows:
            out.append(
                f"   {row.subject:40} {row.rate:12,.0f} {row.unit:<13} {_num(row.p50_ms):>8}"
                f" {_num(row.p99_ms):>8} {_pct(row.loss):>6}  {row.note}"
            )
        for name, value in section.ratios.items():
            out.append(f"   ratio {name}: {'n/a' if value is None else f'{value:.2f}x'}")
        out.extend(f"   {note}" for note in section.notes)
        calls = [row for row in section.rows if row.calls_per_task]
        if calls:
            out.append("   Redis commands per task (INFO commandstats):")
            out.extend(f"     {row.subject}: {describe(row.calls_per_task)}" for row in calls)
        spent = [row for row in section.rows if row.cpu_ms_per_task]
        if spent:
            out.append(
                f"   CPU ms per {section.cpu_per}, by role"
                " (user + system, processes with their children):"
            )
            out.extend(f"     {row.subject}: {cpu.describe(row.cpu_ms_per_task)}" for row in spent)
        busy = [row for row in section.rows if row.busy_cores is not None]
        if busy:
            out.append(f"   cores busy during each run, of {os.cpu_count()} (/proc/stat):")
            out.extend(f"     {row.subject}: {row.busy_cores:.2f}" for row in busy)
    return "\n".join(out)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def write_json(path: Path, sections: list[Section], context: dict[str, Any]) -> None:
    document = {
        **context,
        "sections": {section.key: section.to_json() for section in sections},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def matplotlib_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is None


def write_plot(path: Path, sections: list[Section]) -> bool:
    """One bar chart per measured section; False when matplotlib is not installed."""
    if matplotlib_missing():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [section for section in sections if section.rows]
    figure, axes = plt.subplots(len(shown), 1, figsize=(10, 2.2 + 1.6 * len(shown)), squeeze=False)
    for axis, section in zip(axes[:, 0], shown, strict=True):
        labels, values, unit = _bars(section)
        bars = axis.barh(labels[::-1], values[::-1], color="#4a7ebb")
        axis.bar_label(bars, labels=[f"{v:,.1f}" for v in values[::-1]], padding=3, fontsize=8)
        axis.set_title(section.title, fontsize=10, loc="left")
        axis.set_xlabel(unit, fontsize=8)
        axis.tick_params(labelsize=8)
        axis.set_xlim(0, max(values) * 1.2 if values and max(values) > 0 else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _bars(section: Section) -> tuple[list[str], list[float], str]:
    return (
        [row.subject for row in section.rows],
        [row.rate for row in section.rows],
        (section.rows[0].unit),
    )
