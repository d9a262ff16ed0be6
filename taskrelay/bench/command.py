"""The ``taskrelay bench`` command: options, the run in order, and where the report goes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from taskrelay.bench import drain, e2e, fanout, http_submit, levers, loadgen, report
from taskrelay.bench.drain import WorkerSetup
from taskrelay.bench.errors import BenchError
from taskrelay.bench.progress import Progress
from taskrelay.bench.results import Section
from taskrelay.bench.stack import Stack


@dataclass(frozen=True)
class BenchOptions:
    tasks: int
    connections: int
    http_duration_s: float
    e2e_rate: float
    e2e_duration_s: float
    subscribers: int
    messages_per_s: float
    fanout_duration_s: float
    processes: int


def run_scenarios(stack: Stack, options: BenchOptions, progress: Progress) -> list[Section]:
    sections = []
    with progress.step(f"worker drain, {options.tasks} tasks x 4 subjects") as step:
        sections.append(drain.run(stack, options.tasks, options.processes))
        step.text = _summary(sections[-1])
    with progress.step(f"HTTP submit, {options.http_duration_s:g} s x 3 targets") as step:
        load = http_submit.Load(options.connections, options.http_duration_s)
        sections.append(http_submit.run(stack, load))
        step.text = _summary(sections[-1])
    with progress.step(f"end to end at {options.e2e_rate:g} tasks/s") as step:
        setup = WorkerSetup(workers=options.processes)
        sections.append(e2e.run(stack, options.e2e_rate, options.e2e_duration_s, setup))
        step.text = _summary(sections[-1])
    with progress.step(
        f"fan-out, {options.subscribers} subscribers at {options.messages_per_s:g} msg/s"
    ) as step:
        fan = fanout.FanoutLoad(
            options.subscribers, options.messages_per_s, options.fanout_duration_s
        )
        sections.append(fanout.run(stack, fan))
        step.text = _summary(sections[-1])
    return sections


def run_levers(stack: Stack, options: BenchOptions, progress: Progress) -> list[Section]:
    load = http_submit.Load(options.connections, options.http_duration_s)
    return [
        levers.worker_levers(stack, options.tasks, progress),
        levers.web_levers(stack, load, progress),
    ]


def _summary(section: Section) -> str:
    if section.unavailable:
        return section.unavailable
    return "; ".join(f"{row.subject} {row.rate:,.0f} {row.unit}" for row in section.rows)


def redis_version(stack: Stack) -> str:
    client = stack.client()
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def execute(options: BenchOptions, output: Path, *, with_levers: bool) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    steps = len(levers.WORKER_LEVERS) + len(levers.WEB_LEVERS) if with_levers else 4
    progress = Progress(steps)
    started = time.monotonic()
    with Stack(output / "run") as stack:
        context: dict[str, Any] = {
            "machine": {**report.machine(), "redis_version": redis_version(stack)},
            "options": asdict(options),
            "load_generator": loadgen.available_tool(),
        }
        run = run_levers if with_levers else run_scenarios
        sections = run(stack, options, progress)
    context["seconds"] = round(time.monotonic() - started, 1)
    name = "levers" if with_levers else "bench"
    json_path = output / f"{name}.json"
    report.write_json(json_path, sections, context)
    click.echo(report.table(sections))
    click.echo(f"JSON: {json_path}")
    if report.write_plot(output / f"{name}.png", sections):
        click.echo(f"plot: {output / f'{name}.png'}")
    else:
        click.echo(report.INSTALL_HINT, err=True)
    return json_path


@click.command()
@click.option("--tasks", default=3000, show_default=True, help="No-op tasks per drain.")
@click.option("--connections", default=16, show_default=True, help="HTTP load connections.")
@click.option("--http-duration", default=5.0, show_default=True, help="Seconds per HTTP load.")
@click.option("--e2e-rate", default=100.0, show_default=True, help="Tasks/s, end to end.")
@click.option("--e2e-duration", default=5.0, show_default=True, help="Seconds end to end.")
@click.option("--subscribers", default=100, show_default=True, help="Fan-out subscribers.")
@click.option("--messages-per-s", default=200.0, show_default=True, help="Fan-out rate.")
@click.option("--fanout-duration", default=5.0, show_default=True, help="Seconds of fan-out.")
@click.option("--processes", default=2, show_default=True, help="Worker processes.")
@click.option(
    "--output",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--levers", "with_levers", is_flag=True, help="Measure each lever instead.")
def bench(output: Path, with_levers: bool, **values: Any) -> None:
    """Measure taskrelay beside its baselines; print a table, write JSON and a PNG plot."""
    options = BenchOptions(
        tasks=values["tasks"],
        connections=values["connections"],
        http_duration_s=values["http_duration"],
        e2e_rate=values["e2e_rate"],
        e2e_duration_s=values["e2e_duration"],
        subscribers=values["subscribers"],
        messages_per_s=values["messages_per_s"],
        fanout_duration_s=values["fanout_duration"],
        processes=values["processes"],
    )
    if report.matplotlib_missing():
        click.echo(report.INSTALL_HINT, err=True)
    try:
        execute(options, output.resolve(), with_levers=with_levers)
    except BenchError as error:
        raise click.ClickException(str(error)) from None
